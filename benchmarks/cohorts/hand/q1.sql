-- Q1, hand-written DuckDB SQL: women aged 40-75 at their first breast-cancer diagnosis
-- (4112853 and descendants) with at least 365 days of observation before it.
-- Exit at the end of the observation period. Same outputs as Massalia's full generation:
-- the qualified events with their inclusion-rule bitmask, the cohort table, the rule statistics.
CREATE OR REPLACE TEMP TABLE hand_events AS
WITH breast AS (
    SELECT concept_id FROM concept WHERE concept_id = 4112853
    UNION
    SELECT c.concept_id FROM concept_ancestor ca JOIN concept c ON c.concept_id = ca.descendant_concept_id
    WHERE ca.ancestor_concept_id = 4112853 AND c.invalid_reason IS NULL
),
first_diagnosis AS (
    SELECT person_id, min(condition_start_date) AS start_date
    FROM condition_occurrence
    WHERE condition_concept_id IN (SELECT concept_id FROM breast)
    GROUP BY person_id
)
SELECT f.person_id, f.start_date, op.observation_period_end_date AS end_date, 0 AS mask
FROM first_diagnosis f
JOIN person p ON p.person_id = f.person_id
JOIN observation_period op ON op.person_id = f.person_id
    AND f.start_date BETWEEN op.observation_period_start_date + 365 AND op.observation_period_end_date
WHERE p.gender_concept_id = 8532 AND year(f.start_date) - p.year_of_birth BETWEEN 40 AND 75;
CREATE OR REPLACE TABLE hand_cohort AS
SELECT 1 AS cohort_definition_id, person_id AS subject_id, start_date AS cohort_start_date, end_date AS cohort_end_date
FROM hand_events ORDER BY person_id;
SELECT mask, count(*) AS events, count(DISTINCT person_id) AS persons FROM hand_events GROUP BY mask ORDER BY mask;
