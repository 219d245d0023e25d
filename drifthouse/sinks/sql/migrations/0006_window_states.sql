-- drifthouse schema, version 6: the whole mergeable state of each closed base window, from
-- which the merger builds the windows configured with `from` (a `{size: 1d, from: 1h}` window
-- is the merge, in ascending start, of the stored states of its 24 hours; docs/configuration.md
-- "windows"). Written by the merge stage for every tumbling window that is some window's base.
-- `state`: base64 of the LZ4-compressed model state (drifthouse.sinks.window_states); `n` its
-- events. A rewritten window (a partition that was idle wakes up) replaces its row.
CREATE TABLE IF NOT EXISTS `{database}`.window_states
(
    window_start  DateTime64(3, 'UTC'),
    window_end    DateTime64(3, 'UTC'),
    window        LowCardinality(String),
    model         LowCardinality(String),
    model_version LowCardinality(String),
    state         String CODEC(ZSTD(3)),
    n             UInt64,
    run_id        String,
    computed_at   DateTime64(3, 'UTC'),
    inserted_at   DateTime DEFAULT now()
)
ENGINE = ReplacingMergeTree(computed_at)
PARTITION BY toYYYYMM(window_start)
ORDER BY (model, run_id, window, window_start, model_version);
