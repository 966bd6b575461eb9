"""The PostgreSQL full-text backend answers like the Tantivy one: the same documents, queries and filters
run on both and their results are compared (``-m postgres``: a throwaway server is started)."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from text_documents import DOCS, SCHEMA

from massalia.engine.base import UnsupportedOperation
from massalia.engine.duckdb import DuckDBEngine
from massalia.text import SearchRequest, TantivyIndex
from massalia.text.postgres_index import PostgresTextIndex

pytestmark = pytest.mark.postgres

QUERIES = [
    "cancer", "cancers", "métastases", "metastase", "HÉPATIQUE", "hôpital", "l'hôpital", "entretien",
    '"métastases hépatiques"', '"hépatiques métastases"', '"cancer du sein"', '"cancer sein"~1', '"cancer sein"~6',
    "sein AND récidive", "prostate OR carcinome", "sein -récidive", "sein NOT (récidive OR prostate)",
    "(cancer OR carcinome) AND sein AND NOT gauche", "anapath", "person_id:10",
]  # fmt: skip


@pytest.fixture(scope="module")
def both(pg_dsn: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[PostgresTextIndex, TantivyIndex]]:
    from massalia.engine.postgres import PostgresEngine

    engine = PostgresEngine(pg_dsn, schema=f"t_{uuid.uuid4().hex[:12]}")
    root = tmp_path_factory.mktemp("text-pg")
    with TantivyIndex.build(root, "docs", SCHEMA) as building:
        building.add_new(DOCS)
    try:
        pg = PostgresTextIndex(engine, "docs", SCHEMA)
        assert pg.build([DOCS[:2], DOCS[2:]]) == len(DOCS)
        yield pg, TantivyIndex.open(root, "docs", SCHEMA)
    finally:
        engine.drop_schema()
        engine.close()


@pytest.mark.parametrize("query", QUERIES)
def test_same_hits_as_tantivy(both: tuple[PostgresTextIndex, TantivyIndex], query: str) -> None:
    pg, tantivy = both
    request = SearchRequest(query, page_size=100)
    assert sorted(h.id for h in pg.search(request).hits) == sorted(h.id for h in tantivy.search(request).hits)


def test_filters_facets_snippets_and_paging(both: tuple[PostgresTextIndex, TantivyIndex]) -> None:
    pg, tantivy = both
    request = SearchRequest("sein OR cancer", keywords={"site": ["nord", "est"]}, facets=["site", "kind"],
                            dates={"day": (dt.date(2020, 1, 1), None)}, ids={"person_id": [10, 12]},
                            page_size=2)  # fmt: skip
    mine, theirs = pg.search(request), tantivy.search(request)
    assert (mine.total, mine.facets) == (theirs.total, theirs.facets) == (3, mine.facets)
    assert mine.facets == {"site": {"nord": 2, "est": 1}, "kind": {"lettre": 2, "anapath": 1}}
    assert len(mine.hits) == 2 and pg.search(SearchRequest("sein OR cancer", page=3, page_size=2)).hits == []
    (hit,) = pg.search(SearchRequest('"métastases hépatiques"')).hits
    snippet = hit.snippets["body"]
    assert [snippet.fragment[a:b] for a, b in snippet.highlights] == ["Métastases", "hépatiques"]
    assert hit.fields["day"] == dt.date(2021, 3, 5) and hit.fields["site"] == "sud"
    assert pg.distinct(SearchRequest("sein"), "person_id") == tantivy.distinct(SearchRequest("sein"), "person_id")


def test_a_failed_build_leaves_the_previous_table(both: tuple[PostgresTextIndex, TantivyIndex]) -> None:
    pg, _ = both
    with pytest.raises(ValueError, match="int64"):  # pyarrow's ArrowInvalid
        pg.build([DOCS, [{"doc_id": object(), "body": "x"}]])
    assert pg.count(SearchRequest("sein")) == 3
    assert not [t for t in pg.engine.list_tables() if t.startswith("stg_")]


def test_engines_without_full_text_are_refused(tmp_path: Path) -> None:
    with DuckDBEngine() as duck, pytest.raises(UnsupportedOperation, match="French full-text"):
        PostgresTextIndex(duck, "docs", SCHEMA)
