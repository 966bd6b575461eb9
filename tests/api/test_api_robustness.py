"""Robustness of the API: each observation of issue 10, section 5, as an attack that must now fail.

- unauthenticated requests appended entries (one of 4 MB) to the audit log without limit;
- a token scoped to ``token.create`` minted a full, 366-day token;
- ids of 2**63 or more, and nested groups of depth 50 to 250, answered 500;
- a definition of 100,000 concepts took 6 s per request;
- passwords were checked for length only;
- login throttling per address locked out everyone behind one address;
- a caller without the right learnt which projects and requests exist (404 against 403);
- ``%`` and ``_`` in a text filter were LIKE wildcards;
- a caller's query had no time limit.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from typing import Any

import pyarrow as pa
import pytest
from api_world import PASSWORD, ApiWorld, circe_cohort, massalia_json
from fastapi.testclient import TestClient

from massalia.api import ApiSettings
from massalia.engine import Engine
from massalia.governance.service import ANONYMOUS_AUDIT_BURST, AUDIT_VALUE_MAX_BYTES
from massalia.health.cohorts.definition import MAX_JSON_DEPTH
from massalia.health.cohorts.nodes import TextFilter
from massalia.health.cohorts.sqltext import text_clause
from massalia.ledger import TransparencyLog

API = "/api/v1"
BIG = 2**63


def _ledger(world: ApiWorld) -> list[dict[str, Any]]:
    with TransparencyLog(world.home.ledger, readonly=True) as log:
        return [log.get(index).entry for index in range(log.size)]


def test_unauthenticated_calls_do_not_grow_the_audit_log_without_bound(api_world: ApiWorld) -> None:
    app = api_world.app_with(ApiSettings())  # its own governance service: a fresh anonymous budget
    client = TestClient(app, raise_server_exceptions=False)
    definition = massalia_json(circe_cohort())
    definition["title"] = "x" * 9_000  # a large input (within the string bound) in every call
    before = len(_ledger(api_world))
    started = time.perf_counter()
    for _ in range(200):
        assert client.post(f"{API}/cohorts/count", json={"definition": definition}).status_code == 401
    elapsed = time.perf_counter() - started
    entries = _ledger(api_world)[before:]
    anonymous = [e for e in entries if e["auth"] == "anonymous"]
    # The burst, plus what refilled during the run (one entry per refill period).
    assert len(anonymous) <= ANONYMOUS_AUDIT_BURST + 1 + int(elapsed / 10.0), len(anonymous)
    for entry in entries:
        assert len(json.dumps(entry)) < 8 * AUDIT_VALUE_MAX_BYTES, "an audit entry must stay small"


def test_large_audit_values_are_stored_as_their_hash(api_world: ApiWorld) -> None:
    gov = api_world.gov
    index = gov.audit(api_world.principal("admin"), "test.large", resource={"blob": "y" * 100_000})
    with TransparencyLog(api_world.home.ledger, readonly=True) as log:
        entry = log.get(index).entry
    assert set(entry["resource"]) == {"sha256", "bytes"} and entry["resource"]["bytes"] > 100_000


def _token(world: ApiWorld, role: str, scopes: list[str] | None, days: int) -> TestClient:
    gov = world.gov
    from massalia.governance import operator_principal

    token = gov.create_token(world.usernames[role], scopes, dt.timedelta(days=days), actor=operator_principal())
    return TestClient(world.app, raise_server_exceptions=False, headers={"Authorization": f"Bearer {token}"})


def test_a_token_mints_only_narrower_and_shorter_tokens(api_world: ApiWorld) -> None:
    scoped = _token(api_world, "researcher", ["token.create", "token.list"], days=10)
    # "All the roles allow" from a scoped token means all that token allows: its own scopes.
    created = scoped.post(f"{API}/auth/tokens", json={"scopes": None, "expires_in_days": 5})
    assert created.status_code == 201, created.text
    child = TestClient(api_world.app, headers={"Authorization": f"Bearer {created.json()['token']}"})
    assert sorted(child.get(f"{API}/auth/whoami").json()["scopes"]) == ["token.create", "token.list"]
    assert child.get(f"{API}/projects").status_code == 403
    # Wider scopes are refused.
    for scopes in (["health.cohort.count"], ["*"], ["token.*"]):
        refused = scoped.post(f"{API}/auth/tokens", json={"scopes": scopes})
        assert refused.status_code == 422, (scopes, refused.text)
    # A longer life is capped at the parent's: the 366-day token of the observation lives 10 days at most.
    longer = scoped.post(f"{API}/auth/tokens", json={"scopes": ["token.create"], "expires_in_days": 366})
    assert longer.status_code == 201, longer.text
    listed = {t["prefix"]: t for t in scoped.get(f"{API}/auth/tokens").json()["items"]}
    expires = dt.datetime.fromisoformat(listed[longer.json()["token"][:12]]["expires_at"])
    assert expires <= dt.datetime.now(dt.UTC) + dt.timedelta(days=10)
    # A token for an area may hand out one action of it.
    area = _token(api_world, "researcher", ["health.cohort.*", "token.create"], days=10)
    narrower = area.post(f"{API}/auth/tokens", json={"scopes": ["health.cohort.count"], "expires_in_days": 1})
    assert narrower.status_code == 201, narrower.text


ID_ROUTES = [
    ("GET", "/projects/{id}", None),
    ("POST", "/projects/{id}/members", {"username": "rita.researcher"}),
    ("POST", "/projects/{id}/requests", {"justification": "a long enough justification"}),
    ("POST", "/requests/{id}/decision", {"approve": True, "reason": "fine"}),
    ("DELETE", "/auth/tokens/{id}", None),
    ("GET", "/audit/entries/{id}/proof", None),
    ("POST", "/cohorts/count", {"definition": "cohort", "project_id": "{id}"}),
    ("POST", "/cohorts/explain", {"definition": "cohort", "person": "{id}", "purpose": "checking bounds here"}),
    ("POST", "/cohorts/generate", {"definition": "cohort", "cohort_id": "{id}"}),
    ("POST", "/patients/view", {"person": "{id}", "purpose": "checking bounds here"}),
    ("POST", "/mart/count", {"project_id": "{id}"}),
]


def _fill(value: Any, number: int, cohort: dict[str, Any]) -> Any:
    if value == "{id}":
        return number
    if value == "cohort":
        return cohort
    if isinstance(value, dict):
        return {key: _fill(item, number, cohort) for key, item in value.items()}
    return value


@pytest.mark.parametrize("number", [BIG, 2**64, -BIG - 1], ids=["2^63", "2^64", "-2^63-1"])
@pytest.mark.parametrize(("method", "path", "body"), ID_ROUTES, ids=[f"{m} {p}" for m, p, _ in ID_ROUTES])
def test_out_of_range_ids_are_a_client_error(
    api_world: ApiWorld, method: str, path: str, body: dict[str, Any] | None, number: int
) -> None:
    client = api_world.client("admin")
    url = API + path.replace("{id}", str(number))
    payload = _fill(body, number, api_world.cohort) if body is not None else None
    response = client.request(method, url, json=payload)
    assert 400 <= response.status_code < 500, (url, response.status_code, response.text)


def _deep(definition: dict[str, Any], depth: int) -> dict[str, Any]:
    cursor = definition["inclusion_rules"][0]["expression"]
    for _ in range(depth):
        group: dict[str, Any] = {"type": "ALL", "criteria_list": [], "groups": []}
        cursor.setdefault("groups", []).append(group)
        cursor = group
    return definition


def _deep_circe(depth: int) -> dict[str, Any]:
    circe = circe_cohort()
    cursor = circe["InclusionRules"][0]["expression"]
    for _ in range(depth):
        group: dict[str, Any] = {"Type": "ALL", "CriteriaList": [], "Groups": []}
        cursor.setdefault("Groups", []).append(group)
        cursor = group
    return circe


@pytest.mark.parametrize("route", ["count", "sql", "validate", "import", "attrition"])
@pytest.mark.parametrize("form", ["massalia", "circe"])
def test_deeply_nested_definitions_are_refused(api_world: ApiWorld, route: str, form: str) -> None:
    definition = _deep(massalia_json(circe_cohort()), 250) if form == "massalia" else _deep_circe(250)
    started = time.perf_counter()
    response = api_world.client("researcher").post(f"{API}/cohorts/{route}", json={"definition": definition})
    assert response.status_code == 422, response.text[:300]
    assert "deeper" in response.text or "nested" in response.text or "recursion" in response.text.lower()
    assert time.perf_counter() - started < 2.0


def test_a_reasonably_nested_definition_still_compiles(api_world: ApiWorld) -> None:
    definition = _deep(massalia_json(circe_cohort()), 10)
    response = api_world.client("researcher").post(f"{API}/cohorts/sql", json={"definition": definition})
    assert response.status_code == 200, response.text[:300]
    assert MAX_JSON_DEPTH >= 50  # about 20 levels of groups or correlated criteria


def test_a_definition_of_100000_concepts_is_refused_fast(api_world: ApiWorld) -> None:
    definition = massalia_json(circe_cohort())
    items = [{"concept": {"concept_id": 4181351 + n}} for n in range(100_000)]  # under the 5 MB body limit
    definition["concept_sets"][0]["expression"]["items"] = items
    client = api_world.client("researcher")
    started = time.perf_counter()
    response = client.post(f"{API}/cohorts/count", json={"definition": definition})
    elapsed = time.perf_counter() - started
    assert response.status_code == 422, response.text[:300]
    assert "concept set items" in response.text
    assert elapsed < 3.0, f"{elapsed:.1f} s to refuse (the observation: 6 s to answer)"


def test_a_query_past_the_time_limit_is_cancelled_and_costs_no_budget(
    api_world: ApiWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = api_world.client("researcher")
    body = {"definition": massalia_json(circe_cohort())}
    before = client.get(f"{API}/me/privacy-budget").json()
    monkeypatch.setenv("MASSALIA_QUERY_TIME_LIMIT", "0.001")
    for route in ("count", "attrition"):
        response = client.post(f"{API}/cohorts/{route}", json=body)
        assert response.status_code == 422, response.text[:300]
        assert "longer than the limit of 0.001 s" in response.json()["error"]["message"]
    response = client.post(f"{API}/mart/count", json={"filters": {}})
    assert response.status_code in (409, 422), response.text[:300]  # an unbuilt mart says so first
    assert client.get(f"{API}/me/privacy-budget").json()["spent"] == before["spent"]  # nothing released, nothing spent
    monkeypatch.delenv("MASSALIA_QUERY_TIME_LIMIT")
    assert client.post(f"{API}/cohorts/count", json=body).status_code == 200


def test_a_common_password_is_refused(api_world: ApiWorld) -> None:
    admin = api_world.client("admin")
    for password in ("password1234", "Password1234!", "qwertyuiop123"):
        body = {"username": "weak.user", "password": password, "roles": ["researcher"]}
        response = admin.post(f"{API}/users", json=body)
        assert response.status_code == 422, (password, response.text)
        assert "password refused" in response.text
    body = {"username": "strong.user", "password": "violet-lantern-orbit-cello", "roles": ["researcher"]}
    assert admin.post(f"{API}/users", json=body).status_code == 201


def _login(client: TestClient, username: str, password: str) -> int:
    return client.post(f"{API}/auth/login", json={"username": username, "password": password}).status_code


def test_throttling_one_account_does_not_lock_another_behind_the_same_address(api_world: ApiWorld) -> None:
    app = api_world.app_with(ApiSettings(login_max_failures=5, login_window=60.0))
    victim, colleague = api_world.usernames["researcher"], api_world.usernames["dpo"]
    nat = ("10.1.1.1", 40000)  # one hospital address for the guesser and the colleague
    guesser = TestClient(app, client=nat)
    for _ in range(5):
        assert _login(guesser, victim, "not the password at all") == 401
    assert _login(guesser, victim, PASSWORD) == 429, "the guesser is stopped on that account"
    assert _login(TestClient(app, client=nat), colleague, PASSWORD) == 200, "the colleague is not"
    assert _login(TestClient(app, client=("10.2.2.2", 40000)), victim, PASSWORD) == 200, "nor the owner elsewhere"
    # Guessing one account from many addresses is still stopped, by the account's own (looser) bound.
    target = api_world.usernames["dpo"]
    for n in range(20):
        assert _login(TestClient(app, client=(f"10.3.0.{n}", 40000)), target, "not the password at all") == 401
    assert _login(TestClient(app, client=("10.4.4.4", 40000)), target, PASSWORD) == 429


def test_existence_is_not_revealed_before_authorization(api_world: ApiWorld) -> None:
    outsider = _token(api_world, "clinician", None, days=1)  # a member of no project
    other = api_world.other_project
    missing = 987_654
    for method, path, body in (
        ("GET", "/projects/{id}", None),
        ("POST", "/projects/{id}/requests", {"justification": "a long enough justification"}),
        ("POST", "/projects/{id}/members", {"username": "carl.clinician"}),
    ):
        existing = outsider.request(method, API + path.format(id=other), json=body)
        absent = outsider.request(method, API + path.format(id=missing), json=body)
        assert existing.status_code == absent.status_code == 403, (path, existing.text, absent.text)
        assert existing.json()["error"]["code"] == absent.json()["error"]["code"]
    researcher = api_world.client("researcher")
    decided = researcher.post(f"{API}/requests/1/decision", json={"approve": True, "reason": "fine"})
    absent = researcher.post(f"{API}/requests/{missing}/decision", json={"approve": True, "reason": "fine"})
    assert decided.status_code == absent.status_code == 403


@pytest.mark.parametrize(
    ("op", "text", "matches"),
    [
        ("contains", "5%", {"a5%b"}),
        ("contains", "_", {"a_b"}),
        ("startsWith", "a_", {"a_b"}),
        ("endsWith", "%b", {"a5%b"}),
        ("contains", "!", {"a!b"}),
        ("!contains", "%", {"a5xb", "a_b", "axb", "a!b"}),
    ],
)
def test_like_wildcards_in_a_text_filter_match_literally(engine: Engine, op: str, text: str, matches: set[str]) -> None:
    # On every engine (DuckDB always; PostgreSQL and Spark with their markers): the ESCAPE clause is standard.
    engine.create_table("t", pa.table({"s": ["a5%b", "a5xb", "a_b", "axb", "a!b"]}))
    clause = text_clause("s", TextFilter(op=op, text=text), "test")
    rows = engine.query(f"SELECT s FROM t WHERE {clause}").to_pylist()
    assert {row["s"] for row in rows} == matches
