-- drifthouse schema, version 7: drift attribution rows name their bin or category.
--
-- `bin` is '' for every metric but the attribution ones (psi_contribution, js_contribution,
-- mass_shift: docs/statistics.md "Drift attribution"), where it names the bin (`[420.0, 480.0)`)
-- or category (`BR`, `__other__`). It ends the sorting key, so the ReplacingMergeTree keeps one
-- row per bin and still collapses a window written again. ClickHouse adds a column to the
-- sorting key only in the ALTER that adds it and only without a default expression: a String's
-- own default is '', which old rows read. Run again on a table that has it, the statement
-- changes nothing.
ALTER TABLE `{database}`.metrics
    ADD COLUMN IF NOT EXISTS bin String,
    MODIFY ORDER BY (model, metric, feature, window, window_start, model_version, segment, run_id, bin);
