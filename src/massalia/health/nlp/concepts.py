"""Standard concepts of the lexicon's source codes, looked up in the warehouse's vocabulary as the ETL does.

A finding's source code (``ICD10 C50.9``, ``LOINC 85319-2``, ``LOCAL MOL-EGFR``...) is looked up in CONCEPT,
then followed through "Maps to" (or to its ingredient for ATC classes) with the ETL's own rule
(:func:`massalia.health.etl.derived.standard_target_sql`); codes the vocabulary lacks fall back on the
SOURCE_TO_CONCEPT_MAP rows the ETL wrote from the sites' crosswalks. Nothing is invented: a code the
vocabulary does not know gives concept 0, the OMOP convention for "no matching concept".
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from massalia.engine import Engine
from massalia.health.etl.derived import standard_target_sql
from massalia.pipelines.compiler import sql_text


@dataclass(frozen=True)
class ConceptPair:
    """The standard concept (``note_nlp_concept_id``) and source concept (``note_nlp_source_concept_id``)."""

    standard: int = 0
    source: int = 0


def resolve_concepts(engine: Engine, codes: Iterable[tuple[str, str]]) -> dict[tuple[str, str], ConceptPair]:
    """Concepts of each ``(vocabulary_id, concept_code)``; unknown codes are absent from the result.

    Examples
    --------
    >>> resolve_concepts(engine, [("LOINC", "89247-1")])  # doctest: +SKIP
    {('LOINC', '89247-1'): ConceptPair(standard=36305384, source=36305384)}
    """
    wanted = sorted({(v, c) for v, c in codes if v and c})
    if not wanted:
        return {}
    vocabularies = ", ".join(sql_text(v) for v in sorted({v for v, _ in wanted}))
    code_list = ", ".join(sql_text(c) for c in sorted({c for _, c in wanted}))
    found: dict[tuple[str, str], ConceptPair] = {}
    rows = engine.query(
        f"SELECT c.vocabulary_id, c.concept_code, c.concept_id, {standard_target_sql('c')} AS standard_id "
        f"FROM concept AS c WHERE c.vocabulary_id IN ({vocabularies}) AND c.concept_code IN ({code_list})"
    ).to_pylist()
    for row in rows:
        key = (str(row["vocabulary_id"]), str(row["concept_code"]))
        found[key] = ConceptPair(int(row["standard_id"] or 0), int(row["concept_id"]))
    if "source_to_concept_map" in engine.list_tables():
        crosswalk = engine.query(
            "SELECT source_vocabulary_id, source_code, min(target_concept_id) AS target FROM source_to_concept_map "
            f"WHERE source_vocabulary_id IN ({vocabularies}) AND source_code IN ({code_list}) "
            "AND target_concept_id <> 0 GROUP BY source_vocabulary_id, source_code"
        ).to_pylist()
        for row in crosswalk:
            key = (str(row["source_vocabulary_id"]), str(row["source_code"]))
            known = found.get(key, ConceptPair())
            if not known.standard:
                found[key] = ConceptPair(int(row["target"]), known.source)
    return {key: pair for key, pair in found.items() if key in set(wanted)}
