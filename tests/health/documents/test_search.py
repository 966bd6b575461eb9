"""The guarded notes search (health.document.search) on the shared generated warehouse: who sees what.

Each attack is a test that fails if the attack works again: a clinician reaching another site's notes, a
researcher without approval getting ids or exact counts, a member of another project, a DPO or an admin
outside a project reading hits, a query probing a field, a patient's name left in the audit trail.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from massalia.engine.duckdb import DuckDBEngine
from massalia.governance import AccessDenied, Caller, Governance, Principal, ProjectScope, Role, operator_principal
from massalia.governance.pseudonym import pseudonymize
from massalia.health.cohorts import CohortDefinition
from massalia.health.documents.search import (
    NOTES_INDEX,
    NOTES_SCHEMA,
    NoteFilters,
    index_notes,
    search_notes,
)
from massalia.ledger import TransparencyLog
from massalia.text import QuerySyntaxError, SearchRequest, TantivyIndex, TextIndexError

BREAST = CohortDefinition.model_validate(
    {"primary_criteria": {"criteria_list": [{"kind": "CancerDiagnosis", "topography": ["C50"]}]}}
)
QUERY = "sein"
EXPIRES = dt.date.today() + dt.timedelta(days=365)


@dataclass
class Setting:
    gov: Governance
    engine: DuckDBEngine
    root: Path
    users: dict[str, Principal]
    project: int
    other_project: int


def _ledger(gov: Governance) -> list[dict[str, object]]:
    if not gov.ledger_path.exists():
        return []
    with TransparencyLog(gov.ledger_path, readonly=True) as log:
        return [log.get(i).entry for i in range(log.size)]


@pytest.fixture(scope="module")
def setting(demo_warehouse: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setting]:
    folder = tmp_path_factory.mktemp("document-search")
    copy = folder / "warehouse.duckdb"
    shutil.copy(demo_warehouse, copy)
    operator = operator_principal()
    with (
        Governance(f"sqlite:///{(folder / 'metadata.sqlite').as_posix()}", folder / "ledger",
                   key_path=folder / "keys" / "master.key") as gov,
        DuckDBEngine(copy) as engine,
    ):  # fmt: skip
        for name, roles, site in (
            ("cleo", [Role.CLINICIAN], "chu_nord"), ("rita", [Role.RESEARCHER], None),
            ("otto", [Role.RESEARCHER], None), ("dina", [Role.DPO], None), ("adam", [Role.ADMIN], None),
            ("dora", [Role.DATA_ENGINEER], None),
        ):  # fmt: skip
            gov.create_user(name, None, roles, site, actor=operator)
        users = {name: gov.authenticate_token(gov.create_token(name, None, actor=operator))
                 for name in ("cleo", "rita", "otto", "dina", "adam", "dora")}  # fmt: skip
        scope = ProjectScope(cohort=BREAST.model_dump(mode="json"), cohort_hash=BREAST.definition_hash(),
                             sites=("chu_nord", "clcc_sud"), period_start=dt.date(2015, 1, 1))  # fmt: skip
        project = gov.create_project("Breast notes", "what the reports of breast cancers say about relapse",
                                     scope=scope, access_level="pseudonymized", expires=EXPIRES,
                                     actor=users["rita"])  # fmt: skip
        request = gov.file_request(project.id, actor=users["rita"], justification="approved protocol 2026-17")
        gov.decide_request(request.id, True, "proportionate", actor=users["dina"])
        other = gov.create_project("Other", "another study of the same notes", scope=scope,
                                   access_level="pseudonymized", expires=EXPIRES, actor=users["otto"])  # fmt: skip
        summary = index_notes(Caller(users["dora"], gov, "test"), engine, folder / "indexes")
        assert summary.rebuilt and summary.added == summary.documents > 1000
        yield Setting(gov, engine, folder / "indexes", users, project.id, other.id)


def _as(setting: Setting, name: str) -> Caller:
    return Caller(setting.users[name], setting.gov, "test")


def _truth(setting: Setting, **filters: list[object]) -> int:
    """Notes matching QUERY with ``filters``, straight from the index (no rights): the reference count."""
    index = TantivyIndex.open(setting.root, NOTES_INDEX, NOTES_SCHEMA)
    keywords = {k: [str(v) for v in vs] for k, vs in filters.items() if k != "person_id"}
    ids = {"person_id": [int(str(v)) for v in filters["person_id"]]} if "person_id" in filters else {}
    return index.count(SearchRequest(QUERY, keywords=keywords, ids=ids))


def test_clinician_sees_identified_hits_of_their_own_site_only(setting: Setting) -> None:
    found = search_notes(_as(setting, "cleo"), setting.engine, setting.root, QUERY, page_size=20)
    assert found.mode == "identified" and found.audit_index is not None
    assert found.total == _truth(setting, site=["chu_nord"]) > 0 < _truth(setting, site=["clcc_sud"])
    assert set(found.facets["site"]) == {"chu_nord"}
    assert found.hits and all(hit["site"] == "chu_nord" for hit in found.hits)
    snippet = found.hits[0]["snippets"]["note_text"]
    assert all(snippet["fragment"][a:b].lower().startswith("sein") for a, b in snippet["highlights"])


def test_attack_clinician_asks_for_another_sites_notes(setting: Setting) -> None:
    """Attack: a clinician passes another site as the filter: the service's own-site filter still holds."""
    found = search_notes(_as(setting, "cleo"), setting.engine, setting.root, QUERY,
                         filters=NoteFilters(site="clcc_sud"))  # fmt: skip
    assert found.total == 0 and found.hits == []


def test_attack_researcher_without_approval_gets_a_noisy_person_count_only(setting: Setting) -> None:
    found = search_notes(_as(setting, "otto"), setting.engine, setting.root, QUERY)
    assert found.mode == "count" and found.hits == [] and found.total is None and found.facets == {}
    assert found.release["mode"] == "noisy"
    assert found.persons is None or found.persons % 5 == 0
    again = search_notes(_as(setting, "otto"), setting.engine, setting.root, QUERY, page=3)
    assert again.persons == found.persons and again.release["repeated"]  # paging buys no fresh noise


@pytest.mark.parametrize("name", ["dina", "adam"])
def test_attack_dpo_and_admin_get_counts_only(setting: Setting, name: str) -> None:
    """Attack: a DPO or an admin (outside a project) asks for hits: only a noisy count of persons."""
    found = search_notes(_as(setting, name), setting.engine, setting.root, QUERY)
    assert found.mode == "count" and found.hits == [] and found.total is None


def test_attack_dpo_naming_an_approved_project_gets_counts_only(setting: Setting) -> None:
    """A DPO oversees every project and may name it, but reads no hit of it."""
    found = search_notes(_as(setting, "dina"), setting.engine, setting.root, QUERY, project_id=setting.project)
    assert found.mode == "count" and found.hits == []


def test_attack_member_of_another_project_is_refused_and_audited(setting: Setting) -> None:
    with pytest.raises(AccessDenied, match="not a member"):
        search_notes(_as(setting, "otto"), setting.engine, setting.root, QUERY, project_id=setting.project)
    last = _ledger(setting.gov)[-1]
    assert last["action"] == "health.document.search" and last["decision"] == "denied"


def test_approved_project_gets_pseudonymized_hits_in_scope_and_no_text(setting: Setting) -> None:
    gov, pid = setting.gov, setting.project
    found = search_notes(_as(setting, "rita"), setting.engine, setting.root, QUERY, project_id=pid, page_size=100)
    assert found.mode == "pseudonymized" and "raw_text" in found.withheld and set(found.facets) == {"site"}
    cohort = [int(r["person_id"]) for r in setting.engine.query(
        "SELECT DISTINCT co.person_id FROM condition_occurrence co JOIN person p USING (person_id) "
        "WHERE co.condition_source_value LIKE 'C50%'").to_pylist()]  # fmt: skip
    assert found.total is not None and 0 < found.total <= _truth(setting, person_id=list(cohort))
    pseudonyms = set(pseudonymize(cohort, key=gov.project_key(pid), project=pid).to_pylist())
    assert found.hits and all(hit["person"] in pseudonyms for hit in found.hits)
    for hit in found.hits:
        assert set(hit) <= {"person", "note", "note_date", "score", "snippets"}  # no id, site, title, raw text
        assert set(hit.get("snippets", {})) <= {"note_text"}
        assert hit["note"].startswith(f"n{pid}-") and hit["note_date"] >= "2014-01-01"
    text = json.dumps(found.hits)
    assert not any(f'"{person}"' in text or f" {person}," in text for person in cohort[:50])


def test_attack_query_cannot_probe_a_field(setting: Setting) -> None:
    """Attack: ``person_id:42`` (Tantivy's field syntax) would link a pseudonym to a person: it is plain words."""
    person = int(setting.engine.query("SELECT MIN(person_id) FROM note").column(0)[0].as_py())
    found = search_notes(_as(setting, "rita"), setting.engine, setting.root, f"person_id:{person}",
                         project_id=setting.project)  # fmt: skip
    assert found.total == 0 and found.hits == []


def test_attack_the_query_text_never_reaches_the_audit_trail(setting: Setting) -> None:
    """A clinician looks for a patient's letters by name: the ledger keeps a keyed hash, not the name."""
    before = len(_ledger(setting.gov))
    search_notes(_as(setting, "cleo"), setting.engine, setting.root, "Dupontel")
    search_notes(_as(setting, "otto"), setting.engine, setting.root, "Dupontel")
    entries = _ledger(setting.gov)[before:]
    assert entries and "dupontel" not in json.dumps(entries).lower()
    resources = [e["resource"] for e in entries if e["action"] == "health.document.search"]
    assert all(len(r["query_hmac"]) == 64 for r in resources)  # type: ignore[index]


def test_malformed_query_is_refused_before_any_decision(setting: Setting) -> None:
    before = len(_ledger(setting.gov))
    with pytest.raises(QuerySyntaxError, match="unclosed quote at character 6"):
        search_notes(_as(setting, "cleo"), setting.engine, setting.root, 'sein "gauche')
    assert len(_ledger(setting.gov)) == before


def test_indexing_is_for_operators_and_incremental(setting: Setting, tmp_path: Path) -> None:
    with pytest.raises(AccessDenied):
        index_notes(_as(setting, "rita"), setting.engine, setting.root)
    engine = setting.engine
    top = int(engine.query("SELECT MAX(note_id) FROM note").column(0)[0].as_py())
    engine.execute_native(
        f"INSERT INTO note SELECT {top + 1} AS note_id, * EXCLUDE (note_id) REPLACE "
        "('Zygomycose du sein, très rare.' AS note_text) FROM note WHERE note_id = (SELECT MIN(note_id) FROM note)"
    )  # fmt: skip
    try:
        summary = index_notes(_as(setting, "dora"), engine, setting.root)
        assert (summary.added, summary.rebuilt) == (1, False)
        assert _truth_of(setting, "zygomycose") == 1
    finally:
        engine.execute_native(f"DELETE FROM note WHERE note_id = {top + 1}")
    rebuilt = index_notes(_as(setting, "dora"), engine, setting.root, rebuild=True)
    assert rebuilt.rebuilt and _truth_of(setting, "zygomycose") == 0


def _truth_of(setting: Setting, query: str) -> int:
    return TantivyIndex.open(setting.root, NOTES_INDEX, NOTES_SCHEMA).count(SearchRequest(query))


def test_search_before_any_index_says_so(setting: Setting, tmp_path: Path) -> None:
    with pytest.raises(TextIndexError, match="massalia text index"):
        search_notes(_as(setting, "cleo"), setting.engine, tmp_path, QUERY)


def test_attack_a_researcher_never_reads_a_planted_identifier_in_a_snippet(
    setting: Setting, demo_warehouse: Path
) -> None:
    """Attack: search the words that sit next to identifiers (letterheads, signatures, contact lines) under the
    approved pseudonymized project and look for every planted identifier in the snippets that come back."""
    truth_file = demo_warehouse.parent / "sources" / "truth" / "annotations_part0000.jsonl"
    planted = {
        span["text"]
        for line in truth_file.read_text(encoding="utf-8").splitlines()
        for span in json.loads(line)["identifiers"]
        if span["cue"] and len(span["text"]) >= 4 and span["type"] != "date"
    }
    shown: list[str] = []
    for query in ("Patiente", "Patient", "Tel", "IPP", "confrère", "Docteur", "Secrétariat", "médecin traitant"):
        found = search_notes(_as(setting, "rita"), setting.engine, setting.root, query, project_id=setting.project,
                             page_size=100)  # fmt: skip
        shown += [hit["snippets"]["note_text"]["fragment"] for hit in found.hits if "snippets" in hit]
    assert len(shown) > 100  # the attack read many snippets, most of them letterheads and signatures
    assert any("[NOM]" in fragment for fragment in shown) and any("[TEL]" in fragment for fragment in shown)
    # as whole words: the surname "SATI" is not leaked by "HOSPITALISATION"
    words = [re.compile(rf"(?<!\w){re.escape(value)}(?!\w)") for value in planted]
    leaked = sorted({w.pattern for w in words for fragment in shown if w.search(fragment)})
    assert leaked == []


def test_a_deidentified_snippet_keeps_its_highlights_and_widens_over_a_cut_identifier() -> None:
    from massalia.health.documents.search import deidentified_snippet
    from massalia.text import Snippet

    text = "Patiente : DUPONT Marie\nTel 04 91 22 33 44\nCancer du sein gauche, Mme Dupont revue le 12/03/2021."
    fragment = text[text.index("Tel") - 4 : text.index("revue")]  # cut inside the name of the first line
    at = fragment.index("sein")
    shown = deidentified_snippet(text, Snippet(fragment, ((at, at + 4),)), shift_days=3)
    assert shown is not None
    assert "DUPONT" not in shown["fragment"] and "Marie" not in shown["fragment"] and "04 91" not in shown["fragment"]
    assert "[TEL]" in shown["fragment"]
    ((start, end),) = shown["highlights"]
    assert shown["fragment"][start:end] == "sein"
    assert deidentified_snippet(text, Snippet("not in the note", ()), shift_days=0) is None
