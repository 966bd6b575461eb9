"""The certification routes, anonymous, in process: checkpoint, key, proof and consistency, and their attacks."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from massalia.api import create_app
from massalia.api.settings import ApiSettings
from massalia.config import Home
from massalia.governance import Caller, operator_principal
from massalia.opendata.catalog import Catalog, Upload
from massalia.opendata.certify import checkpoint_text, parse_checkpoint, verify_publication

BASE = "/api/v1/opendata/certification"
CSV = b"id;nom\n1;Arles\n"
UNKNOWN = "00000000-0000-4000-8000-000000000000"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, dict[str, Any]]]:
    home = Home(tmp_path_factory.mktemp("certification") / "home").ensure()
    home.mark_initialized("duckdb")
    app = create_app(home, settings=ApiSettings())
    admin = Caller(operator_principal(), app.state.massalia.governance, "test")
    catalog = Catalog.for_home(home)
    catalog.organization_create(admin, {"name": "region-sud"})
    ids = {}
    for name in ("public-data", "brouillon-secret"):
        catalog.package_create(admin, {"name": name, "owner_org": "region-sud"})
        ids[name] = catalog.resource_create(
            admin, {"package_id": name}, Upload("d.csv", io.BytesIO(CSV + name.encode()))
        )
    catalog.package_delete(admin, "brouillon-secret")
    with TestClient(app, base_url="https://testserver") as client:
        yield client, ids


def test_anonymous_fetches_checkpoint_key_and_proof_and_verifies(site: tuple[TestClient, dict[str, Any]]) -> None:
    client, ids = site
    text = client.get(f"{BASE}/checkpoint")
    assert text.status_code == 200 and text.headers["content-type"].startswith("text/plain")
    head = parse_checkpoint(text.text)
    assert client.get(f"{BASE}/checkpoint", params={"format": "json"}).json() == head.to_json()
    assert checkpoint_text(head) == text.text
    key = client.get(f"{BASE}/public-key")
    assert key.status_code == 200 and key.text.startswith("-----BEGIN PUBLIC KEY-----")
    proof = client.get(f"{BASE}/proof/{ids['public-data']['id']}")
    assert proof.status_code == 200, proof.text
    result = verify_publication(CSV + b"public-data", proof.content, key_pem=key.content, checkpoint=text.content)
    assert result.entry["resource_version"] == 1
    consistency = client.get(f"{BASE}/consistency", params={"first": 0})
    assert consistency.status_code == 200 and consistency.json()["new_size"] == head.tree_size


def test_attack_anonymous_cannot_tell_a_deleted_datasets_file_from_nothing(
    site: tuple[TestClient, dict[str, Any]],
) -> None:
    client, ids = site
    answers: list[str] = []
    hidden = client.get(f"{BASE}/proof/{ids['brouillon-secret']['id']}")
    unknown = client.get(f"{BASE}/proof/{UNKNOWN}")
    assert hidden.status_code == unknown.status_code == 404
    for answer, rid in ((hidden, ids["brouillon-secret"]["id"]), (unknown, UNKNOWN)):
        answer_error = answer.json()["error"]
        answer_error.pop("request_id", None)  # each answer's own
        answers.append(json.dumps(answer_error).replace(rid, "<id>"))
    assert answers[0] == answers[1]
    for route in ("checkpoint", "public-key"):
        assert "brouillon" not in client.get(f"{BASE}/{route}").text


def test_attack_the_proof_lookup_takes_ids_only(site: tuple[TestClient, dict[str, Any]]) -> None:
    client, _ = site
    for ref in ("public-data", "..%2F..%2F..%2Fetc%2Fpasswd", "%2E%2E", UNKNOWN.upper(), "x" * 36):
        answer = client.get(f"{BASE}/proof/{ref}")
        assert answer.status_code in (404, 422), (ref, answer.status_code)
        assert "root:" not in answer.text
    assert client.get(f"{BASE}/consistency", params={"first": 10**6}).status_code == 422
    assert client.get(f"{BASE}/proof/{UNKNOWN}", params={"since": -1}).status_code == 422
