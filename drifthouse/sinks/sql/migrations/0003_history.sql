-- drifthouse schema, version 3: history of any span, kept for as long as configured.
--
-- Retention (store.ttl_days) counts from when a row was written, `inserted_at`, not from its
-- event time: a replay of years-old history is kept as long as live rows, not deleted by the
-- next merge. Rows written before this version count from the first merge that sees the column.
ALTER TABLE `{database}`.metrics ADD COLUMN IF NOT EXISTS inserted_at DateTime DEFAULT now();
ALTER TABLE `{database}`.sketches ADD COLUMN IF NOT EXISTS inserted_at DateTime DEFAULT now();
ALTER TABLE `{database}`.alerts ADD COLUMN IF NOT EXISTS inserted_at DateTime DEFAULT now();

-- The prediction log by month, like every other table: one partition per day made an insert
-- of more than 100 days of history fail (max_partitions_per_insert_block) and cost one part per
-- day. schema.migrate copies the rows of the table by day into this one, exchanges the two and
-- drops the old one (see schema._rebuild_predictions); every step may run again.
CREATE TABLE IF NOT EXISTS `{database}`.predictions_by_month
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
    sample_rate  Float64,
    inserted_at  DateTime DEFAULT now()
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (model, ts, event_id);
