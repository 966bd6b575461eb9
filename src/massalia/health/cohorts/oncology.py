"""Event queries of the oncology criteria and of the NLP findings in notes.

The oncology criteria: cancer diagnosis, TNM stage, biomarker, treatment line, progression.

They read the OMOP oncology extension as the ETL writes it (``massalia/health/etl/MAPPINGS.md``):
disease episodes (32528) linked to their tumour condition record, cancer-modifier measurements
linked to the tumour by ``measurement_event_id`` / ``meas_event_field_concept_id`` 1147127,
treatment episodes (32531, ``episode_number`` = line, EPISODE_EVENT rows to the drug exposures) and
progression episodes (32677; recurrences 32529 count too). Each query has the columns of every
domain query (``person_id, event_id, start_date, end_date, visit_occurrence_id, sort_date,
domain_concept_id``), so the criteria work as entry events, correlated criteria, censoring events
and in ``explain_person`` like any other.

TNM categories are ranked from the cancer-modifier concept code (``AJCC/UICC-T2``, ``Stage-3``,
``c-8th_AJCC/UICC-N1``...) or, for rows without a concept, from the source value (``cT2``,
``pN1``, ``stade IV``), with LIKE patterns only, so the SQL is the same on every engine.
"""

from __future__ import annotations

from massalia.health.cohorts.criteria import (
    Biomarker,
    CancerDiagnosis,
    DiseaseProgression,
    NoteFinding,
    OncologyCriterion,
    TnmStage,
    TreatmentLine,
)
from massalia.health.cohorts.sqltext import (
    UnsupportedConstruct,
    date_clause,
    in_codeset,
    in_concepts,
    numeric_clause,
    text_clause,
)

DISEASE_EPISODE = 32528
TREATMENT_REGIMEN = 32531
PROGRESSION_EPISODES = (32677, 32529)
CONDITION_FIELD = 1147127
DRUG_FIELD = 1147094
POSITIVE, NEGATIVE = 9191, 9189
AGE = "EXTRACT(YEAR FROM C.start_date) - P.year_of_birth"

_TNM_TEXT = (
    "COALESCE(CASE WHEN mc.vocabulary_id = 'Cancer Modifier' THEN mc.concept_code END, t.measurement_source_value, '')"
)
_SOURCE = "COALESCE(t.measurement_source_value, '')"


def _ranks(text: str, axis: str, top: int) -> str:
    """Rank of a T/N/M category found in ``text`` (highest first, so ``T4`` is not read as ``T1``)."""
    cases = " ".join(f"WHEN {text} LIKE '%{axis}{rank}%' THEN {rank}" for rank in range(top, -1, -1))
    extra = f" WHEN {text} LIKE '%Tis%' THEN 0" if axis == "T" else ""
    return f"CASE {cases}{extra} END"


def _axis_sql(text: str, source: str) -> str:
    group = f"({text} LIKE '%Stage%' OR LOWER({source}) LIKE 'stade %' OR LOWER({source}) LIKE 'stage %')"

    def has(axis: str, ranks: list[str]) -> str:
        return "(" + " OR ".join(f"{text} LIKE '%{axis}{r}%'" for r in ranks) + ")"

    return (
        f"CASE WHEN {group} THEN 'group' WHEN {has('T', ['0', '1', '2', '3', '4', 'is', 'X'])} THEN 'T' "
        f"WHEN {has('N', ['0', '1', '2', '3', 'X'])} THEN 'N' WHEN {has('M', ['0', '1', 'X'])} THEN 'M' END"
    )


def _group_rank(text: str, source: str) -> str:
    roman = [("IV", 4), ("III", 3), ("II", 2), ("I", 1), ("0", 0)]
    cases = " ".join(
        f"WHEN {text} LIKE '%Stage-{rank}%' OR UPPER({source}) LIKE '% {numeral}%' THEN {rank}"
        for numeral, rank in roman
    )
    return f"CASE {cases} END"


def _rank_sql(text: str, source: str) -> str:
    return (
        f"CASE axis WHEN 'group' THEN {_group_rank(text, source)} WHEN 'T' THEN {_ranks(text, 'T', 4)} "
        f"WHEN 'N' THEN {_ranks(text, 'N', 3)} WHEN 'M' THEN {_ranks(text, 'M', 1)} END"
    )


def _staging_sql(text: str, source: str) -> str:
    return (
        f"CASE WHEN {text} LIKE 'c-%' OR {source} LIKE 'c%' THEN 'clinical' "
        f"WHEN {text} LIKE 'p-%' OR {source} LIKE 'p%' THEN 'pathological' END"
    )


def _tumour_in(alias: str, codeset_id: int, codesets: str) -> str:
    """The measurement ``alias`` is linked to a tumour record whose diagnosis concept is in the codeset."""
    return (
        f"({alias}.meas_event_field_concept_id = {CONDITION_FIELD} AND EXISTS (SELECT 1 FROM condition_occurrence K "
        f"WHERE K.condition_occurrence_id = {alias}.measurement_event_id AND "
        f"{in_codeset('K.condition_concept_id', codeset_id, codesets)}))"
    )


def _person_clauses(node: OncologyCriterion, where: str) -> list[str]:
    clauses = []
    if node.age is not None:
        clauses.append(numeric_clause(AGE, node.age, f"{where}.age"))
    if node.gender:
        clauses.append(in_concepts("P.gender_concept_id", (c.concept_id for c in node.gender)))
    if node.occurrence_start_date is not None:
        clauses.append(date_clause("C.start_date", node.occurrence_start_date, f"{where}.occurrence_start_date"))
    if node.first:
        clauses.append("C.ordinal = 1")
    return clauses


def _events(inner: str, id_column: str, visit: str, concept: str, clauses: list[str]) -> str:
    joins = " JOIN person P ON C.person_id = P.person_id" if any("P." in c for c in clauses) else ""
    return (
        f"SELECT C.person_id, CAST(C.{id_column} AS BIGINT) AS event_id, C.start_date, C.end_date, "
        f"CAST({visit} AS BIGINT) AS visit_occurrence_id, C.start_date AS sort_date, "
        f"CAST({concept} AS BIGINT) AS domain_concept_id FROM ({inner}) C{joins}"
        + (f" WHERE {' AND '.join(clauses)}" if clauses else "")
    )


def _ordinal(start: str, id_column: str) -> str:
    return f"ROW_NUMBER() OVER (PARTITION BY t.person_id ORDER BY {start}, t.{id_column}) AS ordinal"


def oncology_events(node: OncologyCriterion, where: str, codesets: str) -> str:
    """SQL of the events an oncology criterion selects (see the module docstring for the columns).

    Raises ``UnsupportedConstruct`` naming ``where`` for what cannot be compiled.
    """
    if node.date_adjustment is not None:
        raise UnsupportedConstruct(f"{where}.date_adjustment: not supported on {node.kind} criteria")
    if isinstance(node, CancerDiagnosis):
        return _cancer_diagnosis(node, where, codesets)
    if isinstance(node, TnmStage):
        return _tnm_stage(node, where, codesets)
    if isinstance(node, Biomarker):
        return _biomarker(node, where, codesets)
    if isinstance(node, TreatmentLine):
        return _treatment_line(node, where, codesets)
    if isinstance(node, DiseaseProgression):
        return _progression(node, where)
    if isinstance(node, NoteFinding):
        return _note_finding(node, where, codesets)
    raise UnsupportedConstruct(f"{where}: criteria type {type(node).__name__} is not supported by the compiler")


def _cancer_diagnosis(node: CancerDiagnosis, where: str, codesets: str) -> str:
    icdo3 = (
        "CASE WHEN oc.vocabulary_id = 'ICDO3' THEN oc.concept_code "
        "WHEN sc.vocabulary_id = 'ICDO3' THEN sc.concept_code "
        "WHEN t.condition_source_value LIKE '____/_-C%' THEN t.condition_source_value END"
    )
    inner = (
        "SELECT t.*, t.condition_start_date AS start_date, "
        "COALESCE(t.condition_end_date, t.condition_start_date + 1) AS end_date, "
        f"{icdo3} AS icdo3, {_ordinal('t.condition_start_date', 'condition_occurrence_id')} "
        "FROM condition_occurrence t LEFT JOIN concept oc ON oc.concept_id = t.condition_concept_id "
        "LEFT JOIN concept sc ON sc.concept_id = t.condition_source_concept_id "
        f"WHERE EXISTS (SELECT 1 FROM episode_event EE JOIN episode E ON E.episode_id = EE.episode_id "
        f"WHERE EE.event_id = t.condition_occurrence_id AND EE.episode_event_field_concept_id = {CONDITION_FIELD} "
        f"AND E.episode_concept_id = {DISEASE_EPISODE})"
    )
    clauses = _person_clauses(node, where)
    if node.codeset_id is not None:
        clauses.append(in_codeset("C.condition_concept_id", node.codeset_id, codesets))
    if node.topography:
        clauses.append("(" + " OR ".join(f"C.icdo3 LIKE '%-{code}%'" for code in node.topography) + ")")
    if node.histology:
        clauses.append("(" + " OR ".join(f"C.icdo3 LIKE '{code}%'" for code in node.histology) + ")")
    if node.behaviour:
        clauses.append("(" + " OR ".join(f"C.icdo3 LIKE '____/{digit}%'" for digit in node.behaviour) + ")")
    return _events(inner, "condition_occurrence_id", "C.visit_occurrence_id", "C.condition_concept_id", clauses)


def _tnm_stage(node: TnmStage, where: str, codesets: str) -> str:
    text, source = _TNM_TEXT, _SOURCE
    tnm = (
        f"SELECT t.*, {text} AS tnm_text, {source} AS tnm_source, {_axis_sql(text, source)} AS axis, "
        f"{_staging_sql(text, source)} AS staging FROM measurement t "
        "LEFT JOIN concept mc ON mc.concept_id = t.measurement_concept_id "
        f"WHERE t.meas_event_field_concept_id = {CONDITION_FIELD} "
        "AND (mc.vocabulary_id = 'Cancer Modifier' OR mc.concept_id IS NULL OR t.measurement_concept_id = 0)"
    )
    inner = (
        f"SELECT t.*, {_rank_sql('t.tnm_text', 't.tnm_source')} AS tnm_rank, t.measurement_date AS start_date, "
        f"t.measurement_date + 1 AS end_date FROM ({tnm}) t WHERE t.axis = '{node.axis}'"
    )
    inner = f"SELECT t.*, {_ordinal('t.measurement_date', 'measurement_id')} FROM ({inner}) t"
    clauses = _person_clauses(node, where)
    if node.value is not None:
        clauses.append(numeric_clause("C.tnm_rank", node.value, f"{where}.value"))
    if node.staging is not None:
        clauses.append(f"C.staging = '{node.staging}'")
    if node.codeset_id is not None:
        clauses.append(in_codeset("C.measurement_concept_id", node.codeset_id, codesets))
    if node.cancer_codeset_id is not None:
        clauses.append(_tumour_in("C", node.cancer_codeset_id, codesets))
    return _events(inner, "measurement_id", "C.visit_occurrence_id", "C.measurement_concept_id", clauses)


def _biomarker(node: Biomarker, where: str, codesets: str) -> str:
    inner = (
        "SELECT t.*, t.measurement_date AS start_date, t.measurement_date + 1 AS end_date, "
        f"{_ordinal('t.measurement_date', 'measurement_id')} FROM measurement t"
    )
    conditions = []
    if node.codeset_id is not None:
        conditions.append(in_codeset("t.measurement_concept_id", node.codeset_id, codesets))
    if node.marker_source_value is not None:
        conditions.append(
            text_clause("t.measurement_source_value", node.marker_source_value, f"{where}.marker_source_value")
        )
    if conditions:
        # The marker is part of the record's identity: "first" means the first result of this marker.
        inner += " WHERE " + " AND ".join(conditions)
    clauses = _person_clauses(node, where)
    if node.status is not None:
        clauses.append(f"C.value_as_concept_id = {POSITIVE if node.status == 'positive' else NEGATIVE}")
    if node.value_as_concept:
        clauses.append(in_concepts("C.value_as_concept_id", (c.concept_id for c in node.value_as_concept)))
    if node.value_as_number is not None:
        clauses.append(numeric_clause("C.value_as_number", node.value_as_number, f"{where}.value_as_number"))
    if node.cancer_codeset_id is not None:
        clauses.append(_tumour_in("C", node.cancer_codeset_id, codesets))
    return _events(inner, "measurement_id", "C.visit_occurrence_id", "C.measurement_concept_id", clauses)


def _treatment_line(node: TreatmentLine, where: str, codesets: str) -> str:
    inner = (
        "SELECT t.*, t.episode_start_date AS start_date, COALESCE(t.episode_end_date, t.episode_start_date + 1) "
        f"AS end_date, {_ordinal('t.episode_start_date', 'episode_id')} FROM episode t "
        f"WHERE t.episode_concept_id = {TREATMENT_REGIMEN}"
    )
    clauses = _person_clauses(node, where)
    if node.line is not None:
        clauses.append(numeric_clause("C.episode_number", node.line, f"{where}.line"))
    if node.modality:
        clauses.append("(" + " OR ".join(f"C.episode_source_value LIKE '%{m}%'" for m in node.modality) + ")")
    if node.occurrence_end_date is not None:
        clauses.append(date_clause("C.end_date", node.occurrence_end_date, f"{where}.occurrence_end_date"))
    if node.codeset_id is not None:
        clauses.append(
            "EXISTS (SELECT 1 FROM episode_event EE JOIN drug_exposure D ON D.drug_exposure_id = EE.event_id "
            f"WHERE EE.episode_id = C.episode_id AND EE.episode_event_field_concept_id = {DRUG_FIELD} AND "
            f"{in_codeset('D.drug_concept_id', node.codeset_id, codesets)})"
        )
    return _events(inner, "episode_id", "CAST(NULL AS BIGINT)", "C.episode_object_concept_id", clauses)


def _progression(node: DiseaseProgression, where: str) -> str:
    kinds = ", ".join(str(k) for k in PROGRESSION_EPISODES)
    inner = (
        "SELECT t.*, t.episode_start_date AS start_date, COALESCE(t.episode_end_date, t.episode_start_date + 1) "
        f"AS end_date, {_ordinal('t.episode_start_date', 'episode_id')} FROM episode t "
        f"WHERE t.episode_concept_id IN ({kinds})"
    )
    clauses = _person_clauses(node, where)
    if node.number is not None:
        clauses.append(numeric_clause("C.episode_number", node.number, f"{where}.number"))
    return _events(inner, "episode_id", "CAST(NULL AS BIGINT)", "C.episode_object_concept_id", clauses)


NLP_SYSTEM_PREFIX = "massalia-nlp"
"""``nlp_system`` of the rows the clinical NLP pipeline writes (``massalia.health.nlp.store``)."""


def _note_finding(node: NoteFinding, where: str, codesets: str) -> str:
    """NOTE_NLP rows of the pipeline, dated by their note; qualifiers read from ``term_modifiers``."""
    conditions = [f"t.nlp_system LIKE '{NLP_SYSTEM_PREFIX}%'"]
    if node.codeset_id is not None:
        conditions.append(in_codeset("t.note_nlp_concept_id", node.codeset_id, codesets))
    if node.label is not None:
        conditions.append(f"t.term_modifiers LIKE 'label={node.label};%'")
    if node.value:
        # Values are validated ([A-Za-z0-9:./ -]): no quote, no LIKE wildcard can reach the SQL.
        conditions.append("(" + " OR ".join(f"t.term_modifiers LIKE '%;value={v};%'" for v in node.value) + ")")
    for qualifier in ("negated", "hypothesis", "family", "history"):
        wanted = getattr(node, qualifier)
        if wanted is not None:
            conditions.append(f"t.term_modifiers LIKE '%;{qualifier}={'true' if wanted else 'false'}%'")
    inner = (
        "SELECT t.*, n.person_id, n.visit_occurrence_id, n.note_date AS start_date, n.note_date + 1 AS end_date, "
        "ROW_NUMBER() OVER (PARTITION BY n.person_id ORDER BY n.note_date, t.note_nlp_id) AS ordinal "
        f"FROM note_nlp t JOIN note n ON n.note_id = t.note_id WHERE {' AND '.join(conditions)}"
    )
    clauses = _person_clauses(node, where)
    return _events(inner, "note_nlp_id", "C.visit_occurrence_id", "C.note_nlp_concept_id", clauses)
