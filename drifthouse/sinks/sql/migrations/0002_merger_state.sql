-- The live merger's own state (label join and windows, metric-event windows, change
-- detectors), saved with the partials-topic position it covers. Two slots per consumer group:
-- a new snapshot goes to the slot not holding the one the last commit points at, so a snapshot
-- whose commit failed never replaces the one a restart needs.
CREATE TABLE IF NOT EXISTS `{database}`.merger_state
(
    group String,
    slot UInt8,
    position UInt64,
    saved_at DateTime64(3, 'UTC'),
    state String CODEC(ZSTD(3))
)
ENGINE = ReplacingMergeTree(saved_at)
ORDER BY (group, slot);
