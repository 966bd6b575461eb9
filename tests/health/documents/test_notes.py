"""Attacks on the de-identified documents service (health.document.deidentified) on the demo warehouse.

The demo's documents carry the generator's planted identifiers (names, addresses, phones, e-mails, NIR,
IPP/NDA, birth dates) with their ground truth: a researcher must never get one of them back.
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
from massalia.health.documents.notes import ACTION, deidentified_notes
from massalia.health.research import PROJECT_DATE_SHIFT_DAYS
from massalia.ledger import TransparencyLog

ANY_CANCER = CohortDefinition.model_validate({"primary_criteria": {"criteria_list": [{"kind": "CancerDiagnosis"}]}})
PURPOSE = "Reviewing the relapse reports of the study"
PERSONS = 10
"""Persons whose notes are read in the leak test (about 60 notes)."""


@dataclass
class World:
    gov: Governance
    engine: DuckDBEngine
    researcher: Principal
    outsider: Principal
    clinician: Principal
    approved: int
    draft: int
    south_only: int
    truth: list[dict[str, Any]]

    def pseudonym(self, person: int, project: int | None = None) -> str:
        project = project or self.approved
        return str(pseudonymize([person], key=self.gov.project_key(project), project=project)[0].as_py())

    def shift(self, person: int) -> int:
        days = date_shifts([person], key=self.gov.project_key(self.approved), project=self.approved,
                           max_days=PROJECT_DATE_SHIFT_DAYS)  # fmt: skip
        return int(days[0].as_py())

    def persons(self, site: str = "chu_nord", limit: int = PERSONS) -> list[int]:
        rows = self.engine.query(
            "SELECT DISTINCT n.person_id FROM note n JOIN person p ON p.person_id = n.person_id "
            "JOIN care_site cs ON cs.care_site_id = p.care_site_id JOIN condition_occurrence c "
            f"ON c.person_id = n.person_id WHERE cs.care_site_source_value = '{site}' ORDER BY 1 LIMIT {limit}"
        )  # fmt: skip
        return [int(v) for v in rows.column(0).to_pylist()]


@pytest.fixture(scope="module")
def world(demo_warehouse: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("deidentified-notes")
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
        for name, role, site in (("rita", Role.RESEARCHER, None), ("olga", Role.RESEARCHER, None),
                                 ("dina", Role.DPO, None), ("carl", Role.CLINICIAN, "chu_nord")):  # fmt: skip
            gov.create_user(name, None, [role], site, actor=operator)
        users = {n: gov.authenticate_token(gov.create_token(n, None, actor=operator)) for n in ("rita", "olga", "dina",
                                                                                                 "carl")}  # fmt: skip
        cohort = ANY_CANCER.model_dump(mode="json")
        ids = {}
        for label, sites, approve in (("approved", (), True), ("draft", (), False), ("south", ("clcc_sud",), True)):
            scope = ProjectScope(cohort=cohort, cohort_hash=ANY_CANCER.definition_hash(), sites=sites)
            project = gov.create_project(f"Notes {label}", "relapse reports study", scope=scope,
                                         access_level="pseudonymized", expires=dt.date(2099, 12, 31),
                                         actor=users["rita"])  # fmt: skip
            if approve:
                filed = gov.file_request(project.id, actor=users["rita"], justification="approved protocol, notes")
                gov.decide_request(filed.id, True, "proportionate", actor=users["dina"])
            ids[label] = project.id
        yield World(gov, engine, users["rita"], users["olga"], users["carl"], ids["approved"], ids["draft"],
                    ids["south"], truth)  # fmt: skip


def _present(word: str, text: str) -> bool:
    return re.search(rf"(?<!\w){re.escape(word)}(?!\w)", text) is not None


def test_a_researcher_never_sees_a_planted_identifier(world: World) -> None:
    """Attack: read the notes of the project's persons and look for any planted identifier in what comes back.

    Every ground-truth identifier (3 characters or more) found in a person's real notes must be absent from
    the text, the titles and the whole answer; dates (birth dates included) come back shifted. The names
    planted with no cue at all (``cue: false``) are the measured limit of rule-based de-identification
    (docs/deidentification.md); they are counted here, not asserted absent.
    """
    planted = {(s["type"], s["text"], s["cue"]) for note in world.truth for s in note["identifiers"]}
    checked = uncued = 0
    for person in world.persons():
        real_texts = [str(t) for t in world.engine.query(f"SELECT note_text FROM note WHERE person_id = {person}")
                      .column(0).to_pylist()]  # fmt: skip
        real = "\n".join(real_texts)
        answer = deidentified_notes(Caller(world.researcher, world.gov), world.engine, world.pseudonym(person),
                                    project_id=world.approved, purpose=PURPOSE)  # fmt: skip
        shown = json.dumps([n.__dict__ for n in answer.notes], default=str, ensure_ascii=False)
        assert len(answer.notes) == len(real_texts) > 0 and "[NOM]" in shown
        for kind, value, cue in planted:
            if len(value) < 3 or value not in real or not _present(value, real):
                continue
            if not cue:
                uncued += _present(value, shown)
                continue
            assert not _present(value, shown), f"a planted {kind} reached the researcher"
            checked += 1
        # the note dates moved by the person's one project shift, like their structured records
        real_dates = sorted(world.engine.query(f"SELECT note_date FROM note WHERE person_id = {person}")
                            .column(0).to_pylist())  # fmt: skip
        shift = world.shift(person)
        assert [n.note_date for n in answer.notes] == [d + dt.timedelta(days=shift) for d in real_dates]
        assert shift != 0
    assert checked > 200, checked  # the attack looked at many identifiers
    # no warehouse key comes back: ordinals, shifted dates, concept ids and text only
    assert not any(key.endswith("_id") for n in answer.notes for key in n.__dict__)
    assert all(set(n.concepts) == {"note_type_concept_id", "note_class_concept_id"} for n in answer.notes)


def test_refusals_come_first_and_are_audited(world: World) -> None:
    """Attacks: a member of an unapproved project, a researcher of no project, a clinician (identified text is
    another right), a warehouse id in place of the pseudonym, a person outside the project's sites."""
    person = world.persons(limit=1)[0]
    researcher = Caller(world.researcher, world.gov)
    with TransparencyLog(world.gov.ledger_path, readonly=True) as log:
        before = log.size
    with pytest.raises(AccessDenied):
        deidentified_notes(researcher, world.engine, world.pseudonym(person, world.draft), project_id=world.draft,
                           purpose=PURPOSE)  # fmt: skip
    with pytest.raises(AccessDenied):
        deidentified_notes(Caller(world.outsider, world.gov), world.engine, world.pseudonym(person),
                           project_id=world.approved, purpose=PURPOSE)  # fmt: skip
    with pytest.raises(AccessDenied):
        deidentified_notes(Caller(world.clinician, world.gov), world.engine, world.pseudonym(person),
                           project_id=world.approved, purpose=PURPOSE)  # fmt: skip
    with TransparencyLog(world.gov.ledger_path, readonly=True) as log:
        entries = [log.get(i).entry for i in range(before, log.size)]
    assert [(e["action"], e["decision"]) for e in entries] == [(ACTION, "denied")] * 3
    with pytest.raises(InvalidRequest):
        deidentified_notes(researcher, world.engine, person, project_id=world.approved, purpose=PURPOSE)  # type: ignore[arg-type]
    with pytest.raises(InvalidRequest):
        deidentified_notes(researcher, world.engine, world.pseudonym(person), project_id=world.approved, purpose="")
    # a chu_nord person is no person of a project restricted to clcc_sud: not found, whatever the pseudonym
    with pytest.raises(NotFound):
        deidentified_notes(researcher, world.engine, world.pseudonym(person, world.south_only),
                           project_id=world.south_only, purpose=PURPOSE)  # fmt: skip
    with pytest.raises(NotFound):  # another project's pseudonym names nobody here
        deidentified_notes(researcher, world.engine, world.pseudonym(person, world.south_only),
                           project_id=world.approved, purpose=PURPOSE)  # fmt: skip


def test_the_decision_is_written_with_the_purpose_before_reading(world: World) -> None:
    person = world.persons(limit=1)[0]
    pseudonym = world.pseudonym(person)
    answer = deidentified_notes(Caller(world.researcher, world.gov), world.engine, pseudonym,
                                project_id=world.approved, purpose=PURPOSE)  # fmt: skip
    with TransparencyLog(world.gov.ledger_path, readonly=True) as log:
        entry = log.get(answer.grant.audit_index).entry
    assert entry["action"] == ACTION and entry["decision"] == "allowed"
    assert PURPOSE in json.dumps(entry, ensure_ascii=False) and pseudonym in json.dumps(entry)
    assert str(person) not in json.dumps(entry.get("resource", {}))
