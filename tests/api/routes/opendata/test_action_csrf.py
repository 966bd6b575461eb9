"""Attacks on the Action API through a signed-in visitor's browser (cookie session), in process.

A CKAN site answers GET for every action; here a write answers POST only, because the API checks the CSRF
token on unsafe methods only: otherwise an ``<img src=".../package_delete?id=...">`` on any site would delete a
dataset with the producer's cookie. A cross-site form POST (JSON or multipart) has no CSRF token either.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from massalia.api import create_app
from massalia.api.settings import ApiSettings
from massalia.config import Home
from massalia.governance import Caller, operator_principal
from massalia.opendata.catalog import Catalog

PASSWORD = "correct horse battery staple, in Marseille"  # noqa: S105 (a test account of a throwaway home)
ACTION = "/api/v1/opendata/api/3/action"


@pytest.fixture(scope="module")
def signed_in(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, str]]:
    home = Home(tmp_path_factory.mktemp("csrf") / "home").ensure()
    home.mark_initialized("duckdb")
    app = create_app(home, settings=ApiSettings())
    gov = app.state.massalia.governance
    gov.create_user("jeanne", PASSWORD, ["researcher"], actor=operator_principal())
    Catalog.for_home(home).organization_create(Caller(operator_principal(), gov, "test"), {
        "name": "region-sud", "users": [{"name": "jeanne", "capacity": "editor"}]})  # fmt: skip
    with TestClient(app, base_url="https://testserver") as client:
        login = client.post("/api/v1/auth/login", json={"username": "jeanne", "password": PASSWORD})
        assert login.status_code == 200, login.text
        yield client, login.json()["csrf_token"]


def _exists(client: TestClient, name: str) -> bool:
    """Whether the dataset is published (its producer still sees it once deleted, as ``state: deleted``)."""
    shown = client.get(f"{ACTION}/package_show", params={"id": name})
    return shown.status_code == 200 and shown.json()["result"]["state"] == "active"


def test_a_write_by_get_is_refused(signed_in: tuple[TestClient, str]) -> None:
    client, csrf = signed_in
    made = client.post(f"{ACTION}/package_create", json={"name": "cible", "owner_org": "region-sud"},
                       headers={"X-CSRF-Token": csrf})  # fmt: skip
    assert made.status_code == 200, made.text
    for action in ("package_delete", "package_patch", "package_create", "organization_member_create"):
        response = client.get(f"{ACTION}/{action}", params={"id": "cible", "name": "autre", "owner_org": "region-sud"})
        assert response.status_code == 405, f"GET {action}: {response.status_code}"
    assert _exists(client, "cible") and not _exists(client, "autre")


def test_a_cross_site_post_without_the_csrf_token_is_refused(signed_in: tuple[TestClient, str]) -> None:
    client, csrf = signed_in
    client.post(f"{ACTION}/package_create", json={"name": "cible2", "owner_org": "region-sud"},
                headers={"X-CSRF-Token": csrf})  # fmt: skip
    as_json = client.post(f"{ACTION}/package_delete", json={"id": "cible2"})
    as_form = client.post(f"{ACTION}/package_delete", data={"id": "cible2"})
    as_multipart = client.post(f"{ACTION}/package_delete", data={"id": "cible2"}, files={"upload": ("x.csv", b"a\n")})
    assert {as_json.status_code, as_form.status_code, as_multipart.status_code} == {403}
    assert _exists(client, "cible2")
    deleted = client.post(f"{ACTION}/package_delete", json={"id": "cible2"}, headers={"X-CSRF-Token": csrf})
    assert deleted.status_code == 200 and not _exists(client, "cible2")
