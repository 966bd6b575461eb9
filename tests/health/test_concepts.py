"""The vocabulary browser's service (health.concepts): bounded inputs, literal matching, the right checked first."""

from __future__ import annotations

from pathlib import Path

import pytest

from massalia.engine.duckdb import DuckDBEngine
from massalia.governance import AccessDenied, Caller, Governance, InvalidRequest, NotFound, Principal, Role
from massalia.health.concepts import ConceptSearch, concept_detail, search_concepts

READER = Principal("rita.reader", frozenset({Role.RESEARCHER}), 1, auth="token")


@pytest.fixture
def gov(tmp_path: Path) -> Governance:
    return Governance(f"sqlite:///{tmp_path / 'm.sqlite'}", tmp_path / "ledger", key_path=tmp_path / "k" / "m.key")


def test_search_pages_do_not_overlap_and_ties_are_stable(gov: Governance, demo_warehouse: Path) -> None:
    with DuckDBEngine(demo_warehouse, read_only=True) as engine:
        seen: list[int] = []
        for offset in (0, 7, 14):
            page = search_concepts(Caller(READER, gov), engine, ConceptSearch(domain="Condition", sort="domain_id",
                                                                      offset=offset, limit=7))  # fmt: skip
            seen += [item["concept_id"] for item in page.items]
        assert len(seen) == len(set(seen)) == 21
        assert (
            search_concepts(Caller(READER, gov), engine, ConceptSearch(text="4181351")).items[0]["concept_id"]
            == 4181351
        )


@pytest.mark.parametrize("search", [
    {"sort": "concept_name; DROP TABLE concept"}, {"limit": 0}, {"limit": 501}, {"offset": -1}, {"text": "x" * 201},
    {"text": "a\x00b"},
])  # fmt: skip
def test_out_of_bounds_searches_are_refused(search: dict[str, object]) -> None:
    with pytest.raises(InvalidRequest):
        ConceptSearch(**search)  # type: ignore[arg-type]


def test_the_public_role_is_refused_before_anything_is_read(gov: Governance, demo_warehouse: Path) -> None:
    with DuckDBEngine(demo_warehouse, read_only=True) as engine:
        with pytest.raises(AccessDenied):
            search_concepts(Caller(Principal.anonymous(), gov), engine, ConceptSearch(text="ovary"))
        with pytest.raises(AccessDenied):
            concept_detail(Caller(Principal.anonymous(), gov), engine, 999_999_999)  # no NotFound: no existence oracle
        with pytest.raises(NotFound):
            concept_detail(Caller(READER, gov), engine, 999_999_999)
