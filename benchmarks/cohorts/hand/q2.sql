-- Q2, hand-written DuckDB SQL: Q1's entry events; rule 1: a chemotherapy ingredient (or descendant)
-- starting 0-90 days after the index; rule 2: hemoglobin (3000963) > 10 in the 30 days before it.
-- Correlated records must start inside the index observation period (as Circe and Massalia do).
CREATE OR REPLACE TEMP TABLE hand_events AS
WITH breast AS (
    SELECT concept_id FROM concept WHERE concept_id = 4112853
    UNION
    SELECT c.concept_id FROM concept_ancestor ca JOIN concept c ON c.concept_id = ca.descendant_concept_id
    WHERE ca.ancestor_concept_id = 4112853 AND c.invalid_reason IS NULL
),
chemo AS (
    SELECT concept_id FROM concept WHERE concept_id IN (1310317, 1338512, 1344354, 1378382, 1315942, 1344905, 1397599, 1337620, 955632)
    UNION
    SELECT c.concept_id FROM concept_ancestor ca JOIN concept c ON c.concept_id = ca.descendant_concept_id
    WHERE ca.ancestor_concept_id IN (1310317, 1338512, 1344354, 1378382, 1315942, 1344905, 1397599, 1337620, 955632) AND c.invalid_reason IS NULL
),
hemoglobin AS (
    SELECT concept_id FROM concept WHERE concept_id = 3000963
    UNION
    SELECT c.concept_id FROM concept_ancestor ca JOIN concept c ON c.concept_id = ca.descendant_concept_id
    WHERE ca.ancestor_concept_id = 3000963 AND c.invalid_reason IS NULL
),
first_diagnosis AS (
    SELECT person_id, min(condition_start_date) AS start_date
    FROM condition_occurrence
    WHERE condition_concept_id IN (SELECT concept_id FROM breast)
    GROUP BY person_id
),
qualified AS (
    SELECT f.person_id, f.start_date, op.observation_period_start_date AS op_start,
           op.observation_period_end_date AS op_end
    FROM first_diagnosis f
    JOIN person p ON p.person_id = f.person_id
    JOIN observation_period op ON op.person_id = f.person_id
        AND f.start_date BETWEEN op.observation_period_start_date + 365 AND op.observation_period_end_date
    WHERE p.gender_concept_id = 8532 AND year(f.start_date) - p.year_of_birth BETWEEN 40 AND 75
),
with_chemo AS (
    SELECT DISTINCT q.person_id
    FROM qualified q JOIN drug_exposure d ON d.person_id = q.person_id
    WHERE d.drug_concept_id IN (SELECT concept_id FROM chemo)
      AND d.drug_exposure_start_date BETWEEN q.start_date AND q.start_date + 90
      AND d.drug_exposure_start_date BETWEEN q.op_start AND q.op_end
),
with_hemoglobin AS (
    SELECT DISTINCT q.person_id
    FROM qualified q JOIN measurement m ON m.person_id = q.person_id
    WHERE m.measurement_concept_id IN (SELECT concept_id FROM hemoglobin) AND m.value_as_number > 10
      AND m.measurement_date BETWEEN q.start_date - 30 AND q.start_date
      AND m.measurement_date BETWEEN q.op_start AND q.op_end
)
SELECT q.person_id, q.start_date, q.op_end AS end_date,
       (CASE WHEN c.person_id IS NULL THEN 0 ELSE 1 END) + (CASE WHEN h.person_id IS NULL THEN 0 ELSE 2 END) AS mask
FROM qualified q
LEFT JOIN with_chemo c ON c.person_id = q.person_id
LEFT JOIN with_hemoglobin h ON h.person_id = q.person_id;
CREATE OR REPLACE TABLE hand_cohort AS
SELECT 2 AS cohort_definition_id, person_id AS subject_id, start_date AS cohort_start_date, end_date AS cohort_end_date
FROM hand_events WHERE mask = 3 ORDER BY person_id;
SELECT mask, count(*) AS events, count(DISTINCT person_id) AS persons FROM hand_events GROUP BY mask ORDER BY mask;
