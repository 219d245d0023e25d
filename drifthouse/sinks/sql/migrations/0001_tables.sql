-- drifthouse schema, version 1: results, sketches, alerts, prediction log, reference profiles.
-- `{database}` is replaced by the configured database; TTLs are applied by schema.migrate
-- from the configuration (store.ttl_days), not here.
--
-- Every results table is a ReplacingMergeTree whose ORDER BY is the row's natural key and whose
-- version is `computed_at`: writing a window again (retry, restart, replay) adds a row with the
-- same key that a merge collapses. Read with FINAL (the *_latest views) or argMax for one row per
-- key before merges happen. The partition key is derived from a key column, so two rows of one key
-- always share a partition and do collapse.

CREATE TABLE IF NOT EXISTS `{database}`.metrics
(
    window_start DateTime64(3, 'UTC'),
    window_end   DateTime64(3, 'UTC'),
    window       LowCardinality(String),
    model        LowCardinality(String),
    model_version LowCardinality(String),
    feature      LowCardinality(String),
    segment      String,
    metric       LowCardinality(String),
    value        Float64,
    n            UInt64,
    run_id       String,
    computed_at  DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(computed_at)
PARTITION BY toYYYYMM(window_start)
ORDER BY (model, metric, feature, window, window_start, model_version, segment, run_id);

CREATE TABLE IF NOT EXISTS `{database}`.sketches
(
    window_start DateTime64(3, 'UTC'),
    window_end   DateTime64(3, 'UTC'),
    window       LowCardinality(String),
    model        LowCardinality(String),
    model_version LowCardinality(String),
    feature      LowCardinality(String),
    segment      String,
    metric       LowCardinality(String),
    kind         LowCardinality(String),
    edges        Array(Float64),
    labels       Array(String),
    counts       Array(UInt64),
    n            UInt64,
    run_id       String,
    computed_at  DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(computed_at)
PARTITION BY toYYYYMM(window_start)
ORDER BY (model, feature, kind, metric, window, window_start, model_version, segment, run_id);

CREATE TABLE IF NOT EXISTS `{database}`.alerts
(
    ts           DateTime64(3, 'UTC'),
    rule         LowCardinality(String),
    severity     LowCardinality(String),
    status       LowCardinality(String),
    model        LowCardinality(String),
    model_version LowCardinality(String),
    feature      LowCardinality(String),
    segment      String,
    metric       LowCardinality(String),
    value        Float64,
    threshold    Float64,
    window_start DateTime64(3, 'UTC'),
    window_end   DateTime64(3, 'UTC'),
    message      String,
    receivers    Array(String),
    dedup_key    String,
    run_id       String
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (model, rule, dedup_key, status, ts, run_id);

CREATE TABLE IF NOT EXISTS `{database}`.predictions
(
    ts           DateTime64(3, 'UTC'),
    model        LowCardinality(String),
    model_version LowCardinality(String),
    event_id     String,
    features     String,
    prediction   String,
    latency_ms   Nullable(Float64),
    status       UInt16,
    segment      String,
    kept_because LowCardinality(String),
    sample_rate  Float64
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMMDD(ts)
ORDER BY (model, ts, event_id);

CREATE TABLE IF NOT EXISTS `{database}`.references
(
    model        LowCardinality(String),
    model_version LowCardinality(String),
    created_at   DateTime64(3, 'UTC'),
    digest       String,
    source       String,
    profile      String
)
ENGINE = ReplacingMergeTree(created_at)
ORDER BY (model, model_version, digest);

-- Also created on its own by drifthouse.alerts.silences (through sinks.schema.table_ddl).
CREATE TABLE IF NOT EXISTS `{database}`.silences
(
    id String,
    matchers Map(String, String),
    starts_at DateTime64(3, 'UTC'),
    ends_at DateTime64(3, 'UTC'),
    created_by String,
    reason String,
    created_at DateTime64(3, 'UTC'),
    version UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY id;

CREATE VIEW IF NOT EXISTS `{database}`.metrics_latest AS
SELECT * FROM `{database}`.metrics FINAL;

CREATE VIEW IF NOT EXISTS `{database}`.sketches_latest AS
SELECT * FROM `{database}`.sketches FINAL;

CREATE VIEW IF NOT EXISTS `{database}`.alerts_latest AS
SELECT * FROM `{database}`.alerts FINAL;
