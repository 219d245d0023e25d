"""``drifthouse demo``, ``drifthouse profile`` and ``drifthouse run``."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from drifthouse.cli._common import ConfigOption, State, app, auto_line, err, out
from drifthouse.errors import UsageError

if TYPE_CHECKING:
    from drifthouse.detectors.reference import Kind, Profile

__all__ = ["demo", "profile", "run"]


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
    from drifthouse.profiles.build import build_profile_from_file

    cfg = load_config(config) if config is not None else None
    settings = cfg.metrics if cfg is not None else None
    if cfg is not None and cfg.model(model).pii:
        # PII features are never profiled: their values would reach the store.
        exclude = [*(exclude or []), *cfg.model(model).pii]
    if fmt is not None and fmt not in {"csv", "parquet", "jsonl"}:
        raise UsageError(f"--format must be csv, parquet or jsonl (got {fmt!r})")
    kinds = _kinds(categorical or [], numeric or [])
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
    _print_profile(built, f"profile of {model} {model_version} -> {target}")


def _kinds(categorical: list[str], numeric: list[str]) -> dict[str, Kind]:
    """``--categorical`` and ``--numeric``: the kind forced on each feature they name."""
    both = sorted(set(categorical) & set(numeric))
    if both:
        raise UsageError(f"--categorical and --numeric both name {both[0]!r}; choose one")
    kinds: dict[str, Kind] = dict.fromkeys(numeric, "numeric")
    kinds.update(dict.fromkeys(categorical, "categorical"))
    return kinds


def _print_profile(built: Profile, title: str) -> None:
    """Each feature's kind, count, missing rate and bins (an embedding's dimension); then the
    values that are not numbers."""
    table = Table(title=escape(title))
    for column in ("feature", "kind", "count", "missing rate", "bins / categories"):
        table.add_column(column)
    for f in built.features:
        shape = (
            f"{len(f.psi_edges) + 1} / {len(f.edges) + 1}"
            if f.kind == "numeric"
            else str(len(f.categories))
        )
        table.add_row(Text(f.name), f.kind, str(f.count), f"{f.missing_rate:.3f}", shape)
    for e in built.embeddings:  # docs/statistics.md, "Embedding features"
        table.add_row(
            Text(e.name), "embedding", str(e.count), f"{e.missing_rate:.3f}", f"dim {e.dim}"
        )
    out.print(table)
    cal = built.calibration
    if cal is not None:  # docs/model-performance.md, "Performance without labels"
        names = cal.classes or ["score"]
        fitted = [n for n, m in zip(names, cal.maps, strict=True) if m is not None]
        kind = f"multiclass ({len(cal.classes)} classes)" if cal.classes else "binary"
        out.print(
            f"performance estimation: {kind} from {cal.events:,} labelled events; "
            f"calibrated: {', '.join(fitted) or 'none (calibrated already)'}",
            highlight=False,
        )
    if built.loss_model is not None:  # docs/model-performance.md, "Regression without labels"
        lm = built.loss_model
        out.print(
            f"performance estimation: regression (DLE) from {lm.events:,} labelled events; "
            f"{len(lm.sizes)} loss terms",
            highlight=False,
        )
    mv = built.multivariate
    if mv is not None:  # docs/statistics.md, "Multivariate drift"
        out.print(
            f"multivariate drift: PCA of {mv.pca.width} features, {len(mv.pca.components)} "
            f"components ({mv.pca.explained:.1%} of the variance)",
            highlight=False,
        )
    _print_type_errors(
        built.features if built.prediction is None else [*built.features, built.prediction]
    )
    _print_label_type_errors(built)


def _print_label_type_errors(built: Profile) -> None:
    """The labels left out of the label baselines (docs/statistics.md, "Reference profiles")."""
    b = built.baselines
    if not b.label_type_error:
        return
    what = (
        f"names neither class of the prediction ({', '.join(map(json.dumps, b.binary_classes))})"
        if b.binary_classes
        else "is not a number"
    )
    n, events = b.label_type_error, b.events
    share = f" ({n / events:.3%})" if events else ""
    examples = ", ".join(json.dumps(e, ensure_ascii=False) for e in b.label_type_error_examples)
    out.print(
        Text(
            f"labels: {b.task}; {n} label{'s' if n > 1 else ''} of {events} "
            f"{what}{share}, left out of the label baselines: {examples}"
        )
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


ROLES = ("all", "source", "merger")


@app.command()
def run(
    config: ConfigOption = Path("drifthouse.yaml"),
    role: Annotated[
        str,
        typer.Option(
            help="all: read the events and merge; source: only read the predictions, labels "
            "and metrics topics; merger: only merge shards of the partials topic.",
        ),
    ] = "all",
) -> None:
    """The Kafka worker; start more processes with the same config to share the partitions."""
    from drifthouse.app.run import run as run_worker
    from drifthouse.config import load_config

    if role not in ROLES:
        raise UsageError(f"--role must be one of {', '.join(ROLES)} (got {role!r})")
    cfg = load_config(config)
    err.print(Text(auto_line(cfg)))
    run_worker(
        cfg,
        loglevel="DEBUG" if State.debug else "WARNING",
        role=role,  # type: ignore[arg-type]  # one of ROLES
    )
