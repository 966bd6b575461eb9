"""``POST /api/v1/patients/findings`` on the shared API world: a patient's NLP findings with their qualifiers,
identified for the site's clinician, by pseudonym for the project's members, refused alike (and audited) for an
unknown and a forbidden pseudonym."""

from __future__ import annotations

from api_world import ApiWorld
from test_api_patient_view import PURPOSE, ledger_entries, ledger_size, site_person

from massalia.engine.duckdb import DuckDBEngine
from massalia.governance.pseudonym import pseudonymize
from massalia.health.nlp.pipeline import ClinicalPipeline, nlp_system
from massalia.health.nlp.store import modifiers

URL = "/api/v1/patients/findings"


def _run_pipeline_on(world: ApiWorld, person: int) -> int:
    """The real pipeline over the person's notes, its findings written to NOTE_NLP; how many."""
    with DuckDBEngine(world.home.warehouse) as engine:
        notes = engine.query(f"SELECT note_id, note_text FROM note WHERE person_id = {person}").to_pylist()
        found = ClinicalPipeline().extract([str(n["note_text"]) for n in notes])
        written = 0
        for note, findings in zip(notes, found, strict=True):
            for f in findings:
                written += 1
                variant = f.lexical_variant.replace("'", "''")
                engine.execute(
                    "INSERT INTO note_nlp (note_nlp_id, note_id, lexical_variant, \"offset\", nlp_system, nlp_date, "
                    f"term_exists, term_modifiers) VALUES ({800_000_000 + written}, {int(note['note_id'])}, "
                    f"'{variant}', '{f.start}', '{nlp_system()}', DATE '2026-01-01', "
                    f"'{'N' if f.negated or f.hypothesis or f.family else 'Y'}', '{modifiers(f)}')"
                )  # fmt: skip
    return written


def test_findings_by_pseudonym_and_identified(api_world: ApiWorld) -> None:
    person = site_person(api_world, "chu_nord", among_cohort=True)
    written = _run_pipeline_on(api_world, person)
    project = api_world.own_project
    pseudonym = pseudonymize([person], key=api_world.gov.project_key(project), project=project)[0].as_py()
    answer = api_world.client("researcher").post(URL, json={"person": pseudonym, "purpose": PURPOSE,
                                                            "project_id": project})  # fmt: skip
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["pseudonymized"] and body["person"] == pseudonym and 0 < len(body["findings"]) <= written
    assert all("offset" not in f and "note_id" not in f and "negated" in f for f in body["findings"])
    entry = ledger_entries(api_world)[body["audit_index"]]
    assert entry["action"] == "health.patient.view" and entry["channel"] == "api" and PURPOSE in str(entry)
    clinician = api_world.client("clinician").post(URL, json={"person": person, "purpose": PURPOSE})
    assert clinician.status_code == 200, clinician.text
    assert len(clinician.json()["findings"]) == written and all("offset" in f for f in clinician.json()["findings"])


def test_attack_an_unknown_and_a_forbidden_pseudonym_are_refused_alike(api_world: ApiWorld) -> None:
    """Attack: another project's owner probes pseudonyms of the own project; a public user tries too."""
    person = site_person(api_world, "chu_nord", among_cohort=True)
    project = api_world.own_project
    real = pseudonymize([person], key=api_world.gov.project_key(project), project=project)[0].as_py()
    before = ledger_size(api_world)
    answers = [api_world.client(who).post(URL, json={"person": p, "purpose": PURPOSE, "project_id": project})
               for who in ("other_owner", "public") for p in (real, "p1-0000000000000000")]  # fmt: skip
    assert [a.status_code for a in answers] == [403] * 4
    errors = [{k: v for k, v in a.json()["error"].items() if k != "request_id"} for a in answers]
    assert errors[0] == errors[1] and errors[2] == errors[3]
    denied = [e for e in ledger_entries(api_world)[before:] if e["action"] == "health.patient.view"]
    assert len(denied) == 4 and all(e["decision"] == "denied" for e in denied)
    assert api_world.client(None).post(URL, json={"person": real, "purpose": PURPOSE}).status_code == 401
