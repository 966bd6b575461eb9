"""One patient's NLP findings (``patient_findings``): identified for a clinician of the site, by pseudonym with
words withheld near identifiers for an approved project's member, refused (and audited) for everybody else.

The pipeline runs for real over the first notes of a copy of the demo warehouse (notes are numbered person by
person, so the first persons are covered whole); the attacks read what a researcher gets back.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from massalia.engine.duckdb import DuckDBEngine
from massalia.governance import (
    AccessDenied,
    Caller,
    Governance,
    InvalidRequest,
    NotFound,
    Principal,
    ProjectScope,
    Role,
    operator_principal,
)
from massalia.governance.pseudonym import date_shifts, pseudonymize
from massalia.health.cohorts import CohortDefinition
from massalia.health.documents.notes import deidentified_notes
from massalia.health.nlp.findings import ACTION, patient_findings
from massalia.health.nlp.pipeline import ClinicalPipeline
from massalia.health.nlp.store import run_nlp
from massalia.health.research import PROJECT_DATE_SHIFT_DAYS
from massalia.ledger import TransparencyLog

ANY_CANCER = CohortDefinition.model_validate({"primary_criteria": {"criteria_list": [{"kind": "CancerDiagnosis"}]}})
PURPOSE = "Reviewing the biomarker reports of the study"
NOTES = 160
"""Notes the pipeline reads (the first persons' notes, whole)."""
PLANTED_ID = 999_999_001


@dataclass
class World:
    gov: Governance
    engine: DuckDBEngine
    researcher: Principal
    outsider: Principal
    clinician: Principal
    approved: int
    draft: int
    persons: list[int]
    site: str
    truth: list[dict[str, Any]]

    def pseudonym(self, person: int, project: int | None = None) -> str:
        project = project or self.approved
        return str(pseudonymize([person], key=self.gov.project_key(project), project=project)[0].as_py())

    def shift(self, person: int) -> int:
        days = date_shifts([person], key=self.gov.project_key(self.approved), project=self.approved,
                           max_days=PROJECT_DATE_SHIFT_DAYS)  # fmt: skip
        return int(days[0].as_py())

    def ledger(self, since: int) -> list[dict[str, Any]]:
        with TransparencyLog(self.gov.ledger_path, readonly=True) as log:
            return [log.get(i).entry for i in range(since, log.size)]

    def ledger_size(self) -> int:
        with TransparencyLog(self.gov.ledger_path, readonly=True) as log:
            return log.size


def _plant_a_name_finding(engine: DuckDBEngine, person: int) -> str:
    """A NOTE_NLP row of the pipeline whose words are the patient's name (as if a pattern had matched it).

    Attack material: the pipeline's output is free text; a researcher must not get a name through it.
    """
    for row in engine.query(f"SELECT note_id, note_text FROM note WHERE person_id = {person}").to_pylist():
        found = re.search(r"(?:Patiente? : |Nom : )(?:M\. |Mme )?([A-ZÉ][a-zéèï]+(?: [A-ZÉ][A-Za-zéèï-]+)?)",
                          str(row["note_text"]))  # fmt: skip
        if found:
            name = found.group(1)
            engine.execute(
                "INSERT INTO note_nlp (note_nlp_id, note_id, lexical_variant, \"offset\", nlp_system, nlp_date, "
                f"term_exists, term_temporal, term_modifiers) VALUES ({PLANTED_ID}, {int(row['note_id'])}, "
                f"'{name}', '{found.start(1)}', 'massalia-nlp planted', DATE '2026-01-01', 'Y', 'present', "
                "'label=biomarker;value=her2:positive;negated=false;hypothesis=false;family=false;history=false')"
            )  # fmt: skip
            return name
    raise AssertionError(f"no note of person {person} names the patient")


@pytest.fixture(scope="module")
def world(demo_warehouse: Path, tmp_path_factory: pytest.TempPathFactory, pipeline: ClinicalPipeline) -> Iterator[
        World]:  # fmt: skip
    root = tmp_path_factory.mktemp("nlp-findings")
    copy = root / "warehouse.duckdb"
    shutil.copy(demo_warehouse, copy)
    truth_file = demo_warehouse.parent / "sources" / "truth" / "annotations_part0000.jsonl"
    truth = [json.loads(line) for line in truth_file.read_text(encoding="utf-8").splitlines()]
    operator = operator_principal()
    with (
        Governance(f"sqlite:///{(root / 'metadata.sqlite').as_posix()}", root / "ledger",
                   key_path=root / "keys" / "master.key") as gov,
        DuckDBEngine(copy) as engine,
    ):  # fmt: skip
        run_nlp(engine, limit=NOTES, pipeline=pipeline)
        covered = engine.query(
            "SELECT n.person_id, min(cs.care_site_source_value) AS site FROM note n "
            "JOIN person p ON p.person_id = n.person_id JOIN care_site cs ON cs.care_site_id = p.care_site_id "
            "WHERE EXISTS (SELECT 1 FROM condition_occurrence c WHERE c.person_id = n.person_id) "
            "GROUP BY n.person_id HAVING max(n.note_id) <= (SELECT max(note_id) FROM note_nlp) ORDER BY 1"
        ).to_pylist()  # fmt: skip
        site = str(covered[0]["site"])
        persons = [int(r["person_id"]) for r in covered if r["site"] == site]
        for name, role, at in (("rita", Role.RESEARCHER, None), ("olga", Role.RESEARCHER, None),
                               ("dina", Role.DPO, None), ("carl", Role.CLINICIAN, site),
                               ("cleo", Role.CLINICIAN, "nowhere")):  # fmt: skip
            gov.create_user(name, None, [role], at, actor=operator)
        users = {n: gov.authenticate_token(gov.create_token(n, None, actor=operator))
                 for n in ("rita", "olga", "dina", "carl", "cleo")}  # fmt: skip
        cohort = ANY_CANCER.model_dump(mode="json")
        ids = {}
        for label, approve in (("approved", True), ("draft", False)):
            scope = ProjectScope(cohort=cohort, cohort_hash=ANY_CANCER.definition_hash())
            project = gov.create_project(f"Findings {label}", "biomarkers from text", scope=scope,
                                         access_level="pseudonymized", expires=dt.date(2099, 12, 31),
                                         actor=users["rita"])  # fmt: skip
            if approve:
                filed = gov.file_request(project.id, actor=users["rita"], justification="approved protocol, text")
                gov.decide_request(filed.id, True, "proportionate", actor=users["dina"])
            ids[label] = project.id
        yield World(gov, engine, users["rita"], users["olga"], users["carl"], ids["approved"], ids["draft"],
                    persons, site, truth)  # fmt: skip


def test_a_clinician_of_the_site_reads_identified_findings_with_qualifiers(world: World) -> None:
    person = world.persons[0]
    found = patient_findings(Caller(world.clinician, world.gov), world.engine, person, purpose=PURPOSE)
    stored = world.engine.scalar_int(
        f"SELECT count(*) FROM note_nlp x JOIN note n ON n.note_id = x.note_id WHERE n.person_id = {person} "
        "AND x.nlp_system LIKE 'massalia-nlp%'"
    )
    assert not found.pseudonymized and found.person == person and len(found.findings) == stored > 0
    texts = {int(r["note_id"]): str(r["note_text"]) for r in world.engine.query(
        f"SELECT note_id, note_text FROM note WHERE person_id = {person}").to_pylist()}  # fmt: skip
    for f in found.findings:  # the words are where the offset says, in a note of this person
        assert texts[f["note_id"]][f["offset"] : f["offset"] + len(f["lexical_variant"])] == f["lexical_variant"]
        assert {"negated", "hypothesis", "family", "history", "label", "value", "concept_id"} <= set(f)
    everyone = [f for p in world.persons[:8] for f in patient_findings(
        Caller(world.clinician, world.gov), world.engine, p, purpose=PURPOSE).findings]  # fmt: skip
    assert any(f["negated"] for f in everyone) and any(not f["negated"] for f in everyone)
    entry = world.ledger(found.audit_index or 0)[0]
    assert entry["action"] == ACTION and entry["decision"] == "allowed" and PURPOSE in json.dumps(entry)


def test_attack_a_researcher_never_reads_an_identifier_in_findings(world: World) -> None:
    """Attack: the findings of the project's persons, the words found included, carry no planted identifier,
    no warehouse id, no offset, no snippet; a finding whose words are the patient's name is withheld."""
    person = world.persons[1]
    name = _plant_a_name_finding(world.engine, person)
    try:
        planted = {(s["type"], s["text"]) for note in world.truth for s in note["identifiers"] if s["cue"]}
        researcher = Caller(world.researcher, world.gov)
        checked = 0
        for who in world.persons[:3]:
            found = patient_findings(researcher, world.engine, world.pseudonym(who), purpose=PURPOSE,
                                     project_id=world.approved)  # fmt: skip
            assert found.pseudonymized and found.person == world.pseudonym(who) and found.findings
            shown = json.dumps(found.findings, ensure_ascii=False)
            real = "\n".join(str(t) for t in world.engine.query(
                f"SELECT note_text FROM note WHERE person_id = {who}").column(0).to_pylist())  # fmt: skip
            for kind, value in planted:
                if kind != "date" and len(value) >= 3 and re.search(rf"(?<!\w){re.escape(value)}(?!\w)", real):
                    assert not re.search(rf"(?<!\w){re.escape(value)}(?!\w)", shown), f"a planted {kind} came back"
                    checked += 1
            assert not {"note_id", "person_id", "offset", "snippet", "note_title"} & {k for f in found.findings
                                                                                     for k in f}  # fmt: skip
            if who == person:
                planted_rows = [f for f in found.findings if f["withheld"] and f["lexical_variant"] is None]
                assert planted_rows and name not in shown and found.withheld >= 1
        assert checked > 20, checked
    finally:
        world.engine.execute(f"DELETE FROM note_nlp WHERE note_nlp_id = {PLANTED_ID}")


def test_a_researcher_gets_shifted_dates_and_the_records_of_the_deidentified_notes(world: World) -> None:
    person = world.persons[2]
    pseudonym, shift = world.pseudonym(person), world.shift(person)
    researcher = Caller(world.researcher, world.gov)
    found = patient_findings(researcher, world.engine, pseudonym, purpose=PURPOSE, project_id=world.approved)
    notes = deidentified_notes(researcher, world.engine, pseudonym, project_id=world.approved, purpose=PURPOSE)
    dates = {n.record: n.note_date.isoformat() for n in notes.notes if n.note_date}
    assert found.findings and all(dates[f["record"]] == f["note_date"] for f in found.findings)
    identified = patient_findings(Caller(world.clinician, world.gov), world.engine, person, purpose=PURPOSE)
    real_dates = sorted(f["value"] for f in identified.findings if f["label"] == "date" and len(f["value"]) == 10)
    shown_dates = sorted(f["value"] for f in found.findings if f["label"] == "date" and f["value"])
    assert real_dates and shown_dates == sorted(
        (dt.date.fromisoformat(d) + dt.timedelta(days=shift)).isoformat() for d in real_dates)  # fmt: skip
    assert shift != 0


def test_attack_refusals_are_audited_and_tell_nothing_of_the_person(world: World) -> None:
    """Attacks: a member of an unapproved project, a researcher of no project, a clinician of another site;
    the refusal is the same for a real pseudonym and an unknown one, and audited each time."""
    person = world.persons[0]
    draft = Caller(world.researcher, world.gov)
    outsider = Caller(world.outsider, world.gov)
    before = world.ledger_size()
    messages = []
    for caller, project in ((draft, world.draft), (outsider, world.approved)):
        for pseudonym in (world.pseudonym(person, project), "p-unknown-0000000000000000"):
            with pytest.raises(AccessDenied) as refused:
                patient_findings(caller, world.engine, pseudonym, purpose=PURPOSE, project_id=project)
            messages.append((project, str(refused.value)))
    assert messages[0][1] == messages[1][1] and messages[2][1] == messages[3][1]
    with pytest.raises(AccessDenied):  # a clinician of another site
        patient_findings(Caller(world.gov.authenticate_token(world.gov.create_token("cleo", None,
                         actor=operator_principal())), world.gov), world.engine, person, purpose=PURPOSE)  # fmt: skip
    entries = [e for e in world.ledger(before) if e["action"] == ACTION]
    assert [e["decision"] for e in entries] == ["denied"] * 5
    with pytest.raises(NotFound):  # an approved member naming nobody of the project
        patient_findings(draft, world.engine, "p-unknown-0000000000000000", purpose=PURPOSE,
                         project_id=world.approved)  # fmt: skip
    with pytest.raises(InvalidRequest):  # no purpose
        patient_findings(draft, world.engine, world.pseudonym(person), purpose="", project_id=world.approved)
