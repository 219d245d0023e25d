-- drifthouse schema, version 4: what the stream's label join could not join, for the late join
-- in ClickHouse (`drifthouse labels join`, docs/model-performance.md "Labels later than the
-- horizon"). Written by the merge stage when `metrics.late_labels` is on.
--
-- `labels`: labels that found no prediction in the stream (too old, or their prediction was
-- evicted); `label_predictions`: predictions that left the join without a label;
-- `label_panes`: the label state of each pane the stream is done with. The late join joins the
-- first two on event_id, folds the pairs into the panes and rewrites the windows' `metrics`.
CREATE TABLE IF NOT EXISTS `{database}`.labels
(
    ts           DateTime64(3, 'UTC'),
    model        LowCardinality(String),
    event_id     String,
    label        String,
    seq          UInt64,
    reason       LowCardinality(String),
    run_id       String,
    inserted_at  DateTime DEFAULT now()
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (model, run_id, event_id, seq, ts);

CREATE TABLE IF NOT EXISTS `{database}`.label_predictions
(
    ts           DateTime64(3, 'UTC'),
    model        LowCardinality(String),
    model_version LowCardinality(String),
    event_id     String,
    score        Float64,
    pred_class   Nullable(String),
    segment      String,
    run_id       String,
    inserted_at  DateTime DEFAULT now()
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (model, run_id, event_id, ts);

CREATE TABLE IF NOT EXISTS `{database}`.label_panes
(
    pane_start   DateTime64(3, 'UTC'),
    window       LowCardinality(String),
    model        LowCardinality(String),
    model_version LowCardinality(String),
    segment      String,
    state        String CODEC(ZSTD(3)),
    counters     Array(Int64),
    final_until  Int64,
    run_id       String,
    computed_at  DateTime64(3, 'UTC'),
    inserted_at  DateTime DEFAULT now()
)
ENGINE = ReplacingMergeTree(computed_at)
PARTITION BY toYYYYMM(pane_start)
ORDER BY (model, run_id, window, pane_start, model_version, segment);
