"""OpenID Connect sign-in over HTTP against the real provider of the governance tests (oidc-provider on Node).

The provider fixture and its scripted browser are the governance suite's own (``tests/governance/
test_oidc.py``), loaded from their file: one provider set-up for both suites.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from api_world import ApiWorld
from fastapi.testclient import TestClient

from massalia.api import ApiSettings
from massalia.governance.oidc import OidcClient

_spec = importlib.util.spec_from_file_location(
    "massalia_governance_oidc_suite", Path(__file__).resolve().parents[1] / "governance" / "test_oidc.py"
)
assert _spec is not None and _spec.loader is not None
_suite = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = _suite  # dataclasses look their module up while the file runs
_spec.loader.exec_module(_suite)
oidc_provider = _suite.oidc_provider  # the session fixture (skips locally, fails in CI, without Node)

API = "/api/v1"


def test_oidc_login_over_http(oidc_provider: object, empty_world: ApiWorld) -> None:
    app = empty_world.app_with(ApiSettings())
    app.state.massalia.oidc = OidcClient(_suite.settings_for(oidc_provider))
    try:
        browser = TestClient(app)
        start = browser.get(f"{API}/auth/oidc/login", follow_redirects=False)
        assert start.status_code == 302
        assert start.headers["location"].startswith(oidc_provider.issuer)
        binding = next(c for c in start.headers.get_list("set-cookie") if c.startswith("massalia_oidc_binding="))
        assert "HttpOnly" in binding and "samesite=lax" in binding.lower()
        callback = _suite.browse(start.headers["location"], "alice", "correct horse battery staple")

        # Login CSRF: the same callback brought by another browser (no binding cookie) is refused...
        elsewhere = TestClient(app).get(f"{API}/auth/oidc/callback", params=callback)
        assert elsewhere.status_code == 401 and elsewhere.json()["error"]["code"] == "unauthenticated"
        # ...without spending the state of the browser that started the login.
        signed_in = browser.get(f"{API}/auth/oidc/callback", params=callback)
        assert signed_in.status_code == 200, signed_in.text
        assert signed_in.json()["roles"] == ["researcher"] and signed_in.json()["auth"] == "oidc"
        me = browser.get(f"{API}/auth/whoami").json()
        assert (me["subject"], me["auth"]) == (signed_in.json()["subject"], "oidc")
        # The state is single use.
        assert browser.get(f"{API}/auth/oidc/callback", params=callback).status_code == 401
        # The session works for unsafe calls with its CSRF token, like a password session.
        body = {"title": "OIDC project", "purpose": "Made by a person signed in with OIDC.", "expires": "2099-01-01"}
        created = browser.post(f"{API}/projects", headers={"X-CSRF-Token": signed_in.json()["csrf_token"]}, json=body)
        assert created.status_code == 201, created.text
    finally:
        app.state.massalia.oidc.close()


def test_a_browser_coming_back_from_the_provider_lands_on_the_portal_signed_in(
    oidc_provider: object, empty_world: ApiWorld
) -> None:
    app = empty_world.app_with(ApiSettings())
    app.state.massalia.oidc = OidcClient(_suite.settings_for(oidc_provider))
    try:
        browser = TestClient(app, headers={"Accept": "text/html,application/xhtml+xml"})
        start = browser.get(f"{API}/auth/oidc/login", follow_redirects=False)
        callback = _suite.browse(start.headers["location"], "alice", "correct horse battery staple")
        back = browser.get(f"{API}/auth/oidc/callback", params=callback, follow_redirects=False)
        assert back.status_code == 303 and back.headers["location"] == "/", back.text
        cookies = " ".join(back.headers.get_list("set-cookie"))
        assert "massalia_session=" in cookies and "massalia_csrf=" in cookies and "massalia_oidc_binding=" in cookies
        me = browser.get(f"{API}/auth/whoami", headers={"Accept": "application/json"}).json()
        assert (me["roles"], me["auth"]) == (["researcher"], "oidc")
        # A refused callback is never a redirect: the browser sees the error, not a signed-out portal.
        again = browser.get(f"{API}/auth/oidc/callback", params=callback, follow_redirects=False)
        assert again.status_code == 401
    finally:
        app.state.massalia.oidc.close()


def test_oidc_routes_answer_404_when_not_configured(empty_world: ApiWorld) -> None:
    client = TestClient(empty_world.app)
    for path in ("/auth/oidc/login", "/auth/oidc/callback"):
        response = client.get(f"{API}{path}", follow_redirects=False)
        assert response.status_code == 404 and "MASSALIA_OIDC_ISSUER" in response.json()["error"]["message"]
