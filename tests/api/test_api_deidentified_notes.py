"""``POST /api/v1/patients/notes/deidentified`` on the shared API world: a project member reads a person's notes
with no planted identifier left, by pseudonym; the person id, another project and anonymous callers are refused."""

from __future__ import annotations

import json
import re

from api_world import ApiWorld
from test_api_patient_view import PURPOSE, ledger_entries, site_person

from massalia.engine.duckdb import DuckDBEngine
from massalia.governance.pseudonym import pseudonymize

URL = "/api/v1/patients/notes/deidentified"


def test_a_project_member_reads_notes_without_identifiers(api_world: ApiWorld) -> None:
    """Attack: look in the JSON a researcher gets for any identifier planted in the person's real notes."""
    person = site_person(api_world, "chu_nord", among_cohort=True)
    project = api_world.own_project
    pseudonym = pseudonymize([person], key=api_world.gov.project_key(project), project=project)[0].as_py()
    answer = api_world.client("researcher").post(URL, json={"person": pseudonym, "purpose": PURPOSE,
                                                            "project_id": project})  # fmt: skip
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["person"] == pseudonym and body["notes"] and "[NOM]" in answer.text
    with DuckDBEngine(api_world.home.warehouse, read_only=True) as engine:
        real = engine.query(f"SELECT note_text FROM note WHERE person_id = {person}").column(0).to_pylist()
    names = {w for text in real for w in re.findall(r"(?:Patiente? : |Nom : |Prénom : )(?:M\. |Mme )?([^\n,]+)",
                                                     str(text))}  # fmt: skip
    assert names, "the demo notes name their patient"
    shown = json.dumps(body["notes"], ensure_ascii=False)
    for name in names:
        for word in name.split():
            if len(word) >= 3 and "[" not in word:
                assert not re.search(rf"(?<!\w){re.escape(word)}(?!\w)", shown), "a patient name came back"
    assert str(person) not in json.dumps({k: v for k, v in body.items() if k != "notes"})
    entry = ledger_entries(api_world)[body["audit_index"]]
    assert entry["action"] == "health.document.deidentified" and entry["channel"] == "api"


def test_the_person_id_other_projects_and_anonymous_are_refused(api_world: ApiWorld) -> None:
    person = site_person(api_world, "chu_nord", among_cohort=True)
    body = {"person": person, "purpose": PURPOSE, "project_id": api_world.own_project}
    refused = api_world.client("researcher").post(URL, json=body)
    assert refused.status_code == 422 and "pseudonym" in refused.json()["error"]["message"]
    assert api_world.client("other_owner").post(URL, json=body).status_code == 403
    assert api_world.client("clinician").post(URL, json=body).status_code == 403
    assert api_world.client(None).post(URL, json=body).status_code == 401
    assert api_world.client("researcher").post(URL, json={**body, "purpose": "x"}).status_code == 422
