"""What every text-index backend shares: the schema a caller declares, a search request and its result.

A schema names one integer id field (the document's key: adding a document with an id already indexed
replaces it), French text fields (searched, stored, snippets), keyword fields (exact filters and facet
counts), date fields (range filters) and integer fields (filters by a set of ids, e.g. a cohort's persons).

Examples
--------
>>> schema = IndexSchema(id_field="note_id", text_fields=("note_title", "note_text"), keyword_fields=("site",),
...                      date_fields=("note_date",), integer_fields=("person_id",))
>>> SearchRequest("cancer", page_size=20).page_size
20
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from massalia.governance.model import InvalidRequest

MAX_PAGE_SIZE = 100
"""Most hits on one page."""
MAX_OFFSET = 10_000
"""Deepest hit reachable by paging (page x page_size): deeper paging is a crawl, not a search."""
MAX_FILTER_VALUES = 1_000
"""Most values of one keyword filter."""
MAX_ID_SET = 2_000_000
"""Most ids in one id-set filter (a cohort's persons)."""
MAX_FACET_VALUES = 100
"""Most values returned per facet."""
FIELD_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


class TextIndexError(InvalidRequest):
    """A text index is missing, of another schema, or being written by someone else."""


@dataclass(frozen=True)
class IndexSchema:
    """The fields of an index, declared by its owner (a domain); every name is a lowercase identifier."""

    id_field: str
    text_fields: tuple[str, ...]
    keyword_fields: tuple[str, ...] = ()
    date_fields: tuple[str, ...] = ()
    integer_fields: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        names = [self.id_field, *self.text_fields, *self.keyword_fields, *self.date_fields, *self.integer_fields]
        bad = [name for name in names if not FIELD_NAME.match(name)]
        if bad:
            raise ValueError(f"index field names must be lowercase identifiers, got {bad}")
        if len(set(names)) != len(names):
            raise ValueError(f"index field names must be unique, got {names}")
        if not self.text_fields:
            raise ValueError("an index needs at least one text field")

    def as_dict(self) -> dict[str, Any]:
        """The schema as JSON-able data (stored beside the index, checked when it is opened)."""
        return {"id_field": self.id_field, "text_fields": list(self.text_fields),
                "keyword_fields": list(self.keyword_fields), "date_fields": list(self.date_fields),
                "integer_fields": list(self.integer_fields)}  # fmt: skip


@dataclass(frozen=True)
class SearchRequest:
    """One search: the query, the filters (all must hold), the facets wanted, the page.

    ``keywords`` maps a keyword field to the values allowed (any of them); ``dates`` a date field to
    inclusive ``(from, to)`` bounds (``None``: open); ``ids`` an integer field to the ids allowed (an empty
    set matches nothing: a cohort with no person has no document).
    """

    query: str
    keywords: Mapping[str, Sequence[str]] = field(default_factory=dict)
    dates: Mapping[str, tuple[dt.date | None, dt.date | None]] = field(default_factory=dict)
    ids: Mapping[str, Sequence[int]] = field(default_factory=dict)
    facets: Sequence[str] = ()
    page: int = 1
    page_size: int = 10
    snippets: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.page, bool) or not isinstance(self.page, int) or self.page < 1:
            raise InvalidRequest(f"page must be a positive integer, got {self.page!r}")
        if isinstance(self.page_size, bool) or not isinstance(self.page_size, int):
            raise InvalidRequest(f"page_size must be an integer, got {self.page_size!r}")
        if not 1 <= self.page_size <= MAX_PAGE_SIZE:
            raise InvalidRequest(f"page_size must be from 1 to {MAX_PAGE_SIZE}, got {self.page_size}")
        if self.offset + self.page_size > MAX_OFFSET:
            raise InvalidRequest(f"paging stops at hit {MAX_OFFSET}: narrow the query instead")
        for name, values in self.keywords.items():
            if len(values) > MAX_FILTER_VALUES:
                raise InvalidRequest(f"filter {name}: at most {MAX_FILTER_VALUES} values")
        for name, ids in self.ids.items():
            if len(ids) > MAX_ID_SET:
                raise InvalidRequest(f"filter {name}: at most {MAX_ID_SET} ids")
        for name, (low, high) in self.dates.items():
            if low is not None and high is not None and low > high:
                raise InvalidRequest(f"filter {name}: from {low} is after to {high}")

    @property
    def offset(self) -> int:
        """Hits skipped before this page."""
        return (self.page - 1) * self.page_size

    def check(self, schema: IndexSchema) -> None:
        """Refuse filters and facets on fields the schema does not have as that kind (named in the error)."""
        for kind, names, allowed in (
            ("keyword", self.keywords, schema.keyword_fields),
            ("date", self.dates, schema.date_fields),
            ("id", self.ids, (*schema.integer_fields, schema.id_field)),
            ("facet", self.facets, schema.keyword_fields),
        ):
            unknown = sorted(set(names) - set(allowed))
            if unknown:
                raise InvalidRequest(f"no {kind} field {', '.join(unknown)} in this index (have: {', '.join(allowed)})")


@dataclass(frozen=True)
class Snippet:
    """A fragment of a text field around the matches; ``highlights`` are ``[start, end)`` offsets in it."""

    fragment: str
    highlights: tuple[tuple[int, int], ...]

    def as_dict(self) -> dict[str, Any]:
        """The snippet as JSON-able data."""
        return {"fragment": self.fragment, "highlights": [list(pair) for pair in self.highlights]}


@dataclass(frozen=True)
class Hit:
    """One matching document: its stored fields (not the text fields) and a snippet per text field."""

    id: int
    score: float
    fields: dict[str, Any]
    snippets: dict[str, Snippet]


@dataclass(frozen=True)
class SearchResult:
    """The page of hits, the total number of matching documents, and the facet counts over all of them."""

    total: int
    hits: list[Hit]
    facets: dict[str, dict[str, int]]
    page: int
    page_size: int
