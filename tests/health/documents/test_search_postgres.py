"""The notes search service on a PostgreSQL warehouse goes through PostgreSQL's French full-text search and
answers like the Tantivy index of the same notes: the same hits and counts for every kind of caller, the same
refusals and audit, de-identified snippets for researchers (``-m postgres``: a throwaway server is started)."""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from massalia.engine import Engine
from massalia.engine.duckdb import DuckDBEngine
from massalia.governance import AccessDenied, Caller, Governance, Principal, ProjectScope, Role, operator_principal
from massalia.health.cohorts import CohortDefinition
from massalia.health.documents.search import (
    NOTES_INDEX,
    NOTES_SCHEMA,
    NoteFilters,
    index_notes,
    notes_backend,
    search_notes,
)
from massalia.ledger import TransparencyLog
from massalia.text import SearchRequest, TextIndexError
from massalia.text.postgres_index import PostgresTextIndex

pytestmark = pytest.mark.postgres

BREAST = CohortDefinition.model_validate(
    {"primary_criteria": {"criteria_list": [{"kind": "CancerDiagnosis", "topography": ["C50"]}]}}
)
QUERIES = ("sein", '"cancer du sein"', "métastases hépatiques", "chimiothérapie -radiothérapie", "HER2 OR EGFR")
EXPIRES = dt.date.today() + dt.timedelta(days=365)


@dataclass
class Both:
    gov: Governance
    duck: DuckDBEngine
    pg: Engine
    root: Path
    users: dict[str, Principal]
    project: int

    def caller(self, name: str) -> Caller:
        return Caller(self.users[name], self.gov, "test")

    def ledger(self) -> list[dict[str, object]]:
        with TransparencyLog(self.gov.ledger_path, readonly=True) as log:
            return [log.get(i).entry for i in range(log.size)]


@pytest.fixture(scope="module")
def both(pg_dsn: str, demo_warehouse: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Both]:
    from massalia.engine.postgres import PostgresEngine

    folder = tmp_path_factory.mktemp("document-search-pg")
    copy = folder / "warehouse.duckdb"
    shutil.copy(demo_warehouse, copy)
    operator = operator_principal()
    pg = PostgresEngine(pg_dsn, schema=f"t_{uuid.uuid4().hex[:12]}")
    try:
        with (
            Governance(f"sqlite:///{(folder / 'metadata.sqlite').as_posix()}", folder / "ledger",
                       key_path=folder / "keys" / "master.key") as gov,
            DuckDBEngine(copy) as duck,
        ):  # fmt: skip
            for table in duck.list_tables():
                pg.create_table(table, duck.query(f"SELECT * FROM {table}"))
            for name, role, site in (("cleo", Role.CLINICIAN, "chu_nord"), ("rita", Role.RESEARCHER, None),
                                     ("otto", Role.RESEARCHER, None), ("dina", Role.DPO, None),
                                     ("dora", Role.DATA_ENGINEER, None)):  # fmt: skip
                gov.create_user(name, None, [role], site, actor=operator)
            users = {n: gov.authenticate_token(gov.create_token(n, None, actor=operator))
                     for n in ("cleo", "rita", "otto", "dina", "dora")}  # fmt: skip
            scope = ProjectScope(cohort=BREAST.model_dump(mode="json"), cohort_hash=BREAST.definition_hash(),
                                 sites=("chu_nord", "clcc_sud"), period_start=dt.date(2015, 1, 1))  # fmt: skip
            project = gov.create_project("Breast notes", "what the reports of breast cancers say about relapse",
                                         scope=scope, access_level="pseudonymized", expires=EXPIRES,
                                         actor=users["rita"])  # fmt: skip
            filed = gov.file_request(project.id, actor=users["rita"], justification="approved protocol 2026-17")
            gov.decide_request(filed.id, True, "proportionate", actor=users["dina"])
            dora = Caller(users["dora"], gov, "test")
            on_duck = index_notes(dora, duck, folder / "indexes")
            on_pg = index_notes(dora, pg, folder / "pg-indexes")
            assert on_duck.documents == on_pg.documents == on_pg.added > 1000 and on_pg.rebuilt
            yield Both(gov, duck, pg, folder, users, project.id)
    finally:
        pg.drop_schema()
        pg.close()


def _index(both: Both) -> PostgresTextIndex:
    return PostgresTextIndex(both.pg, NOTES_INDEX, NOTES_SCHEMA)


def _search(both: Both, engine: Engine, name: str, query: str, **options: object) -> object:
    root = both.root / ("pg-indexes" if engine is both.pg else "indexes")
    options.setdefault("page_size", 100)
    return search_notes(both.caller(name), engine, root, query, **options)  # type: ignore[arg-type]


def test_the_postgres_warehouse_searches_in_postgres(both: Both) -> None:
    assert notes_backend(both.pg) == "postgres" and notes_backend(both.duck) == "tantivy"
    assert not (both.root / "pg-indexes" / NOTES_INDEX).exists()  # nothing written to the home's folder
    assert _index(both).count(SearchRequest("sein")) > 0


@pytest.mark.parametrize("query", QUERIES)
def test_a_clinician_gets_the_same_hits_of_their_site(both: Both, query: str) -> None:
    duck, pg = _search(both, both.duck, "cleo", query), _search(both, both.pg, "cleo", query)
    assert duck.mode == pg.mode == "identified"  # type: ignore[attr-defined]
    assert duck.total == pg.total and duck.facets == pg.facets  # type: ignore[attr-defined]
    if duck.total <= 100:  # type: ignore[attr-defined]
        assert sorted(h["note_id"] for h in duck.hits) == sorted(h["note_id"] for h in pg.hits)  # type: ignore[attr-defined]
    assert all(h["site"] == "chu_nord" for h in pg.hits)  # type: ignore[attr-defined]


@pytest.mark.parametrize("query", QUERIES[:3])
def test_a_project_member_gets_the_same_pseudonymized_hits_with_deidentified_snippets(both: Both, query: str) -> None:
    duck = _search(both, both.duck, "rita", query, project_id=both.project)
    pg = _search(both, both.pg, "rita", query, project_id=both.project)
    assert duck.mode == pg.mode == "pseudonymized" and duck.total == pg.total  # type: ignore[attr-defined]
    if duck.total <= 100:  # type: ignore[attr-defined]
        assert sorted(h["note"] for h in duck.hits) == sorted(h["note"] for h in pg.hits)  # type: ignore[attr-defined]
    for hit in pg.hits:  # type: ignore[attr-defined]
        assert set(hit) <= {"person", "note", "note_date", "score", "snippets"}


def test_attack_no_planted_identifier_in_postgres_snippets(both: Both, demo_warehouse: Path) -> None:
    """Attack: the words next to identifiers, searched through PostgreSQL's headlines: every snippet is
    de-identified as with Tantivy (a headline not found in its note is not shown)."""
    truth_file = demo_warehouse.parent / "sources" / "truth" / "annotations_part0000.jsonl"
    planted = {span["text"] for line in truth_file.read_text(encoding="utf-8").splitlines()
               for span in json.loads(line)["identifiers"]
               if span["cue"] and len(span["text"]) >= 4 and span["type"] != "date"}  # fmt: skip
    shown: list[str] = []
    for query in ("Patiente", "Docteur"):
        found = _search(both, both.pg, "rita", query, project_id=both.project, page_size=30)
        shown += [h["snippets"]["note_text"]["fragment"] for h in found.hits if "snippets" in h]  # type: ignore[attr-defined]
    assert len(shown) > 30 and any("[NOM]" in fragment for fragment in shown)
    words = [re.compile(rf"(?<!\w){re.escape(value)}(?!\w)") for value in planted]
    assert sorted({w.pattern for w in words for fragment in shown if w.search(fragment)}) == []


def test_the_same_refusals_and_counts_only(both: Both) -> None:
    """Attacks on PostgreSQL as on Tantivy: another project's member is refused (audited), a researcher
    without approval and a DPO get a noisy person count only, a clinician's other-site filter finds nothing."""
    for engine in (both.duck, both.pg):
        before = len(both.ledger())
        with pytest.raises(AccessDenied, match="not a member"):
            _search(both, engine, "otto", "sein", project_id=both.project)
        assert [e["decision"] for e in both.ledger()[before:]] == ["denied"]
        for name in ("otto", "dina"):
            found = _search(both, engine, name, "sein")
            assert found.mode == "count" and found.hits == [] and found.total is None  # type: ignore[attr-defined]
        other_site = _search(both, engine, "cleo", "sein", filters=NoteFilters(site="clcc_sud"))
        assert other_site.total == 0 and other_site.hits == []  # type: ignore[attr-defined]
    entries = [e for e in both.ledger() if e["action"] == "health.document.search"]
    assert "sein" not in json.dumps(entries)  # the query as a keyed hash, on both backends


def test_indexing_in_postgres_is_incremental_and_for_operators(both: Both) -> None:
    with pytest.raises(AccessDenied):
        index_notes(both.caller("rita"), both.pg, both.root)
    top = both.pg.scalar_int("SELECT max(note_id) FROM note")
    both.pg.execute_native(
        "INSERT INTO note (note_id, person_id, note_date, note_type_concept_id, note_class_concept_id, note_title, "
        "note_text, encoding_concept_id, language_concept_id) SELECT "
        f"{top + 1}, person_id, note_date, note_type_concept_id, note_class_concept_id, note_title, "
        "'Zygomycose du sein, très rare.', encoding_concept_id, language_concept_id FROM note "
        "WHERE note_id = (SELECT min(note_id) FROM note)"
    )  # fmt: skip
    try:
        summary = index_notes(both.caller("dora"), both.pg, both.root)
        assert (summary.added, summary.rebuilt) == (1, False)
        assert _index(both).count(SearchRequest("zygomycose")) == 1
    finally:
        both.pg.execute_native(f"DELETE FROM note WHERE note_id = {top + 1}")
    index_notes(both.caller("dora"), both.pg, both.root, rebuild=True)
    assert _index(both).count(SearchRequest("zygomycose")) == 0


def test_searching_before_the_postgres_index_is_built_says_so(both: Both) -> None:
    both.pg.execute_native(f"ALTER TABLE text_{NOTES_INDEX} RENAME TO text_{NOTES_INDEX}_aside")
    try:
        with pytest.raises(TextIndexError, match="massalia text index"):
            _search(both, both.pg, "cleo", "sein")
    finally:
        both.pg.execute_native(f"ALTER TABLE text_{NOTES_INDEX}_aside RENAME TO text_{NOTES_INDEX}")
