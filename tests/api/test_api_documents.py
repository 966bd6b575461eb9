"""``POST /api/v1/documents/search`` through the real app: a clinician's own-site hits, bounded bodies, and a
query that never lands in a URL or the audit trail."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from api_world import ApiWorld

from massalia.engine.duckdb import DuckDBEngine
from massalia.governance import Caller
from massalia.health.documents.search import index_notes
from massalia.ledger import TransparencyLog

ROUTE = "/api/v1/documents/search"


@pytest.fixture(scope="module")
def world(api_world: ApiWorld) -> Iterator[ApiWorld]:
    with DuckDBEngine(api_world.home.warehouse) as engine:
        index_notes(Caller(api_world.principal("admin"), api_world.gov), engine, api_world.home.indexes)
    yield api_world


def test_clinician_gets_own_site_hits_with_snippets(world: ApiWorld) -> None:
    response = world.client("clinician").post(ROUTE, json={"query": '"tumeur maligne"', "page_size": 5})
    assert response.status_code == 200, response.text
    found = response.json()
    assert found["mode"] == "identified" and found["total"] > 0 and len(found["hits"]) <= 5
    assert {hit["site"] for hit in found["hits"]} == {"chu_nord"} and set(found["facets"]["site"]) == {"chu_nord"}
    snippet = found["hits"][0]["snippets"]["note_text"]
    assert all(snippet["fragment"][a:b].lower() in ("tumeur", "maligne") for a, b in snippet["highlights"])


def test_researcher_without_project_gets_a_count_only(world: ApiWorld) -> None:
    found = world.client("researcher").post(ROUTE, json={"query": "sein"}).json()
    assert found["mode"] == "count" and found["hits"] == [] and found["total"] is None and found["facets"] == {}


@pytest.mark.parametrize(
    "body",
    [{"query": ""}, {"query": "x" * 501}, {"query": "sein", "page_size": 101}, {"query": "sein", "page": 0},
     {"query": "sein", "site": "../etc"}, {"query": "sein", "project_id": 0}, {"query": '"sein'}],
)  # fmt: skip
def test_bad_bodies_are_refused_with_a_reason(world: ApiWorld, body: dict[str, object]) -> None:
    response = world.client("clinician").post(ROUTE, json=body)
    assert response.status_code in (400, 422), response.text
    assert response.json()["error"]["message"]


def test_the_query_is_kept_as_a_keyed_hash_only(world: ApiWorld) -> None:
    world.client("clinician").post(ROUTE, json={"query": "Dupontel Marcelle"})
    with TransparencyLog(world.gov.ledger_path, readonly=True) as log:
        entries = [log.get(i).entry for i in range(log.size)]
    assert "dupontel" not in json.dumps(entries).lower()
    assert entries[-1]["action"] == "health.document.search" and len(entries[-1]["resource"]["query_hmac"]) == 64
