"""Full-text search, generic: a caller declares a schema, adds documents, searches with filters and facets.

No domain is known here (health indexes notes through it, other domains may index their own documents).
The embedded backend is Tantivy (:mod:`massalia.text.tantivy_index`); the same search language
(:mod:`massalia.text.query`) and the same request/result types (:mod:`massalia.text.model`) serve the
PostgreSQL full-text backend (:mod:`massalia.text.postgres_index`) of server deployments.
"""

from __future__ import annotations

from massalia.text.model import (
    MAX_PAGE_SIZE,
    Hit,
    IndexSchema,
    SearchRequest,
    SearchResult,
    Snippet,
    TextIndexError,
)
from massalia.text.query import MAX_QUERY_CHARS, QuerySyntaxError, parse_query
from massalia.text.tantivy_index import TantivyIndex

__all__ = [
    "MAX_PAGE_SIZE",
    "MAX_QUERY_CHARS",
    "Hit",
    "IndexSchema",
    "QuerySyntaxError",
    "SearchRequest",
    "SearchResult",
    "Snippet",
    "TantivyIndex",
    "TextIndexError",
    "parse_query",
]
