"""Loading ``drifthouse.yaml``: read, interpolate, locate and validate (docs/configuration.md).

YAML values may use ``${ENV_VAR}``, ``${ENV_VAR:-default}`` and ``${file:/path/to/secret}``
(relative to the config file's folder); ``$${`` writes a literal ``${``. Interpolation happens
inside parsed YAML values, so a secret containing ``#``, ``:`` or quotes cannot change the
document's structure, and references in comments are ignored.

:func:`load_config` reports every problem at once, each located as ``file:line dotted.path``;
values read under secret keys are masked in every message and, from then on, in all output of
the process.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from drifthouse.config.checks import raw_reference_problems
from drifthouse.config.locations import dotted, is_warning, line_key, locate
from drifthouse.config.schema import Config
from drifthouse.errors import ConfigError
from drifthouse.logs import get_logger, hide_secret, redact

__all__ = ["Loaded", "load", "load_config"]

log = get_logger("config")

_ENV = re.compile(r"\$(\$)?\{(file:)?([^}:]+)(?::-([^}]*))?\}")
_SECRET_KEYS = frozenset(
    {"token", "webhook_url", "routing_key", "sasl_password", "dsn", "password", "headers"}
)
_RESOLVER: Any = yaml.resolver.Resolver()
_RECEIVER_TAGS = frozenset({"slack", "pagerduty", "webhook", "kafka", "console"})


@dataclass
class Loaded:
    """What reading the YAML gave: data, line index, problems so far and secrets to redact."""

    source: str
    base_dir: Path
    data: Any = None
    lines: dict[str, int] = field(default_factory=dict)
    problems: list[tuple[str, str]] = field(default_factory=list)
    secrets: set[str] = field(default_factory=set)
    key_secrets: set[str] = field(default_factory=set)  # values under secret keys only
    unresolved: set[str] = field(default_factory=set)  # paths whose ${...} could not be filled
    visited: set[int] = field(default_factory=set)  # ids of nodes walked (aliases share nodes)

    def where(self, at: tuple[int | str, ...]) -> str:
        """``'drifthouse.yaml:14 receivers.slack.token'``: the location of a path of keys."""
        return self.locate(dotted(at))

    def locate(self, path: str) -> str:
        """The location of a dotted path; paths not in the file take their nearest ancestor's line."""
        return locate(self.source, self.lines, path)

    def redact(self, message: str) -> str:
        # Any piece of a secret, not only the whole value (see drifthouse.logs.redact).
        message = redact(message, self.secrets)
        return re.sub(r"(\w+://[^/\s:@]*:)[^@\s/]+@", r"\1***@", message)


def _interpolate_nodes(node: yaml.Node, loaded: Loaded, path: tuple[int | str, ...] = ()) -> None:
    """Substitute ``${...}`` in scalar values (never keys), index lines, find duplicate keys."""
    if id(node) in loaded.visited:
        return  # an alias of a node already walked (or a recursive anchor)
    loaded.visited.add(id(node))
    loaded.lines.setdefault(dotted(path), node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key, value in node.value:
            name = key.value if isinstance(key, yaml.ScalarNode) else str(key.start_mark.line + 1)
            if name in seen:
                loaded.problems.append(
                    (
                        f"{loaded.source}:{key.start_mark.line + 1} {dotted((*path, name))}",
                        f"duplicate key {name!r} (first on line {seen[name]}); "
                        "YAML would silently keep only the last one",
                    )
                )
            seen.setdefault(name, key.start_mark.line + 1)
            child = (*path, name)
            # A problem with a value is reported on its key's line.
            loaded.lines.setdefault(dotted(child), key.start_mark.line + 1)
            _interpolate_nodes(value, loaded, child)
            if name in _SECRET_KEYS:
                _collect_secrets(value, loaded, everywhere=name != "dsn")
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _interpolate_nodes(item, loaded, (*path, i))
    elif isinstance(node, yaml.ScalarNode) and "${" in node.value:
        value = _substitute(node.value, loaded, path, node.start_mark.line + 1)
        if value != node.value:
            node.value = value
            if node.style is None:  # plain scalars get their type from the substituted text
                node.tag = _RESOLVER.resolve(yaml.ScalarNode, value, (True, False))


def _collect_secrets(node: yaml.Node, loaded: Loaded, *, everywhere: bool = True) -> None:
    """Values under a secret key; ``everywhere``: masked in all output of the process too (a
    DSN is not: its host and database are not secret, and its password is masked as such)."""
    if isinstance(node, yaml.ScalarNode):
        if len(node.value) >= 4:
            loaded.secrets.add(node.value)
            if everywhere:
                loaded.key_secrets.add(node.value)
    elif isinstance(node, yaml.MappingNode):
        for _key, value in node.value:
            _collect_secrets(value, loaded, everywhere=everywhere)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            _collect_secrets(item, loaded, everywhere=everywhere)


def _substitute(text: str, loaded: Loaded, path: tuple[int | str, ...], line: int) -> str:
    def replace(match: re.Match[str]) -> str:
        escaped, is_file, name, default = match.groups()
        if escaped:
            return match.group(0)[1:]
        where = f"{loaded.source}:{line} {dotted(path)}"
        loaded.unresolved.add(dotted(path))
        if is_file:
            secret_path = Path(name.strip())
            if not secret_path.is_absolute():
                secret_path = loaded.base_dir / secret_path
            try:
                value = secret_path.read_text(encoding="utf-8").strip()
                loaded.unresolved.discard(dotted(path))
            except OSError as exc:
                loaded.problems.append(
                    (where, f"secret file {str(secret_path)!r} cannot be read ({exc.strerror})")
                )
                return ""
        else:
            env = os.environ.get(name)
            if env is not None or default is not None:
                loaded.unresolved.discard(dotted(path))
            if env is None:
                if default is not None:
                    return default
                loaded.problems.append(
                    (
                        where,
                        f"environment variable {name} is not set; set it, or write "
                        f"${{{name}:-default}} for a default",
                    )
                )
                return ""
            value = env
        if len(value) >= 4:
            loaded.secrets.add(value)
        return value

    return _ENV.sub(replace, text)


def _read(path: Path) -> Loaded:
    """Read, parse and interpolate ``path``; problems so far are collected, not raised."""
    source = str(path)
    loaded = Loaded(source=source, base_dir=path.resolve().parent)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ConfigError(
            f"cannot read config file {source}: {reason}",
            [(source, f"cannot be read ({reason}); pass an existing YAML file with -c")],
        ) from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        what = " ".join(
            str(part)
            for part in (getattr(exc, "context", None), getattr(exc, "problem", None))
            if part
        )
        message = f"not valid YAML: {what or 'syntax error'}"
        line_text = (
            text.splitlines()[mark.line]
            if mark is not None and mark.line < len(text.splitlines())
            else ""
        )
        if "${" in line_text:
            message += (
                '; inside { } or [ ], quote ${...} references, e.g. {token: "${SLACK_BOT_TOKEN}"}'
            )
        raise ConfigError(f"{where}: not valid YAML", [(where, message)]) from None
    if node is None:
        loaded.data = {}
        return loaded
    _interpolate_nodes(node, loaded)
    try:
        loader = yaml.SafeLoader("")
        loaded.data = loader.construct_document(node)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        loaded.problems.append((where, f"not valid YAML: {getattr(exc, 'problem', 'bad value')}"))
        loaded.data = {}
    return loaded


def _pydantic_problems(exc: ValidationError, loaded: Loaded) -> Iterator[tuple[str, str]]:
    for err in exc.errors(include_input=False, include_url=False, include_context=False):
        loc = tuple(err["loc"])
        # A discriminated union adds the receiver's type tag after its name: drop it.
        if len(loc) >= 3 and loc[0] == "receivers" and loc[2] in _RECEIVER_TAGS:
            loc = loc[:2] + loc[3:]
        if dotted(loc) in loaded.unresolved:
            continue  # the missing variable is the problem, already reported
        message = err["msg"]
        for prefix in ("Value error, ", "Assertion failed, "):
            message = message.removeprefix(prefix)
        yield loaded.where(loc), loaded.redact(message)


def load(path: str | Path) -> tuple[Config | None, Loaded, list[tuple[str, str]]]:
    """Everything :func:`load_config` and
    :func:`~drifthouse.config.report.check_config` share; never raises on content."""
    loaded = _read(Path(path))
    for secret in loaded.key_secrets:
        hide_secret(secret)  # masked wherever this process prints or logs from now on
    data = loaded.data
    problems = list(loaded.problems)
    warnings: list[tuple[str, str]] = []
    if not isinstance(data, dict):
        problems.append(
            (
                loaded.source,
                "expected a mapping of sections (kafka, store, windows, models, rules, ...) "
                f"(got a {type(data).__name__})",
            )
        )
        return None, loaded, problems
    for loc, message in raw_reference_problems(data):
        (warnings if is_warning(message) else problems).append(
            (loaded.where(loc), loaded.redact(message))
        )
    config: Config | None = None
    try:
        config = Config.model_validate(
            {**data, "base_dir": loaded.base_dir}, context={"skip_cross_refs": True}
        )
    except ValidationError as exc:
        problems.extend(_pydantic_problems(exc, loaded))
    if config is not None:
        config._source = loaded.source
        config._lines = loaded.lines
    return config, loaded, sorted(problems, key=line_key) + sorted(warnings, key=line_key)


def load_config(path: str | Path) -> Config:
    """Load, interpolate and validate ``drifthouse.yaml``.

    Raises
    ------
    ConfigError
        Listing every problem as ``(location, message)``, the location being
        ``file:line dotted.path`` (e.g. ``drifthouse.yaml:14 receivers.slack.token``).
        Messages never contain secret values.
    """
    config, loaded, found = load(path)
    problems = [p for p in found if not is_warning(p[1])]
    if problems or config is None:
        raise ConfigError(f"{len(problems)} problem(s) in {loaded.source}", problems)
    for where, message in found:
        if is_warning(message):
            log.warning("config.warning", where=where, problem=message.removeprefix("warning: "))
    log.debug("config.loaded", **config.describe())
    return config
