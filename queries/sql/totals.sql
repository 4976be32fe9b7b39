-- totals: per level (nation, province, city, county, office) the year's total
-- of every flow and the year-end value of every stock. The nation's row is
-- there only in a national tier's store.
--
-- Parameters: $year.
-- A unit's year-end stock is its value in its last reported month of the year
-- (`yearly`); an area's year-end stock is the sum over its units of their
-- year-end values (a sum across units, never across months). Nation, province,
-- city and county rows count every reporting unit under them; office rows are judicial
-- offices only. `units` is how many units carried the metric in the year.
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
        count(*) AS units,
        sum(value) AS value
    FROM yearly_facts
    WHERE year = $year AND province_code IS NOT NULL
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
        units,
        value
    FROM sums CROSS JOIN nation n
    WHERE (by_nation = 1 AND n.code IS NOT NULL)
       OR (by_nation = 0 AND by_province = 1)
       OR (above_county = 1 AND city_code IS NOT NULL)
       OR (above_unit = 1 AND county_code IS NOT NULL)
       OR (above_unit = 0 AND unit_kind = 'office')
)
SELECT r.level, r.code, u.name, r.metric, m.name_zh AS metric_zh, r.kind, m.unit, r.units, r.value
FROM rows r
LEFT JOIN units u ON u.code = r.code
LEFT JOIN metrics m ON m.code = r.metric
ORDER BY CASE r.level WHEN 'nation' THEN 0 WHEN 'province' THEN 1 WHEN 'city' THEN 2 WHEN 'county' THEN 3 ELSE 4 END, r.code, m.position
