-- Treatment records are 42 CFR Part 2 records: they join a person only while
-- the client's consent to share is active. Linkage already leaves non-consenting
-- clients out of core.person_link; the consent test is repeated here so that a
-- revoked consent can never reach person-level tables through a stale link.

-- core.consent: one row per treatment client with the current consent status.
CREATE OR REPLACE TABLE core.consent AS
SELECT c.person_token,
       CASE WHEN c.consent_status = 'active' THEN pl.person_key END AS person_key,
       c.consent_status,
       c.consent_date
FROM current.treatment_clients c
LEFT JOIN core.person_link pl ON pl.agency = 'treatment' AND pl.person_token = c.person_token
ORDER BY c.person_token;

-- core.treatment_episode: one row per case-management episode.
CREATE OR REPLACE TABLE core.treatment_episode AS
SELECT e.episode_id,
       c.person_key,
       e.intake_date,
       e.referral_source,
       e.exit_date,
       e.exit_reason
FROM current.treatment_episodes e
LEFT JOIN core.consent c ON c.person_token = e.person_token AND c.consent_status = 'active'
ORDER BY e.episode_id;

-- core.service_contact: one row per service contact.
CREATE OR REPLACE TABLE core.service_contact AS
SELECT s.contact_id,
       c.person_key,
       s.contact_date,
       s.service_type
FROM current.treatment_contacts s
LEFT JOIN core.consent c ON c.person_token = s.person_token AND c.consent_status = 'active'
ORDER BY s.contact_id;

-- core.assessment: one row per case manager's assessment of housing, employment
-- and income, with the person only while the client's consent is active.
CREATE OR REPLACE TABLE core.assessment AS
SELECT a.assessment_id,
       c.person_key,
       a.assessment_date,
       a.housing_status,
       a.employment_status,
       a.income_source
FROM current.treatment_assessments a
LEFT JOIN core.consent c ON c.person_token = a.person_token AND c.consent_status = 'active'
ORDER BY a.assessment_id;
