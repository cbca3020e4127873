-- marts.equity: race and ethnicity of people referred to LEAD versus people
-- arrested for the same offense types, during the program window
-- (core.evaluation_settings).
--   referred: linked people with a LEAD referral in the window; race and
--             ethnicity from their first referral in it.
--   arrested: linked people arrested in the window for an offense type that
--             referrals in the window name (referral offense_category), whether
--             or not they were referred; race and ethnicity from their first
--             such arrest.
CREATE OR REPLACE TABLE marts.equity AS
WITH window_ AS (SELECT program_start, program_end FROM core.evaluation_settings),
referred AS (
    SELECT r.person_key, r.race, r.ethnicity
    FROM core.referral r, window_ w
    WHERE r.person_key IS NOT NULL AND r.referral_date BETWEEN w.program_start AND w.program_end
    QUALIFY row_number() OVER (PARTITION BY r.person_key ORDER BY r.referral_date, r.referral_id) = 1
),
types AS (
    SELECT DISTINCT r.offense_category AS offense_type
    FROM core.referral r, window_ w
    WHERE r.referral_date BETWEEN w.program_start AND w.program_end AND r.offense_category IS NOT NULL
),
arrested AS (
    SELECT a.person_key, a.race, a.ethnicity
    FROM core.arrest a, window_ w
    WHERE a.person_key IS NOT NULL AND a.arrest_date BETWEEN w.program_start AND w.program_end
      AND a.offense_type IN (SELECT offense_type FROM types)
    QUALIFY row_number() OVER (PARTITION BY a.person_key ORDER BY a.arrest_date, a.arrest_id) = 1
)
SELECT 'referred' AS population, coalesce(race, 'UNKNOWN') AS race,
       coalesce(ethnicity, 'UNKNOWN') AS ethnicity, count(*) AS people
FROM referred GROUP BY ALL
UNION ALL
SELECT 'arrested', coalesce(race, 'UNKNOWN'), coalesce(ethnicity, 'UNKNOWN'), count(*)
FROM arrested GROUP BY ALL
ORDER BY population DESC, race, ethnicity;
