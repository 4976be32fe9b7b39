-- yoy: year-on-year growth per level (nation in a national tier's store,
-- province, city, county, office) and statistic: the year's value against the
-- year before.
--
-- Parameters: $year.
-- Values as in `totals` (flows summed over the months, stocks at year end,
-- never summed across months). growth_pct is null when the previous year has
-- no value or a zero.
WITH -- The nation's row only where the store's root is a nation (a national tier):
-- `units` holds the nation in_store there and nowhere else.
nation AS (
    SELECT max(code) AS code FROM units WHERE kind = 'nation' AND in_store
),
sums AS (
    SELECT
        metric,
        kind,
        province_code,
        city_code,
        county_code,
        unit_code,
        unit_kind,
        grouping(province_code) AS by_nation,
        grouping(city_code) AS by_province,
        grouping(county_code) AS above_county,
        grouping(unit_code) AS above_unit,
        sum(value) FILTER (WHERE year = $year) AS value,
        sum(value) FILTER (WHERE year = $year - 1) AS previous
    FROM yearly_facts
    WHERE year IN ($year, $year - 1) AND province_code IS NOT NULL
    GROUP BY GROUPING SETS (
        (metric, kind),
        (metric, kind, province_code),
        (metric, kind, province_code, city_code),
        (metric, kind, province_code, city_code, county_code),
        (metric, kind, province_code, city_code, county_code, unit_code, unit_kind)
    )
),
rows AS (
    SELECT
        CASE WHEN by_nation = 1 THEN 'nation' WHEN by_province = 1 THEN 'province' WHEN above_county = 1 THEN 'city'
             WHEN above_unit = 1 THEN 'county' ELSE 'office' END AS level,
        CASE WHEN by_nation = 1 THEN n.code WHEN by_province = 1 THEN province_code WHEN above_county = 1 THEN city_code
             WHEN above_unit = 1 THEN county_code ELSE unit_code END AS code,
        metric,
        kind,
        value,
        previous
    FROM sums CROSS JOIN nation n
    WHERE (by_nation = 1 AND n.code IS NOT NULL)
       OR (by_nation = 0 AND by_province = 1)
       OR (above_county = 1 AND city_code IS NOT NULL)
       OR (above_unit = 1 AND county_code IS NOT NULL)
       OR (above_unit = 0 AND unit_kind = 'office')
)
SELECT
    r.level,
    r.code,
    u.name,
    r.metric,
    r.kind,
    r.previous,
    r.value,
    round(100.0 * (r.value - r.previous) / nullif(r.previous, 0), 1) AS growth_pct
FROM rows r
LEFT JOIN units u ON u.code = r.code
LEFT JOIN metrics m ON m.code = r.metric
ORDER BY CASE r.level WHEN 'nation' THEN 0 WHEN 'province' THEN 1 WHEN 'city' THEN 2 WHEN 'county' THEN 3 ELSE 4 END, r.code, m.position
