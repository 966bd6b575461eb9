"""A search filtered by a large id set (a cohort) reads its page from the unfiltered hits in one pass of the
filter (``TantivyIndex._scanned``): it must give exactly what the plain filtered search gives.

The documents repeat a few templates (so scores tie, and ties are ordered by address), are spread over three
segments, and some have no person: every page, total, facet count and score is compared with the plain
search's, for several queries, filters, pages and page sizes.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterator
from typing import Any

import pytest

from massalia.text import IndexSchema, SearchRequest, SearchResult, TantivyIndex
from massalia.text import tantivy_index as module

SCHEMA = IndexSchema("doc_id", ("body",), ("site",), ("day",), ("person_id",))
TEMPLATES = [
    "Cancer du sein gauche, métastases hépatiques.",
    "Cancer du sein droit. Pas de métastase.",
    "Patient suivi pour un cancer de la prostate.",
    "Métastases osseuses, cancer du poumon.",
    "Consultation de suivi, patient en bon état général.",
]
PERSONS = 1_200


def documents(first: int, count: int) -> list[dict[str, Any]]:
    rng = random.Random(first)
    return [
        {"doc_id": first + n, "body": TEMPLATES[rng.randrange(len(TEMPLATES))] + " " * rng.randrange(3),
         "site": ("nord", "sud", "est")[rng.randrange(3)], "day": dt.date(2020 + rng.randrange(4), 1, 1),
         "person_id": None if n % 37 == 0 else rng.randrange(PERSONS)}
        for n in range(count)
    ]  # fmt: skip


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TantivyIndex]:
    root = tmp_path_factory.mktemp("cohort")
    module._id_members.cache_clear()
    with TantivyIndex.build(root, "docs", SCHEMA) as building:
        building.add_new(documents(0, 1_500))
    for first in (10_000, 20_000):  # two more commits: three segments
        adding = TantivyIndex.open(root, "docs", SCHEMA)
        adding.add(documents(first, 1_000))
        adding.commit()
    yield TantivyIndex.open(root, "docs", SCHEMA)


def answer(found: SearchResult) -> tuple[Any, ...]:
    return found.total, found.facets, [(hit.id, hit.score, hit.fields) for hit in found.hits]


def plain(index: TantivyIndex, request: SearchRequest, monkeypatch: pytest.MonkeyPatch) -> SearchResult:
    with monkeypatch.context() as patch:
        patch.setattr(module, "SCAN_MIN_IDS", 10**9)
        return index.search(request)


COHORT = sorted(random.Random(7).sample(range(-50, PERSONS + 50), 1_100))  # ids absent from the index too


@pytest.mark.parametrize("query", ["cancer", "métastases", '"cancer du sein"', "suivi -prostate", "patient OR poumon"])
@pytest.mark.parametrize(("page", "page_size"), [(1, 10), (3, 10), (30, 10), (1, 100), (40, 100)])
def test_a_cohort_page_is_the_plain_filtered_page(
    index: TantivyIndex, monkeypatch: pytest.MonkeyPatch, query: str, page: int, page_size: int
) -> None:
    request = SearchRequest(query, ids={"person_id": COHORT}, facets=("site",), page=page, page_size=page_size)
    searcher = index._index.searcher()
    scanned = index._scanned(searcher, request, *index._queries(request)[:2])
    assert scanned is not None and scanned[1] is not None  # the scan was taken, not the plain search
    assert answer(index.search(request)) == answer(plain(index, request, monkeypatch))


def test_several_filters_and_small_scan_limits_give_the_same_page(
    index: TantivyIndex, monkeypatch: pytest.MonkeyPatch
) -> None:
    notes = sorted(random.Random(3).sample(range(30_000), 20_000))
    requests = [
        SearchRequest("cancer", ids={"person_id": COHORT, "doc_id": notes}, facets=("site",), page=2),
        SearchRequest(
            "métastases",
            keywords={"site": ["nord", "est"]},
            dates={"day": (dt.date(2021, 1, 1), None)},
            ids={"person_id": COHORT},
            facets=("site",),
            page=3,
        ),
        SearchRequest("poumon", ids={"person_id": COHORT[:1_000]}, page_size=100),
    ]
    for request in requests:
        expected = answer(plain(index, request, monkeypatch))
        assert answer(index.search(request)) == expected
        with monkeypatch.context() as patch:
            patch.setattr(module, "SCAN_FIRST", 1)  # the page filled over several reads of the unfiltered hits
            assert answer(index.search(request)) == expected
        with monkeypatch.context() as patch:
            patch.setattr(module, "SCAN_MAX_HITS", 5)  # too long a scan: the filtered query's own page
            assert answer(index.search(request)) == expected


def test_an_empty_cohort_answer_and_a_small_cohort_skip_the_scan(index: TantivyIndex) -> None:
    nobody = SearchRequest("cancer", ids={"person_id": list(range(10**6, 10**6 + 2_000))}, facets=("site",))
    found = index.search(nobody)
    assert (found.total, found.hits, found.facets) == (0, [], {"site": {}})
    few = SearchRequest("cancer", ids={"person_id": COHORT[:50]})
    assert index._scanned(index._index.searcher(), few, *index._queries(few)[:2]) is None
    assert index.search(few).total == index.count(few) > 0


def test_scores_are_the_texts_whatever_the_filters(index: TantivyIndex) -> None:
    unfiltered = {hit.id: hit.score for hit in index.search(SearchRequest("métastases", page_size=100)).hits}
    filtered = index.search(SearchRequest("métastases", keywords={"site": ["nord"]}, page_size=100)).hits
    common = [hit for hit in filtered if hit.id in unfiltered]
    assert common and all(hit.score == unfiltered[hit.id] for hit in common)


def test_the_id_set_caches_are_bounded() -> None:
    for n in range(module.ID_SET_CACHE + 5):
        module._id_members(tuple(range(n)))
    assert module._id_members.cache_info().currsize <= module.ID_SET_CACHE
    assert module._id_set_query.cache_info().maxsize == module.ID_SET_CACHE
