"""Every fenced code block of README.md, SECURITY.md and docs/*.md is run or checked here.

One test per block, named ``file:line``. What "run" means depends on the block's language:

- ``sh``/``bash``/``console``: each command runs, in order, in a fresh copy of a workspace
  (``drifthouse.yaml``, ``reference.jsonl``, ``last-week.jsonl``, a profile and an embedded
  store already filled by ``drifthouse replay``); every ``drifthouse`` command must exit 0
  (``drifthouse demo`` with its options as written, stopped after three seconds: the whole
  demo is ``tests/test_demo.py``'s);
- ``python``: the block runs in its own interpreter in such a workspace;
- ``yaml``: a configuration (or a part of one, put over the workspace's) must pass
  ``drifthouse check`` (the config loader and the rules parser) without errors;
- ``sql``: every statement runs on the workspace's store, which the real pipeline filled;
- ``json``: an event, decoded by the event decoder of its kind;
- ``text``: output shown to the reader or a diagram: nothing to run, and it must not hold a
  command prompt (a command block labelled ``text`` would escape the test).

The documents name the hosts a reader would have; here they are pointed at local stand-ins:
``localhost:9092`` at the test broker and ``clickhouse:8123`` at a local ClickHouse HTTP server
(:class:`tests.sinks.conftest.HttpClickHouse`, uncompressed). Commands that cannot run on this machine are in
:data:`NOT_RUN`, each with the reason and what is checked instead.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from drifthouse.config import check_config
from drifthouse.events import decoder_for
from drifthouse.simulate import Scenario, simulate
from tests.ports import free_port

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / "README.md", ROOT / "SECURITY.md", *sorted((ROOT / "docs").glob("*.md"))]
SHELLS = {"sh", "bash", "console", "shell"}
LANGUAGES = SHELLS | {"python", "yaml", "sql", "json", "text"}

#: Commands the test does not run, with why and what it checks instead. Keep it short.
NOT_RUN = {
    "make demo": "runs `drifthouse demo` (run from docs/demo.md) after `make venv`; "
    "checked: the Makefile's demo target is that command",
    "make test": "is this test suite itself; checked: the Makefile's test target runs pytest",
    "docker compose": "no Docker engine on the test machine; checked: docker-compose.yml parses "
    "and names the services the command uses (tests/test_compose.py checks the file in depth)",
}

#: How long the documents' `drifthouse demo` commands run here (see :func:`_short_demo`).
DEMO_MINUTES = 0.05

#: Placeholder values for the secrets the documents read from the environment.
SECRETS = {
    "SLACK_BOT_TOKEN": "xoxb-docs-placeholder",
    "SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T000/B000/docs",
    "PAGERDUTY_ROUTING_KEY": "docs-routing-key",
    "CLICKHOUSE_PASSWORD": "docs-password",
    "CLICKHOUSE_USER": "default",
    "KAFKA_PASSWORD": "docs-password",
    "TOKEN": "docs-token",
    "DRIFTHOUSE_PII_KEY": "docs-pii-key-0123456789abcdef0123456789abcdef",
}


@dataclass(frozen=True)
class Block:
    path: Path
    line: int  # of the opening fence
    lang: str
    text: str

    @property
    def id(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def _blocks() -> list[Block]:
    out = []
    for path in DOCUMENTS:
        lines = path.read_text(encoding="utf-8").splitlines()
        i = 0
        while i < len(lines):
            m = re.match(r"^\s*(```+|~~~+)\s*([\w+-]*)\s*$", lines[i])
            if m is None:
                i += 1
                continue
            fence, lang = m.group(1), m.group(2)
            end = i + 1
            while end < len(lines) and not lines[end].strip().startswith(fence):
                end += 1
            assert end < len(lines), f"{path.name}:{i + 1}: the code block is never closed"
            out.append(Block(path, i + 1, lang, "\n".join(lines[i + 1 : end]) + "\n"))
            i = end + 1
    return out


BLOCKS = _blocks()


_NEEDS_KAFKA = ("localhost:9092", "drifthouse produce", "drifthouse run")


def _params(langs: set[str]) -> list[Any]:
    """One parameter per block, marked ``kafka`` when it talks to the broker."""
    return [
        pytest.param(
            b,
            id=b.id,
            marks=[pytest.mark.kafka] if any(w in b.text for w in _NEEDS_KAFKA) else [],
        )
        for b in BLOCKS
        if b.lang in langs
    ]


def test_every_block_names_a_language_the_test_knows() -> None:
    unknown = [f"{b.id} ({b.lang or 'no language'})" for b in BLOCKS if b.lang not in LANGUAGES]
    assert not unknown, f"label these blocks with one of {sorted(LANGUAGES)}: {unknown}"
    assert len(BLOCKS) >= 25  # the extraction found them


# -- the workspace ------------------------------------------------------------------------------

WORKSPACE_CONFIG = """\
kafka: {bootstrap: "localhost:9092", topic: docs-predictions, labels_topic: docs-labels, group: docs-group, web_port: 6066}
store: {path: ./store, ttl_days: {predictions: 3650}}
windows: [{size: 1h}, {size: 15m, hop: 5m}]
metrics: {attribution_top_k: 3}
models:
  fraud: {reference: refs/fraud.json, pii: [email]}
rules:
  - {name: data-drift, metric: psi, when: "value > 0.25", clear: "value < 0.1", for: 2, severity: warning}
  - {name: serving-errors, metric: error_rate_5xx, feature: "", when: "value > 0.05", severity: critical}
routes:
  - {match: {severity: critical}, receivers: [pagerduty, slack]}
  - {match: {severity: warning}, receivers: [slack]}
receivers:
  slack: {type: console}
  pagerduty: {type: console}
"""


def _substitute(text: str, hosts: dict[str, str]) -> str:
    for name, address in hosts.items():
        text = text.replace(name, address)
    return text


def _env() -> dict[str, str]:
    env = {**os.environ, **SECRETS, "COLUMNS": "160", "NO_COLOR": "1"}
    env.pop("DRIFTHOUSE_CONFIG", None)
    return env


def _drifthouse(
    args: list[str], cwd: Path, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "drifthouse", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, (
        f"drifthouse {shlex.join(args)} exited {done.returncode}:\n{done.stdout[-3000:]}\n"
        f"{done.stderr[-3000:]}"
    )
    return done


# The rows a live worker would have written (run id `live`, which replays may not use), by the
# worker's pipeline and alert stage, in a process of its own (one embedded store per process).
_FILL_LIVE = """
from drifthouse.config import load_config
from drifthouse.sinks import store_reference
from drifthouse.stream.dead_letters import MemoryDeadLetters
from drifthouse.app.pipeline import Pipeline
from drifthouse.app.replay import load_profiles, replay_alerts
from drifthouse.app.run import open_sink
from drifthouse.stream.sources import Message

config = load_config("drifthouse.yaml")
profiles = load_profiles(config)
sink = open_sink(config)
for profile in profiles.values():
    store_reference(sink, profile)
alerts = replay_alerts(config, sink, profiles, run_id="live", notify=False, keep_rows=False)
pipeline = Pipeline(config=config, profiles=profiles, sink=sink,
                    dead_letters=MemoryDeadLetters(), run_id="live", on_window=[alerts])
pipeline.expect_partitions([0])
with open("last-week.jsonl", "rb") as fh:
    lines = fh.read().splitlines()
for i in range(0, len(lines), 1000):
    pipeline.process([Message(v, 0, i + j, "predictions", b"fraud")
                      for j, v in enumerate(lines[i : i + 1000])])
pipeline.finish()
alerts.finish()
sink.flush()
sink.close()
"""


@pytest.fixture(scope="session")
def workspace_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace as the README's session leaves it: a reference profile built with
    ``drifthouse profile`` and twelve hours of events after it through the pipeline into the
    embedded store, as the live worker writes them; a canary version serves a twentieth of
    them."""
    folder = tmp_path_factory.mktemp("docs-workspace")
    scenario = Scenario.demo(days=1.5, rate_per_min=10)
    with (
        open(folder / "reference.jsonl", "wb") as ref,
        open(folder / "last-week.jsonl", "wb") as week,
    ):
        for i, r in enumerate(simulate(scenario, seed=5, labels=False)):
            if r.key != b"fraud":
                continue
            if r.ts_ms < scenario.reference_end_ms:
                ref.write(r.value + b"\n")
            elif i % 20:
                week.write(r.value + b"\n")
            else:  # a canary serving a twentieth of the traffic (docs/metrics.md, canaries)
                week.write(
                    json.dumps(json.loads(r.value) | {"model_version": "2.4.0"}).encode() + b"\n"
                )
    (folder / "drifthouse.yaml").write_text(WORKSPACE_CONFIG)
    env = _env()
    _drifthouse(
        ["profile", "reference.jsonl", "--model", "fraud", "--model-version", "2.3.0",
         "--out", "refs/fraud.json"],
        folder,
        env,
    )  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-c", _FILL_LIVE], cwd=folder, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return folder


@pytest.fixture
def workspace(workspace_template: Path, tmp_path: Path) -> Path:
    """A copy of the template whose configuration uses the template's store: an embedded
    store does not survive being copied, and the blocks run one at a time."""
    folder = tmp_path / "workspace"
    shutil.copytree(workspace_template, folder, ignore=shutil.ignore_patterns("store"))
    config = folder / "drifthouse.yaml"
    store = (workspace_template / "store").as_posix()
    config.write_text(config.read_text().replace("path: ./store", f"path: {store}"))
    return folder


@pytest.fixture(scope="session")
def clickhouse_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``host:port`` of a local ClickHouse HTTP server (the embedded engine behind HTTP)."""
    from tests.sinks.conftest import HttpClickHouse

    server = HttpClickHouse(tmp_path_factory.mktemp("docs-clickhouse"))
    server.start()
    try:
        yield f"127.0.0.1:{server.port}"
    finally:
        server.stop()


def _hosts(block: Block, request: pytest.FixtureRequest) -> dict[str, str]:
    hosts = {}
    if any(word in block.text for word in _NEEDS_KAFKA):
        hosts["localhost:9092"] = request.getfixturevalue("kafka_bootstrap")
        # Blocks may run side by side (pytest -n): each gets topics, a group and a port of its own.
        suffix = uuid.uuid4().hex[:8]
        for name in ("docs-predictions", "docs-labels", "docs-group"):
            hosts[name] = f"{name}-{suffix}"
        hosts[":6066"] = f":{free_port()}"
        hosts["web_port: 6066"] = f"web_port: {hosts[':6066'][1:]}"
    if "clickhouse:8123/drifthouse" in block.text:
        # The local server speaks uncompressed HTTP only.
        address = request.getfixturevalue("clickhouse_server")
        hosts["clickhouse:8123/drifthouse"] = f"{address}/drifthouse?compress=false"
    return hosts


# -- shell ----------------------------------------------------------------------------------------


def _commands(text: str) -> list[list[str]]:
    """The commands of a shell block: prompts, comments and output lines left out."""
    joined = re.sub(r"\\\n\s*", " ", text)
    out = []
    for line in joined.splitlines():
        line = line.strip()
        if line.startswith("$ "):
            line = line[2:]
        if not line or line.startswith("#"):
            continue
        out.append(shlex.split(line, comments=True))
    return out


def _not_run(words: list[str]) -> str | None:
    for prefix in NOT_RUN:
        if words[: len(prefix.split())] == prefix.split():
            return prefix
    return None


def _check_not_run(prefix: str, words: list[str]) -> None:
    if prefix.startswith("make"):
        makefile = (ROOT / "Makefile").read_text()
        target = words[1]
        recipe = makefile.split(f"\n{target}:", 1)[1].split("\n\n", 1)[0]
        want = "drifthouse demo" if target == "demo" else "pytest"
        assert want in recipe, f"make {target} should run {want}"
        return
    services = set(yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"])
    command, rest = words[2], words[3:]
    named: list[str] = []
    for i, word in enumerate(rest):
        if word == "--scale":
            named.append(rest[i + 1].split("=")[0])
    args = [
        w
        for i, w in enumerate(rest)
        if not w.startswith("-") and (i == 0 or rest[i - 1] != "--scale")
    ]
    if command in {"exec", "run"}:
        named.append(args[0])  # the rest is the command run in the container
    elif command in {"up", "logs", "ps", "stop", "start", "restart", "build", "pull"}:
        named.extend(args)
    else:
        assert command in {"down", "config"}, (
            f"docker compose {command}: not a command checked here"
        )
    unknown = [name for name in named if name not in services]
    assert not unknown, (
        f"docker compose names services that are not in docker-compose.yml: {unknown}"
    )


@pytest.mark.slow
@pytest.mark.parametrize("block", _params(SHELLS))
def test_shell_block_runs(block: Block, workspace: Path, request: pytest.FixtureRequest) -> None:
    hosts = _hosts(block, request)
    env = _env()
    commands = _commands(_substitute(block.text, hosts))
    config = workspace / "drifthouse.yaml"
    config.write_text(_substitute(config.read_text(), hosts))
    assert commands, f"{block.id}: no command in a shell block"
    background: list[subprocess.Popen[bytes]] = []
    try:
        for words in commands:
            _run_command(block, words, workspace, env, background)
    finally:
        for proc in background:  # `command &`: stopped when the block ends
            proc.terminate()
            proc.wait(timeout=60)


def _run_command(
    block: Block,
    words: list[str],
    workspace: Path,
    env: dict[str, str],
    background: list[subprocess.Popen[bytes]],
) -> None:
    prefix = _not_run(words)
    if prefix is not None:
        _check_not_run(prefix, words)
    elif words[-1] == "&":
        assert words[0] == "drifthouse", f"{block.id}: only drifthouse runs in the background here"
        log = (workspace / f"background-{len(background)}.log").open("wb")
        background.append(
            subprocess.Popen(
                [sys.executable, "-m", "drifthouse", *words[1:-1]],
                cwd=workspace,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
    elif words[0] == "curl":
        done = subprocess.run(words, capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 0, f"{block.id}: {shlex.join(words)}: {done.stderr}"
        if "/drifthouse/health/" in words[-1]:
            health = json.loads(done.stdout)
            assert health["status"] == "ok"
            assert {"events", "partitions", "merger"} <= set(health), health
    elif words[:2] == ["drifthouse", "demo"]:
        _drifthouse(_short_demo(words[1:]), workspace, env)
    elif words[0] == "drifthouse":
        _drifthouse(words[1:], workspace, env)
    elif words[0] == "cp":
        source = ROOT / words[1]
        assert source.exists(), f"{block.id}: {words[1]} does not exist in the repository"
        target = workspace / words[2]
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, target)
    else:
        raise AssertionError(f"{block.id}: no way to run {shlex.join(words)!r} here")


def _short_demo(args: list[str]) -> list[str]:
    """``demo`` with every option as written, stopped after a few seconds of wall time by
    ``--minutes`` (whole runs of the demo, each fault caught, are tests/test_demo.py's)."""
    kept = [a for i, a in enumerate(args) if a != "--minutes" and args[i - 1] != "--minutes"]
    return [*kept, "--minutes", str(DEMO_MINUTES)]


# -- python ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("block", _params({"python"}))
def test_python_block_runs(block: Block, workspace: Path, request: pytest.FixtureRequest) -> None:
    hosts = _hosts(block, request)
    code = _substitute(block.text, hosts)
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=workspace,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, f"{block.id} failed:\n{done.stderr[-4000:]}"


# -- yaml -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("block", _params({"yaml"}))
def test_yaml_block_is_a_valid_configuration(
    block: Block, workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    part = yaml.safe_load(block.text)
    assert isinstance(part, dict), f"{block.id}: a YAML block should be a configuration mapping"
    # A part of a configuration (only `routes:`, say) is checked inside the workspace's.
    config = {**yaml.safe_load(WORKSPACE_CONFIG), **part}
    path = workspace / "checked.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    report = check_config(path)
    assert report.ok, f"{block.id}: {report.errors}"


# -- sql ------------------------------------------------------------------------------------------

_RUN_SQL = """
import json, sys
from drifthouse.config import load_config
from drifthouse.sinks import open_store
cfg = load_config("drifthouse.yaml")
client = open_store(cfg.store_dsn(), cfg.store.database)
params = json.loads(sys.argv[2])
counts = []
for statement in json.loads(sys.argv[1]):
    counts.append(len(client.query(statement, parameters=params).result_rows))
print(json.dumps(counts))
"""

#: Values of the query parameters (``{name:Type}``) the documents' SQL uses.
SQL_PARAMETERS = {
    "model": "fraud",
    "model_version": "2.3.0",
    "feature": "amount",
    "start": "2026-01-02 00:00:00",
    "end": "2026-01-02 12:00:00",
}


def _statements(sql: str) -> list[str]:
    body = "\n".join(line for line in sql.splitlines() if not line.strip().startswith("--"))
    return [s.strip() for s in body.split(";") if s.strip()]


@pytest.mark.parametrize("block", _params({"sql"}))
def test_sql_block_runs_on_a_store_the_pipeline_filled(block: Block, workspace: Path) -> None:
    statements = _statements(block.text)
    assert statements
    done = subprocess.run(
        [sys.executable, "-c", _RUN_SQL, json.dumps(statements), json.dumps(SQL_PARAMETERS)],
        cwd=workspace,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, f"{block.id}:\n{done.stderr[-4000:]}"
    counts = json.loads(done.stdout.strip().splitlines()[-1])
    assert all(n > 0 for n in counts), f"{block.id}: a statement returned no rows: {counts}"


# -- json -----------------------------------------------------------------------------------------


def _kind(event: dict[str, Any]) -> str:
    if "label" in event:
        return "label"
    if "metrics" in event:
        return "metric"
    return "prediction"


@pytest.mark.parametrize("block", _params({"json"}))
def test_json_block_is_an_event_the_decoder_takes(block: Block) -> None:
    raw = block.text.strip().encode()
    event = json.loads(raw)
    decoded = decoder_for(_kind(event)).decode(raw)  # type: ignore[arg-type]
    assert decoded.model == event["model"]


# -- text -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("block", _params({"text"}))
def test_text_block_is_output_not_a_command(block: Block) -> None:
    prompts = [line for line in block.text.splitlines() if re.match(r"\s*\$ ", line)]
    assert not prompts, f"{block.id} holds commands; label it sh so that they run: {prompts}"
    assert block.text.strip()


def _demo_commands(path: str) -> set[str]:
    from drifthouse.demo.report import demo_queries

    return {q.command for q in demo_queries(Path(path), "demo")}


@pytest.mark.parametrize("block", _params({"text"}))
def test_commands_shown_as_output_are_the_programs_own(block: Block) -> None:
    # The demo prints `drifthouse sql` commands to paste; a page that shows them must show
    # what the demo prints, not an edited copy that would no longer run.
    for line in block.text.splitlines():
        m = re.match(r"drifthouse sql -c (\S+) ", line)
        if m is not None:
            assert line in _demo_commands(m.group(1)), f"{block.id}: not a demo query: {line}"


# -- commands in prose ----------------------------------------------------------------------------

#: `drifthouse ...` in running text (a code span, or a cell of the README's command table).
_INLINE = re.compile(r"`(drifthouse [^`]+)`")


def _inline_commands() -> list[tuple[str, str]]:
    out = []
    for path in [*DOCUMENTS, ROOT / "bench" / "README.md"]:
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            for m in _INLINE.finditer(line):
                out.append((f"{path.relative_to(ROOT)}:{n}", m.group(1)))
    return out


def _cli_words(text: str) -> tuple[list[list[str]], list[str]]:
    """The command paths a span names (``add\\|list`` gives both) and the options it uses."""
    words = text.replace("[", " ").replace("]", " ").split()[1:]
    paths: list[list[str]] = [[]]
    in_path = True
    options = []
    for word in words:
        if word.startswith("-"):
            options.append(word.split("=")[0])
            in_path = False
        elif in_path and all(re.fullmatch(r"[a-z][a-z-]*", a) for a in word.split("\\|")):
            paths = [[*p, a] for p in paths for a in word.split("\\|")]
        else:
            in_path = False  # an argument, a placeholder or an option's value
    return paths, options


def test_commands_in_prose_name_real_subcommands_and_options() -> None:
    import typer

    from drifthouse.cli import app

    root: Any = typer.main.get_command(app)  # typer's own click: commands and params
    spans = _inline_commands()
    assert len(spans) >= 20  # the scan found them
    problems = []
    for where, text in spans:
        paths, options = _cli_words(text)
        for path in paths:
            command = root
            for name in path:
                if not hasattr(command, "commands"):
                    break  # an argument of the command found so far
                sub = command.commands.get(name)
                if sub is None:
                    problems.append(f"{where}: `{text}`: no command {name!r}")
                    break
                command = sub
            known = {opt for p in command.params for opt in (*p.opts, *p.secondary_opts)}
            known.add("--help")
            problems += [
                f"{where}: `{text}`: {command.name} has no option {o}"
                for o in options
                if o not in known
            ]
    assert not problems, "\n".join(problems)


# -- bench/README.md ------------------------------------------------------------------------------

_BENCH = ROOT / "bench"


def _bench_commands() -> dict[str, set[str]]:
    """Script name -> the options bench/README.md gives it (commands span `\\` lines)."""
    text = re.sub(r"\\\n\s*", " ", (_BENCH / "README.md").read_text(encoding="utf-8"))
    out: dict[str, set[str]] = {}
    for line in text.splitlines():
        m = re.search(r"python bench/(bench_\w+\.py)(.*)", line)
        if m is not None:
            opts = re.findall(r"(--[a-z][a-z-]*)", m.group(2))
            out.setdefault(m.group(1), set()).update(opts)
    return out


def test_every_benchmark_is_documented() -> None:
    scripts = {p.name for p in _BENCH.glob("bench_*.py")}
    assert scripts <= set(_bench_commands()), scripts - set(_bench_commands())


@pytest.mark.parametrize("script", sorted(p.name for p in _BENCH.glob("bench_*.py")))
def test_benchmark_commands_take_the_options_documented(script: str) -> None:
    # The benchmarks take minutes and print figures for the README: they are not run here;
    # each one's argument parser is (`--help`), and must know every option bench/README.md uses.
    done = subprocess.run(
        [sys.executable, str(_BENCH / script), "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env=_env(),
    )
    assert done.returncode == 0, done.stderr[-2000:]
    documented = _bench_commands().get(script, set())
    unknown = [o for o in sorted(documented) if not re.search(rf"{o}\b", done.stdout)]
    assert not unknown, f"bench/README.md gives {script} options its --help lacks: {unknown}"
