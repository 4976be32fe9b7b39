-- standards: per level (nation in a national tier's store, province, city,
-- county) the judicial offices meeting the standardisation marks at year end,
-- and the star-rating distribution.
--
-- Parameters: $year.
-- Marks, on each office's year-end stocks (its last reported month, `yearly`):
--   staff:    staff_actual + staff_contracted >= 3 (people in post, incl. contracted);
--   area:     office_area_m2 >= 100;
--   advisers: villages_with_adviser >= villages_total (a legal adviser for every
--             village or community), with villages_total reported;
--   all three together is "meets_all".
-- A stock the office did not report counts as not meeting the mark.
-- stars_5 .. stars_1 count offices by year-end star_rating; unrated had none.
-- fengqiao counts offices holding the Fengqiao-style designation at year end
-- (fengqiao_style = 1 in their last reported month); fengqiao_pct is its share
-- of the offices (Chongqing's aim: at least 10%).
WITH -- The nation's row only where the store's root is a nation (a national tier):
-- `units` holds the nation in_store there and nowhere else.
nation AS (
    SELECT max(code) AS code FROM units WHERE kind = 'nation' AND in_store
),
offices AS (
    SELECT
        province_code,
        city_code,
        county_code,
        coalesce(staff_actual, 0) + coalesce(staff_contracted, 0) >= 3 AS staff_ok,
        coalesce(office_area_m2 >= 100, false) AS area_ok,
        coalesce(villages_total IS NOT NULL AND villages_with_adviser >= villages_total, false) AS advisers_ok,
        star_rating,
        coalesce(fengqiao_style = 1, false) AS fengqiao
    FROM yearly
    WHERE year = $year AND unit_kind = 'office' AND province_code IS NOT NULL
),
sums AS (
    SELECT
        province_code,
        city_code,
        county_code,
        grouping(province_code) AS by_nation,
        grouping(city_code) AS by_province,
        grouping(county_code) AS above_county,
        count(*) AS offices,
        count(*) FILTER (WHERE staff_ok) AS meets_staff,
        count(*) FILTER (WHERE area_ok) AS meets_area,
        count(*) FILTER (WHERE advisers_ok) AS meets_advisers,
        count(*) FILTER (WHERE staff_ok AND area_ok AND advisers_ok) AS meets_all,
        count(*) FILTER (WHERE star_rating = 5) AS stars_5,
        count(*) FILTER (WHERE star_rating = 4) AS stars_4,
        count(*) FILTER (WHERE star_rating = 3) AS stars_3,
        count(*) FILTER (WHERE star_rating = 2) AS stars_2,
        count(*) FILTER (WHERE star_rating = 1) AS stars_1,
        count(*) FILTER (WHERE star_rating IS NULL) AS unrated,
        count(*) FILTER (WHERE fengqiao) AS fengqiao
    FROM offices
    GROUP BY GROUPING SETS ((), (province_code), (province_code, city_code), (province_code, city_code, county_code))
),
rows AS (
    SELECT
        CASE WHEN by_nation = 1 THEN 'nation' WHEN by_province = 1 THEN 'province' WHEN above_county = 1 THEN 'city'
             ELSE 'county' END AS level,
        CASE WHEN by_nation = 1 THEN n.code WHEN by_province = 1 THEN province_code WHEN above_county = 1 THEN city_code
             ELSE county_code END AS code,
        sums.*
    FROM sums CROSS JOIN nation n
    WHERE (by_nation = 1 AND n.code IS NOT NULL)
       OR (by_nation = 0 AND by_province = 1)
       OR (above_county = 1 AND city_code IS NOT NULL)
       OR county_code IS NOT NULL
)
SELECT
    r.level,
    r.code,
    u.name,
    r.offices,
    r.meets_staff,
    r.meets_area,
    r.meets_advisers,
    r.meets_all,
    round(100.0 * r.meets_all / r.offices, 1) AS meets_all_pct,
    r.stars_5,
    r.stars_4,
    r.stars_3,
    r.stars_2,
    r.stars_1,
    r.unrated,
    r.fengqiao,
    round(100.0 * r.fengqiao / r.offices, 1) AS fengqiao_pct
FROM rows r
LEFT JOIN units u ON u.code = r.code
ORDER BY CASE r.level WHEN 'nation' THEN 0 WHEN 'province' THEN 1 WHEN 'city' THEN 2 ELSE 3 END, r.code
