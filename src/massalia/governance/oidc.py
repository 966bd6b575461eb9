"""OpenID Connect login: Massalia as a relying party of an institution's identity provider.

The flow is the authorization-code flow with PKCE (``S256``), ``state`` and ``nonce``:

1. :meth:`OidcClient.begin_login` returns the provider's authorization URL and a :class:`LoginState`
   (state, nonce, PKCE verifier) that the web layer keeps server-side until the callback.
2. The provider signs the person in and redirects to ``MASSALIA_OIDC_REDIRECT_URI`` with a ``code``.
3. :meth:`OidcClient.complete_login` checks the callback against the kept state, exchanges the code
   (``client_secret_basic`` or ``client_secret_post``), validates the ID token (signature against the
   provider's JWKS with an allow-list of asymmetric algorithms, ``iss``, ``aud``/``azp``, ``exp``/``iat``
   with a small leeway, ``nonce``), reads the userinfo endpoint and returns an
   :class:`OidcIdentity`.
4. :func:`sign_in` maps the identity's groups to Massalia roles and records the local account through
   ``Governance.upsert_oidc_user``.

Every refusal raises :class:`OidcError` (an :class:`~massalia.governance.model.AuthenticationError`)
whose message says what failed; a bad configuration raises :class:`OidcConfigError` naming the setting.
Signatures are checked by joserfc; nothing here implements cryptography.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import os
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol
from urllib.parse import quote_plus, urlencode, urlsplit

import httpx
from joserfc import jws, jwt
from joserfc.errors import BadSignatureError, InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet

from massalia.governance.model import AuthenticationError, Principal, Role


class SignsInOidcUsers(Protocol):
    """The ``Governance`` methods :func:`sign_in` calls."""

    def upsert_oidc_user(
        self, issuer: str, subject: str, *, email: str | None, name: str | None, roles: frozenset[Role]
    ) -> Principal:
        """Create or update the local account of ``(issuer, subject)``; its principal."""
        ...

    def audit(self, principal: Principal, action: str, **detail: Any) -> int:
        """Append an entry to the audit ledger; its index."""
        ...


TokenAuthMethod = Literal["client_secret_basic", "client_secret_post"]
TOKEN_AUTH_METHODS: tuple[str, ...] = ("client_secret_basic", "client_secret_post")


def _token_auth_method(value: str) -> TokenAuthMethod:
    """``value`` as a token endpoint authentication method; ``OidcConfigError`` unless it is one."""
    # One comparison per literal: a type checker then knows the result is a TokenAuthMethod.
    if value == "client_secret_basic":
        return "client_secret_basic"
    if value == "client_secret_post":
        return "client_secret_post"
    raise OidcConfigError(
        f"MASSALIA_OIDC_TOKEN_AUTH_METHOD must be one of {', '.join(TOKEN_AUTH_METHODS)}, got {value!r}"
    )


# Asymmetric signatures only: "none" is never accepted, and HS* would let anyone holding the client
# secret (or, in the classic confusion attack, the provider's *public* key) forge an ID token.
DEFAULT_ALGORITHMS: tuple[str, ...] = (
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA", "Ed25519",
)  # fmt: skip
FORBIDDEN_ALGORITHMS = frozenset({"none", "HS256", "HS384", "HS512"})


class OidcError(AuthenticationError):
    """An OpenID Connect login was refused; the message says which check failed."""


class OidcConfigError(ValueError):
    """The OIDC settings are missing or invalid; the message names the setting."""


@dataclass(frozen=True)
class OidcIdentity:
    """A person as the identity provider vouches for them (from the validated ID token and userinfo).

    Examples
    --------
    >>> who = OidcIdentity("https://idp.example", "248289761001", "j@example.org", "Jane", ("onco",))
    >>> who.groups
    ('onco',)
    """

    issuer: str
    subject: str
    email: str | None
    name: str | None
    groups: tuple[str, ...] = ()


@dataclass(frozen=True)
class LoginState:
    """What must be kept, server-side, between :meth:`OidcClient.begin_login` and the callback.

    ``code_verifier`` is a secret: keep the whole state in the server's session store (or an encrypted
    cookie), never in a plain cookie or a URL.
    """

    state: str
    nonce: str
    code_verifier: str
    created_at: float

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict, for a session store."""
        return {"state": self.state, "nonce": self.nonce, "code_verifier": self.code_verifier,
                "created_at": self.created_at}  # fmt: skip

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LoginState:
        """The inverse of :meth:`to_dict`; raises :class:`OidcError` on a malformed value."""
        try:
            return cls(str(data["state"]), str(data["nonce"]), str(data["code_verifier"]), float(data["created_at"]))
        except (KeyError, TypeError, ValueError) as error:
            raise OidcError(f"malformed OIDC login state: {error!r}") from None


def _is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _require_https(url: str, what: str) -> None:
    """Refuse plain HTTP except on the loopback interface (development and tests)."""
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return
    if parts.scheme == "http" and _is_loopback(url):
        return
    raise OidcConfigError(f"{what} must be an https:// URL (http:// only on 127.0.0.1/localhost), got {url!r}")


def parse_role_map(text: str) -> dict[str, frozenset[Role]]:
    """Parse ``MASSALIA_OIDC_ROLE_MAP``: ``group=role[,role];group=role``.

    The group is everything before the *last* ``=``, so LDAP-style names (``cn=onco,ou=groups``) work.

    Examples
    --------
    >>> sorted(parse_role_map("cn=onco,ou=groups=researcher,clinician;dpo-office=dpo")["cn=onco,ou=groups"])
    [<Role.CLINICIAN: 'clinician'>, <Role.RESEARCHER: 'researcher'>]
    """
    mapping: dict[str, set[Role]] = {}
    for raw in text.replace("\n", ";").split(";"):
        item = raw.strip()
        if not item:
            continue
        group, sep, roles = item.rpartition("=")
        if not sep or not group.strip():
            raise OidcConfigError(f"MASSALIA_OIDC_ROLE_MAP: entry {item!r} is not 'group=role[,role]'")
        mapping.setdefault(group.strip(), set()).update(_roles(roles, f"MASSALIA_OIDC_ROLE_MAP entry {item!r}"))
    return {group: frozenset(roles) for group, roles in mapping.items()}


def _roles(text: str, where: str) -> set[Role]:
    out = set()
    for name in (part.strip() for part in text.split(",")):
        if not name:
            continue
        try:
            out.add(Role(name))
        except ValueError:
            raise OidcConfigError(f"{where}: unknown role {name!r} (roles: {', '.join(Role)})") from None
    return out


@dataclass(frozen=True)
class OidcSettings:
    """How Massalia talks to one OpenID Connect provider (see :func:`settings_from_env`).

    Parameters
    ----------
    issuer
        The provider's issuer URL; discovery is read from ``{issuer}/.well-known/openid-configuration``.
    client_id, client_secret
        Massalia's confidential client at the provider.
    redirect_uri
        The callback URL registered at the provider (``https://portal.example/auth/oidc/callback``).
    scopes
        Requested scopes; must include ``openid``.
    groups_claim
        The claim holding the person's groups (a name, or a dotted path such as ``realm_access.roles``).
    role_map
        Group → Massalia roles.
    default_roles
        Roles given when no group maps to one (empty: such a person is refused).
    token_auth_method
        ``client_secret_basic`` or ``client_secret_post``.
    leeway_s
        Clock skew tolerated on ``exp``/``iat``, in seconds.
    login_timeout_s
        How long a :class:`LoginState` stays usable.
    algorithms
        Accepted ID token signature algorithms (asymmetric only).
    ca_bundle
        A CA file for the provider's TLS certificate (an institution's own CA), else the system's.

    Examples
    --------
    >>> s = OidcSettings("https://idp.example", "massalia", "secret", "https://portal.example/cb")
    >>> s.scopes
    ('openid', 'email', 'profile')
    """

    issuer: str
    client_id: str
    client_secret: str
    redirect_uri: str
    scopes: tuple[str, ...] = ("openid", "email", "profile")
    groups_claim: str = "groups"
    role_map: Mapping[str, frozenset[Role]] = field(default_factory=dict)
    default_roles: frozenset[Role] = frozenset({Role.PUBLIC})
    token_auth_method: TokenAuthMethod = "client_secret_basic"  # noqa: S105 (a method's name, not a secret)
    leeway_s: int = 60
    login_timeout_s: int = 600
    algorithms: tuple[str, ...] = DEFAULT_ALGORITHMS
    ca_bundle: str | None = None

    def __post_init__(self) -> None:
        _require_https(self.issuer, "MASSALIA_OIDC_ISSUER")
        _require_https(self.redirect_uri, "MASSALIA_OIDC_REDIRECT_URI")
        object.__setattr__(self, "issuer", self.issuer.rstrip("/"))
        if not self.client_id:
            raise OidcConfigError("MASSALIA_OIDC_CLIENT_ID is empty")
        if not self.client_secret:
            raise OidcConfigError("MASSALIA_OIDC_CLIENT_SECRET is empty")
        if "openid" not in self.scopes:
            raise OidcConfigError(f"MASSALIA_OIDC_SCOPES must include 'openid', got {' '.join(self.scopes)!r}")
        _token_auth_method(self.token_auth_method)
        if not 0 <= self.leeway_s <= 300:
            raise OidcConfigError(f"MASSALIA_OIDC_LEEWAY_S must be between 0 and 300 seconds, got {self.leeway_s}")
        if self.login_timeout_s <= 0:
            raise OidcConfigError(f"OIDC login timeout must be positive, got {self.login_timeout_s}")
        refused = FORBIDDEN_ALGORITHMS.intersection(self.algorithms)
        if refused or not self.algorithms:
            raise OidcConfigError(f"ID token algorithms must be asymmetric and non-empty; refused: {sorted(refused)}")
        object.__setattr__(self, "default_roles", frozenset(Role(r) for r in self.default_roles))
        object.__setattr__(self, "role_map", {g: frozenset(Role(r) for r in rs) for g, rs in self.role_map.items()})


def settings_from_env(environ: Mapping[str, str] | None = None) -> OidcSettings | None:
    """Read :class:`OidcSettings` from the environment; ``None`` when ``MASSALIA_OIDC_ISSUER`` is unset.

    Examples
    --------
    >>> settings_from_env({}) is None
    True
    >>> env = {"MASSALIA_OIDC_ISSUER": "https://idp.example", "MASSALIA_OIDC_CLIENT_ID": "massalia",
    ...        "MASSALIA_OIDC_CLIENT_SECRET": "s", "MASSALIA_OIDC_REDIRECT_URI": "https://portal.example/cb",
    ...        "MASSALIA_OIDC_ROLE_MAP": "onco=researcher", "MASSALIA_OIDC_DEFAULT_ROLE": ""}
    >>> settings_from_env(env).default_roles
    frozenset()
    """
    env = os.environ if environ is None else environ
    issuer = env.get("MASSALIA_OIDC_ISSUER", "").strip()
    if not issuer:
        return None

    def required(name: str) -> str:
        value = env.get(name, "").strip()
        if not value:
            raise OidcConfigError(f"MASSALIA_OIDC_ISSUER is set but {name} is missing")
        return value

    def integer(name: str, default: int) -> int:
        raw = env.get(name, "").strip()
        try:
            return int(raw) if raw else default
        except ValueError:
            raise OidcConfigError(f"{name} must be an integer, got {raw!r}") from None

    return OidcSettings(
        issuer=issuer,
        client_id=required("MASSALIA_OIDC_CLIENT_ID"),
        client_secret=required("MASSALIA_OIDC_CLIENT_SECRET"),
        redirect_uri=required("MASSALIA_OIDC_REDIRECT_URI"),
        scopes=tuple(env.get("MASSALIA_OIDC_SCOPES", "openid email profile").split()),
        groups_claim=env.get("MASSALIA_OIDC_GROUPS_CLAIM", "").strip() or "groups",
        role_map=parse_role_map(env.get("MASSALIA_OIDC_ROLE_MAP", "")),
        default_roles=frozenset(_roles(env.get("MASSALIA_OIDC_DEFAULT_ROLE", "public"), "MASSALIA_OIDC_DEFAULT_ROLE")),
        token_auth_method=_token_auth_method(
            env.get("MASSALIA_OIDC_TOKEN_AUTH_METHOD", "").strip() or "client_secret_basic"
        ),
        leeway_s=integer("MASSALIA_OIDC_LEEWAY_S", 60),
        ca_bundle=env.get("MASSALIA_OIDC_CA_BUNDLE", "").strip() or None,
    )


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def pkce_challenge(code_verifier: str) -> str:
    """The ``S256`` code challenge of a PKCE verifier (RFC 7636 §4.2).

    Examples
    --------
    >>> pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk")  # RFC 7636 appendix B
    'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM'
    """
    return _b64url(hashlib.sha256(code_verifier.encode("ascii")).digest())


class OidcClient:
    """The relying party for one provider: discovery, login, token exchange and ID token validation.

    Thread-safe; keep one per process. ``clock`` returns the current time in seconds (``time.time``).

    Examples
    --------
    >>> client = OidcClient(settings)  # doctest: +SKIP
    >>> url, state = client.begin_login()  # doctest: +SKIP
    >>> identity = client.complete_login(request.query_params, state)  # doctest: +SKIP
    """

    def __init__(
        self,
        settings: OidcSettings,
        *,
        http: httpx.Client | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self._own_http = http is None
        self._http = http or httpx.Client(
            timeout=10.0, follow_redirects=False, verify=settings.ca_bundle if settings.ca_bundle else True
        )
        self._clock = clock
        self._lock = threading.Lock()
        self._metadata: dict[str, Any] | None = None
        self._keys: KeySet | None = None
        self._consumed: dict[str, float] = {}  # state -> when it was used (replay refusal)

    # -- lifecycle --------------------------------------------------------------------------------
    def close(self) -> None:
        """Close the HTTP connection pool (when this client made it)."""
        if self._own_http:
            self._http.close()

    def __enter__(self) -> OidcClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- provider documents -----------------------------------------------------------------------
    def _get_json(self, url: str, what: str, headers: Mapping[str, str] | None = None) -> dict[str, Any]:
        try:
            response = self._http.get(url, headers=headers)
        except httpx.HTTPError as error:
            raise OidcError(f"could not reach the OIDC provider's {what} at {url}: {error}") from None
        if response.status_code != 200:
            raise OidcError(f"the OIDC provider's {what} at {url} answered HTTP {response.status_code}")
        try:
            body = response.json()
        except ValueError:
            raise OidcError(f"the OIDC provider's {what} at {url} is not JSON") from None
        if not isinstance(body, dict):
            raise OidcError(f"the OIDC provider's {what} at {url} is not a JSON object")
        return body

    def metadata(self) -> dict[str, Any]:
        """The provider's discovery document, fetched once and checked (OIDC Discovery 1.0 §4)."""
        if self._metadata is not None:
            return self._metadata
        url = f"{self.settings.issuer}/.well-known/openid-configuration"
        doc = self._get_json(url, "discovery document")
        if doc.get("issuer") != self.settings.issuer:
            raise OidcError(
                f"discovery document issuer {doc.get('issuer')!r} is not the configured issuer "
                f"{self.settings.issuer!r} (MASSALIA_OIDC_ISSUER)"
            )
        for key in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
            if not isinstance(doc.get(key), str):
                raise OidcError(f"discovery document at {url} has no {key}")
            _require_https(doc[key], f"discovery {key}")
        if doc.get("userinfo_endpoint"):
            _require_https(doc["userinfo_endpoint"], "discovery userinfo_endpoint")
        if "code" not in doc.get("response_types_supported", ["code"]):
            raise OidcError("the OIDC provider does not support the authorization-code flow (response_type=code)")
        methods = doc.get("code_challenge_methods_supported")
        if methods is not None and "S256" not in methods:
            raise OidcError(f"the OIDC provider does not support PKCE S256 (it offers {methods})")
        self._metadata = doc
        return doc

    def _key_set(self, *, refresh: bool = False) -> KeySet:
        if self._keys is not None and not refresh:
            return self._keys
        doc = self._get_json(self.metadata()["jwks_uri"], "JWKS")
        # Only public signing keys: a symmetric ("oct") key in a JWKS is never used to verify.
        usable = [
            key for key in doc.get("keys", [])
            if isinstance(key, dict) and key.get("kty") in ("RSA", "EC", "OKP") and key.get("use", "sig") == "sig"
        ]  # fmt: skip
        if not usable:
            raise OidcError("the OIDC provider's JWKS has no public signing key")
        try:
            self._keys = KeySet.import_key_set({"keys": usable})
        except (JoseError, ValueError) as error:
            raise OidcError(f"the OIDC provider's JWKS could not be read: {error}") from None
        return self._keys

    # -- the flow ---------------------------------------------------------------------------------
    def begin_login(self, *, prompt: str | None = None) -> tuple[str, LoginState]:
        """Start a login: the URL to redirect the browser to, and the state to keep until the callback.

        Parameters
        ----------
        prompt
            Optional OIDC ``prompt`` (``login`` forces re-authentication, ``consent``...).
        """
        state = LoginState(
            state=secrets.token_urlsafe(32),
            nonce=secrets.token_urlsafe(32),
            code_verifier=secrets.token_urlsafe(64),  # 86 characters, within RFC 7636's 43..128
            created_at=self._clock(),
        )
        params = {
            "response_type": "code",
            "client_id": self.settings.client_id,
            "redirect_uri": self.settings.redirect_uri,
            "scope": " ".join(self.settings.scopes),
            "state": state.state,
            "nonce": state.nonce,
            "code_challenge": pkce_challenge(state.code_verifier),
            "code_challenge_method": "S256",
        }
        if prompt:
            params["prompt"] = prompt
        endpoint = self.metadata()["authorization_endpoint"]
        separator = "&" if urlsplit(endpoint).query else "?"
        return f"{endpoint}{separator}{urlencode(params)}", state

    def complete_login(self, callback_params: Mapping[str, str], state: LoginState) -> OidcIdentity:
        """Finish a login from the callback's query parameters and the kept :class:`LoginState`.

        Raises
        ------
        OidcError
            The provider refused, the state does not match, was used already or is too old, the code
            exchange failed, or the ID token or userinfo failed validation.
        """
        params = dict(callback_params)
        got_state = params.get("state", "")
        if not hmac.compare_digest(got_state.encode(), state.state.encode()):
            raise OidcError("OIDC callback state does not match the login this browser started (possible CSRF)")
        if "error" in params:
            description = params.get("error_description", "")
            raise OidcError(f"the OIDC provider refused the login: {params['error']}: {description}".rstrip(": "))
        now = self._clock()
        if now - state.created_at > self.settings.login_timeout_s:
            raise OidcError(f"OIDC login state expired (older than {self.settings.login_timeout_s} s): start again")
        self._consume(state, now)
        doc = self.metadata()
        # RFC 9207: the issuer in the authorization response defends against provider mix-up.
        iss_expected = "iss" in params or doc.get("authorization_response_iss_parameter_supported")
        if iss_expected and params.get("iss") != self.settings.issuer:
            raise OidcError(f"OIDC callback iss {params.get('iss')!r} is not {self.settings.issuer!r}")
        code = params.get("code")
        if not code:
            raise OidcError("OIDC callback has no authorization code")
        tokens = self.exchange_code(code, state.code_verifier)
        claims = self.validate_id_token(tokens["id_token"], nonce=state.nonce)
        if doc.get("userinfo_endpoint"):
            info = self.userinfo(tokens["access_token"])
            if info.get("sub") != claims["sub"]:
                raise OidcError("OIDC userinfo sub differs from the ID token's sub: refused")
            claims = {**claims, **{k: v for k, v in info.items() if k not in ("iss", "aud", "exp", "iat", "nonce")}}
        return self.identity(claims)

    def _consume(self, state: LoginState, now: float) -> None:
        with self._lock:
            horizon = now - self.settings.login_timeout_s
            for used, when in list(self._consumed.items()):
                if when < horizon:
                    del self._consumed[used]
            if state.state in self._consumed:
                raise OidcError("OIDC login state was already used (replayed callback): refused")
            self._consumed[state.state] = now

    def exchange_code(self, code: str, code_verifier: str) -> dict[str, Any]:
        """Exchange an authorization code at the token endpoint; the JSON answer (with ``id_token``)."""
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": self.settings.redirect_uri,
            "code_verifier": code_verifier,
        }
        headers = {"Accept": "application/json"}
        if self.settings.token_auth_method == "client_secret_basic":  # noqa: S105 (a method's name)
            # RFC 6749 §2.3.1: both parts are form-encoded before being joined and base64-encoded.
            pair = f"{quote_plus(self.settings.client_id)}:{quote_plus(self.settings.client_secret)}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode("ascii")
        else:
            form.update(client_id=self.settings.client_id, client_secret=self.settings.client_secret)
        url = self.metadata()["token_endpoint"]
        try:
            response = self._http.post(url, data=form, headers=headers)
        except httpx.HTTPError as error:
            raise OidcError(f"could not reach the OIDC token endpoint {url}: {error}") from None
        try:
            body = response.json()
        except ValueError:
            body = {}
        if response.status_code != 200 or not isinstance(body, dict):
            code = body.get("error", "") if isinstance(body, dict) else ""
            detail = body.get("error_description", "") if isinstance(body, dict) else ""
            raise OidcError(f"OIDC token exchange refused (HTTP {response.status_code}): {code} {detail}".strip())
        if str(body.get("token_type", "")).lower() != "bearer":
            raise OidcError(f"OIDC token endpoint returned token_type {body.get('token_type')!r}, not Bearer")
        for key in ("id_token", "access_token"):
            if not isinstance(body.get(key), str):
                raise OidcError(f"OIDC token endpoint returned no {key}")
        return body

    def validate_id_token(self, id_token: str, *, nonce: str) -> dict[str, Any]:
        """Verify an ID token's signature and claims (OIDC Core 3.1.3.7); its claims.

        Parameters
        ----------
        id_token
            The compact JWS from the token endpoint.
        nonce
            The nonce sent in the authorization request.
        """
        try:
            header = jws.extract_compact(id_token.encode("ascii")).headers()
        except (JoseError, ValueError, UnicodeError) as error:
            raise OidcError(f"ID token is not a signed JWT: {error}") from None
        alg = header.get("alg")
        if alg not in self.settings.algorithms:
            raise OidcError(
                f"ID token signature algorithm {alg!r} is not accepted (allowed: {', '.join(self.settings.algorithms)})"
            )
        token = self._verify_signature(id_token, alg)
        claims = dict(token.claims)
        self._check_claims(claims, nonce)
        return claims

    def _verify_signature(self, id_token: str, alg: str) -> jwt.Token:
        for attempt in (0, 1):
            keys = self._key_set(refresh=attempt == 1)
            try:
                return jwt.decode(id_token, keys, algorithms=[alg])
            except InvalidKeyIdError:
                if attempt == 0:
                    continue  # the provider may have rotated its keys: read the JWKS once more
                raise OidcError("ID token is signed with a key that is not in the provider's JWKS") from None
            except BadSignatureError:
                raise OidcError("ID token signature does not verify against the provider's JWKS") from None
            except (JoseError, ValueError) as error:
                raise OidcError(f"ID token could not be verified: {error}") from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _check_claims(self, claims: dict[str, Any], nonce: str) -> None:
        settings = self.settings
        if claims.get("iss") != settings.issuer:
            raise OidcError(f"ID token issuer {claims.get('iss')!r} is not {settings.issuer!r}")
        audience = claims.get("aud")
        audiences = [audience] if isinstance(audience, str) else audience if isinstance(audience, list) else []
        if settings.client_id not in audiences:
            raise OidcError(f"ID token audience {audience!r} does not include this client {settings.client_id!r}")
        if (len(audiences) > 1 or "azp" in claims) and claims.get("azp") != settings.client_id:
            raise OidcError(f"ID token azp {claims.get('azp')!r} is not this client {settings.client_id!r}")
        now = self._clock()
        exp, iat = claims.get("exp"), claims.get("iat")
        if not isinstance(exp, int | float) or not isinstance(iat, int | float):
            raise OidcError("ID token lacks a numeric exp or iat")
        if now > exp + settings.leeway_s:
            raise OidcError(f"ID token expired {int(now - exp)} s ago (leeway {settings.leeway_s} s)")
        if iat > now + settings.leeway_s:
            raise OidcError(f"ID token issued {int(iat - now)} s in the future (leeway {settings.leeway_s} s)")
        if not hmac.compare_digest(str(claims.get("nonce", "")).encode(), nonce.encode()):
            raise OidcError("ID token nonce does not match the login's nonce (possible replay)")
        if not isinstance(claims.get("sub"), str) or not claims["sub"]:
            raise OidcError("ID token has no subject (sub)")

    def userinfo(self, access_token: str) -> dict[str, Any]:
        """The userinfo endpoint's claims for an access token (JSON answers only)."""
        url = self.metadata()["userinfo_endpoint"]
        return self._get_json(url, "userinfo endpoint", headers={"Authorization": f"Bearer {access_token}"})

    def identity(self, claims: Mapping[str, Any]) -> OidcIdentity:
        """The :class:`OidcIdentity` of validated claims (groups read from ``groups_claim``)."""
        return OidcIdentity(
            issuer=self.settings.issuer,
            subject=str(claims["sub"]),
            email=claims.get("email") if isinstance(claims.get("email"), str) else None,
            name=claims.get("name") if isinstance(claims.get("name"), str) else None,
            groups=_groups(claims, self.settings.groups_claim),
        )

    def roles_for(self, identity: OidcIdentity) -> frozenset[Role]:
        """The Massalia roles of an identity: its mapped groups, else the default roles.

        Raises
        ------
        OidcError
            No group maps to a role and no default role is configured.
        """
        roles: set[Role] = set()
        for group in identity.groups:
            roles |= self.settings.role_map.get(group, frozenset())
        if not roles:
            roles = set(self.settings.default_roles)
        if not roles:
            raise OidcError(
                f"no Massalia role for {identity.subject!r}: groups {list(identity.groups)} match no entry of "
                f"MASSALIA_OIDC_ROLE_MAP and MASSALIA_OIDC_DEFAULT_ROLE is empty"
            )
        return frozenset(roles)


def _groups(claims: Mapping[str, Any], claim: str) -> tuple[str, ...]:
    """Read the groups claim: an exact key first (claim names may hold dots), then a dotted path."""
    value: Any = claims.get(claim)
    if value is None and "." in claim:
        value = claims
        for part in claim.split("."):
            value = value.get(part) if isinstance(value, Mapping) else None
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return tuple(value)
    raise OidcError(f"OIDC claim {claim!r} must be a string or a list of strings, got {json.dumps(value)[:80]}")


def sign_in(governance: SignsInOidcUsers, client: OidcClient, identity: OidcIdentity) -> Principal:
    """Record (or update) the local account of a validated identity, audit the login, return its principal.

    The account is keyed by ``(issuer, subject)``, never by e-mail (an e-mail can be reassigned); its
    roles are re-derived from the groups at every login, so removing a person from a group at the
    provider removes the role at their next login. The login is written to the audit ledger as
    ``auth.oidc_login``.
    """
    principal = governance.upsert_oidc_user(
        identity.issuer, identity.subject, email=identity.email, name=identity.name, roles=client.roles_for(identity)
    )
    detail = {"issuer": identity.issuer, "oidc_subject": identity.subject, "groups": list(identity.groups)}
    governance.audit(principal, "auth.oidc_login", **detail)
    return principal
