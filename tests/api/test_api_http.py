"""The HTTP layer itself: error shape, security headers, CSRF, CORS, login throttling, pagination, sessions."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from api_world import PASSWORD, ApiWorld
from fastapi.testclient import TestClient

from massalia.api import ApiSettings, SettingsError
from massalia.api.app import login_limiter
from massalia.api.pagination import decode_cursor, encode_cursor
from massalia.api.ratelimit import FailureLimiter

API = "/api/v1"


def assert_error_shape(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}
    error = body["error"]
    assert set(error) == {"code", "message", "details", "request_id"}
    assert error["code"] == code
    assert isinstance(error["message"], str) and error["message"]
    assert all(set(d) == {"loc", "msg"} for d in error["details"])
    assert error["request_id"] == response.headers["x-request-id"]
    return error


def test_error_shape_for_each_status(empty_world: ApiWorld) -> None:
    anonymous = empty_world.client()
    assert_error_shape(anonymous.get(f"{API}/projects"), 401, "unauthenticated")
    assert_error_shape(empty_world.client("public").get(f"{API}/projects/1"), 403, "forbidden")
    assert_error_shape(empty_world.client("dpo").get(f"{API}/projects/999"), 404, "not_found")
    assert_error_shape(anonymous.get(f"{API}/no-such-route"), 404, "not_found")
    error = assert_error_shape(
        empty_world.client("researcher").post(f"{API}/projects", json={"title": "", "purpose": "short"}),
        422, "invalid_request",
    )  # fmt: skip
    locs = {tuple(d["loc"]) for d in error["details"]}
    assert ("body", "title") in locs and ("body", "purpose") in locs and ("body", "expires") in locs
    bad_json = empty_world.client("researcher").post(
        f"{API}/projects", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert_error_shape(bad_json, 422, "invalid_request")
    # A governance conflict (a second pending request) is a client error with the shape, never a 500.
    researcher = empty_world.client("researcher")
    project = researcher.post(f"{API}/projects", json={
        "title": "Second", "purpose": "A second project to test conflicts.", "expires": "2099-01-01"})  # fmt: skip
    assert project.status_code == 201, project.text
    pid = project.json()["id"]
    assert researcher.post(f"{API}/projects/{pid}/requests", json={"justification": "First request here."}).is_success
    again = researcher.post(f"{API}/projects/{pid}/requests", json={"justification": "Second request here."})
    assert_error_shape(again, 422, "invalid_request")
    assert_error_shape(anonymous.delete(f"{API}/auth/whoami"), 405, "method_not_allowed")


def test_internal_errors_do_not_leak(empty_world: ApiWorld) -> None:
    secret = "password=hunter2 in /srv/secret/path.py"  # noqa: S105 (the text that must not leak)

    def boom() -> None:
        raise RuntimeError(secret)

    app = empty_world.app_with(ApiSettings())  # an app of this test only: the route below is not the API's
    app.add_api_route(f"{API}/test-boom", boom)
    response = TestClient(app, raise_server_exceptions=False).get(f"{API}/test-boom")
    error = assert_error_shape(response, 500, "internal_error")
    assert secret not in response.text and "Traceback" not in response.text
    assert error["details"] == []
    assert response.headers["x-content-type-options"] == "nosniff"  # security headers on a 500 too


def test_security_headers_on_every_response(empty_world: ApiWorld) -> None:
    client = empty_world.client()
    for response in (client.get(f"{API}/health"), client.get(f"{API}/projects"), client.get("/nowhere")):
        headers = response.headers
        assert headers["content-security-policy"].startswith("default-src 'self'")
        assert "frame-ancestors 'none'" in headers["content-security-policy"]
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["x-frame-options"] == "DENY"
        assert headers["referrer-policy"] == "no-referrer"
        assert "strict-transport-security" not in headers  # plain HTTP: no HSTS
        assert re.fullmatch(r"[0-9a-f]{32}", headers["x-request-id"])
    https = empty_world.client(base_url="https://testserver").get(f"{API}/health")
    assert https.headers["strict-transport-security"].startswith("max-age=")


def test_hsts_and_secure_cookies_when_configured_for_tls(empty_world: ApiWorld) -> None:
    client = TestClient(empty_world.app_with(ApiSettings(https=True)))
    assert "strict-transport-security" in client.get(f"{API}/health").headers
    response = login(client, empty_world.usernames["researcher"])
    cookies = response.headers.get_list("set-cookie")
    session = next(c for c in cookies if c.startswith("massalia_session="))
    assert "Secure" in session and "HttpOnly" in session and "samesite=strict" in session.lower()


def test_no_docs_page_from_a_cdn(empty_world: ApiWorld) -> None:
    client = empty_world.client()
    for path in ("/docs", "/redoc", f"{API}/docs"):
        assert client.get(path).status_code == 404
    document = client.get(f"{API}/openapi.json")
    assert document.status_code == 200
    assert "cdn" not in document.text.lower()
    assert document.json()["paths"][f"{API}/cohorts/count"]["post"]["x-massalia-action"] == "health.cohort.count"


def login(client: TestClient, username: str, password: str = PASSWORD, **headers: str):
    return client.post(f"{API}/auth/login", json={"username": username, "password": password}, headers=headers)


def test_cookie_session_and_csrf(empty_world: ApiWorld) -> None:
    client = empty_world.client()
    response = login(client, empty_world.usernames["researcher"])
    assert response.status_code == 200, response.text
    csrf = response.json()["csrf_token"]
    assert client.cookies.get("massalia_csrf") == csrf
    assert "HttpOnly" in next(c for c in response.headers.get_list("set-cookie") if c.startswith("massalia_session="))
    assert client.get(f"{API}/auth/whoami").json()["subject"] == empty_world.usernames["researcher"]
    assert client.get(f"{API}/projects").status_code == 200  # safe methods need no token

    body = {"title": "Csrf", "purpose": "Checking the CSRF protection.", "expires": "2099-01-01"}
    assert_error_shape(client.post(f"{API}/projects", json=body), 403, "csrf_failed")
    assert_error_shape(
        client.post(f"{API}/projects", json=body, headers={"X-CSRF-Token": "forged"}), 403, "csrf_failed"
    )
    cross = client.post(f"{API}/projects", json=body, headers={"X-CSRF-Token": csrf, "Origin": "https://evil.example"})
    assert_error_shape(cross, 403, "csrf_failed")
    ok = client.post(f"{API}/projects", json=body, headers={"X-CSRF-Token": csrf, "Origin": "http://testserver"})
    assert ok.status_code == 201, ok.text

    # Bearer-token calls are exempt (a browser never attaches them by itself).
    bearer = empty_world.client("researcher")
    assert bearer.post(f"{API}/projects", json=body, headers={"Origin": "https://evil.example"}).status_code == 201

    # A login posted from another site is refused before any password is checked.
    other = empty_world.client()
    assert_error_shape(login(other, empty_world.usernames["dpo"], Origin="https://evil.example"), 403, "csrf_failed")

    # Logout needs the token too, then the session is gone.
    assert_error_shape(client.post(f"{API}/auth/logout"), 403, "csrf_failed")
    assert client.post(f"{API}/auth/logout", headers={"X-CSRF-Token": csrf}).status_code == 204
    client.cookies.clear()
    assert client.get(f"{API}/auth/whoami").json()["subject"] == "anonymous"


def test_ended_session_cookie_is_worthless(empty_world: ApiWorld) -> None:
    client = empty_world.client()
    response = login(client, empty_world.usernames["dpo"])
    cookie = client.cookies.get("massalia_session")
    client.post(f"{API}/auth/logout", headers={"X-CSRF-Token": response.json()["csrf_token"]})
    replay = empty_world.client()
    replay.cookies.set("massalia_session", cookie)
    assert replay.get(f"{API}/auth/whoami").json()["subject"] == "anonymous"
    assert replay.get(f"{API}/requests").status_code == 401


def test_bad_bearer_tokens(empty_world: ApiWorld) -> None:
    for header in ("Bearer nonsense", "Basic dXNlcjpwYXNz", "Bearer ", "token"):
        response = TestClient(empty_world.app).get(f"{API}/auth/whoami", headers={"Authorization": header})
        assert_error_shape(response, 401, "unauthenticated")
        assert response.headers["www-authenticate"] == "Bearer"


def test_tokens_created_over_http_work_and_can_be_revoked(empty_world: ApiWorld) -> None:
    researcher = empty_world.client("researcher")
    created = researcher.post(f"{API}/auth/tokens", json={"scopes": ["project.list"], "expires_in_days": 2})
    assert created.status_code == 201, created.text
    token = created.json()["token"]
    scoped = TestClient(empty_world.app, headers={"Authorization": f"Bearer {token}"})
    assert scoped.get(f"{API}/projects").status_code == 200
    assert scoped.get(f"{API}/requests").status_code == 403  # outside the token's scopes
    listed = researcher.get(f"{API}/auth/tokens").json()["items"]
    mine = [t for t in listed if t["scopes"] == ["project.list"]]
    assert len(mine) == 1 and token not in str(listed)
    assert researcher.delete(f"{API}/auth/tokens/{mine[0]['id']}").status_code == 204
    assert scoped.get(f"{API}/projects").status_code == 401


def test_login_rate_limit_per_username_and_per_address(empty_world: ApiWorld) -> None:
    world = empty_world
    app = world.app_with(ApiSettings(login_max_failures=5, login_window=60.0))
    now = [1000.0]
    app.state.massalia.login_limiter = login_limiter(5, 60.0, clock=lambda: now[0])
    victim = world.usernames["researcher"]
    attacker = TestClient(app)
    for attempt in range(5):
        assert login(attacker, victim, "wrong password " * 2).status_code == 401, attempt
    blocked = login(attacker, victim, PASSWORD)  # even the right password: the name is locked for now
    error = assert_error_shape(blocked, 429, "rate_limited")
    assert int(blocked.headers["retry-after"]) == 60
    assert "60" in error["message"]
    now[0] += 30
    assert int(login(attacker, victim, PASSWORD).headers["retry-after"]) == 30
    now[0] += 30.5  # the window has passed: the right password works again and clears the name
    assert login(attacker, victim, PASSWORD).status_code == 200
    attacker.cookies.clear()  # signed in now: a further login would need the session's CSRF token
    # Per address: spraying many names from one client address is stopped too, at a looser bound (50).
    for attempt in range(50):
        assert login(attacker, f"nobody{attempt}", "wrong password " * 2).status_code == 401
    assert login(attacker, world.usernames["dpo"], PASSWORD).status_code == 429


def test_failure_limiter_measured() -> None:
    now = [0.0]
    limiter = FailureLimiter(3, 10.0, clock=lambda: now[0])
    for second in range(3):
        now[0] = float(second)
        assert limiter.retry_after("k") == 0
        limiter.fail("k")
    assert limiter.retry_after("k") == 8  # the first failure (t=0) leaves the window at t=10
    now[0] = 10.0
    assert limiter.retry_after("k") == 0  # t=0 expired: two failures left in the window
    limiter.fail("k")
    assert limiter.retry_after("k") == 1  # the failure at t=1 leaves at t=11
    limiter.clear("k")
    assert limiter.retry_after("k") == 0
    with pytest.raises(ValueError, match="max_failures"):
        FailureLimiter(0, 1.0)


def test_cors_closed_by_default(empty_world: ApiWorld) -> None:
    client = empty_world.client()
    simple = client.get(f"{API}/health", headers={"Origin": "https://portal.example.org"})
    assert "access-control-allow-origin" not in simple.headers
    preflight = client.options(f"{API}/projects", headers={
        "Origin": "https://portal.example.org", "Access-Control-Request-Method": "POST"})  # fmt: skip
    assert "access-control-allow-origin" not in preflight.headers
    assert preflight.status_code == 405


def test_cors_allow_list(empty_world: ApiWorld) -> None:
    world = empty_world
    client = TestClient(world.app_with(ApiSettings(cors_origins=("https://portal.example.org",))))
    allowed = client.options(f"{API}/projects", headers={
        "Origin": "https://portal.example.org", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type,x-csrf-token"})  # fmt: skip
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "https://portal.example.org"
    assert allowed.headers["access-control-allow-credentials"] == "true"
    refused = client.options(f"{API}/projects", headers={
        "Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})  # fmt: skip
    assert refused.headers.get("access-control-allow-origin") != "https://evil.example"
    simple = client.get(f"{API}/health", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in simple.headers
    # An allow-listed origin may also post with a cookie session and its CSRF token.
    response = login(client, world.usernames["dpo"], Origin="https://portal.example.org")
    assert response.status_code == 200


def test_settings_refuse_bad_values() -> None:
    with pytest.raises(SettingsError, match="not an origin"):
        ApiSettings(cors_origins=("portal.example.org",))
    with pytest.raises(SettingsError, match="MASSALIA_API_HTTPS"):
        ApiSettings.from_env({"MASSALIA_API_HTTPS": "maybe"})
    with pytest.raises(SettingsError, match="MASSALIA_API_SESSION_TTL"):
        ApiSettings.from_env({"MASSALIA_API_SESSION_TTL": "forever"})
    settings = ApiSettings.from_env({"MASSALIA_API_CORS_ORIGINS": "https://A.example.org/, http://b.example:8080"})
    assert settings.cors_origins == ("https://a.example.org", "http://b.example:8080")


def test_pagination(empty_world: ApiWorld) -> None:
    admin = empty_world.client("admin")
    for n in range(7):
        created = admin.post(f"{API}/projects", json={
            "title": f"Paged {n}", "purpose": "Projects to page through.", "expires": "2099-01-01"})  # fmt: skip
        assert created.status_code == 201, created.text
    everything = admin.get(f"{API}/projects", params={"limit": 500}).json()
    total = everything["total"]
    assert total == len(everything["items"]) >= 9 and everything["next"] is None
    seen, cursor = [], None
    while True:
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = admin.get(f"{API}/projects", params=params).json()
        assert len(page["items"]) <= 2 and page["total"] == total
        seen += [p["id"] for p in page["items"]]
        cursor = page["next"]
        if cursor is None:
            break
    assert seen == [p["id"] for p in everything["items"]]
    for bad in ({"limit": 0}, {"limit": 501}, {"limit": "x"}, {"cursor": "not-a-cursor"}, {"cursor": "b286LTE"}):
        assert_error_shape(admin.get(f"{API}/projects", params=bad), 422, "invalid_request")
    assert decode_cursor(encode_cursor(0)) == 0 and decode_cursor(None) == 0


def test_docs_list_every_route(empty_world: ApiWorld) -> None:
    from massalia.api import route_table

    docs = (Path(__file__).resolve().parents[2] / "docs" / "api.md").read_text(encoding="utf-8")
    missing = [f"{r.method} {r.path}" for r in route_table(empty_world.app) if f"`{r.method} {r.path}`" not in docs]
    assert not missing, f"docs/api.md does not list: {missing}"


def test_request_body_size_is_limited(empty_world: ApiWorld) -> None:
    client = TestClient(empty_world.app_with(ApiSettings(max_body_bytes=4096)))
    client.headers["Authorization"] = f"Bearer {empty_world.tokens['researcher']}"
    big = {"definition": {"title": "x" * 10_000}}
    assert_error_shape(client.post(f"{API}/cohorts/validate", json=big), 413, "payload_too_large")

    def stream() -> Iterator[bytes]:  # no Content-Length: the received bytes are counted
        yield b'{"definition": {"title": "'
        for _ in range(20):
            yield b"y" * 1000
        yield b'"}}'

    streamed = client.post(f"{API}/cohorts/validate", content=stream(), headers={"content-type": "application/json"})
    assert_error_shape(streamed, 413, "payload_too_large")
    small = client.post(f"{API}/cohorts/validate", json={"definition": {"title": "small"}})
    assert small.status_code != 413


def test_a_warehouse_locked_by_another_process_is_a_503(empty_world: ApiWorld) -> None:
    import subprocess
    import sys

    holder = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys; c = duckdb.connect(sys.argv[1]); print('locked', flush=True); "
         "sys.stdin.read()", str(empty_world.home.warehouse)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        body = {"definition": {"primary_criteria": {"criteria_list": [{"kind": "Death"}]}}}
        response = empty_world.client("researcher").post(f"{API}/cohorts/count", json=body)
        error = assert_error_shape(response, 503, "unavailable")
        assert "busy" in error["message"] and response.headers["retry-after"] == "5"
    finally:
        holder.communicate("", timeout=30)
