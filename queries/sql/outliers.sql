-- outliers: figures to check before a month is approved, one row per unit,
-- month, statistic and reason. A flag never blocks a report: it asks a person
-- to look at the figure (a typo, a month counted twice, a unit mixed up).
--
-- Parameters: $year. The thresholds are the catalog's [outliers] table
-- (docs/CATALOG.md), registered as `outlier_thresholds` and `outlier_bounds`.
-- Figures in force only (the latest revision of each month). Three reasons:
--   far_from_history: a flow far from the unit's own months of $year and the
--     year before: score = |x − median| / (1.4826 · MAD), the robust z-score
--     (when more than half the months are equal, MAD is 0 and 1.2533 · the mean
--     absolute deviation stands in); flagged when score >= robust_score and the
--     unit has at least min_months months of the statistic;
--   jump: a flow that grows or falls by a factor >= jump_ratio from the unit's
--     previous calendar month: score = larger / max(smaller, 1);
--   beyond_size: a statistic above an [[outliers.bound]] for the unit's size:
--     score = the value per village (the registry's villages, else the month's
--     villages_total), per person in post (staff_actual + staff_contracted) or
--     per ten thousand residents (the registry's population).
-- Differences below small_difference from the median or previous month are
-- never flagged. `reference` is the median, the previous month's value, or the
-- largest plausible value for the unit's size; `threshold` the cut applied.
WITH t AS (
    SELECT * FROM outlier_thresholds
),
flows AS (
    SELECT unit_code, period, year * 12 + month AS month_index, year, metric, value
    FROM facts
    WHERE kind = 'flow' AND year BETWEEN $year - 1 AND $year
),
centre AS (
    SELECT unit_code, metric, median(value) AS median, count(*) AS months
    FROM flows
    GROUP BY unit_code, metric
),
spread AS (
    SELECT
        f.unit_code,
        f.metric,
        median(abs(f.value - c.median)) AS mad,
        avg(abs(f.value - c.median)) AS mean_deviation
    FROM flows f
    JOIN centre c ON c.unit_code = f.unit_code AND c.metric = f.metric
    GROUP BY f.unit_code, f.metric
),
far AS (
    SELECT
        f.unit_code,
        f.period,
        f.metric,
        f.value,
        'far_from_history' AS reason,
        c.median AS reference,
        abs(f.value - c.median)
            / nullif(CASE WHEN s.mad > 0 THEN 1.4826 * s.mad ELSE 1.2533 * s.mean_deviation END, 0) AS score,
        t.robust_score AS threshold
    FROM flows f
    JOIN centre c ON c.unit_code = f.unit_code AND c.metric = f.metric
    JOIN spread s ON s.unit_code = f.unit_code AND s.metric = f.metric
    CROSS JOIN t
    WHERE f.year = $year AND c.months >= t.min_months AND abs(f.value - c.median) >= t.small_difference
),
ordered AS (
    SELECT
        unit_code,
        period,
        year,
        metric,
        value,
        month_index,
        lag(value) OVER (PARTITION BY unit_code, metric ORDER BY month_index) AS previous,
        lag(month_index) OVER (PARTITION BY unit_code, metric ORDER BY month_index) AS previous_index
    FROM flows
),
jumps AS (
    SELECT
        o.unit_code,
        o.period,
        o.metric,
        o.value,
        'jump' AS reason,
        o.previous AS reference,
        greatest(o.value, o.previous) / greatest(least(o.value, o.previous), 1) AS score,
        t.jump_ratio AS threshold
    FROM ordered o
    CROSS JOIN t
    WHERE o.year = $year AND o.previous_index = o.month_index - 1 AND abs(o.value - o.previous) >= t.small_difference
),
unit_months AS (
    SELECT
        unit_code,
        period,
        max(value) FILTER (WHERE metric = 'villages_total') AS villages_total,
        sum(value) FILTER (WHERE metric IN ('staff_actual', 'staff_contracted')) AS staff
    FROM facts
    WHERE year = $year
    GROUP BY unit_code, period
),
sized AS (
    SELECT
        f.unit_code,
        f.period,
        f.metric,
        f.value,
        b.max AS threshold,
        CASE b.per
            WHEN 'village' THEN coalesce(CAST(u.villages AS DOUBLE), m.villages_total)
            WHEN 'staff' THEN m.staff
            ELSE CAST(u.population AS DOUBLE) / 10000.0
        END AS size
    FROM facts f
    JOIN outlier_bounds b ON b.metric = f.metric
    LEFT JOIN unit_months m ON m.unit_code = f.unit_code AND m.period = f.period
    LEFT JOIN units u ON u.code = f.unit_code
    WHERE f.year = $year
),
beyond AS (
    SELECT
        unit_code,
        period,
        metric,
        value,
        'beyond_size' AS reason,
        threshold * size AS reference,
        value / size AS score,
        threshold
    FROM sized
    WHERE size > 0 AND value > threshold * size
),
flagged AS (
    SELECT * FROM far WHERE score >= threshold
    UNION ALL
    SELECT * FROM jumps WHERE score >= threshold
    UNION ALL
    SELECT * FROM beyond
)
SELECT
    u.county_code,
    x.unit_code,
    u.name,
    x.period,
    x.metric,
    x.value,
    x.reason,
    round(x.reference, 2) AS reference,
    round(x.score, 2) AS score,
    x.threshold
FROM flagged x
JOIN units u ON u.code = x.unit_code
WHERE u.in_store
ORDER BY u.county_code, x.unit_code, x.period, x.metric, x.reason
