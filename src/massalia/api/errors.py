"""One error shape for every failure the API returns, and the handlers that produce it.

Every error body is ``{"error": {"code", "message", "details": [{"loc", "msg"}], "request_id"}}``:
``code`` is a stable machine word (``invalid_request``, ``unauthenticated``, ``forbidden``, ``not_found``,
``conflict``, ``rate_limited``, ``csrf_failed``, ``internal_error``...), ``message`` a sentence for people,
``details`` where the input was wrong, ``request_id`` the id also sent in the ``X-Request-ID`` header and
written to the server log, so a report from a user can be matched to the log line. A 500 never carries
the exception's text or a stack trace.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from massalia.governance import AccessDenied, AuthenticationError, InvalidRequest, NotFound

logger = logging.getLogger("massalia.api")

REQUEST_ID_KEY = "massalia.request_id"
PRINCIPAL_KEY = "massalia.principal"

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    429: "rate_limited",
    500: "internal_error",
    503: "unavailable",
}


class ErrorDetail(BaseModel):
    """Where an input was wrong (``loc``: path of keys into the request) and what is wrong with it."""

    loc: list[str | int]
    msg: str


class ErrorInfo(BaseModel):
    """The error itself."""

    code: str
    message: str
    details: list[ErrorDetail]
    request_id: str


class ErrorBody(BaseModel):
    """Every error response of the API."""

    error: ErrorInfo


_DESCRIPTIONS = {
    400: "Bad request.",
    401: "Not signed in, or credentials not valid.",
    403: "Signed in but not allowed (rights), or a failed CSRF check.",
    404: "No such resource.",
    409: "Conflict with the current state.",
    413: "Request body too large.",
    422: "Invalid input (details name each wrong field).",
    429: "Too many failed logins (see Retry-After).",
    500: "Internal error (quote the request id).",
    503: "Temporarily unavailable, e.g. the warehouse is locked by another process (see Retry-After).",
}
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": text} for status, text in _DESCRIPTIONS.items()
}
"""OpenAPI ``responses`` documenting the error shape for every route."""


class ApiError(Exception):
    """An error the API answers with its JSON shape.

    Parameters
    ----------
    status
        HTTP status.
    code
        Stable machine-readable code.
    message
        Human-readable sentence.
    details
        ``(loc, msg)`` pairs naming where the input was wrong.
    headers
        Extra response headers (e.g. ``Retry-After``).

    Examples
    --------
    >>> ApiError(409, "conflict", "project already exists").status
    409
    """

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        details: Sequence[tuple[Sequence[str | int] | str, str]] = (),
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = list(details)
        self.headers = dict(headers or {})


def request_id(scope: Scope) -> str:
    """The id of the request in ``scope`` (set by :class:`RequestIdMiddleware`)."""
    return str(scope.get(REQUEST_ID_KEY) or "-")


def _loc(loc: Sequence[str | int] | str) -> list[str | int]:
    return [loc] if isinstance(loc, str) else list(loc)


def error_body(
    scope: Scope, code: str, message: str, details: Sequence[tuple[Sequence[str | int] | str, str]] = ()
) -> dict[str, Any]:
    """The JSON error body."""
    return {
        "error": {
            "code": code,
            "message": message,
            "details": [{"loc": _loc(loc), "msg": str(msg)} for loc, msg in details],
            "request_id": request_id(scope),
        }
    }


def error_response(
    request: Request,
    status: int,
    code: str,
    message: str,
    details: Sequence[tuple[Sequence[str | int] | str, str]] = (),
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    """A JSON error response in the one shape."""
    return JSONResponse(error_body(request.scope, code, message, details), status_code=status, headers=headers)


def validation_details(errors: Sequence[Any]) -> list[tuple[list[str | int], str]]:
    """Pydantic/FastAPI error dicts as ``(loc, msg)`` pairs (input values are never echoed back)."""
    details: list[tuple[list[str | int], str]] = []
    for error in errors:
        loc = [part for part in error.get("loc", ()) if isinstance(part, str | int)]
        details.append((loc, str(error.get("msg", "invalid value"))))
    return details


def _is_anonymous(request: Request) -> bool:
    principal = request.scope.get(PRINCIPAL_KEY)
    return principal is None or getattr(principal, "auth", "anonymous") == "anonymous"


async def _api_error(request: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, ApiError):
        raise exc
    return error_response(request, exc.status, exc.code, exc.message, exc.details, exc.headers)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    errors = exc.errors() if isinstance(exc, RequestValidationError | ValidationError) else []
    return error_response(request, 422, "invalid_request", "The request is not valid.", validation_details(errors))


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, StarletteHTTPException):
        raise exc
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
    return error_response(request, exc.status_code, code, message, headers=exc.headers)


async def _access_denied(request: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, AccessDenied):
        raise exc
    if _is_anonymous(request):
        return error_response(
            request, 401, "unauthenticated", f"Sign in to {exc.action}.", headers={"WWW-Authenticate": "Bearer"}
        )
    return error_response(request, 403, "forbidden", str(exc))


async def _authentication_error(request: Request, exc: Exception) -> JSONResponse:
    return error_response(
        request, 401, "unauthenticated", str(exc) or "Authentication failed.", headers={"WWW-Authenticate": "Bearer"}
    )


async def _not_found(request: Request, exc: Exception) -> JSONResponse:
    return error_response(request, 404, "not_found", str(exc).strip("'\"") or "Not found.")


async def _invalid_request(request: Request, exc: Exception) -> JSONResponse:
    details = getattr(exc, "problems", None) or getattr(exc, "args", ())[:1]
    pairs: list[tuple[Sequence[str | int] | str, str]] = []
    for item in details if isinstance(details, list) else []:
        if isinstance(item, tuple) and len(item) == 2:
            pairs.append((str(item[0]), str(item[1])))
    return error_response(request, 422, "invalid_request", str(exc) or "Invalid request.", pairs)


async def _out_of_range(request: Request, exc: Exception) -> JSONResponse:
    # A number the database cannot hold (an id of 2**63 or more reaching the driver): the client's error.
    # The services bound their ids first; this keeps any path they missed a 422, never a 500.
    return error_response(request, 422, "invalid_request", "A number in the request is out of range.")


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers mapping framework, governance and API errors to the one shape."""
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(ValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(AccessDenied, _access_denied)
    app.add_exception_handler(AuthenticationError, _authentication_error)
    app.add_exception_handler(NotFound, _not_found)
    app.add_exception_handler(InvalidRequest, _invalid_request)
    app.add_exception_handler(OverflowError, _out_of_range)


class RequestIdMiddleware:
    """Give each request an id (``X-Request-ID``) and turn any unhandled exception into a JSON 500.

    It sits inside the security-headers middleware, so even a 500 carries the security headers, and
    outside the routing, so no exception reaches the server's default error page (which could leak).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one ASGI call."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = uuid.uuid4().hex
        scope[REQUEST_ID_KEY] = rid
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", rid.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            logger.exception("request %s %s failed (request id %s)", scope.get("method"), scope.get("path"), rid)
            if started:
                raise  # the response has begun: nothing sensible can be sent any more
            body = error_body(scope, "internal_error", "An internal error occurred; quote the request id.")
            await JSONResponse(body, status_code=500)(scope, receive, send_with_id)
