"""Pagination for list endpoints: ``limit`` and an opaque ``cursor``; each page says where the ``next`` one is.

The cursor is the position after the last item returned, written as URL-safe base64 so clients treat it
as opaque (the encoding may change; only cursors the API handed out are valid).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from typing import Annotated, Any, TypeVar

from fastapi import Query
from pydantic import BaseModel

from massalia.api.errors import ApiError

T = TypeVar("T")

DEFAULT_LIMIT = 50
_PREFIX = "o:"

Limit = Annotated[int, Query(ge=1, le=500, description="Items per page (1 to 500).")]
Cursor = Annotated[str | None, Query(max_length=64, description="The `next` cursor of the previous page.")]


class Page(BaseModel):
    """One page of a list: its ``items`` and the cursor of the ``next`` page (``null`` on the last)."""

    items: list[Any]
    next: str | None
    total: int | None = None


def encode_cursor(offset: int) -> str:
    """The cursor of position ``offset``.

    Examples
    --------
    >>> decode_cursor(encode_cursor(120))
    120
    """
    return base64.urlsafe_b64encode(f"{_PREFIX}{offset}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int:
    """The position a cursor stands for (0 for none); a malformed cursor is a 422 naming ``cursor``."""
    if cursor is None or cursor == "":
        return 0
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
        if not text.startswith(_PREFIX) or not text[len(_PREFIX) :].isdigit():
            raise ValueError(text)
        offset = int(text[len(_PREFIX) :])
        if offset > 10**12:
            raise ValueError(text)
    except (ValueError, UnicodeDecodeError, binascii.Error):
        raise ApiError(
            422,
            "invalid_request",
            "The cursor is not one this API handed out.",
            details=[(["query", "cursor"], "invalid cursor")],
        ) from None
    return offset


def paginate(
    items: Sequence[T], limit: int, cursor: str | None, *, render: Callable[[T], Any] = lambda item: item
) -> Page:
    """The page of ``items`` starting at ``cursor``, at most ``limit`` long, rendered with ``render``."""
    start = decode_cursor(cursor)
    chunk = items[start : start + limit]
    following = start + len(chunk)
    return Page(
        items=[render(item) for item in chunk],
        next=encode_cursor(following) if following < len(items) else None,
        total=len(items),
    )
