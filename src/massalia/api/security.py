"""Browser-facing protections: security headers on every response, and CSRF checks for cookie sessions.

CSRF: a cookie session is only used for an unsafe method (POST, PUT, PATCH, DELETE) when the request
carries the session's own CSRF token in ``X-CSRF-Token`` (the synchronizer-token pattern: the token is
random per session, kept server-side, handed out at login and readable by the page in the
``massalia_csrf`` cookie) and, when the browser sends an ``Origin``, that origin is the API's own or one
on the CORS allow-list. Bearer-token calls are exempt: a browser never attaches them on its own.
"""

from __future__ import annotations

import hmac
from urllib.parse import urlsplit

from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from massalia.api.errors import ApiError, error_body

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
CSRF_HEADER = "x-csrf-token"

CONTENT_SECURITY_POLICY = "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
HSTS = "max-age=63072000; includeSubDomains"


class SecurityHeadersMiddleware:
    """Add the security headers to every HTTP response (errors included).

    Parameters
    ----------
    app
        The wrapped ASGI app.
    https
        Also send ``Strict-Transport-Security`` (only meaningful, and only sent, when served over TLS).
    """

    def __init__(self, app: ASGIApp, *, https: bool = False) -> None:
        self.app = app
        self.https = https

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one ASGI call."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
                headers["X-Content-Type-Options"] = "nosniff"
                headers["X-Frame-Options"] = "DENY"
                headers["Referrer-Policy"] = "no-referrer"
                headers["Cross-Origin-Opener-Policy"] = "same-origin"
                headers["Permissions-Policy"] = "camera=(), microphone=(), geolocation=()"
                headers.setdefault("Cache-Control", "no-store")
                if self.https or scope.get("scheme") == "https":
                    headers["Strict-Transport-Security"] = HSTS
            await send(message)

        await self.app(scope, receive, send_with_headers)


class BodySizeLimitMiddleware:
    """Refuse request bodies over ``max_bytes`` with a 413 in the API's error shape (before routing).

    A declared ``Content-Length`` is checked at once; a body sent without one (chunked) is read here, up
    to ``max_bytes``, then handed on, so memory stays bounded either way.
    """

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one ASGI call."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or ()).get(b"content-length")
        if declared is not None:
            if not declared.isdigit() or int(declared) > self.max_bytes:
                await self._refuse(scope, receive, send)
                return
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break  # the client went away: let the app see it
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._refuse(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": b"".join(chunks), "more_body": False}

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = error_body(scope, "payload_too_large", f"The request body is over {self.max_bytes} bytes.")
        await JSONResponse(body, status_code=413)(scope, receive, send)


def own_origin(request: Request) -> str:
    """The origin this request was addressed to (scheme and ``Host``)."""
    host = request.headers.get("host") or (request.url.netloc)
    return f"{request.url.scheme}://{host}".lower()


def check_origin(request: Request, allowed: tuple[str, ...]) -> None:
    """Refuse an unsafe request whose ``Origin`` is neither the API's own nor allow-listed.

    A missing ``Origin`` passes (non-browser clients and same-origin GET-initiated forms in old
    browsers do not send it; the CSRF token still has to match for cookie sessions).
    """
    origin = request.headers.get("origin")
    if origin is None or request.method not in UNSAFE_METHODS:
        return
    parts = urlsplit(origin)
    normalized = f"{parts.scheme}://{parts.netloc}".lower()
    if normalized != own_origin(request) and normalized not in allowed:
        raise ApiError(403, "csrf_failed", f"Cross-site request refused: origin {origin!r} is not allowed.")


def check_csrf_token(request: Request, expected: str) -> None:
    """Refuse an unsafe cookie-session request without the session's CSRF token in ``X-CSRF-Token``."""
    if request.method not in UNSAFE_METHODS:
        return
    given = request.headers.get(CSRF_HEADER, "")
    if not given or not hmac.compare_digest(given.encode(), expected.encode()):
        raise ApiError(
            403,
            "csrf_failed",
            "Missing or wrong X-CSRF-Token header for a cookie session.",
            details=[(["header", "X-CSRF-Token"], "must equal the csrf_token given at login")],
        )
