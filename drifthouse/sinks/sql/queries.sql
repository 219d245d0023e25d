-- drifthouse SQL recipes: run them with `drifthouse sql --recipe NAME --param key=value`,
-- through drifthouse.sinks.query.run_recipe, or paste them into clickhouse-client.
-- Parameters are ClickHouse query parameters ({name:Type}); `-- defaults:` gives the values used
-- when a parameter is not passed. Every read goes through FINAL (or the *_latest views) so a
-- window written twice counts once.

-- name: psi_range
-- Recompute PSI of every numeric feature of a model version over any time range, from the
-- window histograms in `sketches` (element-wise sums of the counts on the reference's fine
-- grid, coarsened onto the reference's PSI bins, whose edges are a subset of the grid) against
-- the reference's PSI bins (rows with run_id 'reference' and metric 'psi', written with the
-- profile). PSI = sum((cur - ref) * ln(cur / ref)), proportions below 1e-4 raised to 1e-4:
-- over a single window this is the `psi` the pipeline wrote for it.
-- defaults: window=1h run_id=live
WITH
    cur AS (
        SELECT feature, edges, sumForEach(counts) AS c
        FROM sketches FINAL
        WHERE model = {model:String} AND model_version = {model_version:String}
          AND kind = 'hist' AND metric = '' AND window = {window:String} AND run_id = {run_id:String}
          AND window_start >= {start:DateTime64(3)} AND window_end <= {end:DateTime64(3)}
        GROUP BY feature, edges
    ),
    ref AS (
        SELECT feature, argMax(edges, window_start) AS psi_edges, argMax(counts, window_start) AS r
        FROM sketches FINAL
        WHERE model = {model:String} AND model_version = {model_version:String}
          AND kind = 'hist' AND metric = 'psi' AND run_id = 'reference'
        GROUP BY feature
    ),
    coarse AS (
        SELECT
            cur.feature AS feature,
            any(ref.r) AS r,
            sumForEach(arrayMap(k -> arraySum(arrayFilter((x, b) -> b = k, c, bin)),
                                range(length(psi_edges) + 1))) AS cc
        FROM cur
        INNER JOIN ref ON cur.feature = ref.feature
        -- fine bin i (1-based) starts at edges[i - 1]; its PSI bin counts the PSI edges below that
        ARRAY JOIN [arrayMap(i -> if(i = 1, 0, arrayCount(e -> e <= cur.edges[i - 1], psi_edges)),
                             arrayEnumerate(c))] AS bin
        WHERE hasAll(cur.edges, psi_edges)
        GROUP BY feature
    )
SELECT
    feature,
    length(cc) AS bins,
    arraySum(cc) AS n,
    arraySum(arrayMap((p, q) -> (p - q) * log(p / q),
        arrayMap(x -> greatest(x / arraySum(cc), 0.0001), cc),
        arrayMap(x -> greatest(x / arraySum(r), 0.0001), r))) AS psi
FROM coarse
WHERE arraySum(cc) > 0
ORDER BY psi DESC;

-- name: top_drifting_features
-- The features of a model that drifted most over the last `days` days (default: this week),
-- by the largest window value of a drift metric, with when it peaked and its latest value.
-- defaults: metric=psi window=1h run_id=live days=7 limit=10
SELECT
    feature,
    max(value) AS peak,
    argMax(window_start, value) AS peak_window,
    argMax(value, window_start) AS latest,
    avg(value) AS mean,
    count() AS windows
FROM metrics FINAL
WHERE model = {model:String} AND metric = {metric:String} AND window = {window:String}
  AND run_id = {run_id:String} AND feature NOT IN ('', '__prediction__') AND segment = ''
  AND window_start >= now64(3) - toIntervalDay({days:UInt32})
GROUP BY feature
ORDER BY peak DESC
LIMIT {limit:UInt32};

-- name: quality_trend
-- Data quality per feature and day: mean missing rate and events with problems per day.
-- defaults: window=1h run_id=live days=30
SELECT
    toStartOfDay(window_start) AS day,
    feature,
    avgIf(value, metric = 'missing_rate') AS missing_rate,
    sumIf(value, metric = 'out_of_range') AS out_of_range,
    sumIf(value, metric = 'type_error') AS type_errors,
    sumIf(value, metric = 'non_finite') AS non_finite,
    sumIf(value, metric = 'new_category') AS new_categories
FROM metrics FINAL
WHERE model = {model:String} AND window = {window:String} AND run_id = {run_id:String}
  AND feature != '' AND segment = ''
  AND metric IN ('missing_rate', 'out_of_range', 'type_error', 'non_finite', 'new_category')
  AND window_start >= now64(3) - toIntervalDay({days:UInt32})
GROUP BY day, feature
ORDER BY day, feature;

-- name: alert_history
-- Alert state changes of the last `days` days, newest first; model '' means every model.
-- defaults: model= run_id=live days=30
SELECT ts, status, severity, rule, model, model_version, feature, segment, metric, value,
       threshold, message, receivers
FROM alerts FINAL
WHERE ({model:String} = '' OR model = {model:String}) AND run_id = {run_id:String}
  AND ts >= now64(3) - toIntervalDay({days:UInt32})
ORDER BY ts DESC;

-- name: compare_versions
-- Two versions of a model side by side over the last `days` days: the mean of every metric
-- (model level and per feature) for each version, and the difference b - a.
-- defaults: window=1h run_id=live days=7
SELECT
    feature,
    metric,
    avgIf(value, model_version = {version_a:String}) AS a,
    avgIf(value, model_version = {version_b:String}) AS b,
    b - a AS diff,
    sumIf(n, model_version = {version_a:String}) AS n_a,
    sumIf(n, model_version = {version_b:String}) AS n_b
FROM metrics FINAL
WHERE model = {model:String} AND model_version IN ({version_a:String}, {version_b:String})
  AND window = {window:String} AND run_id = {run_id:String} AND segment = ''
  AND window_start >= now64(3) - toIntervalDay({days:UInt32})
GROUP BY feature, metric
HAVING n_a > 0 AND n_b > 0
ORDER BY feature, metric;

-- name: metric_series
-- One metric of a model over time, per version (feature '' for model-level metrics).
-- defaults: feature= window=1h run_id=live days=7
SELECT window_start, model_version, value, n
FROM metrics FINAL
WHERE model = {model:String} AND metric = {metric:String} AND feature = {feature:String}
  AND window = {window:String} AND run_id = {run_id:String} AND segment = ''
  AND window_start >= now64(3) - toIntervalDay({days:UInt32})
ORDER BY window_start, model_version;

-- name: segment_breakdown
-- One metric of a model per segment value (`country=DE`) over the last `days` days, after the
-- model-wide value (segment ''): the largest window value and when, the mean over windows, and
-- the events (or labelled predictions) behind them. Segment values have the serving metrics,
-- the prediction's drift (feature '__prediction__') and the label metrics; per attribute, the
-- values beyond `metrics.max_segment_values` in a window are pooled as `country=__other__`.
-- defaults: metric=error_rate_5xx feature= window=1h run_id=live days=7
SELECT
    segment,
    max(value) AS peak,
    argMax(window_start, value) AS peak_window,
    avg(value) AS mean,
    sum(n) AS total_n,
    count() AS windows
FROM metrics FINAL
WHERE model = {model:String} AND metric = {metric:String} AND feature = {feature:String}
  AND window = {window:String} AND run_id = {run_id:String}
  AND (segment = '' OR position(segment, '=') > 0)
  AND window_start >= now64(3) - toIntervalDay({days:UInt32})
GROUP BY segment
ORDER BY segment != '', peak DESC, segment;
