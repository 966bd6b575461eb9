"""The generic text index (massalia.text) on a handful of French documents: analysis, the query language,
filters, facets, snippets, paging, bounds, atomic builds. Expected matches are written beside each query."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from text_documents import DOCS, SCHEMA

from massalia.governance import InvalidRequest
from massalia.text import IndexSchema, QuerySyntaxError, SearchRequest, TantivyIndex, TextIndexError
from massalia.text.query import MAX_QUERY_CHARS, parse_query


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TantivyIndex]:
    root = tmp_path_factory.mktemp("text")
    with TantivyIndex.build(root, "docs", SCHEMA) as building:
        building.add_new(DOCS)
    yield TantivyIndex.open(root, "docs", SCHEMA)


def ids(index: TantivyIndex, query: str, **options: object) -> list[int]:
    found = index.search(SearchRequest(query, page_size=100, **options))  # type: ignore[arg-type]
    return sorted(hit.id for hit in found.hits)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("cancer", [2, 3, 4]),  # Snowball: cancer -> canc, cancers -> cancer; both forms are searched
        ("cancers", [2, 3, 4]),
        ("métastases", [1, 2]),
        ("metastase", [1, 2]),  # accents folded
        ("HÉPATIQUE", [2]),
        ("hôpital", [2]),
        ("l'hôpital", [2]),  # elision
        ("entretien", [3]),
        ('"métastases hépatiques"', [2]),
        ('"hépatiques métastases"', []),  # a phrase keeps its order
        ('"cancer sein"', []),  # "du" sits between them
        ('"cancer sein"~1', [3]),
        ('"cancer sein"~6', [3, 4]),
        ('"cancer du sein"', [3]),
        ("sein AND récidive", [3]),
        ("sein récidive", [3]),  # side by side means AND
        ("prostate OR carcinome", [1, 4]),
        ("sein -récidive", [1, 4]),
        ("sein NOT (récidive OR prostate)", [1]),
        ("NOT sein", [2]),
        ("(cancer OR carcinome) AND sein AND NOT gauche", [3, 4]),
        ("anapath", [1]),  # titles are searched too
        ("person_id:10", []),  # never a field query: plain words
        ("site:nord", []),
    ],
)
def test_queries(index: TantivyIndex, query: str, expected: list[int]) -> None:
    assert ids(index, query) == expected


def test_filters_compose_with_the_query(index: TantivyIndex) -> None:
    assert ids(index, "sein", keywords={"site": ["nord"]}) == [1, 3]
    assert ids(index, "sein", keywords={"site": ["nord", "est"], "kind": ["lettre"]}) == [3, 4]
    assert ids(index, "sein", dates={"day": (dt.date(2021, 1, 1), dt.date(2022, 12, 31))}) == [3]
    assert ids(index, "sein", dates={"day": (None, dt.date(2020, 1, 5))}) == [1]
    assert ids(index, "sein", ids={"person_id": [10]}) == [1, 3]
    assert ids(index, "sein", ids={"person_id": []}) == []  # an empty cohort has no document
    assert ids(index, "sein", keywords={"site": []}) == []


def test_facets_total_and_paging(index: TantivyIndex) -> None:
    found = index.search(SearchRequest("sein OR cancer", facets=["site", "kind"], page_size=2))
    assert found.total == 4 and len(found.hits) == 2
    assert found.facets == {"site": {"nord": 2, "sud": 1, "est": 1}, "kind": {"lettre": 2, "anapath": 1, "rcp": 1}}
    second = index.search(SearchRequest("sein OR cancer", page=2, page_size=2))
    assert {h.id for h in found.hits}.isdisjoint(h.id for h in second.hits) and second.total == 4
    assert index.search(SearchRequest("sein OR cancer", page=3, page_size=2)).hits == []
    assert index.distinct(SearchRequest("sein"), "person_id") == 2


def test_snippets_highlight_the_matched_words(index: TantivyIndex) -> None:
    (hit,) = index.search(SearchRequest('"métastases hépatiques"')).hits
    snippet = hit.snippets["body"]
    assert [snippet.fragment[a:b] for a, b in snippet.highlights] == ["Métastases", "hépatiques"]
    assert hit.fields == {"doc_id": 2, "site": "sud", "kind": "rcp", "day": dt.date(2021, 3, 5), "person_id": 11}
    negated = index.search(SearchRequest("sein -récidive")).hits
    assert all("récidive" not in h.snippets["body"].fragment[a:b] for h in negated for a, b in
               h.snippets["body"].highlights)  # fmt: skip


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("", "the query is empty at character 1"),
        ('"sein', "unclosed quote at character 1"),
        ("(sein OR cancer", "unclosed parenthesis at character 1"),
        ("sein)", "unexpected ')' at character 5"),
        ("sein OR", "a word or phrase is missing at character 8"),
        ('"sein"~', "~ must be followed by a number"),
        ('"a b"~99', "proximity ~99 is above the limit of 50"),
        ('""', "empty phrase at character 1"),
        ("le la les", "no searchable word"),
        ("(" * 12 + "sein" + ")" * 12, "nesting deeper than 8"),
        (" ".join(["sein"] * 40), "more than 32 words and phrases"),
        ("x" * (MAX_QUERY_CHARS + 1), f"longer than {MAX_QUERY_CHARS} characters"),
    ],
)
def test_malformed_queries_say_what_and_where(index: TantivyIndex, query: str, message: str) -> None:
    with pytest.raises(QuerySyntaxError, match=message.replace("(", r"\(").replace(")", r"\)").replace("~", "~")):
        index.search(SearchRequest(query))


@pytest.mark.parametrize(
    "options",
    [{"page_size": 0}, {"page_size": 101}, {"page": 0}, {"page": 200, "page_size": 100},
     {"dates": {"day": (dt.date(2022, 1, 1), dt.date(2021, 1, 1))}}],
)  # fmt: skip
def test_requests_are_bounded(options: dict[str, object]) -> None:
    with pytest.raises(InvalidRequest):
        SearchRequest("sein", **options)  # type: ignore[arg-type]


def test_unknown_fields_are_refused(index: TantivyIndex) -> None:
    with pytest.raises(InvalidRequest, match="no keyword field body"):
        index.search(SearchRequest("sein", keywords={"body": ["x"]}))
    with pytest.raises(InvalidRequest, match="no facet field person_id"):
        index.search(SearchRequest("sein", facets=["person_id"]))


def test_updates_are_incremental_and_replace_by_id(tmp_path: Path) -> None:
    with TantivyIndex.build(tmp_path, "docs", SCHEMA) as building:
        building.add_new(DOCS[:2])
    index = TantivyIndex.open(tmp_path, "docs", SCHEMA)
    assert index.max_id() == 2
    index.add([DOCS[2], {**DOCS[0], "body": "Lymphome."}])
    assert ids(index, "lymphome") == []  # not visible before the commit
    index.commit()
    assert ids(index, "lymphome") == [1] and ids(index, "carcinome") == [] and index.num_docs == 3
    index.delete([3])
    index.commit()
    assert ids(index, "récidive") == [] and index.max_id() == 2


def test_a_failed_build_leaves_the_previous_index_readable(tmp_path: Path) -> None:
    with TantivyIndex.build(tmp_path, "docs", SCHEMA) as building:
        building.add_new(DOCS)
    with pytest.raises(TextIndexError), TantivyIndex.build(tmp_path, "docs", SCHEMA) as building:
        building.add_new([DOCS[0], {"doc_id": "not an id", "body": "x"}])
    assert ids(TantivyIndex.open(tmp_path, "docs", SCHEMA), "sein") == [1, 3, 4]
    assert [p.name for p in tmp_path.joinpath("docs").iterdir() if p.name.startswith("gen-")] == ["gen-1"]
    with TantivyIndex.build(tmp_path, "docs", SCHEMA) as building:
        building.add_new(DOCS[:1])
    assert ids(TantivyIndex.open(tmp_path, "docs", SCHEMA), "sein") == [1]
    assert sorted(p.name for p in tmp_path.joinpath("docs").iterdir()) == ["current", "gen-2"]


def test_schema_and_names_are_checked(tmp_path: Path) -> None:
    with TantivyIndex.build(tmp_path, "docs", SCHEMA) as building:
        building.add_new(DOCS[:1])
    with pytest.raises(TextIndexError, match="another schema"):
        TantivyIndex.open(tmp_path, "docs", IndexSchema("doc_id", ("body",)))
    with pytest.raises(TextIndexError, match="lowercase identifier"):
        TantivyIndex.open(tmp_path, "../docs", SCHEMA)
    with pytest.raises(TextIndexError, match="build it first"):
        TantivyIndex.open(tmp_path, "other", SCHEMA)
    with pytest.raises(ValueError, match="unique"):
        IndexSchema("doc_id", ("body", "body"))


def test_canonical_text_ignores_spacing() -> None:
    from massalia.text.query import canonical

    assert canonical(parse_query('sein   AND "cancer  du sein"~2')) == canonical(parse_query('sein "cancer du sein"~2'))
