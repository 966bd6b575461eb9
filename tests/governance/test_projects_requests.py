"""Projects, members, access requests and decisions, per-project secrets, OIDC accounts."""

from __future__ import annotations

import datetime as dt
import sqlite3
import stat
from pathlib import Path

import pytest
from gov_testing import Clock

from massalia.governance import (
    AccessDenied,
    AuthenticationError,
    Governance,
    InvalidRequest,
    NotFound,
    Principal,
    ProjectScope,
    Role,
    operator_principal,
)
from massalia.governance.keys import KeyFileError
from massalia.ledger import TransparencyLog

OPERATOR = operator_principal()
NEXT_YEAR = dt.date(2027, 6, 1)


@pytest.fixture
def people(gov: Governance) -> dict[str, Principal]:
    return {
        "rita": gov.create_user("rita", None, [Role.RESEARCHER], actor=OPERATOR),
        "rob": gov.create_user("rob", None, [Role.RESEARCHER], actor=OPERATOR),
        "dina": gov.create_user("dina", None, [Role.DPO], actor=OPERATOR),
        "cleo": gov.create_user("cleo", None, [Role.CLINICIAN], "chu_nord", actor=OPERATOR),
    }


def _project(gov: Governance, actor: Principal, level: str = "aggregate", expires: dt.date = NEXT_YEAR) -> int:
    scope = ProjectScope(cohort={"primary_criteria": {}}, variables=("age_at_diagnosis",), sites=("chu_nord",),
                         period_start=dt.date(2015, 1, 1), period_end=dt.date(2024, 12, 31))  # fmt: skip
    return gov.create_project("Lung survival", "overall survival of stage III lung cancer", scope=scope,
                              access_level=level, expires=expires, actor=actor).id  # fmt: skip


def test_a_project_round_trips_with_its_scope(gov: Governance, people: dict[str, Principal]) -> None:
    pid = _project(gov, people["rita"])
    project = gov.get_project(pid, actor=people["rita"])
    assert project.owner == "rita" and project.members == ("rita",) and project.status == "draft"
    assert project.scope.variables == ("age_at_diagnosis",) and project.scope.period_end == dt.date(2024, 12, 31)
    assert project.scope.cohort_hash and len(project.scope.cohort_hash) == 64
    assert not project.is_active(dt.date(2026, 6, 1))
    assert gov.project_scope(pid) == project.scope


@pytest.mark.parametrize(
    ("title", "purpose", "level", "expires", "message"),
    [
        ("", "a real purpose here", "aggregate", NEXT_YEAR, "title"),
        ("T", "short", "aggregate", NEXT_YEAR, "purpose"),
        ("T", "a real purpose here", "identified", NEXT_YEAR, "access level"),
        ("T", "a real purpose here", "aggregate", dt.date(2026, 6, 1), "after today"),
    ],
)
def test_bad_projects_are_refused(
    gov: Governance, people: dict[str, Principal], title: str, purpose: str, level: str, expires: dt.date, message: str
) -> None:
    with pytest.raises(InvalidRequest, match=message):
        gov.create_project(title, purpose, scope=ProjectScope(), access_level=level, expires=expires,
                           actor=people["rita"])  # fmt: skip


def test_scope_period_and_fields_are_checked() -> None:
    with pytest.raises(InvalidRequest, match="starts"):
        ProjectScope(period_start=dt.date(2024, 1, 1), period_end=dt.date(2023, 1, 1))
    with pytest.raises(InvalidRequest, match="unknown field"):
        ProjectScope.from_json({"cohorts": []})
    with pytest.raises(InvalidRequest, match="YYYY-MM-DD"):
        ProjectScope.from_json({"period_start": "last year"})


def test_who_sees_and_changes_projects(gov: Governance, people: dict[str, Principal]) -> None:
    rita, rob, dina, cleo = people["rita"], people["rob"], people["dina"], people["cleo"]
    pid = _project(gov, rita)
    with pytest.raises(AccessDenied, match="member"):
        gov.get_project(pid, actor=rob)
    with pytest.raises(AccessDenied):
        gov.add_member(pid, "rob", actor=rob)
    assert gov.add_member(pid, "rob", actor=rita).members == ("rita", "rob")
    assert gov.get_project(pid, actor=rob).id == pid and gov.get_project(pid, actor=dina).id == pid
    assert [p.id for p in gov.list_projects(actor=rob)] == [pid]
    assert gov.list_projects(actor=cleo) == []
    assert [p.id for p in gov.list_projects(actor=OPERATOR)] == [pid]
    with pytest.raises(AccessDenied):
        gov.create_project("x", "a real purpose here", scope=ProjectScope(), access_level="aggregate",
                           expires=NEXT_YEAR, actor=cleo)  # fmt: skip
    with pytest.raises(AccessDenied):
        gov.list_projects(actor=Principal.anonymous())
    with pytest.raises(NotFound):
        gov.get_project(999, actor=dina)
    with pytest.raises(NotFound):
        gov.add_member(pid, "nobody", actor=rita)


def test_requests_and_final_decisions(gov: Governance, people: dict[str, Principal], tmp_path: Path) -> None:
    rita, rob, dina = people["rita"], people["rob"], people["dina"]
    pid = _project(gov, rita)
    with pytest.raises(AccessDenied, match="member"):
        gov.file_request(pid, actor=rob, justification="I would like to see it too")
    with pytest.raises(InvalidRequest, match="justification"):
        gov.file_request(pid, actor=rita, justification="pls")
    first = gov.file_request(pid, actor=rita, justification="protocol 2026-04 approved by the board")
    with pytest.raises(InvalidRequest, match="pending"):
        gov.file_request(pid, actor=rita, justification="again, protocol 2026-04 approved")
    assert gov.get_project(pid, actor=rita).status == "pending"
    with pytest.raises(AccessDenied):
        gov.decide_request(first.id, True, "looks fine", actor=OPERATOR)  # admins are not DPOs
    with pytest.raises(InvalidRequest, match="reason"):
        gov.decide_request(first.id, True, "  ", actor=dina)
    rejected = gov.decide_request(first.id, False, "the variables exceed the purpose", actor=dina)
    assert rejected.status == "rejected" and rejected.decided_by == "dina" and rejected.decided_at is not None
    assert gov.get_project(pid, actor=rita).status == "rejected"
    with pytest.raises(InvalidRequest, match="already rejected"):
        gov.decide_request(first.id, True, "on second thought", actor=dina)
    second = gov.file_request(pid, actor=rita, justification="variables reduced to the protocol's")
    approved = gov.decide_request(second.id, True, "proportionate now", actor=dina)
    assert approved.status == "approved" and gov.get_project(pid, actor=rita).is_active(dt.date(2026, 6, 2))
    history = gov.list_requests(actor=dina)
    assert [(r.id, r.status, r.reason) for r in history] == [
        (first.id, "rejected", "the variables exceed the purpose"), (second.id, "approved", "proportionate now"),
    ]  # fmt: skip
    assert [r.id for r in gov.list_requests(actor=rita)] == [first.id, second.id]
    assert gov.list_requests(actor=rob) == []
    # The decisions (and the refused attempts) are in the ledger, the stored request points at its entry.
    with sqlite3.connect(tmp_path / "metadata.sqlite") as db:
        indexes = [row[0] for row in db.execute("SELECT ledger_index FROM gov_access_request ORDER BY id")]
    with TransparencyLog(gov.ledger_path, readonly=True) as log:
        decisions = [log.get(i).entry for i in indexes]
        assert log.verify().ok
    assert [(d["action"], d["decision"], d["verdict"], d["actor"]) for d in decisions] == [
        ("request.decide", "allowed", "rejected", "dina"), ("request.decide", "allowed", "approved", "dina"),
    ]  # fmt: skip


def test_membership_ends_with_expiry_and_with_the_account(
    gov: Governance, people: dict[str, Principal], clock: Clock
) -> None:
    rita, dina = people["rita"], people["dina"]
    pid = _project(gov, rita, expires=dt.date(2026, 7, 1))
    gov.decide_request(gov.file_request(pid, actor=rita, justification="for the summer analysis").id, True,
                       "ok for a month", actor=dina)  # fmt: skip
    assert gov.authorize(rita, "health.cohort.count", project_id=pid).raw_counts
    clock.now = dt.datetime(2026, 7, 1, 23, 59, tzinfo=dt.UTC)
    assert gov.authorize(rita, "health.cohort.count", project_id=pid).raw_counts, "valid through its last day"
    clock.now = dt.datetime(2026, 7, 2, 0, 1, tzinfo=dt.UTC)
    assert not gov.authorize(rita, "health.cohort.count", project_id=pid).raw_counts
    clock.now = dt.datetime(2026, 6, 15, tzinfo=dt.UTC)
    gov.set_disabled("rita", True, actor=OPERATOR)
    assert not gov.authorize(rita, "health.cohort.count", project_id=pid).raw_counts


def test_project_keys_are_stable_distinct_and_sealed(
    gov: Governance, people: dict[str, Principal], tmp_path: Path
) -> None:
    first, second = _project(gov, people["rita"]), _project(gov, people["rita"])
    key = gov.project_key(first)
    assert len(key) == 32 and gov.project_key(first) == key and gov.project_key(second) != key
    master = tmp_path / "keys" / "master.key"
    assert stat.S_IMODE(master.stat().st_mode) == 0o600
    assert stat.S_IMODE(master.parent.stat().st_mode) == 0o700
    with sqlite3.connect(tmp_path / "metadata.sqlite") as db:
        stored = b"".join(row[0] + row[1] for row in db.execute("SELECT nonce, ciphertext FROM gov_project_secret"))
        # A sealed secret moved to another project does not open.
        db.execute("UPDATE gov_project_secret SET ciphertext = (SELECT ciphertext FROM gov_project_secret "
                   f"WHERE project_id = {first}) WHERE project_id = {second}")  # fmt: skip
    assert key not in stored
    with pytest.raises(KeyFileError, match="does not decrypt"):
        gov.project_key(second)
    with pytest.raises(NotFound):
        gov.project_key(999)
    master.chmod(0o644)
    with pytest.raises(KeyFileError, match="chmod 600"):
        gov.project_key(first)


def test_oidc_accounts_are_created_then_updated(gov: Governance) -> None:
    issuer = "https://idp.chu-nord.example"
    first = gov.upsert_oidc_user(issuer, "sub-1", email="Marie.Curie@chu-nord.example", name="Marie",
                                 roles=[Role.RESEARCHER])  # fmt: skip
    assert first.subject == "marie.curie" and first.auth == "oidc" and first.roles == {Role.RESEARCHER}
    again = gov.upsert_oidc_user(issuer, "sub-1", email="marie@chu-nord.example", name="Marie C.",
                                 roles=[Role.RESEARCHER, Role.DPO])  # fmt: skip
    assert again.user_id == first.user_id and again.roles == {Role.RESEARCHER, Role.DPO}
    other = gov.upsert_oidc_user("https://idp.other.example", "sub-1", email="marie.curie@other.example",
                                 name=None, roles=["researcher"])  # fmt: skip
    assert other.user_id != first.user_id and other.subject == "marie.curie2"
    odd = gov.upsert_oidc_user(issuer, "42", email=None, name=None, roles=["researcher"])
    assert odd.subject == "u42"
    gov.set_disabled("marie.curie", True, actor=OPERATOR)
    with pytest.raises(AuthenticationError):
        gov.upsert_oidc_user(issuer, "sub-1", email=None, name=None, roles=["researcher"])
    with pytest.raises(InvalidRequest):
        gov.upsert_oidc_user("", "x", email=None, name=None, roles=["researcher"])
