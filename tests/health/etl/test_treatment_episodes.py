"""Treatment-line and progression episodes written by the ETL (``episodes.py``, MAPPINGS.md).

Two views: a tiny hand-made site without a line column, delivered in two parts, checks the
documented line-derivation and progression rules case by case and that a second delivery
recomputes the episodes of the persons it touches; the shared generated warehouse checks that
sites which record lines get exactly their lines, and the shape helper B's mart relies on.
"""

from __future__ import annotations

import datetime as dt
import textwrap
from pathlib import Path
from typing import Any

import pytest

from massalia.engine.duckdb import DuckDBEngine
from massalia.health.etl import run_etl
from massalia.health.etl.episodes import (
    ANTINEOPLASTIC_ADMINISTRATION,
    CHEMOTHERAPY,
    CONDITION_FIELD,
    DISEASE_FIRST_OCCURRENCE,
    DISEASE_PROGRESSION,
    DRUG_EXPOSURE_FIELD,
    SECONDARY_MALIGNANCY,
    TREATMENT_REGIMEN,
)

MAPPING = textwrap.dedent("""\
    site: mini
    care_site: {care_site_id: 9, name: Mini}
    defaults: {format: csv, date: "%Y-%m-%d", datetime: "%Y-%m-%d"}
    crosswalks: ["massalia.health.synth:source_code_map.csv"]
    treatment_lines: {mapping: drug}
    files:
      patients: {pattern: patients*.csv, columns: [pid, sex, born], required: [pid, sex, born], dates: [born]}
      tumours:
        pattern: tumours*.csv
        columns: [tid, pid, dx, topo, morpho]
        required: [tid, pid, dx, topo, morpho]
        dates: [dx]
      diagnoses: {pattern: diagnoses*.csv, columns: [pid, day, icd], required: [pid, day, icd], dates: [day]}
      drugs: {pattern: drugs*.csv, columns: [pid, day, atc], required: [pid, day, atc], dates: [day]}
    tables:
      - name: person
        target: person
        from: patients
        defines: person
        key: pid
        columns:
          person_id: {id: person, key: pid}
          gender_concept_id: {map: sex, values: {"1": 8507, "2": 8532}}
          year_of_birth: {date: born, part: year}
          race_concept_id: 0
          ethnicity_concept_id: 0
          person_source_value: pid
      - name: tumour
        target: condition_occurrence
        from: tumours
        defines: tumour
        key: tid
        columns:
          condition_occurrence_id: {id: tumour, key: tid}
          person_id: {id: person, key: pid}
          condition_concept_id: {concept: topo, vocabulary: ICDO3, normalize: icdo3_site, morphology: morpho}
          condition_start_date: {date: dx}
          condition_type_concept_id: 32817
          condition_source_value: {sql: "s.morpho || '-' || s.topo"}
      - name: tumour_episode
        target: episode
        from: tumours
        requires: [tumour]
        columns:
          episode_id: {id: tumour, key: tid}
          person_id: {id: person, key: pid}
          episode_concept_id: 32528
          episode_start_date: {date: dx}
          episode_object_concept_id: 0
          episode_type_concept_id: 32817
      - name: tumour_episode_event
        target: episode_event
        from: tumours
        requires: [tumour]
        columns:
          episode_id: {id: tumour, key: tid}
          event_id: {id: tumour, key: tid}
          episode_event_field_concept_id: 1147127
      - name: diagnosis
        target: condition_occurrence
        from: diagnoses
        columns:
          person_id: {id: person, key: pid}
          condition_concept_id: {concept: icd, vocabulary: "ICD10", normalize: icd10_dot}
          condition_start_date: {date: day}
          condition_type_concept_id: 32817
          condition_source_value: icd
      - name: drug
        target: drug_exposure
        from: drugs
        columns:
          person_id: {id: person, key: pid}
          drug_concept_id: {concept: atc, vocabulary: ATC, relationship: "ancestor:Ingredient"}
          drug_exposure_start_date: {date: day}
          drug_exposure_end_date: {date: day}
          drug_type_concept_id: 32817
          drug_source_value: atc
    """)

EC = ("L01DB03", "L01AA01")  # epirubicin + cyclophosphamide
TAMOXIFEN, CAPECITABINE, DOCETAXEL, DEXAMETHASONE = "L02BA01", "L01BC06", "L01CD02", "H02AB02"

FIRST_DRUGS = [
    *(("A", d, atc) for d in ("2020-02-01", "2020-02-22", "2020-03-14") for atc in EC),
    ("A", "2020-03-14", DEXAMETHASONE),  # premedication: not a cancer drug
    *(("A", d, TAMOXIFEN) for d in ("2020-05-01", "2020-07-30", "2020-10-28")),
    ("B", "2020-02-01", DOCETAXEL),
    ("B", "2020-02-22", DOCETAXEL),
]
SECOND_DRUGS = [
    ("A", "2021-03-20", CAPECITABINE),
    ("A", "2021-04-10", CAPECITABINE),
    ("A", "2022-06-01", CAPECITABINE),  # after a pause > 120 days, no new progression: a regimen, no line
]


def write(path: Path, header: str, rows: list[tuple[str, ...]]) -> None:
    path.write_text(header + "\n" + "".join(",".join(r) + "\n" for r in rows), encoding="utf-8")


@pytest.fixture(scope="module")
def mini(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The mini site loaded in two deliveries; yields the engine and the first delivery's episodes."""
    root = tmp_path_factory.mktemp("mini")
    site = root / "sources" / "mini"
    site.mkdir(parents=True)
    (site / "mapping.yaml").write_text(MAPPING, encoding="utf-8")
    write(site / "patients.csv", "pid,sex,born", [("A", "2", "1960-05-01"), ("B", "1", "1950-01-01")])
    write(
        site / "tumours.csv",
        "tid,pid,dx,topo,morpho",
        [("TA", "A", "2020-01-01", "C50.9", "8500/3"), ("TB", "B", "2020-01-01", "C34.1", "8140/3")],
    )
    write(site / "diagnoses_1.csv", "pid,day,icd", [("B", "2020-01-10", "C78.7")])  # staging work-up
    write(site / "drugs_1.csv", "pid,day,atc", FIRST_DRUGS)
    engine = DuckDBEngine(root / "warehouse.duckdb")
    metadata = f"sqlite:///{(root / 'metadata.sqlite').as_posix()}"
    run_etl(engine, root / "sources", metadata_url=metadata)
    first = episodes(engine)
    write(site / "diagnoses_2.csv", "pid,day,icd", [("A", "2021-03-01", "C78.7")])  # relapse
    write(site / "drugs_2.csv", "pid,day,atc", SECOND_DRUGS)
    run_etl(engine, root / "sources", metadata_url=metadata)
    yield engine, first
    engine.close()


def episodes(engine: DuckDBEngine) -> list[dict[str, Any]]:
    return engine.query(
        "SELECT p.person_source_value AS who, e.episode_id, e.episode_concept_id AS concept, e.episode_number AS n, "
        "e.episode_start_date AS start, e.episode_end_date AS end, e.episode_source_value AS what, "
        "e.episode_object_concept_id AS object, e.episode_parent_id AS parent, "
        "(SELECT count(*) FROM episode_event x WHERE x.episode_id = e.episode_id) AS events "
        "FROM episode e JOIN person p USING (person_id) WHERE e.episode_concept_id IN (32531, 32677) "
        "ORDER BY who, start, concept"
    ).to_pylist()


def test_derived_lines_follow_the_documented_rule(mini: Any) -> None:
    engine, _ = mini
    got = [
        (r["who"], r["concept"], r["n"], str(r["start"]), r["end"] and str(r["end"]), r["what"], r["events"])
        for r in episodes(engine)
    ]
    assert got == [
        ("A", TREATMENT_REGIMEN, 1, "2020-02-01", "2020-03-14", "chemotherapy", 6),  # EC, premedication left out
        ("A", TREATMENT_REGIMEN, None, "2020-05-01", "2020-10-28", "hormone", 3),  # adjuvant hormone therapy
        ("A", DISEASE_PROGRESSION, 1, "2021-03-01", None, "progression: secondary malignant neoplasm", 1),
        ("A", TREATMENT_REGIMEN, 2, "2021-03-20", "2021-04-10", "chemotherapy", 2),  # first regimen after it
        ("A", TREATMENT_REGIMEN, None, "2022-06-01", "2022-06-01", "chemotherapy", 1),
        ("B", TREATMENT_REGIMEN, 1, "2020-02-01", "2020-02-22", "chemotherapy", 2),  # metastasis at staging only
    ]
    rows = engine.query(
        "SELECT p.person_source_value AS who, e.episode_id FROM episode e JOIN person p "
        f"USING (person_id) WHERE e.episode_concept_id = {DISEASE_FIRST_OCCURRENCE}"
    ).to_pylist()
    tumours = {r["who"]: r["episode_id"] for r in rows}
    assert all(r["parent"] == tumours[r["who"]] for r in episodes(engine))


def test_a_second_delivery_recomputes_the_touched_persons(mini: Any) -> None:
    engine, first = mini
    # Before the relapse was delivered, A's tamoxifen was unnumbered and nothing else existed.
    assert [(r["who"], r["n"], r["what"]) for r in first] == [
        ("A", 1, "chemotherapy"),
        ("A", None, "hormone"),
        ("B", 1, "chemotherapy"),
    ]
    now = {r["episode_id"]: r for r in episodes(engine)}
    for old in first:  # stable ids: the same regimens keep their ids, nothing is duplicated
        assert now[old["episode_id"]]["n"] == old["n"]
    assert engine.scalar("SELECT count(*) - count(DISTINCT episode_id) FROM episode") == 0
    assert (
        engine.scalar(
            "SELECT count(*) FROM episode_event x WHERE NOT EXISTS "
            "(SELECT 1 FROM episode e WHERE e.episode_id = x.episode_id)"
        )
        == 0
    )


def test_event_links_and_concepts(mini: Any) -> None:
    engine, _ = mini
    drugs = (
        engine.query(
            "SELECT d.drug_source_value FROM episode_event x JOIN drug_exposure d ON d.drug_exposure_id = x.event_id "
            f"WHERE x.episode_event_field_concept_id = {DRUG_EXPOSURE_FIELD}"
        )
        .column(0)
        .to_pylist()
    )
    assert DEXAMETHASONE not in drugs and len(drugs) == 14
    linked = (
        engine.query(
            "SELECT c.condition_concept_id FROM episode_event x JOIN episode e USING (episode_id) "
            "JOIN condition_occurrence c ON c.condition_occurrence_id = x.event_id "
            f"WHERE e.episode_concept_id = {DISEASE_PROGRESSION} "
            f"AND x.episode_event_field_concept_id = {CONDITION_FIELD}"
        )
        .column(0)
        .to_pylist()
    )
    secondary = set(
        engine.query(
            f"SELECT descendant_concept_id FROM concept_ancestor WHERE ancestor_concept_id = {SECONDARY_MALIGNANCY}"
        )
        .column(0)
        .to_pylist()
    )
    assert linked and set(linked) <= secondary
    used = {
        DRUG_EXPOSURE_FIELD,
        CONDITION_FIELD,
        TREATMENT_REGIMEN,
        DISEASE_PROGRESSION,
        CHEMOTHERAPY,
        ANTINEOPLASTIC_ADMINISTRATION,
    }
    known = set(
        engine.query(f"SELECT concept_id FROM concept WHERE concept_id IN ({', '.join(map(str, used))})")
        .column(0)
        .to_pylist()
    )
    assert known == used  # real OMOP ids, present in the vocabulary


def test_sites_that_record_lines_get_exactly_their_lines(demo_warehouse: Path) -> None:
    with DuckDBEngine(demo_warehouse, read_only=True) as engine:
        tagged = engine.query(
            "SELECT d.person_id, l.line, count(*) AS n, min(d.drug_exposure_start_date) AS start "
            "FROM etl_drug_line l JOIN drug_exposure d USING (drug_exposure_id) GROUP BY ALL ORDER BY ALL"
        ).to_pylist()
        lines = engine.query(
            "SELECT e.person_id, e.episode_number AS line, count(x.event_id) AS n, e.episode_start_date AS start "
            "FROM episode e JOIN episode_event x USING (episode_id) JOIN etl_drug_line l ON l.drug_exposure_id = "
            f"x.event_id WHERE e.episode_concept_id = {TREATMENT_REGIMEN} AND e.episode_number IS NOT NULL "
            "GROUP BY ALL ORDER BY ALL"
        ).to_pylist()
        assert tagged and lines == tagged
        # Every treatment episode hangs under a disease episode of the same person, with known modalities.
        orphans = engine.scalar(
            f"SELECT count(*) FROM episode e WHERE e.episode_concept_id IN ({TREATMENT_REGIMEN}, "
            f"{DISEASE_PROGRESSION}) AND NOT EXISTS (SELECT 1 FROM episode p WHERE p.episode_id = "
            f"e.episode_parent_id AND p.person_id = e.person_id AND p.episode_concept_id = {DISEASE_FIRST_OCCURRENCE})"
        )
        assert orphans == 0
        words = (
            engine.query(
                f"SELECT DISTINCT episode_source_value FROM episode WHERE episode_concept_id = {TREATMENT_REGIMEN}"
            )
            .column(0)
            .to_pylist()
        )
        allowed = {"chemotherapy", "targeted", "immunotherapy", "hormone"}
        assert words and all(set(w.split("+")) <= allowed for w in words)
        # A line's episode spans its administrations.
        assert (
            engine.scalar(
                "SELECT count(*) FROM episode e JOIN episode_event x USING (episode_id) JOIN drug_exposure d "
                "ON d.drug_exposure_id = x.event_id WHERE x.episode_event_field_concept_id = 1147094 AND "
                "(d.drug_exposure_start_date < e.episode_start_date OR d.drug_exposure_start_date > e.episode_end_date)"
            )
            == 0
        )
        assert dt.date(2000, 1, 1) < engine.scalar(
            f"SELECT min(episode_start_date) FROM episode WHERE episode_concept_id = {DISEASE_PROGRESSION}"
        )
