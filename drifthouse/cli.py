"""The ``drifthouse`` command line (the README's "Command line").

Commands parse their arguments and call library functions; nothing else lives here.

Exit codes: 0 success, 2 usage or configuration errors, 1 any other failure. A
:class:`~drifthouse.errors.DrifthouseError` prints one red line (and, for a configuration
error, every problem as ``file:line path: message``) without a traceback, unless ``--debug``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from drifthouse import __version__, logs
from drifthouse.config import Config, ConfigReport, check_config, format_duration
from drifthouse.errors import ConfigError, DrifthouseError, UsageError

if TYPE_CHECKING:
    from drifthouse.alerts.silences import ClickHouseSilenceStore

__all__ = ["app", "main"]

app = typer.Typer(
    name="drifthouse",
    help="Streaming drift and data-quality monitor for ML models in production.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

out = Console(soft_wrap=True, highlight=False)
err = Console(stderr=True, soft_wrap=True, highlight=False)


class _State:
    """Global options, read by :func:`main` when a command fails."""

    debug = False


ConfigOption = Annotated[
    Path,
    typer.Option(
        "--config",
        "-c",
        help="The configuration file.",
        envvar="DRIFTHOUSE_CONFIG",
        dir_okay=False,
    ),
]


@app.callback()
def _global_options(
    debug: Annotated[
        bool, typer.Option("--debug", help="Debug logs, and a traceback on errors.")
    ] = False,
    log_json: Annotated[
        bool, typer.Option("--log-json", help="Write logs (stderr) as JSON lines.")
    ] = False,
) -> None:
    """Streaming drift and data-quality monitor for ML models in production."""
    _State.debug = debug
    logs.configure(level="DEBUG" if debug else "INFO", json=log_json)


# -- check ---------------------------------------------------------------------------------------


@app.command()
def check(config: ConfigOption = Path("drifthouse.yaml")) -> None:
    """Validate the configuration and rules; say what is wrong and where."""
    report = check_config(config)
    _print_report(report)
    if not report.ok:
        raise typer.Exit(code=2)


def _print_report(report: ConfigReport) -> None:
    scrub = logs.scrub  # no piece of a secret of the config, whatever a message quotes
    for where, message in report.errors:
        out.print(Text.assemble((f"{scrub(where)}: ", "bold"), (scrub(message), "red")))
    for where, message in report.warnings:
        out.print(
            Text.assemble((f"{scrub(where)}: ", "bold"), ("warning: ", "yellow"), scrub(message))
        )
    if not report.ok:
        count = len(report.errors)
        out.print(
            Text(f"{count} problem{'s' if count != 1 else ''}: fix them and run check again", "red")
        )
        return
    if report.config is not None:
        out.print(_summary(report.config))
    out.print(Text("configuration OK", "green"))


def _summary(config: Config) -> Table:
    """Models, windows, rules and routes at a glance; no secrets (see Config.describe)."""
    info = config.describe()
    table = Table(title=escape(str(info["source"] or "configuration")), show_header=False, box=None)
    table.add_column(style="bold")
    table.add_column()
    table.add_row("store", escape(f"{info['store']} (database {info['database']})"))
    table.add_row(
        "kafka", escape(f"{info['kafka']['bootstrap']} topics {', '.join(info['kafka']['topics'])}")
    )
    table.add_row("windows", escape(", ".join(info["windows"])))
    models = []
    for name in info["models"]:
        reference = config.reference_path(name)
        span = config.auto_reference_span(name)
        state = (
            f"automatic reference, {format_duration(span)}"
            if span is not None
            else "no reference"
            if reference is None
            else "reference"
            if reference.is_file()
            else "reference missing"
        )
        models.append(f"{name} ({state})")
    table.add_row(
        "models", escape(", ".join(models)) or "none configured (every model gets the defaults)"
    )
    auto = [name for name in info["models"] if config.auto_reference_span(name) is not None]
    if auto:
        table.add_row("on automatic reference", escape(", ".join(auto)))
    metrics = config.metrics
    table.add_row(
        "other models",
        "automatic reference from their first "
        f"{format_duration(metrics.auto_reference_span)} of traffic"
        if metrics.default_reference == "auto"
        else "serving metrics only (metrics.default_reference: none)",
    )
    table.add_row("rules", escape(", ".join(info["rules"])) or "none (the built-in defaults apply)")
    routes = [", ".join(route.receivers) for route in config.routes]
    table.add_row("routes", escape(f"{len(routes)}: " + "; ".join(routes)) if routes else "none")
    receivers = [f"{name} ({r['type']})" for name, r in info["receivers"].items()]
    table.add_row("receivers", escape(", ".join(receivers)) or "none")
    return table


# -- version -------------------------------------------------------------------------------------


@app.command()
def version() -> None:
    """Print the drifthouse version."""
    out.print(f"drifthouse {__version__}")


# -- the pipeline (the README's "Command line") ---------------------------------------------------------


@app.command()
def demo(
    store: Annotated[
        str | None,
        typer.Option(help="Store DSN (default: an embedded store in ./demo-data)."),
    ] = None,
    minutes: Annotated[
        float | None,
        typer.Option(help="Stop after this many minutes of wall time (0.5 is half a minute)."),
    ] = None,
    days: Annotated[float, typer.Option(help="Simulated days of traffic.")] = 3.0,
) -> None:
    """The whole pipeline on one machine: synthetic traffic with injected faults, no services."""
    from drifthouse.demo import run_demo

    run_demo(store=store, days=days, minutes=minutes, console=out)


@app.command()
def profile(
    input: Annotated[Path, typer.Argument(help="CSV, Parquet or JSONL (prediction events).")],
    model: Annotated[str, typer.Option(help="The model the profile is for.")],
    model_version: Annotated[str, typer.Option(help="The model version.")] = "unknown",
    out_file: Annotated[
        Path | None, typer.Option("--out", help="Where to write the profile JSON.")
    ] = None,
    fmt: Annotated[
        str | None, typer.Option("--format", help="csv, parquet or jsonl (default: suffix).")
    ] = None,
    timestamp: Annotated[str | None, typer.Option(help="Timestamp column (CSV/Parquet).")] = None,
    prediction: Annotated[str | None, typer.Option(help="Prediction column.")] = None,
    label: Annotated[str | None, typer.Option(help="Label column.")] = None,
    latency: Annotated[str | None, typer.Option(help="Latency column (ms).")] = None,
    status: Annotated[str | None, typer.Option(help="HTTP status column.")] = None,
    include: Annotated[
        list[str] | None, typer.Option(help="Only these features (repeatable).")
    ] = None,
    exclude: Annotated[list[str] | None, typer.Option(help="Leave these features out.")] = None,
    categorical: Annotated[
        list[str] | None,
        typer.Option(help="Profile this feature as categorical, whatever its values (repeatable)."),
    ] = None,
    numeric: Annotated[
        list[str] | None,
        typer.Option(
            help="Profile this feature as numeric, counting other values as type_error (repeatable)."
        ),
    ] = None,
    threshold: Annotated[float, typer.Option(help="Class threshold for label metrics.")] = 0.5,
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="Take bins and eps from this config.")
    ] = None,
) -> None:
    """Build a model's reference profile (bins, categories, baselines) from a file."""
    from datetime import UTC, datetime

    from drifthouse.config import load_config
    from drifthouse.detectors.reference import Kind
    from drifthouse.profiles.build import build_profile_from_file

    cfg = load_config(config) if config is not None else None
    settings = cfg.metrics if cfg is not None else None
    if cfg is not None and cfg.model(model).pii:
        # PII features are never profiled: their values would reach the store.
        exclude = [*(exclude or []), *cfg.model(model).pii]
    if fmt is not None and fmt not in {"csv", "parquet", "jsonl"}:
        raise UsageError(f"--format must be csv, parquet or jsonl (got {fmt!r})")
    both = sorted(set(categorical or ()) & set(numeric or ()))
    if both:
        raise UsageError(f"--categorical and --numeric both name {both[0]!r}; choose one")
    kinds: dict[str, Kind] = dict.fromkeys(numeric or (), "numeric")
    kinds.update(dict.fromkeys(categorical or (), "categorical"))
    built = build_profile_from_file(
        input,
        model=model,
        model_version=model_version,
        fmt=fmt,  # type: ignore[arg-type]
        timestamp=timestamp,
        prediction=prediction,
        label=label,
        latency=latency,
        status=status,
        include=include,
        exclude=exclude,
        kinds=kinds,
        settings=settings,
        created_at=datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        threshold=threshold,
    )
    target = out_file or Path(f"{model}.profile.json")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)  # `--out refs/fraud.json` in a new folder
        target.write_bytes(built.to_json())
    except OSError as exc:
        raise UsageError(f"cannot write the profile to {target}: {exc.strerror or exc}") from exc
    table = Table(title=escape(f"profile of {model} {model_version} -> {target}"))
    for column in ("feature", "kind", "count", "missing rate", "bins / categories"):
        table.add_column(column)
    for f in built.features:
        shape = (
            f"{len(f.psi_edges) + 1} / {len(f.edges) + 1}"
            if f.kind == "numeric"
            else str(len(f.categories))
        )
        table.add_row(Text(f.name), f.kind, str(f.count), f"{f.missing_rate:.3f}", shape)
    out.print(table)
    _print_type_errors(
        built.features if built.prediction is None else [*built.features, built.prediction]
    )


def _print_type_errors(features: Sequence[Any]) -> None:
    """The numeric features that held values other than numbers: how many, and examples."""
    odd = [f for f in features if f.type_error]
    if not odd:
        return
    table = Table(
        title="values that are not numbers in numeric features (counted as type_error; "
        "--categorical NAME profiles a feature as categories)",
        title_justify="left",
    )
    for column in ("feature", "count", "share", "examples"):
        table.add_column(column)
    for f in odd:
        seen = f.count + f.missing + f.non_finite + f.type_error
        examples = ", ".join(json.dumps(e, ensure_ascii=False) for e in f.type_error_examples)
        share = f"{f.type_error / seen:.3%}" if seen else "-"
        table.add_row(Text(f.name), str(f.type_error), share, Text(examples))
    out.print(table)


@app.command()
def run(config: ConfigOption = Path("drifthouse.yaml")) -> None:
    """The Kafka worker; start more processes with the same config to share the partitions."""
    from drifthouse.app.run import run as run_worker
    from drifthouse.config import load_config

    cfg = load_config(config)
    err.print(Text(_auto_line(cfg)))
    run_worker(cfg, loglevel="DEBUG" if _State.debug else "WARNING")


def _auto_line(config: Config) -> str:
    """Which models run on an automatic reference (listed ones by name, then the rest)."""
    listed = [
        f"{name} ({format_duration(span)})"
        for name in sorted(config.models)
        if (span := config.auto_reference_span(name)) is not None
    ]
    metrics = config.metrics
    rest = (
        f"models not listed: automatic reference ({format_duration(metrics.auto_reference_span)})"
        if metrics.default_reference == "auto"
        else "models not listed: serving metrics only"
    )
    return (f"automatic reference: {', '.join(listed)}; " if listed else "") + rest


@app.command()
def replay(
    source: Annotated[str, typer.Option(help="kafka:TOPIC or file:PATH")],
    config: ConfigOption = Path("drifthouse.yaml"),
    labels: Annotated[
        str | None, typer.Option(help="kafka:TOPIC or file:PATH of delayed labels.")
    ] = None,
    metric_events: Annotated[
        str | None, typer.Option(help="kafka:TOPIC or file:PATH of metric events.")
    ] = None,
    from_: Annotated[
        str | None, typer.Option("--from", help="Start (RFC 3339 or epoch ms).")
    ] = None,
    to: Annotated[str | None, typer.Option(help="End, exclusive (RFC 3339 or epoch ms).")] = None,
    run_id: Annotated[str | None, typer.Option(help="Run id of the rows written.")] = None,
    notify: Annotated[bool, typer.Option(help="Send alerts to receivers too.")] = False,
    rules: Annotated[
        Path | None, typer.Option(help="Also count what these rules would have raised.")
    ] = None,
) -> None:
    """Historical data through the same pipeline, with a progress bar."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from drifthouse.app.replay import load_profiles, parse_time, replay_alerts
    from drifthouse.app.replay import replay as run_replay
    from drifthouse.app.run import open_sink
    from drifthouse.config import load_config
    from drifthouse.profiles.auto import source_of
    from drifthouse.sinks.base import finish

    cfg = load_config(config)
    err.print(Text(_auto_line(cfg)))
    other_rules = _load_rules(rules) if rules is not None else None
    from_ms, to_ms = parse_time(from_, "--from"), parse_time(to, "--to")
    profiles = load_profiles(cfg)
    sink = open_sink(cfg, profiles)  # the references too: recipe psi_range compares with them
    run_name = run_id or "replay-" + __import__("time").strftime(
        "%Y%m%dT%H%M%SZ", __import__("time").gmtime()
    )
    stage = replay_alerts(
        cfg, sink, profiles, run_id=run_name, notify=notify, keep_rows=other_rules is not None
    )
    columns = (
        TextColumn("[bold]replay"),
        BarColumn(),
        TextColumn("{task.percentage:>5.1f}%"),
        TextColumn("{task.fields[rate]:>9} events/s"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=err, transient=False) as bar:
        task = bar.add_task("replay", total=None, rate="-")

        def progress(done: int, total: int, stats: object) -> None:
            elapsed = bar.tasks[task].elapsed or 0.0
            events = getattr(stats, "messages", 0)
            bar.update(
                task,
                completed=done,
                total=total,
                rate=f"{events / elapsed:,.0f}" if elapsed else "-",
            )

        summary = run_replay(
            cfg,
            source=source,
            sink=sink,
            run_id=run_name,
            from_ms=from_ms,
            to_ms=to_ms,
            profiles=profiles,
            on_window=[stage],
            progress=progress,
            labels=labels,
            metric_events=metric_events,
        )
    stage.finish()
    written = finish(sink)
    stats = summary.stats
    table = Table(title=escape(f"replay {summary.run_id}"), show_header=False, box=None)
    table.add_row("events", f"{stats.events:,} ({summary.events_per_second:,.0f}/s)")
    table.add_row("invalid / late", f"{stats.invalid:,} / {stats.late:,}")
    # Counted from the store's acknowledgements, not from what the pipeline handed the sink.
    table.add_row("windows closed", f"{stats.windows:,}")
    table.add_row("rows", Text(written.stored_text()))
    if not written.ok:
        table.add_row(
            "not stored",
            Text(
                f"{written.refused_rows:,} refused, {written.spooled_rows:,} still spooled",
                "bold red",
            ),
        )
    table.add_row(
        "alerts recorded",
        f"{stage.alerts:,}" + ("" if notify else " (receivers not notified; --notify sends)"),
    )
    if summary.labels is not None:
        lab = summary.labels
        table.add_row(
            "labels",
            f"{lab.read:,}: {lab.joined:,} joined, {lab.unmatched:,} unmatched, "
            f"{lab.expired:,} expired (late), {lab.duplicate:,} duplicate"
            + (f", {lab.waiting:,} without their prediction" if lab.waiting else "")
            + (f", {lab.refused:,} refused" if lab.refused else ""),
        )
    if summary.dead_letters:
        table.add_row("dead letters", Text(summary.dead_letters))
    for model, ref in sorted(summary.auto_references.items()):
        table.add_row(
            "automatic reference",
            escape(f"{model}: {source_of(ref).removeprefix('auto ')}")
            if ref.profile is not None
            else escape(f"{model}: none (no event to profile in its first span)"),
        )
    out.print(table)
    if other_rules is not None:
        _print_backtest(stage.rows, other_rules, profiles)
    written.check()  # a replay that did not store every row fails, saying which and why


def _load_rules(path: Path) -> list[object]:
    import yaml
    from pydantic import TypeAdapter, ValidationError

    from drifthouse.config import RuleConfig

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"--rules {path}: cannot be read ({exc.strerror})") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"--rules {path}: not valid YAML ({exc})") from exc
    items = data.get("rules") if isinstance(data, dict) else data
    try:
        return list(TypeAdapter(list[RuleConfig]).validate_python(items))
    except ValidationError as exc:
        problems = [
            (
                f"{path} rules{''.join(f'[{p}]' if isinstance(p, int) else f'.{p}' for p in e['loc'])}",
                e["msg"],
            )
            for e in exc.errors(include_input=False)
        ]
        raise ConfigError(f"--rules {path}: {len(problems)} problem(s)", problems) from None


def _print_backtest(
    rows: list[object], rules: list[object], profiles: Mapping[str, object]
) -> None:
    from drifthouse.alerts import backtest
    from drifthouse.app.run import baselines_for

    ordered = sorted(rows, key=lambda r: getattr(r, "window_end", 0))
    report = backtest(ordered, rules, baselines_for(profiles))  # type: ignore[arg-type]
    table = Table(title="what these rules would have raised")
    for column in ("rule", "severity", "fired", "resolved", "still firing", "series"):
        table.add_column(column)
    for line in report.lines:
        table.add_row(
            Text(line.rule),
            line.severity,
            str(line.fired),
            str(line.resolved),
            str(line.still_firing),
            str(line.series),
        )
    out.print(table)
    for severity, count in sorted(report.by_severity().items()):
        out.print(f"{severity}: {count} alert(s)")


@app.command()
def sql(
    query: Annotated[
        str | None,
        typer.Argument(help="One SELECT over the drifthouse tables (or give --recipe)."),
    ] = None,
    config: ConfigOption = Path("drifthouse.yaml"),
    recipe: Annotated[
        str | None,
        typer.Option(help="Run a named recipe of sinks/sql/queries.sql instead of QUERY."),
    ] = None,
    param: Annotated[
        list[str] | None, typer.Option(help="Query parameter name=value (repeatable).")
    ] = None,
    fmt: Annotated[str, typer.Option("--format", help="Output: table, csv or json.")] = "table",
) -> None:
    """Query the configured store, read-only: one SELECT or a named recipe."""
    from drifthouse.config import load_config
    from drifthouse.sinks.query import recipe as find_recipe
    from drifthouse.sinks.sql_client import ask
    from drifthouse.sql_output import FORMATS, print_result

    if fmt not in FORMATS:
        raise UsageError(f"--format must be one of {', '.join(FORMATS)} (got {fmt!r})")
    if (query is None) == (recipe is None):
        raise UsageError("give either a SELECT statement or --recipe NAME, not both or neither")
    params: dict[str, str] = {}
    for item in param or []:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise UsageError(f"--param must be name=value (got {item!r})")
        params[name] = value
    cfg = load_config(config)
    if recipe is not None:
        chosen = find_recipe(recipe)
        query, bound = chosen.sql, chosen.bind(params)
    else:
        bound = dict(params)
    assert query is not None
    columns, rows = ask(cfg, query, bound)
    print_result(columns, rows, fmt, out)


@app.command()
def migrate(config: ConfigOption = Path("drifthouse.yaml")) -> None:
    """Create or upgrade the ClickHouse tables, and create again any that is missing."""
    from drifthouse.config import load_config
    from drifthouse.sinks import open_store
    from drifthouse.sinks.schema import migrate_report

    cfg = load_config(config)
    client = open_store(cfg.store_dsn(), cfg.store.database)
    try:
        report = migrate_report(client, cfg.store.database, cfg.store.ttl_days)
    finally:
        client.close()
    done = []
    if report.applied:
        done.append("applied " + ", ".join(map(str, report.applied)))
    if report.recreated:
        done.append("created again missing tables " + ", ".join(report.recreated))
    out.print(Text(f"schema up to date ({'; '.join(done) or 'nothing to apply'})"))


silence_app = typer.Typer(help="Mute alerts matching labels for a while.", no_args_is_help=True)
app.add_typer(silence_app, name="silence")


def _silences(config: Path) -> ClickHouseSilenceStore:
    from drifthouse.alerts.silences import ClickHouseSilenceStore
    from drifthouse.config import load_config
    from drifthouse.sinks import open_store

    cfg = load_config(config)
    return ClickHouseSilenceStore(
        open_store(cfg.store_dsn(), cfg.store.database), cfg.store.database
    )


def _now_ms() -> int:
    import time

    return int(time.time() * 1000)


@silence_app.command("add")
def silence_add(
    matchers: Annotated[
        list[str], typer.Argument(help="label=value or label=glob, e.g. model=fraud")
    ],
    duration: Annotated[str, typer.Option(help="How long, e.g. 2h.")],
    author: Annotated[str, typer.Option(help="Who mutes.")],
    reason: Annotated[str, typer.Option(help="Why, for the next on-call.")],
    config: ConfigOption = Path("drifthouse.yaml"),
) -> None:
    """Add a silence."""
    from drifthouse.alerts.silences import add_silence
    from drifthouse.config import parse_duration

    try:
        duration_ms = parse_duration(duration)
    except ValueError as exc:
        raise UsageError(f"--duration: {exc}") from exc
    silence = add_silence(
        _silences(config),
        matchers,
        author=author,
        reason=reason,
        now_ms=_now_ms(),
        duration_ms=duration_ms,
    )
    out.print(f"silence {silence.id} added until {silence.ends_at}")


@silence_app.command("list")
def silence_list(
    config: ConfigOption = Path("drifthouse.yaml"),
    all_: Annotated[bool, typer.Option("--all", help="Include expired silences.")] = False,
) -> None:
    """List silences."""
    from datetime import UTC, datetime

    from drifthouse.alerts.silences import list_silences

    table = Table("id", "matchers", "until", "author", "reason")
    for s in list_silences(_silences(config), now_ms=_now_ms(), include_expired=all_):
        until = datetime.fromtimestamp(s.ends_at / 1000, tz=UTC).isoformat(timespec="seconds")
        table.add_row(
            Text(s.id),
            Text(", ".join(f"{k}={v}" for k, v in s.matchers.items())),
            until,
            Text(s.created_by),
            Text(s.reason),
        )
    out.print(table)


@silence_app.command("expire")
def silence_expire(
    silence_id: Annotated[str, typer.Argument(help="The silence id (see silence list).")],
    config: ConfigOption = Path("drifthouse.yaml"),
) -> None:
    """End a silence now."""
    from drifthouse.alerts.silences import expire_silence

    expire_silence(_silences(config), silence_id, now_ms=_now_ms())
    out.print(Text(f"silence {silence_id} expired"))


@app.command()
def produce(
    config: ConfigOption = Path("drifthouse.yaml"),
    rate: Annotated[
        float, typer.Option(help="Events per second (0: as fast as possible).")
    ] = 100.0,
    scenario: Annotated[
        str, typer.Option(help="The simulated scenario: demo (3 days) or quick (1 day).")
    ] = "demo",
    count: Annotated[int | None, typer.Option(help="Stop after this many events.")] = None,
    days: Annotated[
        float | None,
        typer.Option(help="Simulated days, instead of the scenario's own (a longer stream)."),
    ] = None,
) -> None:
    """Write a simulated prediction stream (and its labels) to Kafka, stamped with the current time."""
    from drifthouse.config import load_config
    from drifthouse.produce import run_produce

    run_produce(
        load_config(config), rate=rate, scenario=scenario, count=count, console=err, days=days
    )


# -- entry point -----------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return its exit code (the ``drifthouse`` entry point).

    ``argv`` defaults to ``sys.argv[1:]``.
    """
    _State.debug = False
    logs.forget_secrets()  # a command masks the secrets of its own config (and clients)
    try:
        app(args=list(argv) if argv is not None else None, prog_name="drifthouse")
    except SystemExit as exc:
        return _exit_code(exc.code)
    except DrifthouseError as exc:
        if _State.debug:
            raise
        _print_error(exc)
        return 2 if isinstance(exc, ConfigError | UsageError) else 1
    return 0


def _exit_code(code: object) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    err.print(str(code))
    return 1


def _print_error(exc: DrifthouseError) -> None:
    # The one place errors reach the user: no piece of a known secret gets past it.
    scrub = logs.scrub
    err.print(Text(scrub(f"error: {exc}"), "bold red"))
    if isinstance(exc, ConfigError):
        for where, message in exc.problems:
            err.print(Text.assemble((f"{scrub(where)}: ", "bold"), (scrub(message), "red")))
    err.print(Text("run with --debug for details", "dim"))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
