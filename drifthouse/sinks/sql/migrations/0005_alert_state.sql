-- drifthouse schema, version 5: alerting's state kept in the store, not on one host's disk.
--
-- The live merger's rule engine and dispatcher state, its notification outbox and the Slack
-- receivers' message index, per consumer group and merge shard, so that a merger that moves to
-- another host neither pages twice nor misses a resolve (drifthouse.sinks.alert_state).
-- `kind` is 'state' (key ''), 'outbox' (key: the notification id; status 'pending', 'done' or
-- 'failed') or 'slack' (key: the receiver's name). The newest version of a key wins.
-- Also created on its own by drifthouse.sinks.alert_state (through sinks.schema.table_ddl).
CREATE TABLE IF NOT EXISTS `{database}`.alert_state
(
    group String,
    shard String,
    kind LowCardinality(String),
    key String,
    status LowCardinality(String),
    version UInt64,
    saved_at DateTime64(3, 'UTC'),
    body String CODEC(ZSTD(3))
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (group, shard, kind, key);
