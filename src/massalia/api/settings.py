"""The HTTP API's settings: CORS allow-list, TLS, sessions and login throttling (from the environment)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

CORS_ENV = "MASSALIA_API_CORS_ORIGINS"
HTTPS_ENV = "MASSALIA_API_HTTPS"
SESSION_TTL_ENV = "MASSALIA_API_SESSION_TTL"


class SettingsError(ValueError):
    """A bad API setting (named, with the value that was refused)."""


def _origin(value: str, *, where: str) -> str:
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.path not in ("", "/") or parts.query:
        raise SettingsError(f"{where}: {value!r} is not an origin like https://portal.example.org")
    return f"{parts.scheme}://{parts.netloc}".lower()


def _flag(value: str, *, where: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise SettingsError(f"{where}: {value!r} is not a boolean (true/false)")


@dataclass(frozen=True)
class ApiSettings:
    """How the API behaves on the network.

    Parameters
    ----------
    cors_origins
        Browser origins allowed to call the API from another site (CORS). Empty (the default): CORS closed.
    https
        The API is served over TLS (directly or behind a proxy): cookies get ``Secure`` and responses
        carry ``Strict-Transport-Security``.
    session_ttl
        Seconds a cookie session lives.
    login_max_failures
        Failed logins allowed per username and per client address within ``login_window``.
    login_window
        Seconds of the login-failure window.
    max_body_bytes
        Largest request body accepted (larger: ``413``).
    engine
        Warehouse engine name (``None``: ``$MASSALIA_ENGINE`` or DuckDB).

    Examples
    --------
    >>> ApiSettings.from_env({"MASSALIA_API_CORS_ORIGINS": "https://a.example.org"}).cors_origins
    ('https://a.example.org',)
    """

    cors_origins: tuple[str, ...] = ()
    https: bool = False
    session_ttl: int = 8 * 3600
    login_max_failures: int = 5
    login_window: float = 60.0
    max_body_bytes: int = 5 * 1024 * 1024
    engine: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "cors_origins", tuple(_origin(o, where="cors_origins") for o in self.cors_origins))
        if self.session_ttl <= 0:
            raise SettingsError(f"session_ttl must be positive, got {self.session_ttl}")
        if self.login_max_failures < 1:
            raise SettingsError(f"login_max_failures must be at least 1, got {self.login_max_failures}")
        if self.max_body_bytes < 1024:
            raise SettingsError(f"max_body_bytes must be at least 1024, got {self.max_body_bytes}")
        if self.login_window <= 0:
            raise SettingsError(f"login_window must be positive, got {self.login_window}")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ApiSettings:
        """Settings from ``MASSALIA_API_CORS_ORIGINS`` (comma-separated), ``_HTTPS`` and ``_SESSION_TTL``."""
        env = os.environ if environ is None else environ
        origins = tuple(o for o in env.get(CORS_ENV, "").split(",") if o.strip())
        ttl_text = env.get(SESSION_TTL_ENV, "").strip()
        try:
            ttl = int(ttl_text) if ttl_text else 8 * 3600
        except ValueError:
            raise SettingsError(f"{SESSION_TTL_ENV}: {ttl_text!r} is not a number of seconds") from None
        return cls(
            cors_origins=tuple(_origin(o, where=CORS_ENV) for o in origins),
            https=_flag(env.get(HTTPS_ENV, ""), where=HTTPS_ENV),
            session_ttl=ttl,
        )
