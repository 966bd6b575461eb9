"""The done-when scenario, end to end over HTTP on a copy of the shared demo warehouse.

A researcher without approval sees noisy counts only; they file a request, a DPO approves it, and
the researcher then gets raw counts and a pseudonymized extract whose ids differ from another project's
extract of the same persons. Every access is in the ledger; ``massalia audit verify`` passes, and fails
once a single byte of the log is altered.
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path
from typing import Any

from api_world import PASSWORD, SCOPE_VARIABLES, ApiWorld, circe_cohort
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from massalia.cli import app as cli
from massalia.engine.duckdb import DuckDBEngine
from massalia.health.cohorts import import_circe
from massalia.health.cohorts.service import analyze_cohort

API = "/api/v1"


class Browser:
    """A cookie-session client that sends its CSRF token on unsafe methods, as the portal's pages do."""

    def __init__(self, world: ApiWorld, username: str) -> None:
        self.client = TestClient(world.app, raise_server_exceptions=False)
        response = self.client.post(f"{API}/auth/login", json={"username": username, "password": PASSWORD})
        assert response.status_code == 200, response.text
        self.csrf = response.json()["csrf_token"]

    def get(self, url: str, **kwargs: Any) -> Any:
        return self.client.get(url, **kwargs)

    def post(self, url: str, body: Any = None) -> Any:
        return self.client.post(url, json=body, headers={"X-CSRF-Token": self.csrf})


def true_counts(world: ApiWorld) -> tuple[int, int]:
    """Persons and events of the scenario cohort, counted directly on the warehouse (no API, no noise)."""
    with DuckDBEngine(world.home.warehouse) as engine:
        counts = analyze_cohort(engine, import_circe(circe_cohort())).count()
    return int(counts.persons), int(counts.events)


def extract_ids(client: Any, project: int, extract: dict[str, Any]) -> list[str]:
    """Download the CSV data file of an extract over HTTP and return its person ids."""
    data = next(name for name in extract["files"] if name.endswith(".csv"))
    response = client.get(f"{API}/projects/{project}/extracts/{extract['extract_id']}/files/{data}")
    assert response.status_code == 200, response.text
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert rows and set(rows[0]) == {"person_pseudonym", *SCOPE_VARIABLES}  # the project's variables, nothing more
    return [row["person_pseudonym"] for row in rows]


def test_done_when_scenario(api_world: ApiWorld) -> None:
    world = api_world
    persons, events = true_counts(world)
    assert 0 < persons < 10, "the scenario needs a cohort below the small-cell threshold"
    researcher = Browser(world, world.usernames["researcher"])
    dpo = Browser(world, world.usernames["dpo"])
    admin = world.client("admin")
    cohort = circe_cohort()

    # The researcher proposes a project scoped to the cohort: a draft, not approved.
    created = researcher.post(f"{API}/projects", {
        "title": "Ovarian cancer: treatment lines", "purpose": "Describe first-line treatments of ovarian cancer.",
        "scope": {"cohort": cohort, "variables": list(SCOPE_VARIABLES)}, "access_level": "pseudonymized",
        "expires": "2099-12-31",
    })  # fmt: skip
    assert created.status_code == 201, created.text
    project = created.json()["id"]
    assert created.json()["status"] == "draft"

    # Without approval: noisy counts only (never the small true count), events withheld, and no extract.
    body = {"definition": cohort, "project_id": project}
    counted = researcher.post(f"{API}/cohorts/count", body)
    assert counted.status_code == 200, counted.text
    noisy = counted.json()
    assert noisy["release"]["mode"] == "noisy" and noisy["events"] is None
    assert noisy["persons"] is None or (noisy["persons"] >= 10 and noisy["persons"] % 5 == 0)
    assert researcher.post(f"{API}/cohorts/count", body).json()["persons"] == noisy["persons"]  # consistent
    attrition = researcher.post(f"{API}/cohorts/attrition", body).json()
    qualified = attrition["qualified"]["persons"]
    assert attrition["release"]["mode"] == "noisy" and (qualified is None or qualified >= 10)
    generated = researcher.post(f"{API}/cohorts/generate", {**body, "cohort_id": 7})
    assert generated.status_code == 403, generated.text
    # Even with the cohort generated (by an engineer, outside the project), no extract before approval.
    assert admin.post(f"{API}/cohorts/generate", json={"definition": cohort, "cohort_id": 7}).status_code == 200
    refused = researcher.post(f"{API}/projects/{project}/extracts", {"cohort_id": 7, "format": "csv"})
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden"

    # The researcher files a request; the DPO sees it and approves it.
    filed = researcher.post(f"{API}/projects/{project}/requests", {"justification": "Protocol ONCO-7, DPIA done."})
    assert filed.status_code == 201, filed.text
    pending = [r for r in dpo.get(f"{API}/requests").json()["items"] if r["status"] == "pending"]
    assert [r["project_id"] for r in pending] == [project]
    assert researcher.post(f"{API}/requests/{pending[0]['id']}/decision", {"approve": True, "reason": "self"}
                           ).status_code == 403  # fmt: skip
    decided = dpo.post(f"{API}/requests/{pending[0]['id']}/decision", {"approve": True, "reason": "DPIA reviewed."})
    assert decided.status_code == 200, decided.text
    assert researcher.get(f"{API}/projects/{project}").json()["status"] == "approved"

    # Approved: raw counts, then the cohort and a pseudonymized extract (of the mart, built in api_warehouse).
    raw = researcher.post(f"{API}/cohorts/count", body).json()
    assert (raw["persons"], raw["events"], raw["release"]) == (persons, events, {"mode": "exact"})
    generated = researcher.post(f"{API}/cohorts/generate", {**body, "cohort_id": 7})
    assert generated.status_code == 200 and generated.json()["persons"] == persons, generated.text
    # k counts every released column (diagnosis_date, stage_group...): 7 persons need generalizing.
    made = researcher.post(f"{API}/projects/{project}/extracts",
                           {"cohort_id": 7, "format": "csv", "on_low_k": "generalize"})  # fmt: skip
    assert made.status_code == 201, made.text
    ids = extract_ids(researcher, project, made.json())
    assert len(ids) == persons
    assert all(re.fullmatch(rf"p{project}-\S+", pid) for pid in ids), ids
    with DuckDBEngine(world.home.warehouse) as engine:
        real_ids = {str(r["subject_id"]) for r in engine.query(
            "SELECT subject_id FROM cohort WHERE cohort_definition_id = 7").to_pylist()}  # fmt: skip
    assert not real_ids & set(ids)

    # Another approved project extracts the same persons under other pseudonyms.
    other = world.client("researcher")  # bearer-token client of the same researcher, for the shared project
    assert other.get(f"{API}/projects/{world.own_project}").status_code == 200
    other_extract = other.post(
        f"{API}/projects/{world.own_project}/extracts", json={"cohort_id": 7, "format": "csv", "on_low_k": "generalize"}
    )
    assert other_extract.status_code == 201, other_extract.text
    other_ids = extract_ids(other, world.own_project, other_extract.json())
    assert len(other_ids) == len(ids) and not set(other_ids) & set(ids)

    # A user of neither project cannot download the extract.
    outsider = world.client("clinician")
    data = next(n for n in made.json()["files"] if n.endswith(".csv"))
    download = f"{API}/projects/{project}/extracts/{made.json()['extract_id']}/files/{data}"
    assert outsider.get(download).status_code == 403

    # Every access is in the ledger, with who, what and through which channel.
    entries: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = dpo.get(f"{API}/audit/entries", params={"limit": 200} | ({"cursor": cursor} if cursor else {})).json()
        entries += [item["entry"] for item in page["items"]]
        cursor = page["next"]
        if cursor is None:
            break
    rita = world.usernames["researcher"]
    mine = [e for e in entries if e.get("actor") == rita and e.get("project_id") == project]
    seen = {(e["action"], e.get("decision")) for e in mine}
    assert ("health.cohort.count", "allowed") in seen and ("health.cohort.attrition", "allowed") in seen
    assert ("health.cohort.generate", "denied") in seen and ("health.extract.create", "denied") in seen
    assert ("health.cohort.generate", "allowed") in seen and ("health.extract.create", "allowed") in seen
    allowed_extracts = [e for e in mine if e["action"] == "health.extract.create" and e.get("decision") == "allowed"]
    assert len(allowed_extracts) >= 2  # the creation, then the download
    assert all(e.get("channel") == "api" for e in mine if e["action"].startswith(("cohort.", "extract.")))
    assert any(e["action"] == "request.decide" and e.get("actor") == world.usernames["dpo"] for e in entries)
    assert any(e.get("actor") == world.usernames["clinician"] and e.get("decision") == "denied" for e in entries)
    counts_seen = [e for e in mine if e["action"] == "health.cohort.count"]
    assert [e["grant"]["raw_counts"] for e in counts_seen] == [False, False, True]
    releases = [e for e in entries if e.get("action") == "disclosure.release" and e.get("actor") == rita]
    assert [e["repeated"] for e in releases] == [False, True, False]  # count, the same count again, attrition

    # The log verifies (over HTTP and with the CLI), and fails once one byte is altered.
    verified = TestClient(world.app).get(f"{API}/audit/verify").json()
    assert verified["ok"] is True and verified["size"] == len(entries)
    runner = CliRunner()
    assert runner.invoke(cli, ["audit", "verify", "--home", str(world.home.root)]).exit_code == 0
    log = Path(world.home.ledger) / "entries.log"
    data_bytes = bytearray(log.read_bytes())
    position = data_bytes.find(rita.encode())
    data_bytes[position] ^= 0x01
    log.write_bytes(bytes(data_bytes))
    failed = runner.invoke(cli, ["audit", "verify", "--home", str(world.home.root)])
    assert failed.exit_code == 1, failed.output
    assert TestClient(world.app).get(f"{API}/audit/verify").json()["ok"] is False
