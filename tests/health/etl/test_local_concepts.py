"""Local source concepts: codes the vocabulary lacks become concepts from 2,000,000,000, stable across runs."""

from __future__ import annotations

from pathlib import Path

from massalia.engine import connect
from massalia.health.etl import run_etl
from massalia.health.etl.derived import LOCAL_CONCEPT_BASE, LOCAL_CONCEPT_LIMIT
from massalia.health.synth import generate

PATIENTS = 120


def _local(engine: object) -> list[dict[str, object]]:
    return engine.query(  # type: ignore[attr-defined]
        "SELECT vocabulary_id, concept_code, concept_id, standard_concept FROM concept "
        f"WHERE concept_id BETWEEN {LOCAL_CONCEPT_BASE} AND {LOCAL_CONCEPT_LIMIT} ORDER BY concept_id"
    ).to_pylist()


def test_codes_the_vocabulary_lacks_get_stable_local_concepts(tmp_path: Path) -> None:
    sources = tmp_path / "sources"
    sites = ["chu_nord", "clcc_sud"]
    generate(sources, PATIENTS, seed=5, chunk_size=PATIENTS, with_documents=False, sites=sites)
    engine = connect("duckdb", path=tmp_path / "w.duckdb")
    metadata = f"sqlite:///{tmp_path / 'meta.sqlite'}"
    run_etl(engine, sources, metadata_url=metadata)
    first = _local(engine)
    vocabularies = {row["vocabulary_id"] for row in first}
    # The crosswalk's ICD-10 codes, clcc_sud's local codes and chu_nord's own laterality concept.
    assert {"ICD10-local", "CLCC_SUD", "CHU_NORD"} <= vocabularies
    # A WHO ICD-10 code the demo vocabulary has (C61) keeps its real concept, never a local one.
    assert not [r for r in first if r["vocabulary_id"] == "ICD10-local" and r["concept_code"] == "C61"]
    # Every condition keeps its source code as a concept, real or local.
    assert engine.scalar("SELECT count(*) FROM condition_occurrence WHERE condition_source_concept_id = 0") < (
        engine.scalar("SELECT count(*) FROM condition_occurrence") * 0.02
    )
    # A local ICD-10 source concept maps to the standard condition its records carry.
    mismatched = engine.scalar(
        "SELECT count(*) FROM condition_occurrence AS o JOIN concept AS s ON s.concept_id = "
        "o.condition_source_concept_id JOIN concept_relationship AS r ON r.concept_id_1 = s.concept_id "
        "AND r.relationship_id = 'Maps to' WHERE s.vocabulary_id = 'ICD10-local' "
        "AND r.concept_id_2 <> o.condition_concept_id"
    )
    assert mismatched == 0
    laterality = engine.query(
        "SELECT DISTINCT c.vocabulary_id, c.standard_concept FROM observation AS o JOIN concept AS c "
        "ON c.concept_id = o.observation_concept_id WHERE o.observation_source_value = 'lateralite'"
    ).to_pylist()
    assert laterality == [{"vocabulary_id": "CHU_NORD", "standard_concept": "S"}]

    # A second delivery: known codes keep their ids, nothing is declared twice.
    generate(sources, PATIENTS, seed=5, chunk_size=PATIENTS, start_index=PATIENTS, with_documents=False, sites=sites)
    run_etl(engine, sources, metadata_url=metadata)
    second = _local(engine)
    assert second[: len(first)] == first
    assert (
        engine.scalar(
            "SELECT count(*) FROM (SELECT vocabulary_id, concept_code FROM concept "
            f"WHERE concept_id >= {LOCAL_CONCEPT_BASE} GROUP BY 1, 2 HAVING count(*) > 1) AS d"
        )
        == 0
    )
    assert (
        engine.scalar(
            "SELECT count(*) FROM (SELECT concept_id_1, concept_id_2, relationship_id FROM concept_relationship "
            f"WHERE concept_id_1 >= {LOCAL_CONCEPT_BASE} GROUP BY 1, 2, 3 HAVING count(*) > 1) AS d"
        )
        == 0
    )
    engine.close()
