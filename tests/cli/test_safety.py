"""``massalia safety``: generate, load, statistics and incidents from the command line, under the same rights."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from cli_testing import run

from massalia.config import Home
from massalia.governance import Governance, Role, operator_principal


@pytest.fixture(scope="module")
def safety_home(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    home = tmp_path_factory.mktemp("safety-cli-home")
    logs = tmp_path_factory.mktemp("safety-cli-logs")
    Home(home).ensure().mark_initialized("duckdb")  # a home for the incident log alone (no OMOP tables needed)
    code, out = run(home, "safety", "generate", str(logs), "--events", "800")
    assert code == 0, out
    code, out = run(home, "safety", "load", str(logs), "--home", str(home))
    assert code == 0, out
    assert json.loads(out)["status"] == "success"
    assert json.loads(out)["search_index"]["indexed"] > 0, "the load indexes its reports for search"
    code, out = run(home, "safety", "load", str(logs), "--home", str(home))
    assert code == 0 and json.loads(out)["status"] == "unchanged", "a second load adds nothing"
    tokens = {}
    with Governance.from_home(Home(home)) as gov:
        for name, role in (("olga.ops", Role.SAFETY_OPERATOR), ("ana.lyst", Role.SAFETY_ANALYST)):
            gov.create_user(name, None, [role], actor=operator_principal())
            tokens[name] = gov.create_token(name, None, dt.timedelta(days=1), actor=operator_principal())
    return home, tokens


def test_statistics_from_the_command_line(safety_home: tuple[Path, dict[str, str]]) -> None:
    home, tokens = safety_home
    code, out = run(home, "safety", "stats", "--by", "family", "--start", "2025-06-01", "--end", "2025-09-01",
                    token=tokens["ana.lyst"])  # fmt: skip
    assert code == 0, out
    stats = json.loads(out)
    assert stats["exact"] and stats["previous_period"] and stats["rows"]
    code, out = run(home, "safety", "stats", "--zone", "D99", token=tokens["ana.lyst"])
    assert code == 1 and "unknown zone 'D99'" in out


def test_the_local_operator_and_an_analyst_cannot_read_people(safety_home: tuple[Path, dict[str, str]]) -> None:
    home, tokens = safety_home
    code, out = run(home, "safety", "incidents", "--limit", "2")
    assert code == 3 and "safety.incident.list" in out, "holding the files gives no right to read incidents"
    code, out = run(home, "safety", "incidents", "--include", "parties", token=tokens["ana.lyst"])
    assert code == 3 and "safety.incident.parties" in out
    code, out = run(home, "safety", "incidents", "--include", "parties", "--limit", "3", token=tokens["olga.ops"])
    assert code == 0, out
    listed = json.loads(out)["incidents"]
    assert listed and all("parties" in r for row in listed for r in row["reports"])
    code, out = run(home, "safety", "incidents", "--id", str(listed[0]["incident_id"]), token=tokens["ana.lyst"])
    assert code == 0 and json.loads(out)["links"], "one incident with its dedup links"


def test_search_saved_searches_and_views_from_the_command_line(safety_home: tuple[Path, dict[str, str]]) -> None:
    home, tokens = safety_home
    code, out = run(home, "safety", "index")  # the load indexed its reports already: nothing new
    assert code == 0 and json.loads(out)["added"] == 0, out
    code, out = run(home, "safety", "index", "--rebuild")  # the local operator indexes (an admin's job)
    assert code == 0, out
    indexed = json.loads(out)
    assert indexed["indexed"] > 0 and indexed["documents_read"] > 0 and indexed["errors_total"] == 0
    code, out = run(home, "safety", "search", "audition", "--page-size", "3", token=tokens["olga.ops"])
    assert code == 0, out
    found = json.loads(out)
    assert found["mode"] == "identified" and found["total"] == indexed["documents_read"] and found["hits"]
    code, out = run(home, "safety", "search", "audition", token=tokens["ana.lyst"])
    assert code == 0 and json.loads(out)["mode"] == "count" and json.loads(out)["hits"] == []
    code, out = run(home, "safety", "search", "document_kind:pdf", token=tokens["olga.ops"])
    assert code == 0 and json.loads(out)["total"] == 0, "Tantivy's field syntax is plain words, never a field filter"
    code, out = run(home, "safety", "search", "audition", "--save", "Auditions", token=tokens["olga.ops"])
    assert code == 0, out
    code, out = run(home, "safety", "search", "--check", token=tokens["olga.ops"])
    assert code == 0 and json.loads(out)["searches"][0]["new_matches"] == 0, "nothing indexed since it was saved"
    code, out = run(home, "safety", "views", "--save", "Nord", "--zone", "D15", "--layout", '{"by": "month"}',
                    "--share", "safety_analyst", token=tokens["ana.lyst"])  # fmt: skip
    assert code == 0, out
    code, out = run(home, "safety", "views", token=tokens["ana.lyst"])
    assert code == 0 and json.loads(out)["views"][0]["filter"]["zones"] == ["D15"]
    code, out = run(home, "safety", "views", token=tokens["olga.ops"])
    assert code == 0 and json.loads(out)["views"] == [], "shared with analysts, not operators"
