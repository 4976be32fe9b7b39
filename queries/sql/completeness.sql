-- completeness: per month and level (the nation in a national tier's store,
-- each province, city and county) the reporting units expected against those that reported, the late
-- ones and the on-time rate.
--
-- Parameters: $year.
-- Expected: every reporting unit of the registry in the store's subtree.
-- Received: the unit has at least one revision for the month (a correction
-- does not count twice). Late: its first revision was received after the
-- month's deadline (`periods.due_at`, deadline_day of store.toml, as the
-- aggregator judges it). on_time_pct = (received - late) / expected.
-- The definition is docs/STORAGE.md "Completeness and lateness";
-- tests/completeness_agrees.rs holds this rollup equal to `sifa aggregator status`.
-- approved: the approval in force at this store's tier covering the area for
-- the month (of the area itself or of a county, city or province above it):
-- 'accepted' (approved below and accepted here), 'approved', or NULL.
WITH -- The nation's row only where the store's root is a nation (a national tier):
-- `units` holds the nation in_store there and nowhere else.
nation AS (
    SELECT max(code) AS code FROM units WHERE kind = 'nation' AND in_store
),
expected AS (
    SELECT code, province_code, city_code, county_code
    FROM units
    WHERE is_reporting AND in_store
),
firsts AS (
    SELECT unit_code, period, min(received_at) AS first_received
    FROM report_revisions
    WHERE year = $year
    GROUP BY unit_code, period
),
grid AS (
    SELECT p.period, p.month, p.due_at, e.code, e.province_code, e.city_code, e.county_code, f.first_received
    FROM periods p
    CROSS JOIN expected e
    LEFT JOIN firsts f ON f.unit_code = e.code AND f.period = p.period
    WHERE p.year = $year
),
sums AS (
    SELECT
        period,
        month,
        province_code,
        city_code,
        county_code,
        grouping(province_code) AS by_nation,
        grouping(city_code) AS by_province,
        grouping(county_code) AS above_county,
        count(*) AS expected,
        count(first_received) AS received,
        count(*) FILTER (WHERE first_received > due_at) AS late
    FROM grid
    GROUP BY GROUPING SETS (
        (period, month),
        (period, month, province_code),
        (period, month, province_code, city_code),
        (period, month, province_code, city_code, county_code)
    )
),
rows AS (
    SELECT
        period,
        month,
        CASE WHEN by_nation = 1 THEN 'nation' WHEN by_province = 1 THEN 'province' WHEN above_county = 1 THEN 'city'
             ELSE 'county' END AS level,
        CASE WHEN by_nation = 1 THEN n.code WHEN by_province = 1 THEN province_code WHEN above_county = 1 THEN city_code
             ELSE county_code END AS code,
        expected,
        received,
        late
    FROM sums CROSS JOIN nation n
    WHERE (by_nation = 1 AND n.code IS NOT NULL)
       OR (by_nation = 0 AND by_province = 1)
       OR (above_county = 1 AND city_code IS NOT NULL)
       OR county_code IS NOT NULL
),
in_force AS (
    SELECT period, unit_code, max(CASE state WHEN 'accepted' THEN 2 ELSE 1 END) AS rank
    FROM approvals
    WHERE state <> 'withdrawn'
    GROUP BY period, unit_code
),
approved AS (
    SELECT r.period, r.code, max(a.rank) AS rank
    FROM rows r
    JOIN units u ON u.code = r.code
    JOIN in_force a ON a.period = r.period AND a.unit_code IN (u.code, u.province_code, u.city_code, u.county_code)
    GROUP BY r.period, r.code
)
SELECT
    r.period,
    r.level,
    r.code,
    u.name,
    r.expected,
    r.received,
    r.expected - r.received AS missing,
    r.late,
    round(100.0 * r.received / nullif(r.expected, 0), 1) AS received_pct,
    round(100.0 * (r.received - r.late) / nullif(r.expected, 0), 1) AS on_time_pct,
    CASE ap.rank WHEN 2 THEN 'accepted' WHEN 1 THEN 'approved' END AS approved
FROM rows r
LEFT JOIN units u ON u.code = r.code
LEFT JOIN approved ap ON ap.period = r.period AND ap.code = r.code
WHERE r.code IS NOT NULL
ORDER BY r.period, CASE r.level WHEN 'nation' THEN 0 WHEN 'province' THEN 1 WHEN 'city' THEN 2 ELSE 3 END, r.code
