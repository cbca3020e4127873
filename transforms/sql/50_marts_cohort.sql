-- marts.cohort: the evaluation cohorts, one row per person (definitions in
-- transforms/evaluation.yaml).
--   lead:       everyone with a LEAD referral; index = first referral date.
--   comparison: never referred, with an arrest carrying a LEAD-eligible charge
--               in a comparison precinct between program_start and program_end
--               (inclusive); index = first such arrest date.
-- A person who qualifies for both is LEAD. Ties on the index date are broken
-- by the lowest referral_id / arrest_id, which supplies age_at_index.
CREATE OR REPLACE TABLE marts.cohort AS
WITH lead AS (
    SELECT person_key, 'lead' AS cohort, referral_date AS index_date, age_at_event AS age_at_index
    FROM core.referral
    WHERE person_key IS NOT NULL
    QUALIFY row_number() OVER (PARTITION BY person_key ORDER BY referral_date, referral_id) = 1
),
comparison AS (
    SELECT a.person_key, 'comparison' AS cohort, a.arrest_date AS index_date,
           a.age_at_event AS age_at_index
    FROM core.arrest a
    CROSS JOIN core.evaluation_settings s
    WHERE a.person_key IS NOT NULL
      AND a.lead_eligible
      AND list_contains(s.comparison_precincts, a.precinct)
      AND a.arrest_date BETWEEN s.program_start AND s.program_end
      AND NOT EXISTS (SELECT 1 FROM lead l WHERE l.person_key = a.person_key)
    QUALIFY row_number() OVER (PARTITION BY a.person_key ORDER BY a.arrest_date, a.arrest_id) = 1
),
cohort AS (
    SELECT * FROM lead
    UNION ALL
    SELECT * FROM comparison
)
SELECT c.person_key,
       c.cohort,
       c.index_date,
       c.age_at_index,
       p.sex,
       p.race,
       (SELECT count(DISTINCT a.arrest_id) FROM core.arrest a
        WHERE a.person_key = c.person_key
          AND a.arrest_date >= c.index_date - 365
          AND a.arrest_date < c.index_date) AS prior_arrests_365
FROM cohort c
LEFT JOIN core.person p ON p.person_key = c.person_key
ORDER BY c.person_key;
