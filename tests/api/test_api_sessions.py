"""Cookie sessions end at once: disabling, a role change or a token revocation refuses the very next request.

The observed attack: a disabled account's cookie session kept working for 8 hours (its lifetime), because
the session held the principal as it was at login.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from api_world import PASSWORD, ApiWorld, build_world
from fastapi.testclient import TestClient

API = "/api/v1"


@pytest.fixture
def world(tmp_path: Path) -> Iterator[ApiWorld]:
    """A world of its own: these tests disable and re-role its accounts."""
    built = build_world(tmp_path / "home", None)
    try:
        yield built
    finally:
        built.close()


def signed_in(world: ApiWorld, role: str) -> TestClient:
    client = TestClient(world.app, raise_server_exceptions=False)
    response = client.post(f"{API}/auth/login", json={"username": world.usernames[role], "password": PASSWORD})
    assert response.status_code == 200, response.text
    client.headers["X-CSRF-Token"] = response.json()["csrf_token"]
    return client


def whoami(client: TestClient) -> tuple[int, dict[str, object]]:
    response = client.get(f"{API}/auth/whoami")
    return response.status_code, response.json()


def test_a_disabled_accounts_session_is_refused_on_the_next_request(world: ApiWorld) -> None:
    researcher = signed_in(world, "researcher")
    status, body = whoami(researcher)
    assert status == 200 and body["subject"] == world.usernames["researcher"]
    assert researcher.get(f"{API}/projects").status_code == 200
    admin = world.client("admin")
    username = world.usernames["researcher"]
    assert admin.post(f"{API}/users/{username}/disable").status_code == 200
    # The very next request of the open session: refused, and the session is gone for good.
    refused = researcher.get(f"{API}/projects")
    assert refused.status_code == 401 and "disabled" in refused.json()["error"]["message"]
    assert admin.post(f"{API}/users/{username}/enable").status_code == 200
    status, body = whoami(researcher)
    assert status == 200 and body["subject"] == "anonymous", "re-enabling does not revive the ended session"
    assert signed_in(world, "researcher").get(f"{API}/projects").status_code == 200


def test_a_role_change_ends_the_session(world: ApiWorld) -> None:
    dpo = signed_in(world, "dpo")
    assert dpo.get(f"{API}/users").status_code == 200
    admin = world.client("admin")
    changed = admin.put(f"{API}/users/{world.usernames['dpo']}/roles", json={"roles": ["researcher"]})
    assert changed.status_code == 200 and changed.json()["roles"] == ["researcher"]
    assert dpo.get(f"{API}/users").status_code == 401, "the old DPO session must not keep the DPO's rights"
    again = signed_in(world, "dpo")
    assert again.get(f"{API}/users").status_code == 403 and whoami(again)[1]["roles"] == ["researcher"]


def test_revoking_a_token_ends_the_owners_sessions(world: ApiWorld) -> None:
    researcher = signed_in(world, "researcher")
    bearer = world.client("researcher")
    tokens = bearer.get(f"{API}/auth/tokens").json()["items"]
    assert tokens
    assert bearer.delete(f"{API}/auth/tokens/{tokens[0]['id']}").status_code == 204
    assert researcher.get(f"{API}/projects").status_code == 401


def test_an_admin_cannot_disable_or_re_role_themself(world: ApiWorld) -> None:
    admin = world.client("admin")
    me = world.usernames["admin"]
    assert admin.post(f"{API}/users/{me}/disable").status_code == 403
    assert admin.put(f"{API}/users/{me}/roles", json={"roles": ["admin", "dpo"]}).status_code == 403
