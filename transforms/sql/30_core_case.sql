-- core.case_charge: one row per charge the police referred to the prosecutor,
-- whatever the charging decision (filed, declined, diverted or pending).
CREATE OR REPLACE TABLE core.case_charge AS
SELECT c.case_id,
       c.charge_seq,
       pl.person_key,
       c.arrest_id,
       c.referral_date,
       c.offense_code,
       o.offense_type,
       c.severity,
       c.decision,
       c.decision_date,
       c.disposition,
       c.disposition_date,
       c.age_at_event
FROM current.prosecutor_cases c
LEFT JOIN core.offense_code o ON o.offense_code = c.offense_code
LEFT JOIN core.person_link pl ON pl.agency = 'prosecutor' AND pl.person_token = c.person_token
ORDER BY c.case_id, c.charge_seq;
