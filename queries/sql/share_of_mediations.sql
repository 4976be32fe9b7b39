-- share_of_mediations: the share of disputes resolved under judicial offices
-- among all reporting units' resolved disputes in the year (the "55.3%" figure),
-- per province, city and county (and the nation, in a national tier's store),
-- and each area's share of its province's total.
--
-- Parameters: $year.
-- The denominator counts every reporting unit of the area (offices, bureaus,
-- mediation centres, industry committees); province-wide units count only in
-- their province's row, city-level units in their city's and province's rows.
-- Flows of a year are the sum of its months of the figures in force (`yearly`).
WITH -- The nation's row only where the store's root is a nation (a national tier):
-- `units` holds the nation in_store there and nowhere else.
nation AS (
    SELECT max(code) AS code FROM units WHERE kind = 'nation' AND in_store
),
sums AS (
    SELECT
        province_code,
        city_code,
        county_code,
        grouping(province_code) AS by_nation,
        grouping(city_code) AS by_province,
        grouping(county_code) AS above_county,
        count(*) FILTER (WHERE unit_kind = 'office') AS offices,
        count(*) AS units,
        coalesce(sum(disputes_resolved) FILTER (WHERE unit_kind = 'office'), 0) AS office_resolved,
        coalesce(sum(disputes_resolved), 0) AS all_resolved
    FROM yearly
    WHERE year = $year AND province_code IS NOT NULL
    GROUP BY GROUPING SETS ((), (province_code), (province_code, city_code), (province_code, city_code, county_code))
),
areas AS (
    SELECT
        CASE WHEN by_nation = 1 THEN 'nation' WHEN by_province = 1 THEN 'province' WHEN above_county = 1 THEN 'city'
             ELSE 'county' END AS level,
        CASE WHEN by_nation = 1 THEN n.code WHEN by_province = 1 THEN province_code WHEN above_county = 1 THEN city_code
             ELSE county_code END AS code,
        province_code,
        offices,
        units,
        office_resolved,
        all_resolved,
        max(CASE WHEN by_province = 1 AND by_nation = 0 THEN all_resolved END)
            OVER (PARTITION BY by_nation, province_code) AS province_resolved
    FROM sums CROSS JOIN nation n
    WHERE (by_nation = 1 AND n.code IS NOT NULL)
       OR (by_nation = 0 AND by_province = 1)
       OR (above_county = 1 AND city_code IS NOT NULL)
       OR county_code IS NOT NULL
)
SELECT
    a.level,
    a.code,
    u.name,
    a.offices,
    a.units,
    a.office_resolved,
    a.all_resolved,
    round(100.0 * a.office_resolved / nullif(a.all_resolved, 0), 1) AS office_share_pct,
    round(100.0 * a.all_resolved / nullif(a.province_resolved, 0), 1) AS share_of_province_pct
FROM areas a
LEFT JOIN units u ON u.code = a.code
ORDER BY CASE a.level WHEN 'nation' THEN 0 WHEN 'province' THEN 1 WHEN 'city' THEN 2 ELSE 3 END, a.code
