-- core.booking_charge: one row per charge at a jail booking.
CREATE OR REPLACE TABLE core.booking_charge AS
SELECT b.booking_id,
       b.charge_seq,
       b.offense_code,
       o.offense_type,
       b.severity
FROM current.jail_bookings b
LEFT JOIN core.offense_code o ON o.offense_code = b.offense_code
ORDER BY b.booking_id, b.charge_seq;

-- core.booking: one row per booking. A person leaves the jail once, so the
-- booking's release is the latest release recorded on any of its charge rows.
-- Someone still in custody is counted up to the data end: the latest booking
-- or release date in the table. jail_days counts calendar days, both ends
-- included (booked and released the same day = 1).
CREATE OR REPLACE TABLE core.booking AS
WITH bookings AS (
    SELECT booking_id,
           first(person_token ORDER BY charge_seq) AS person_token,
           min(booking_ts) AS booking_ts,
           max(release_ts) AS release_ts,
           min(arrest_id) AS arrest_id,
           first(age_at_event ORDER BY charge_seq) AS age_at_event,
           first(sex ORDER BY charge_seq) AS sex,
           first(race ORDER BY charge_seq) AS race,
           CASE WHEN bool_or(severity = 'felony') THEN 'felony' ELSE 'misdemeanor' END AS severity,
           count(*) AS charge_count
    FROM current.jail_bookings
    GROUP BY booking_id
),
data_end AS (
    SELECT max(greatest(booking_ts, release_ts))::DATE AS end_date FROM bookings
)
SELECT b.booking_id,
       pl.person_key,
       b.booking_ts,
       b.release_ts,
       b.booking_ts::DATE AS booking_date,
       date_diff('day', b.booking_ts::DATE, coalesce(b.release_ts::DATE, d.end_date)) + 1 AS jail_days,
       b.arrest_id,
       b.severity,
       b.age_at_event,
       b.sex,
       b.race,
       b.charge_count
FROM bookings b
CROSS JOIN data_end d
LEFT JOIN core.person_link pl ON pl.agency = 'jail' AND pl.person_token = b.person_token
ORDER BY b.booking_id;
