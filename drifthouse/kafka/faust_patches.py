"""Every change the worker makes to faust's and aiokafka's internals, in one place.

The worker runs on faust-streaming (group membership, rebalances, the partials, labels and
metrics agents, the web page) over aiokafka. Three private attributes are replaced and a few
more relied on; each function below says why. They were checked against the versions in
:data:`CHECKED_AGAINST`, which ``pyproject.toml`` pins; :data:`TARGETS` records the source hash
of every attribute touched, and ``tests/app/test_faust_patches.py`` fails when an upgrade
changes one of them (or the versions), so that the patch is read again before it runs.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib
import inspect
from dataclasses import dataclass
from typing import Any

__all__ = [
    "CHECKED_AGAINST",
    "TARGETS",
    "Target",
    "commit_with_metadata",
    "disable_commits",
    "fingerprint",
    "resolve",
    "shorten_fetch_wait",
]


#: The distributions whose internals are patched, and the versions the patches were checked
#: against (pinned in ``pyproject.toml``).
CHECKED_AGAINST: dict[str, str] = {"faust-streaming": "0.15.3", "aiokafka": "0.14.0"}


@dataclass(frozen=True)
class Target:
    """A private attribute patched or relied on: ``module:Qual.name``, the sha256 of its
    source when the patch was checked, and why it is touched."""

    path: str
    sha256: str
    why: str


_DRIVER = "faust.transport.drivers.aiokafka"
_CONSUMER = "aiokafka.consumer.consumer:AIOKafkaConsumer"

TARGETS: tuple[Target, ...] = (
    Target(
        f"{_DRIVER}:Consumer._commit",
        "a20eec84e4b2ed5072f6c6ab7707ac03d69e2255d67f115c31f8dc9cc246dc66",
        "replaced by disable_commits: faust's commits carry no checkpoint",
    ),
    Target(
        f"{_DRIVER}:AIOKafkaConsumerThread._create_consumer",
        "a4dc6ba0681a298c05d60994890984fe35edee17dea101f8071da9456700c238",
        "wrapped by shorten_fetch_wait: the consumer it makes fetches with a shorter wait",
    ),
    Target(
        f"{_CONSUMER}.__init__",
        "01506f316191f7c99c785bec915756d1560029a6fad75cba6f4da71e343a8163",
        "shorten_fetch_wait sets the _fetch_max_wait_ms it stores",
    ),
    Target(
        f"{_CONSUMER}.start",
        "2f1ba70443327538800d348e61042cdedd5a5e6306f40ebe1a06dddba7494c45",
        "hands _fetch_max_wait_ms to the fetcher when the consumer starts",
    ),
    Target(
        f"{_DRIVER}:AIOKafkaConsumerThread._ensure_consumer",
        "ff4a4c693b7ec63f4a76dfb61c419380bef70dd32383fe38ebcfcc27091605a6",
        "commit_with_metadata reaches faust's aiokafka consumer through it",
    ),
    Target(
        f"{_DRIVER}:AIOKafkaConsumerThread.call_thread",
        "479edda75b54734b48dabbb33071259949ded0a6f9fa6f82e81afdc42aff6e55",
        "commit_with_metadata commits on the consumer's own thread",
    ),
    Target(
        f"{_CONSUMER}.commit",
        "79b057d88220e5a24d241b8677689bf4e3bb57fc42c8f80dde0dca5dfbac5578",
        "commit_with_metadata commits offsets with metadata",
    ),
)


def resolve(path: str) -> Any:
    """The object ``module:Qual.name`` names (a property's getter for a property)."""
    module, _, qualname = path.partition(":")
    found: Any = importlib.import_module(module)
    for name in qualname.split("."):
        found = getattr(found, name)
    return found.fget if isinstance(found, property) else found


def fingerprint(obj: Any) -> str:
    """sha256 of ``obj``'s source."""
    return hashlib.sha256(inspect.getsource(obj).encode()).hexdigest()


def disable_commits(app: Any) -> None:
    """Switch faust's own commit path off for ``app``'s consumer.

    faust commits the offsets it has read when a worker stops or loses partitions, with no
    metadata, which would overwrite the worker's checkpoints and skip the open panes' events on
    the next start. The worker commits only checkpoints (:func:`commit_with_metadata`).
    """

    async def _no_commit(offsets: Any) -> bool:
        return True

    app.consumer._commit = _no_commit


def shorten_fetch_wait(app: Any, wait_ms: int) -> None:
    """Have faust's aiokafka consumer fetch with ``wait_ms`` as its ``fetch_max_wait_ms``.

    faust passes a fixed 1,500 ms, and the consumer's fetcher takes the value from the consumer
    when it starts.
    """
    thread = app.consumer._thread
    create = thread._create_consumer

    def _create_consumer(loop: asyncio.AbstractEventLoop) -> Any:
        consumer = create(loop=loop)
        consumer._fetch_max_wait_ms = wait_ms
        return consumer

    thread._create_consumer = _create_consumer


async def commit_with_metadata(app: Any, offsets: dict[Any, Any]) -> None:
    """Commit ``{TopicPartition: OffsetAndMetadata}`` through faust's consumer.

    faust keeps its aiokafka consumer in a thread of its own and commits without metadata; the
    worker's checkpoints travel in the metadata, so the commit goes through that thread.
    """
    thread = app.consumer._thread
    consumer = thread._ensure_consumer()
    await thread.call_thread(consumer.commit, offsets)
