"""Search over narratives and attachments: indexing (incremental, bad files), filters and facets, and who sees what.

Each attack is a regression test: it fails if the attack works again.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from safety_world import Loaded
from search_world import City, make_city

from massalia.engine import connect
from massalia.governance import AccessDenied, InvalidRequest
from massalia.ledger import TransparencyLog
from massalia.pipelines import LineageStore
from massalia.safety import search
from massalia.safety.log import REPORTS, load_delivery
from massalia.safety.query import FilterError, IncidentFilter
from massalia.safety.synth.generator import GeneratorConfig, generate
from massalia.text import QuerySyntaxError, TantivyIndex, parse_query
from massalia.text.query import canonical


@pytest.fixture(scope="module")
def city(tmp_path_factory: pytest.TempPathFactory) -> Iterator[City]:
    made = make_city(tmp_path_factory.mktemp("search-gov"))
    try:
        yield made
    finally:
        made.gov.close()


@pytest.fixture(scope="module")
def indexed(city: City, loaded: Loaded, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, search.IndexSummary]:
    root = tmp_path_factory.mktemp("search-index")
    summary = search.index_reports(city.caller("admin"), loaded.engine, root)
    return root, summary


def _latest_records(loaded: Loaded) -> int:
    return loaded.engine.scalar_int(f"SELECT count(DISTINCT (source, source_id)) FROM {REPORTS}")


def test_every_latest_report_is_indexed_with_its_attachment_text(indexed: tuple[Path, search.IndexSummary],
                                                                 loaded: Loaded) -> None:  # fmt: skip
    root, summary = indexed
    assert summary.rebuilt and summary.indexed == _latest_records(loaded), "one document per record, latest version"
    named = loaded.engine.scalar_int(
        f"SELECT count(DISTINCT (source, source_id)) FROM {REPORTS} WHERE coalesce(attachments, '') <> ''"
    )
    assert summary.documents_read + summary.errors_total == named > 50
    assert summary.errors_total == 0, summary.document_errors
    # "audition" is only in the attachments (the generator's statement), never in a log row's narrative.
    in_rows = loaded.engine.scalar_int(f"SELECT count(*) FROM {REPORTS} WHERE narrative ILIKE '%audition%'")
    assert in_rows == 0
    operator = TantivyIndex.open(root, search.INDEX_NAME, search.SCHEMA)
    assert operator.num_docs == summary.indexed


def test_an_operator_finds_words_of_the_attachments_with_facets_filters_highlights_and_paging(
    city: City, loaded: Loaded, indexed: tuple[Path, search.IndexSummary]
) -> None:
    root, summary = indexed
    operator = city.caller("operator")
    found = search.search_reports(operator, loaded.engine, root, "audition", page_size=5)
    assert found.mode == "identified" and found.total == summary.documents_read
    assert set(found.facets["document_kind"]) == {"pdf", "docx", "odt", "eml"}, "every kind of file was read"
    for hit in found.hits:
        snippet = hit["snippets"]["document"]
        start, end = snippet["highlights"][0]
        assert snippet["fragment"][start:end].lower() == "audition"
    second = search.search_reports(operator, loaded.engine, root, "audition", page=2, page_size=5)
    assert {h["report_id"] for h in second.hits}.isdisjoint({h["report_id"] for h in found.hits}), "paging"
    # Filters: zone, time, source, family narrow the hits, and every hit honours them.
    zone = next(iter(found.facets["zone"]))
    where = IncidentFilter(zones=(zone,), sources=("mc",))
    narrowed = search.search_reports(operator, loaded.engine, root, "audition", where=where, page_size=100)
    assert narrowed.total == found.facets["zone"][zone]
    assert all(h["zone"] == zone and h["source"] == "mc" for h in narrowed.hits)
    summer = IncidentFilter(dt.datetime(2025, 6, 1), dt.datetime(2025, 9, 1))
    months = search.search_reports(operator, loaded.engine, root, "vol OR bruit", where=summer, page_size=100)
    assert months.total and all("2025-06-01" <= h["occurred_at"] < "2025-09-01" for h in months.hits)
    # French analysis: a plural finds the singular's documents.
    assert search.search_reports(operator, loaded.engine, root, "auditions").total == found.total


def test_incremental_indexing_adds_the_reports_loaded_since_and_matches_a_rebuild(
    city: City, loaded: Loaded, tmp_path: Path
) -> None:
    admin = city.caller("admin")
    full = search.index_reports(admin, loaded.engine, tmp_path)
    index = TantivyIndex.open(tmp_path, search.INDEX_NAME, search.SCHEMA)
    cut = loaded.engine.scalar_int(f"SELECT CAST(quantile_disc(report_id, 0.6) AS BIGINT) FROM {REPORTS}")
    later = [r["report_id"] for r in loaded.engine.query(f"SELECT report_id FROM {REPORTS} WHERE report_id > {cut}")
             .to_pylist()]  # fmt: skip
    index.delete(later)  # as if the reports above the cut had not been loaded yet
    index.commit()
    assert TantivyIndex.open(tmp_path, search.INDEX_NAME, search.SCHEMA).max_id() <= cut
    again = search.index_reports(admin, loaded.engine, tmp_path)
    assert not again.rebuilt and 0 < again.added <= len(later)
    assert again.indexed == full.indexed, "the incremental run restores exactly the rebuild's documents"
    nothing = search.index_reports(admin, loaded.engine, tmp_path)
    assert nothing.added == 0 and nothing.indexed == full.indexed


def test_a_bad_attachment_is_named_and_does_not_stop_the_index(city: City, tmp_path: Path) -> None:
    logs = generate(tmp_path / "logs", GeneratorConfig(events=400, seed=7, max_documents=12))
    folder = logs.root / "mc" / "pj"
    files = sorted(folder.iterdir())
    by_kind = {p.suffix: p for p in files}
    by_kind[".pdf"].write_bytes(b"%PDF-1.7 this is not a PDF at all")
    by_kind[".docx"].write_bytes(b"PK\x03\x04 broken zip")
    by_kind[".odt"].unlink()
    engine = connect("duckdb")
    try:
        load_delivery(engine, logs.root, LineageStore(f"sqlite:///{(tmp_path / 'l.sqlite').as_posix()}"))
        summary = search.index_reports(city.caller("admin"), engine, tmp_path / "index")
    finally:
        engine.close()
    text = "\n".join(summary.document_errors)
    assert by_kind[".pdf"].name in text and "not a readable PDF" in text
    assert by_kind[".docx"].name in text and "bad zip" in text
    assert by_kind[".odt"].name in text and "not delivered" in text
    assert summary.documents_read >= len(files) - 3 > 0, "the other files were read"
    assert summary.indexed > 0
    assert summary.errors_total >= 3  # the 3 broken ones, plus the attachments beyond max_documents


def test_attack_a_partner_or_an_analyst_gets_a_noisy_count_never_a_hit_a_snippet_or_a_party(
    city: City, loaded: Loaded, indexed: tuple[Path, search.IndexSummary]
) -> None:
    root, _ = indexed
    # A party's name that is in an attachment (the documents list the people heard).
    row = loaded.engine.query(
        f"SELECT parties FROM {REPORTS} WHERE coalesce(attachments, '') <> '' AND coalesce(parties, '') <> '' LIMIT 1"
    ).to_pylist()[0]
    surname = row["parties"].split("(")[0].split()[-1]
    operator = search.search_reports(city.caller("operator"), loaded.engine, root, surname)
    assert operator.total and any(surname in json.dumps(h, ensure_ascii=False) for h in operator.hits), (
        "the attack is real: the name is findable by a narrative reader"
    )
    for name in ("partner", "analyst"):
        found = search.search_reports(city.caller(name), loaded.engine, root, surname)
        assert found.mode == "count" and found.hits == [] and found.facets == {} and found.total is None
        assert found.release["mode"] == "noisy"
        answer = json.dumps(found.as_dict(), ensure_ascii=False)
        assert surname not in answer and "fragment" not in answer and "report_id" not in answer
        paged = search.search_reports(city.caller(name), loaded.engine, root, "audition", page=3, page_size=50)
        assert paged.hits == [], "paging does not open the hits"


Indexed = tuple[Path, search.IndexSummary]


def test_attack_roles_outside_safety_are_refused_and_audited(city: City, loaded: Loaded, indexed: Indexed) -> None:
    root, _ = indexed
    before = city.size()
    for name in ("researcher", "clinician", "admin"):
        with pytest.raises(AccessDenied):
            search.search_reports(city.caller(name), loaded.engine, root, "vol")
    trail = city.entries(before)
    assert sum("safety.search.read" in e for e in trail) == 3, "each refusal is in the audit trail"


def test_every_search_is_audited_with_a_keyed_hash_never_the_query(
    city: City, loaded: Loaded, indexed: Indexed
) -> None:
    root, _ = indexed
    before = city.size()
    unusual = "Zebulonne"
    search.search_reports(city.caller("manager"), loaded.engine, root, f"{unusual} OR audition")
    trail = city.entries(before)
    assert any("safety.search.read" in e and "query_hmac" in e for e in trail)
    assert not any(unusual.lower() in e.lower() for e in trail), "the query's text is never in the ledger"


@pytest.mark.parametrize(
    "query",
    [
        "narrative:audition",  # Tantivy's field syntax would choose the field (or a hidden one)
        "report_id:[0 TO 99999]",
        "'; DROP TABLE safety_report; --",
        'audition") OR 1=1 --',
        "*",
        "(((((((",
    ],
)
def test_attack_query_language_and_sql_injection_are_refused_or_read_as_words(
    city: City, loaded: Loaded, indexed: tuple[Path, search.IndexSummary], query: str
) -> None:
    root, _ = indexed
    try:
        found = search.search_reports(city.caller("operator"), loaded.engine, root, query)
    except (QuerySyntaxError, InvalidRequest):
        pass
    else:  # read as plain words: it cannot match more than the words themselves do
        assert (
            found.total is not None
            and found.total < search.TantivyIndex.open(root, search.INDEX_NAME, search.SCHEMA).num_docs
        )
    assert loaded.engine.table_exists(REPORTS), "no SQL ran from the query"
    with pytest.raises(FilterError):
        IncidentFilter(zones=("D01') OR ('1'='1",))


def test_an_index_missing_or_never_built_is_a_clear_error(city: City, loaded: Loaded, tmp_path: Path) -> None:
    with pytest.raises(InvalidRequest, match="no text index"):
        search.search_reports(city.caller("operator"), loaded.engine, tmp_path, "vol")


def test_a_search_answers_with_its_durable_audit_entry_covered_by_a_signed_head(
    city: City, loaded: Loaded, indexed: tuple[Path, search.IndexSummary]
) -> None:
    """The entry is written while the index is read (audit_before_answer), never after the answer has left."""
    root, _ = indexed
    operator = city.caller("operator")
    found = search.search_reports(operator, loaded.engine, root, "tapage nocturne")
    assert found.mode == "identified" and found.audit_index is not None
    with TransparencyLog(city.gov.ledger_path, readonly=True) as log:
        entry = log.get(found.audit_index).entry
        assert log.tree_heads()[-1].tree_size > found.audit_index, "covered by a signed head when the answer came"
    assert (entry["action"], entry["actor"], entry["decision"]) == (search.ACTION, "operator.search", "allowed")
    assert entry["resource"]["query_hmac"] == search.query_digest(operator, canonical(parse_query("tapage nocturne")))


def test_the_opened_index_is_reused_and_a_commit_is_seen_by_the_next_search(tmp_path: Path) -> None:
    def report(number: int) -> dict[str, object]:
        return {"report_id": number, "incident_id": number, "narrative": f"tapage {number}", "zone": "D01",
                "occurred_at": dt.datetime(2025, 1, 1)}  # fmt: skip

    with TantivyIndex.build(tmp_path, search.INDEX_NAME, search.SCHEMA) as built:
        built.add_new([report(1), report(2)])
    first = search.open_index(tmp_path)
    assert search.open_index(tmp_path) is first and first.num_docs == 2, "opened once while nothing changes"
    writer = TantivyIndex.open(tmp_path, search.INDEX_NAME, search.SCHEMA)
    writer.add([report(3)])
    writer.commit()
    assert search.open_index(tmp_path).num_docs == 3, "a commit in between is seen by the next search"
    with TantivyIndex.build(tmp_path, search.INDEX_NAME, search.SCHEMA) as rebuilt:  # a new generation
        rebuilt.add_new([report(9)])
    assert search.open_index(tmp_path).max_id() == 9
