"""OpenID Connect login against a real provider (panva's OpenID-certified ``oidc-provider``, run by Node).

The session fixture starts ``oidc_provider/server.js`` on 127.0.0.1 and stops it. A small HTTP
"browser" (httpx with a cookie jar) follows the provider's redirects and fills its login and consent
forms; nothing in the flow is mocked. Refusals are checked on real tokens: a flipped signature byte,
a token minted for another client, a wrong nonce, a replayed or mismatched state, a clock past ``exp``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import shutil
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, replace
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from massalia.governance import Governance, Role
from massalia.governance.oidc import (
    LoginState,
    OidcClient,
    OidcConfigError,
    OidcError,
    OidcIdentity,
    OidcSettings,
    parse_role_map,
    pkce_challenge,
    settings_from_env,
    sign_in,
)

PROVIDER_DIR = Path(__file__).parent / "oidc_provider"
# Never contacted: the browser stops at the redirect to it, as a real one would hand it to Massalia.
REDIRECT_URI = "http://127.0.0.1:9/auth/oidc/callback"
# Characters that RFC 6749 §2.3.1 requires to be form-encoded inside HTTP Basic credentials.
PORTAL_SECRET = "portal:secret/with+odd%chars-0123456789abcdef"  # noqa: S105 (a throwaway test client's secret)
CLIENTS = [
    {"client_id": "massalia-portal", "client_secret": PORTAL_SECRET, "redirect_uris": [REDIRECT_URI]},
    {
        "client_id": "massalia-post",
        "client_secret": "post-secret-0123456789abcdef0123456789",
        "redirect_uris": [REDIRECT_URI],
        "token_endpoint_auth_method": "client_secret_post",
    },
    {"client_id": "another-app", "client_secret": "another-secret-0123456789abcdef01", "redirect_uris": [REDIRECT_URI]},
]
USERS = [
    {"sub": "a1b2-alice", "login": "alice", "password": "correct horse battery staple", "email": "alice@chu.test",
     "name": "Alice Martin", "groups": ["oncology-research", "staff"]},
    {"sub": "d4e5-dora", "login": "dora", "password": "dora's passphrase", "email": "dora@chu.test",
     "name": "Dora Petit", "groups": ["dpo-office"]},
    {"sub": "c3-carl", "login": "carl", "password": "carl's passphrase", "email": "carl@chu.test",
     "name": "Carl Roux", "groups": []},
]  # fmt: skip
ROLE_MAP = "oncology-research=researcher;dpo-office=dpo,researcher"


@dataclass(frozen=True)
class RunningProvider:
    issuer: str


def unavailable(config: pytest.Config, reason: str) -> NoReturn:
    """The suite's ``unavailable`` (skip locally, fail in CI), from the root conftest.

    It is looked up among pytest's plugins: ``tests/governance/conftest.py`` shadows the module name
    ``conftest``, so ``from conftest import unavailable`` would find the wrong file.
    """
    root = config.pluginmanager.get_plugin(str(Path(__file__).resolve().parents[1] / "conftest.py"))
    if root is None:
        raise RuntimeError("tests/conftest.py is not loaded: run pytest from the repository")
    root.unavailable(reason)
    raise AssertionError("unreachable")  # unavailable() always raises


MIN_NODE = (20, 12)  # oidc-provider 9 calls crypto.hash()


def _node(config: pytest.Config) -> str:
    """Node.js for the provider: the one scripts/test installs when the system's is too old, else the system's."""
    runtime = PROVIDER_DIR / "runtime" / "node_modules" / ".bin" / "node"
    found = [str(path) for path in (runtime if runtime.exists() else None, shutil.which("node")) if path]
    if not found:
        unavailable(config, "Node.js is not installed (bash scripts/install-system installs it)")
    version = subprocess.run(
        [found[0], "-p", "process.versions.node"], capture_output=True, text=True, check=True, timeout=30
    ).stdout.strip()
    if tuple(int(part) for part in version.split(".")[:2]) < MIN_NODE:
        unavailable(config, f"Node.js {version} at {found[0]} is older than 20.12 (bash scripts/test installs Node 22)")
    return found[0]


@pytest.fixture(scope="session")
def oidc_provider(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningProvider]:
    """Start the OpenID Connect provider on a free 127.0.0.1 port for the session; stop it after."""
    node = _node(request.config)
    if not (PROVIDER_DIR / "node_modules" / "oidc-provider").is_dir():
        unavailable(
            request.config,
            f"the oidc-provider package is not installed: npm ci --prefix {PROVIDER_DIR} (scripts/test does)",
        )
    folder = tmp_path_factory.mktemp("oidc-provider")
    config = folder / "config.json"
    config.write_text(json.dumps({"port": 0, "clients": CLIENTS, "users": USERS}))
    log = (folder / "provider.log").open("wb")
    process = subprocess.Popen(
        [node, "server.js", str(config)], cwd=PROVIDER_DIR, stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL
    )
    first_line: list[bytes] = []
    reader = threading.Thread(target=lambda: first_line.append(process.stdout.readline()), daemon=True)  # type: ignore[union-attr]
    reader.start()
    reader.join(timeout=120)  # node loads oidc-provider in ~1 s, but a loaded 2-core machine once took over 30 s
    try:
        if not first_line or not first_line[0]:
            process.kill()
            process.wait(timeout=10)
            log.close()
            raise RuntimeError(
                f"the OIDC provider did not start: {(folder / 'provider.log').read_text(errors='replace')[-2000:]}"
            )
        yield RunningProvider(issuer=json.loads(first_line[0])["issuer"])
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()
        log.close()


def settings_for(provider: RunningProvider, client_id: str = "massalia-portal", **changes: Any) -> OidcSettings:
    client = next(c for c in CLIENTS if c["client_id"] == client_id)
    base = OidcSettings(
        issuer=provider.issuer,
        client_id=client_id,
        client_secret=client["client_secret"],
        redirect_uri=REDIRECT_URI,
        scopes=("openid", "email", "profile", "groups"),
        role_map=parse_role_map(ROLE_MAP),
        token_auth_method=client.get("token_endpoint_auth_method", "client_secret_basic"),
        leeway_s=30,
    )
    return replace(base, **changes)


@pytest.fixture
def client(oidc_provider: RunningProvider) -> Iterator[OidcClient]:
    with OidcClient(settings_for(oidc_provider)) as rp:
        yield rp


# -- a minimal browser: follows redirects, fills the provider's forms -------------------------------
class _Forms(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict[str, Any]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "form":
            self.forms.append({"action": values.get("action") or "", "fields": {}, "buttons": []})
        elif tag == "input" and self.forms and values.get("name"):
            self.forms[-1]["fields"][values["name"]] = values.get("value") or ""
        elif tag == "button" and self.forms:
            self.forms[-1]["buttons"].append(values)


def _forms(html: str) -> list[dict[str, Any]]:
    parser = _Forms()
    parser.feed(html)
    return parser.forms


def browse(
    authorization_url: str, login: str, password: str, *, consent: bool = True, browser: httpx.Client | None = None
) -> dict[str, str]:
    """Drive the provider like a person at a browser; the query parameters of the callback redirect."""
    own = browser is None
    browser = browser or httpx.Client(follow_redirects=False, timeout=10)
    try:
        response = browser.get(authorization_url)
        for _ in range(12):
            if response.is_redirect:
                target = urljoin(str(response.url), response.headers["location"])
                if target.startswith(REDIRECT_URI):
                    return {key: values[0] for key, values in parse_qs(urlsplit(target).query).items()}
                response = browser.get(target)
                continue
            assert response.status_code == 200, f"provider page {response.url} answered {response.status_code}"
            forms = _forms(response.text)
            login_form = next((form for form in forms if "password" in form["fields"]), None)
            if login_form is not None:
                fields = {**login_form["fields"], "login": login, "password": password}
                response = browser.post(urljoin(str(response.url), login_form["action"]), data=fields)
                if response.status_code == 401:
                    raise PermissionError(f"the provider refused the password of {login!r}")
                continue
            wanted = "/confirm" if consent else "/abort"
            form = next(form for form in forms if form["action"].endswith(wanted))
            response = browser.post(urljoin(str(response.url), form["action"]), data=form["fields"])
        raise AssertionError("the provider never redirected back to the callback")
    finally:
        if own:
            browser.close()


def exchanged_tokens(client: OidcClient, login: str = "alice") -> tuple[dict[str, Any], LoginState]:
    """A real code exchange for ``login``: the token endpoint's answer and the login state it belongs to."""
    url, state = client.begin_login()
    password = next(user["password"] for user in USERS if user["login"] == login)
    callback = browse(url, login, password)
    return client.exchange_code(callback["code"], state.code_verifier), state


# -- the whole login ------------------------------------------------------------------------------
def test_full_login_maps_groups_to_roles_and_records_the_account(
    client: OidcClient, oidc_provider: RunningProvider, massalia_home: Path
) -> None:
    url, state = client.begin_login()
    query = parse_qs(urlsplit(url).query)
    assert url.startswith(f"{oidc_provider.issuer}/auth?")
    assert query["code_challenge_method"] == ["S256"]
    assert query["code_challenge"] == [pkce_challenge(state.code_verifier)]
    assert query["state"] == [state.state] and query["nonce"] == [state.nonce]
    assert query["scope"] == ["openid email profile groups"]

    callback = browse(url, "alice", "correct horse battery staple")
    assert callback["iss"] == oidc_provider.issuer  # RFC 9207, checked by complete_login
    identity = client.complete_login(callback, state)
    # email, name and groups come from the userinfo endpoint (the provider puts only sub in the ID token).
    assert identity == OidcIdentity(
        oidc_provider.issuer, "a1b2-alice", "alice@chu.test", "Alice Martin", ("oncology-research", "staff")
    )

    from massalia.config import home

    with Governance.from_home(home()) as gov:
        principal = sign_in(gov, client, identity)
        assert principal.auth == "oidc"
        assert principal.roles == frozenset({Role.RESEARCHER})
        assert principal.subject == "alice"
        # A second login by the same person (same issuer + sub) is the same local account.
        url2, state2 = client.begin_login()
        again = sign_in(
            gov, client, client.complete_login(browse(url2, "alice", "correct horse battery staple"), state2)
        )
        assert (again.user_id, again.subject) == (principal.user_id, principal.subject)
    ledger = (massalia_home / "ledger").rglob("*")
    assert any(b"auth.oidc_login" in path.read_bytes() for path in ledger if path.is_file())


def test_client_secret_post_and_several_groups(oidc_provider: RunningProvider, massalia_home: Path) -> None:
    with OidcClient(settings_for(oidc_provider, "massalia-post")) as rp:
        url, state = rp.begin_login()
        identity = rp.complete_login(browse(url, "dora", "dora's passphrase"), state)
        assert identity.groups == ("dpo-office",)
        assert rp.roles_for(identity) == frozenset({Role.DPO, Role.RESEARCHER})


def test_person_without_mapped_group_gets_the_default_role_or_is_refused(
    oidc_provider: RunningProvider, client: OidcClient
) -> None:
    url, state = client.begin_login()
    carl = client.complete_login(browse(url, "carl", "carl's passphrase"), state)
    assert carl.groups == ()
    assert client.roles_for(carl) == frozenset({Role.PUBLIC})
    strict = OidcClient(settings_for(oidc_provider, default_roles=frozenset()))
    with strict, pytest.raises(OidcError, match=r"no Massalia role for 'c3-carl'.*MASSALIA_OIDC_DEFAULT_ROLE"):
        strict.roles_for(carl)


def test_the_provider_checks_the_password(client: OidcClient) -> None:
    url, _ = client.begin_login()
    with pytest.raises(PermissionError, match="refused the password"):
        browse(url, "alice", "wrong password")


def test_consent_refused_at_the_provider(client: OidcClient) -> None:
    url, state = client.begin_login()
    callback = browse(url, "alice", "correct horse battery staple", consent=False)
    assert callback["error"] == "access_denied"
    with pytest.raises(OidcError, match="provider refused the login: access_denied"):
        client.complete_login(callback, state)


# -- refusals -------------------------------------------------------------------------------------
def test_mismatched_state_is_refused_before_the_code_is_spent(client: OidcClient) -> None:
    url, state = client.begin_login()
    callback = browse(url, "alice", "correct horse battery staple")
    with pytest.raises(OidcError, match="state does not match"):
        client.complete_login({**callback, "state": "forged-" + callback["state"]}, state)
    _, other_state = client.begin_login()
    with pytest.raises(OidcError, match="state does not match"):
        client.complete_login(callback, other_state)
    # Nothing was exchanged: the genuine callback still completes.
    assert client.complete_login(callback, state).subject == "a1b2-alice"


def test_replayed_callback_is_refused_by_the_client_and_by_the_provider(
    oidc_provider: RunningProvider, client: OidcClient
) -> None:
    url, state = client.begin_login()
    callback = browse(url, "alice", "correct horse battery staple")
    client.complete_login(callback, state)
    with pytest.raises(OidcError, match="already used"):
        client.complete_login(callback, state)
    # Another process (which never saw the state used) replays it: the provider refuses the spent code.
    with OidcClient(settings_for(oidc_provider)) as elsewhere, pytest.raises(OidcError, match="invalid_grant"):
        elsewhere.complete_login(callback, state)


def test_stale_login_state_is_refused(oidc_provider: RunningProvider) -> None:
    now = [1_000_000.0]
    with OidcClient(settings_for(oidc_provider, login_timeout_s=600), clock=lambda: now[0]) as rp:
        _, state = rp.begin_login()
        now[0] += 601
        with pytest.raises(OidcError, match="login state expired"):
            rp.complete_login({"state": state.state, "code": "unused", "iss": oidc_provider.issuer}, state)


def test_wrong_nonce_is_refused(client: OidcClient) -> None:
    url, state = client.begin_login()
    callback = browse(url, "alice", "correct horse battery staple")
    with pytest.raises(OidcError, match="nonce does not match"):
        client.complete_login(callback, replace(state, nonce="another-login's-nonce"))


def test_tampered_id_token_signature_is_refused(client: OidcClient) -> None:
    tokens, state = exchanged_tokens(client)
    id_token = tokens["id_token"]
    assert client.validate_id_token(id_token, nonce=state.nonce)["sub"]
    header, payload, signature = id_token.split(".")
    raw = bytearray(base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)))
    raw[len(raw) // 2] ^= 0x01
    flipped = base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()
    with pytest.raises(OidcError, match="signature does not verify"):
        client.validate_id_token(f"{header}.{payload}.{flipped}", nonce=state.nonce)
    # A changed claim under the original signature fails the same way.
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    forged = _b64(json.dumps({**claims, "sub": "someone-else"}).encode())
    with pytest.raises(OidcError, match="signature does not verify"):
        client.validate_id_token(f"{header}.{forged}.{signature}", nonce=state.nonce)


def test_token_for_another_client_is_refused(oidc_provider: RunningProvider, client: OidcClient) -> None:
    with OidcClient(settings_for(oidc_provider, "another-app")) as other:
        tokens, state = exchanged_tokens(other)
        assert other.validate_id_token(tokens["id_token"], nonce=state.nonce)["aud"] == "another-app"
    with pytest.raises(OidcError, match="audience 'another-app' does not include this client 'massalia-portal'"):
        client.validate_id_token(tokens["id_token"], nonce=state.nonce)


def test_expired_id_token_is_refused(oidc_provider: RunningProvider, client: OidcClient) -> None:
    tokens, state = exchanged_tokens(client)
    exp = client.validate_id_token(tokens["id_token"], nonce=state.nonce)["exp"]
    # The same genuine token read by a relying party whose clock is past exp + leeway.
    expired = pytest.raises(OidcError, match=r"ID token expired 31 s ago \(leeway 30 s\)")
    with OidcClient(settings_for(oidc_provider), clock=lambda: exp + 31) as later, expired:
        later.validate_id_token(tokens["id_token"], nonce=state.nonce)
    with OidcClient(settings_for(oidc_provider), clock=lambda: exp + 29) as within_leeway:
        assert within_leeway.validate_id_token(tokens["id_token"], nonce=state.nonce)["sub"] == "a1b2-alice"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_unsigned_and_symmetric_tokens_are_refused(client: OidcClient) -> None:
    tokens, state = exchanged_tokens(client)
    header, payload, _ = tokens["id_token"].split(".")
    kid = json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))["kid"]
    with pytest.raises(OidcError, match="algorithm 'none' is not accepted"):
        client.validate_id_token(f"{_b64(json.dumps({'alg': 'none'}).encode())}.{payload}.", nonce=state.nonce)
    # The key-confusion attack: HS256 keyed with the provider's *public* key, which anyone can read.
    jwks = httpx.get(client.metadata()["jwks_uri"]).json()
    public = json.dumps(jwks["keys"][0], sort_keys=True).encode()
    hs_header = _b64(json.dumps({"alg": "HS256", "kid": kid}).encode())
    mac = hmac.new(public, f"{hs_header}.{payload}".encode(), hashlib.sha256).digest()
    with pytest.raises(OidcError, match="algorithm 'HS256' is not accepted"):
        client.validate_id_token(f"{hs_header}.{payload}.{_b64(mac)}", nonce=state.nonce)
    with pytest.raises(OidcError, match="not a signed JWT"):
        client.validate_id_token("not-a-jwt", nonce=state.nonce)


def test_discovery_must_name_the_configured_issuer(oidc_provider: RunningProvider) -> None:
    aliased = oidc_provider.issuer.replace("127.0.0.1", "localhost")
    with OidcClient(settings_for(oidc_provider, issuer=aliased)) as rp, pytest.raises(OidcError, match="issuer"):
        rp.begin_login()


def test_callback_from_another_issuer_is_refused(oidc_provider: RunningProvider, client: OidcClient) -> None:
    url, state = client.begin_login()
    callback = browse(url, "alice", "correct horse battery staple")
    with pytest.raises(OidcError, match="callback iss"):
        client.complete_login({**callback, "iss": "https://evil.example"}, state)


# -- settings -------------------------------------------------------------------------------------
ENV = {
    "MASSALIA_OIDC_ISSUER": "https://idp.chu.test/realms/staff/",
    "MASSALIA_OIDC_CLIENT_ID": "massalia",
    "MASSALIA_OIDC_CLIENT_SECRET": "s3cret",
    "MASSALIA_OIDC_REDIRECT_URI": "https://portal.chu.test/auth/oidc/callback",
}


def test_settings_from_environment() -> None:
    assert settings_from_env({}) is None
    settings = settings_from_env(
        {**ENV, "MASSALIA_OIDC_ROLE_MAP": "cn=onco,ou=groups=researcher,clinician; dpo=dpo",
         "MASSALIA_OIDC_SCOPES": "openid email groups", "MASSALIA_OIDC_GROUPS_CLAIM": "realm_access.roles",
         "MASSALIA_OIDC_TOKEN_AUTH_METHOD": "client_secret_post", "MASSALIA_OIDC_LEEWAY_S": "10"}
    )  # fmt: skip
    assert settings is not None
    assert settings.issuer == "https://idp.chu.test/realms/staff"
    assert settings.role_map == {"cn=onco,ou=groups": {Role.RESEARCHER, Role.CLINICIAN}, "dpo": {Role.DPO}}
    assert settings.default_roles == {Role.PUBLIC}
    assert (settings.token_auth_method, settings.leeway_s) == ("client_secret_post", 10)
    rp = OidcClient(settings)
    with rp:
        claims = {"sub": "x", "realm_access": {"roles": ["dpo", "other"]}}
        assert rp.roles_for(rp.identity(claims)) == {Role.DPO}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"MASSALIA_OIDC_CLIENT_SECRET": ""}, "MASSALIA_OIDC_CLIENT_SECRET is missing"),
        ({"MASSALIA_OIDC_ISSUER": "http://idp.chu.test"}, "MASSALIA_OIDC_ISSUER must be an https:// URL"),
        ({"MASSALIA_OIDC_REDIRECT_URI": "http://portal.chu.test/cb"}, "MASSALIA_OIDC_REDIRECT_URI must be an https"),
        ({"MASSALIA_OIDC_ROLE_MAP": "onco=surgeon"}, "unknown role 'surgeon'"),
        ({"MASSALIA_OIDC_ROLE_MAP": "onco"}, "is not 'group=role"),
        ({"MASSALIA_OIDC_DEFAULT_ROLE": "root"}, "MASSALIA_OIDC_DEFAULT_ROLE: unknown role 'root'"),
        ({"MASSALIA_OIDC_SCOPES": "email profile"}, "must include 'openid'"),
        ({"MASSALIA_OIDC_TOKEN_AUTH_METHOD": "private_key_jwt"}, "TOKEN_AUTH_METHOD must be one of"),
        ({"MASSALIA_OIDC_LEEWAY_S": "ten"}, "LEEWAY_S must be an integer"),
        ({"MASSALIA_OIDC_LEEWAY_S": "3600"}, "LEEWAY_S must be between 0 and 300"),
    ],
)
def test_bad_settings_name_the_variable(change: dict[str, str], message: str) -> None:
    with pytest.raises(OidcConfigError, match=message):
        settings_from_env({**ENV, **change})


def test_symmetric_algorithms_cannot_be_configured() -> None:
    with pytest.raises(OidcConfigError, match="HS256"):
        OidcSettings("https://idp.chu.test", "c", "s", "https://p.chu.test/cb", algorithms=("RS256", "HS256"))


def test_login_state_round_trips_and_rejects_garbage() -> None:
    state = LoginState("s", "n", "v", 12.5)
    assert LoginState.from_dict(json.loads(json.dumps(state.to_dict()))) == state
    with pytest.raises(OidcError, match="malformed OIDC login state"):
        LoginState.from_dict({"state": "s"})


_group_names = st.text(
    alphabet=st.characters(blacklist_characters=";\n\r", blacklist_categories=("Cs",)), min_size=1, max_size=30
).filter(lambda name: name == name.strip() and name != "")


@given(st.dictionaries(_group_names, st.sets(st.sampled_from(list(Role)), min_size=1), max_size=6))
def test_role_map_round_trips(mapping: dict[str, set[Role]]) -> None:
    text = ";".join(f"{group}={','.join(sorted(roles))}" for group, roles in mapping.items())
    assert parse_role_map(text) == {group: frozenset(roles) for group, roles in mapping.items()}
