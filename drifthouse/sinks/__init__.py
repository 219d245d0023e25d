"""Where results go: ClickHouse (a server or the embedded engine), or memory for tests and the demo.

Public API
----------
- :func:`open_store` (``store``): a clickhouse-connect client for a DSN, errors translated.
- :func:`migrate`, :func:`migrate_report` (``schema``): create or upgrade the tables, and create
  again any that is missing; idempotent.
- :class:`Sink`, :class:`MemorySink`, :class:`WriteReport`, :func:`finish` (``base``): the sink
  contract, and what a bounded run stored; :class:`ClickHouseSink` (``clickhouse``).
- :class:`PredictionLog` (``predictions``): the sampled, PII-hashed prediction log.
- ``late_labels``: the late label join's reads (tables ``labels``, ``label_predictions``,
  ``label_panes``; the join itself is in ClickHouse, the metrics in
  :mod:`drifthouse.stream.labels.late`).
- :func:`store_reference`, :func:`reference_rows` (``references``): profiles in the store.
- :func:`run_select` (``sql_guard``): one SELECT over the drifthouse tables, read-only, in limits;
  the allow-list it checks the parsed statement against is ``sql_allow`` (``sql_explain`` for
  servers without ``parseQueryToJSON``).
- :func:`run_sql`, :func:`run_recipe`, :func:`load_recipes` (``query``); :func:`serve_readonly`,
  :func:`query_readonly` (``sql_endpoint``): the worker's SQL endpoint and its client.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from drifthouse.rows import PredictionRow, ReferenceRow
    from drifthouse.sinks.base import MemorySink, Refusal, Sink, WriteReport, finish
    from drifthouse.sinks.clickhouse import ClickHouseSink
    from drifthouse.sinks.predictions import PredictionLog
    from drifthouse.sinks.query import load_recipes, run_recipe, run_sql
    from drifthouse.sinks.references import reference_rows, store_reference
    from drifthouse.sinks.schema import migrate, migrate_report
    from drifthouse.sinks.sql_endpoint import query_readonly, serve_readonly
    from drifthouse.sinks.sql_guard import Limits, run_select
    from drifthouse.sinks.store import open_store

# Where each public name lives. They are imported on first use, not with the package: a
# module that needs one sink (the alert silences need the cluster helpers) does not load the
# SQL endpoint, its guard and the recipes with it.
_HOME = {
    **dict.fromkeys(("PredictionRow", "ReferenceRow"), "drifthouse.rows"),
    **dict.fromkeys(
        ("MemorySink", "Refusal", "Sink", "WriteReport", "finish"), "drifthouse.sinks.base"
    ),
    **dict.fromkeys(("ClickHouseSink",), "drifthouse.sinks.clickhouse"),
    **dict.fromkeys(("PredictionLog",), "drifthouse.sinks.predictions"),
    **dict.fromkeys(("load_recipes", "run_recipe", "run_sql"), "drifthouse.sinks.query"),
    **dict.fromkeys(("reference_rows", "store_reference"), "drifthouse.sinks.references"),
    **dict.fromkeys(("migrate", "migrate_report"), "drifthouse.sinks.schema"),
    **dict.fromkeys(("query_readonly", "serve_readonly"), "drifthouse.sinks.sql_endpoint"),
    **dict.fromkeys(("Limits", "run_select"), "drifthouse.sinks.sql_guard"),
    **dict.fromkeys(("open_store",), "drifthouse.sinks.store"),
}


def __getattr__(name: str) -> object:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


__all__ = [
    "ClickHouseSink",
    "Limits",
    "MemorySink",
    "PredictionLog",
    "PredictionRow",
    "ReferenceRow",
    "Refusal",
    "Sink",
    "WriteReport",
    "finish",
    "load_recipes",
    "migrate",
    "migrate_report",
    "open_store",
    "query_readonly",
    "reference_rows",
    "run_recipe",
    "run_select",
    "run_sql",
    "serve_readonly",
    "store_reference",
]
