-- ranking: the top and bottom judicial offices and counties (and provinces, in a
-- national tier's store) by one statistic.
--
-- Parameters: $year, $metric (a catalog code; default disputes_resolved),
-- $limit (how many at each end; default 10).
-- An office's value is its yearly value (flows summed, stocks at year end); a
-- county's (a province's) is the sum over all its reporting units. Units
-- without the value are not ranked. Ties are broken by code so the order is
-- stable.
WITH -- Provinces are ranked only where the store's root is a nation (a national
-- tier): `units` holds the nation in_store there and nowhere else.
nation AS (
    SELECT max(code) AS code FROM units WHERE kind = 'nation' AND in_store
),
v AS (
    SELECT 'office' AS level, unit_code AS code, value
    FROM yearly_facts
    WHERE year = $year AND metric = $metric AND unit_kind = 'office'
    UNION ALL
    SELECT 'county' AS level, county_code AS code, sum(value) AS value
    FROM yearly_facts
    WHERE year = $year AND metric = $metric AND county_code IS NOT NULL
    GROUP BY county_code
    UNION ALL
    SELECT 'province' AS level, province_code AS code, sum(value) AS value
    FROM yearly_facts CROSS JOIN nation n
    WHERE year = $year AND metric = $metric AND province_code IS NOT NULL AND n.code IS NOT NULL
    GROUP BY province_code
),
ranked AS (
    SELECT
        level,
        code,
        value,
        row_number() OVER (PARTITION BY level ORDER BY value DESC, code) AS top_rank,
        row_number() OVER (PARTITION BY level ORDER BY value ASC, code) AS bottom_rank
    FROM v
)
SELECT r.level, r.side, r.rank, r.code, u.name, $metric AS metric, r.value
FROM (
    SELECT level, 'top' AS side, top_rank AS rank, code, value FROM ranked WHERE top_rank <= $limit
    UNION ALL
    SELECT level, 'bottom' AS side, bottom_rank AS rank, code, value FROM ranked WHERE bottom_rank <= $limit
) r
LEFT JOIN units u ON u.code = r.code
ORDER BY CASE r.level WHEN 'province' THEN 0 WHEN 'county' THEN 1 ELSE 2 END, CASE r.side WHEN 'top' THEN 1 ELSE 2 END, r.rank
