"""``package_search``: CKAN's Solr-like query over the catalog's documents — ``q``, ``fq``, facets, sort, paging.

The query language is the part of Solr's that CKAN clients send: whitespace-separated terms, all required;
a term ``field:value`` (or ``field:"a value"``) matches that field exactly (``tags``, ``organization``,
``groups``, ``license_id``, ``res_format``, ``name``, ``frequency``...); a bare term matches any word of the
name, title, notes, tags and organization, accents and case ignored; ``-term`` excludes; ``*:*`` matches all.
Facets count the values of ``facet.field`` over all matches. This scans the catalog's documents (a regional
catalog holds thousands, not millions); the core text index will take over ranking in a later round.

Examples
--------
>>> docs = [{"name": "bornes-irve", "title": "Bornes de recharge", "tags": [{"name": "mobilité"}],
...          "organization": {"name": "region"}, "resources": [{"format": "CSV"}], "metadata_modified": "2"},
...         {"name": "budget", "title": "Budget primitif", "tags": [], "organization": {"name": "ville"},
...          "resources": [], "metadata_modified": "1"}]
>>> result = search_documents(docs, q="recharge", facet_fields=["organization"])
>>> result["count"], result["facets"]
(1, {'organization': {'region': 1}})
>>> search_documents(docs, fq='organization:ville -tags:mobilite')["results"][0]["name"]
'budget'
"""

from __future__ import annotations

import re
import shlex
import unicodedata
from collections import Counter
from collections.abc import Callable
from typing import Any

from massalia.opendata.models import ValidationFailed

MAX_ROWS = 1000
MAX_QUERY = 1000
FACETS: tuple[str, ...] = ("organization", "groups", "tags", "res_format", "license_id", "frequency")
SORTS = {"score", "name", "title_string", "metadata_modified", "metadata_created"}
_WORD = re.compile(r"\w+")


def _fold(text: str) -> str:
    """Lower case without accents: ``Mobilité`` and ``mobilite`` match."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def field_values(doc: dict[str, Any], field: str) -> list[str]:
    """The values of ``field`` in a package document, as Solr indexes them (lists flattened)."""
    if field == "tags":
        return [tag["name"] for tag in doc.get("tags", [])]
    if field == "groups":
        return [group["name"] for group in doc.get("groups", [])]
    if field == "organization":
        return [doc["organization"]["name"]] if doc.get("organization") else []
    if field == "res_format":
        return [res["format"] for res in doc.get("resources", []) if res.get("format")]
    value = doc.get(field)
    if value is None or isinstance(value, dict | list):
        return []
    return [str(value)]


def _text(doc: dict[str, Any]) -> set[str]:
    parts = [doc.get("name", ""), doc.get("title", ""), doc.get("notes", "")]
    parts += field_values(doc, "tags") + field_values(doc, "organization")
    return set(_WORD.findall(_fold(" ".join(str(part) for part in parts))))


def _terms(query: str, where: str) -> list[tuple[bool, str | None, str]]:
    """``(negated, field or None, value)`` for each term of a query."""
    if not isinstance(query, str) or len(query) > MAX_QUERY:
        raise ValidationFailed({where: [f"must be text of at most {MAX_QUERY} characters"]})
    try:
        tokens = shlex.split(query.replace("'", "\\'"))
    except ValueError as error:
        raise ValidationFailed({where: [f"cannot be parsed: {error}"]}) from None
    terms: list[tuple[bool, str | None, str]] = []
    for token in tokens:
        if token in ("*:*", "AND", "&&"):
            continue
        negated = token.startswith("-") and len(token) > 1
        token = token[1:] if negated or token.startswith("+") else token
        field, sep, value = token.partition(":")
        if sep and re.fullmatch(r"[a-z_]{1,40}", field):
            terms.append((negated, field, value.strip('"')))
        else:
            terms.append((negated, None, token))
    return terms


def _matches(doc: dict[str, Any], terms: list[tuple[bool, str | None, str]], words: set[str]) -> bool:
    for negated, field, value in terms:
        if field is None:
            wanted = _WORD.findall(_fold(value))
            hit = all(word in words or any(w.startswith(word) for w in words) for word in wanted) if wanted else True
        elif field == "text":
            hit = all(word in words for word in _WORD.findall(_fold(value)))
        else:
            folded = _fold(value)
            hit = any(_fold(v) == folded for v in field_values(doc, field))
        if hit == negated:
            return False
    return True


def _score(doc: dict[str, Any], terms: list[tuple[bool, str | None, str]]) -> int:
    title = set(_WORD.findall(_fold(str(doc.get("title", "")) + " " + str(doc.get("name", "")))))
    return sum(1 for negated, field, value in terms if not negated and field is None and _fold(value) in title)


def _sort_keys(sort: str) -> list[tuple[str, bool]]:
    keys: list[tuple[str, bool]] = []
    for part in sort.split(","):
        words = part.split()
        if not words:
            continue
        if len(words) > 2 or words[0] not in SORTS or (len(words) == 2 and words[1] not in ("asc", "desc")):
            raise ValidationFailed(
                {"sort": [f"'{part.strip()}' is not '<field> asc|desc' with field in {', '.join(sorted(SORTS))}"]}
            )
        keys.append((words[0], len(words) == 2 and words[1] == "desc"))
    return keys


def _sort_key(field: str, terms: list[tuple[bool, str | None, str]]) -> Callable[[dict[str, Any]], Any]:
    if field == "score":
        return lambda doc: _score(doc, terms)
    name = "title" if field == "title_string" else field
    return lambda doc: _fold(str(doc.get(name) or ""))


def search_documents(
    documents: list[dict[str, Any]],
    *,
    q: str = "",
    fq: str = "",
    facet_fields: list[str] | None = None,
    facet_limit: int = 50,
    sort: str = "score desc, metadata_modified desc",
    rows: int = 10,
    start: int = 0,
) -> dict[str, Any]:
    """The matching documents (one page), their count and the facet counts, in CKAN's result shape."""
    if isinstance(rows, bool) or not isinstance(rows, int) or not 0 <= rows <= MAX_ROWS:
        raise ValidationFailed({"rows": [f"must be an integer from 0 to {MAX_ROWS}"]})
    if isinstance(start, bool) or not isinstance(start, int) or not 0 <= start <= 10**6:
        raise ValidationFailed({"start": ["must be an integer from 0 to 1000000"]})
    facet_fields = list(facet_fields or [])
    unknown = [field for field in facet_fields if field not in FACETS]
    if unknown or len(facet_fields) > len(FACETS):
        raise ValidationFailed({"facet.field": [f"facets are among {', '.join(FACETS)}"]})
    if isinstance(facet_limit, bool) or not isinstance(facet_limit, int) or not -1 <= facet_limit <= 1000:
        raise ValidationFailed({"facet.limit": ["must be an integer from -1 to 1000"]})
    terms = _terms(q or "", "q") + _terms(fq or "", "fq")
    keys = _sort_keys(sort or "score desc, metadata_modified desc")
    found = [doc for doc in documents if _matches(doc, terms, _text(doc))]
    for field, descending in reversed(keys):  # stable sorts, the last key first
        found.sort(key=_sort_key(field, terms), reverse=descending)
    facets: dict[str, dict[str, int]] = {}
    for field in facet_fields:
        counts = Counter(value for doc in found for value in set(field_values(doc, field)))
        ranked = counts.most_common(None if facet_limit < 0 else facet_limit)
        facets[field] = dict(ranked)
    search_facets = {
        field: {
            "title": field,
            "items": [{"name": name, "display_name": name, "count": count} for name, count in values.items()],
        }
        for field, values in facets.items()
    }
    return {
        "count": len(found),
        "sort": sort,
        "facets": facets,
        "search_facets": search_facets,
        "results": found[start : start + rows],
    }


def tag_names(documents: list[dict[str, Any]], query: str | None = None) -> list[str]:
    """The tags of the documents, sorted, optionally only those containing ``query`` (accents ignored)."""
    tags = {tag for doc in documents for tag in field_values(doc, "tags")}
    if query:
        folded = _fold(query)
        tags = {tag for tag in tags if folded in _fold(tag)}
    return sorted(tags)
