-- Q3, hand-written DuckDB SQL: first lung-cancer diagnosis (443388 and descendants) inside an
-- observation period; rule 1: no death 0-365 days after; rule 2: at least 2 visits starting
-- 0-365 days after (records inside the index observation period).
CREATE OR REPLACE TEMP TABLE hand_events AS
WITH lung AS (
    SELECT concept_id FROM concept WHERE concept_id = 443388
    UNION
    SELECT c.concept_id FROM concept_ancestor ca JOIN concept c ON c.concept_id = ca.descendant_concept_id
    WHERE ca.ancestor_concept_id = 443388 AND c.invalid_reason IS NULL
),
first_diagnosis AS (
    SELECT person_id, min(condition_start_date) AS start_date
    FROM condition_occurrence
    WHERE condition_concept_id IN (SELECT concept_id FROM lung)
    GROUP BY person_id
),
qualified AS (
    SELECT f.person_id, f.start_date, op.observation_period_start_date AS op_start,
           op.observation_period_end_date AS op_end
    FROM first_diagnosis f
    JOIN observation_period op ON op.person_id = f.person_id
        AND f.start_date BETWEEN op.observation_period_start_date AND op.observation_period_end_date
),
died AS (
    SELECT DISTINCT q.person_id
    FROM qualified q JOIN death d ON d.person_id = q.person_id
    WHERE d.death_date BETWEEN q.start_date AND q.start_date + 365 AND d.death_date BETWEEN q.op_start AND q.op_end
),
visits AS (
    SELECT q.person_id, count(*) AS n
    FROM qualified q JOIN visit_occurrence v ON v.person_id = q.person_id
    WHERE v.visit_start_date BETWEEN q.start_date AND q.start_date + 365
      AND v.visit_start_date BETWEEN q.op_start AND q.op_end
    GROUP BY q.person_id
)
SELECT q.person_id, q.start_date, q.op_end AS end_date,
       (CASE WHEN d.person_id IS NULL THEN 1 ELSE 0 END) + (CASE WHEN v.n >= 2 THEN 2 ELSE 0 END) AS mask
FROM qualified q
LEFT JOIN died d ON d.person_id = q.person_id
LEFT JOIN visits v ON v.person_id = q.person_id;
CREATE OR REPLACE TABLE hand_cohort AS
SELECT 3 AS cohort_definition_id, person_id AS subject_id, start_date AS cohort_start_date, end_date AS cohort_end_date
FROM hand_events WHERE mask = 3 ORDER BY person_id;
SELECT mask, count(*) AS events, count(DISTINCT person_id) AS persons FROM hand_events GROUP BY mask ORDER BY mask;
