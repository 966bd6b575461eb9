"""The cohort dashboard releases its size and breakdowns in one guarded call, exactly as the lone calls would.

Issue 12 asked for the dashboard under 1 s at 100,000 patients; it now makes one authorization, one scan of the
mart and one release transaction (``research.mart_count_and_breakdowns``). These tests hold it to the lone calls'
semantics: the same answers (the same release keys, so a lone call afterwards is a free repeat), the same total
charge, audit entries naming every breakdown, and no breakdown once the budget is gone.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from massalia.engine.duckdb import DuckDBEngine
from massalia.governance import Caller, Governance, Principal, Role, operator_principal
from massalia.governance.disclosure import RELEASE_ACTION, budget_of
from massalia.health import research
from massalia.health.dashboard import PANELS, cohort_dashboard
from massalia.health.marts.builder import build_mart
from massalia.ledger import TransparencyLog

VARIABLES = [variable for variables in PANELS.values() for variable in variables]


@pytest.fixture(scope="module")
def mart(demo_warehouse: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DuckDBEngine]:
    """A copy of the shared demo warehouse (600 persons) with its mart built."""
    path = tmp_path_factory.mktemp("dashboard") / "warehouse.duckdb"
    shutil.copy(demo_warehouse, path)
    with DuckDBEngine(path) as engine:
        build_mart(engine)
        yield engine


@pytest.fixture
def root() -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="massalia-dashboard-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def gov(root: Path) -> Iterator[Governance]:
    """A fresh metadata database and ledger: a fresh release store and fresh budgets."""
    with Governance(f"sqlite:///{(root / 'metadata.sqlite').as_posix()}", root / "ledger",
                    key_path=root / "keys" / "master.key") as service:  # fmt: skip
        yield service


def _researcher(gov: Governance, name: str) -> Caller:
    """A researcher with no project: every count is a noisy release charged to their budget."""
    gov.create_user(name, None, [Role.RESEARCHER], actor=operator_principal())
    principal: Principal = gov.authenticate_token(gov.create_token(name, None, actor=operator_principal()))
    return Caller(principal, gov, "test")


def _entries(root: Path, actor: str) -> list[dict[str, Any]]:
    with TransparencyLog(root / "ledger", readonly=True) as log:
        assert log.verify().ok
        found = [log.get(i).entry for i in range(log.size)]
    return [entry for entry in found if entry.get("actor") == actor]


def _cells(variable: dict[str, Any]) -> dict[Any, Any]:
    return {cell["value"]: cell["count"] for cell in variable["cells"]}


def test_the_dashboard_releases_what_the_lone_calls_release_and_charges_their_sum(
    gov: Governance, mart: DuckDBEngine
) -> None:
    """Attack: a researcher opens the dashboard to get breakdowns cheaper, or fresher noise, than lone calls give."""
    alice, bob, carol = (_researcher(gov, name) for name in ("alice", "bob", "carol"))
    filters = {"all": [{"variable": "year_of_diagnosis", "op": ">=", "value": 2015}]}
    dashboard = cohort_dashboard(alice, mart, filters)
    variables = {v["variable"]: v for panel in dashboard["panels"] for v in panel["variables"]}
    assert sorted(variables) == sorted(VARIABLES) and all("cells" in v for v in variables.values())
    # The same release keys as the lone calls: bob's lone calls get alice's releases, as repeats, for free.
    count = research.mart_count(bob, mart, filters)
    assert (count.count, count.release["repeated"], count.release["charged"]) == (
        dashboard["count"]["count"], True, 0.0)  # fmt: skip
    for name in VARIABLES:
        lone = research.mart_breakdown(bob, mart, filters, name)
        assert lone.release["repeated"] and lone.release["charged"] == 0.0, name
        assert lone.cells == _cells(variables[name]) and lone.total == variables[name]["total"], name
    assert budget_of(gov, bob.principal).spent == 0
    # The same total charge as the lone calls on a question nobody asked yet (carol's, fresh filters).
    other = {"all": [{"variable": "year_of_diagnosis", "op": "<", "value": 2015}]}
    research.mart_count(carol, mart, other)
    for name in VARIABLES:
        research.mart_breakdown(carol, mart, other, name)
    fresh = cohort_dashboard(alice, mart, {"all": [{"variable": "year_of_diagnosis", "op": "<", "value": 2014}]})
    spent_by_dashboard = budget_of(gov, alice.principal).spent / 2  # two dashboards of the same shape
    assert budget_of(gov, carol.principal).spent > 0
    assert spent_by_dashboard == pytest.approx(budget_of(gov, carol.principal).spent)
    assert fresh["count"]["release"]["charged"] > 0


def test_the_dashboard_audit_entries_name_every_breakdown(gov: Governance, mart: DuckDBEngine, root: Path) -> None:
    alice = _researcher(gov, "alice")
    filters = {"all": [{"variable": "year_of_diagnosis", "op": ">=", "value": 2016}]}
    dashboard = cohort_dashboard(alice, mart, filters)
    entries = _entries(root, "alice")
    decisions = [e for e in entries if e["action"] == "health.mart.count"]
    releases = [e for e in entries if e["action"] == RELEASE_ACTION]
    assert len(decisions) == 1 and decisions[0]["decision"] == "allowed"
    assert decisions[0]["resource"]["breakdowns"] == VARIABLES
    assert len(releases) == 1 and releases[0]["decision"] == "allowed"
    release = releases[0]
    assert sorted(release["resource"]["query_keys"]) == sorted(["count", *VARIABLES])
    assert sorted(release["released"]) == sorted(["count", *VARIABLES])
    assert release["released"]["count"] == {"persons": dashboard["count"]["count"]}
    by_sex = {v["variable"]: v for p in dashboard["panels"] for v in p["variables"]}["sex"]
    assert release["released"]["sex"]["total"] == by_sex["total"]
    assert release["charged"] == pytest.approx(sum(release["charges"].values()))
    assert release["charged"] > 0
    assert release["budget_remaining"] == pytest.approx(budget_of(gov, alice.principal).remaining)


def test_the_dashboard_withholds_what_the_budget_cannot_pay(
    gov: Governance, mart: DuckDBEngine, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Attack: a researcher at the end of the budget opens a dashboard, hoping the batch pays for more than is left."""
    monkeypatch.setenv("MASSALIA_DISCLOSURE_BUDGET", "1")  # 0.1 a count, 0.2 a breakdown: count + 4 breakdowns
    alice = _researcher(gov, "alice")
    dashboard = cohort_dashboard(alice, mart, {"all": []})
    variables = [v for panel in dashboard["panels"] for v in panel["variables"]]
    released = [v["variable"] for v in variables if "cells" in v]
    withheld = [v for v in variables if "withheld" in v]
    assert released == VARIABLES[:4]
    assert withheld and all(
        v["withheld"].startswith("privacy budget exhausted: privacy budget spent") for v in withheld
    )
    budget = budget_of(gov, alice.principal)
    assert budget.spent == pytest.approx(0.9, abs=1e-4) and budget.remaining == pytest.approx(0.1, abs=1e-4)
    entries = _entries(root, "alice")
    refused = [e for e in entries if e["action"] == RELEASE_ACTION and e["decision"] == "denied"]
    assert len(refused) == 1 and "budget" in refused[0]["denied_because"]
    # A budget that cannot pay even the count of a new question: refused whole, as a lone count would be.
    monkeypatch.setenv("MASSALIA_DISCLOSURE_BUDGET", "0.05")
    with pytest.raises(PermissionError, match="budget"):
        cohort_dashboard(_researcher(gov, "bob"), mart, {"all": [{"variable": "sex", "op": "=", "value": "female"}]})
