"""Separation of duties and the audit of every change: the issue's observed attacks, each closed.

- a person holding both the dpo and researcher roles approved their own request;
- an admin added themself to an approved project (and extracted);
- a member added a data engineer, who then had the project's access;
- membership changes needed no approval and were not audited;
- role changes and disabling did not end anything at once.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from massalia.governance import (
    AccessDenied,
    AuthenticationError,
    Governance,
    InvalidRequest,
    Principal,
    ProjectScope,
    Role,
    operator_principal,
)
from massalia.ledger import TransparencyLog

OPERATOR = operator_principal()
NEXT_YEAR = dt.date(2027, 6, 1)


@pytest.fixture
def people(gov: Governance) -> dict[str, Principal]:
    made = {
        "rita": gov.create_user("rita", None, [Role.RESEARCHER], actor=OPERATOR),
        "rob": gov.create_user("rob", None, [Role.RESEARCHER], actor=OPERATOR),
        "ed": gov.create_user("ed", None, [Role.DATA_ENGINEER], actor=OPERATOR),
        "ada": gov.create_user("ada", None, [Role.ADMIN], actor=OPERATOR),
        "dina": gov.create_user("dina", None, [Role.DPO], actor=OPERATOR),
        # Both roles at once: the observed self-approval.
        "dora": gov.create_user("dora", None, [Role.DPO, Role.RESEARCHER], actor=OPERATOR),
    }
    return made


def _project(gov: Governance, owner: Principal) -> int:
    return gov.create_project("Lung survival", "overall survival of stage III lung cancer", scope=ProjectScope(),
                              access_level="pseudonymized", expires=NEXT_YEAR, actor=owner).id  # fmt: skip


def _approved(gov: Governance, owner: Principal, dpo: Principal) -> int:
    pid = _project(gov, owner)
    request = gov.file_request(pid, actor=owner, justification="protocol approved by the board")
    gov.decide_request(request.id, True, "proportionate", actor=dpo)
    return pid


def _entries(gov: Governance) -> list[dict[str, Any]]:
    with TransparencyLog(gov.ledger_path, readonly=True) as log:
        return [log.get(i).entry for i in range(log.size)]


def _extract_allowed(gov: Governance, who: Principal, pid: int) -> bool:
    try:
        return gov.authorize(who, "health.extract.create", project_id=pid).row_level
    except AccessDenied:
        return False


def test_a_dpo_researcher_cannot_approve_their_own_request(gov: Governance, people: dict[str, Principal]) -> None:
    dora, dina = people["dora"], people["dina"]
    pid = _project(gov, dora)
    request = gov.file_request(pid, actor=dora, justification="my own study, approved by the board")
    with pytest.raises(AccessDenied, match="filed"):
        gov.decide_request(request.id, True, "looks fine to me", actor=dora)
    assert gov.get_project(pid, actor=dora).status == "pending"
    assert not _extract_allowed(gov, dora, pid)
    refused = [e for e in _entries(gov) if e["action"] == "request.decide"]
    assert refused[-1]["decision"] == "denied" and refused[-1]["actor"] == "dora"
    assert gov.decide_request(request.id, True, "proportionate", actor=dina).decided_by == "dina"


def test_a_dpo_member_of_the_project_cannot_decide_it(gov: Governance, people: dict[str, Principal]) -> None:
    rita, dora, dina = people["rita"], people["dora"], people["dina"]
    pid = _project(gov, rita)
    gov.add_member(pid, "dora", actor=rita)
    request = gov.file_request(pid, actor=rita, justification="a study rita filed, dora is in it")
    with pytest.raises(AccessDenied, match="member"):
        gov.decide_request(request.id, True, "fine", actor=dora)
    approved = gov.decide_request(request.id, True, "fine", actor=dina)
    with pytest.raises(AccessDenied, match="member"):
        gov.revoke_request(approved.id, "I change my mind", actor=dora)


def test_nobody_adds_themself(gov: Governance, people: dict[str, Principal]) -> None:
    rita, dina, ada = people["rita"], people["dina"], people["ada"]
    pid = _approved(gov, rita, dina)
    for actor in (ada, dina):
        with pytest.raises(AccessDenied, match="themself"):
            gov.add_member(pid, actor.subject, actor=actor)
        assert not _extract_allowed(gov, actor, pid)
    project = gov.get_project(pid, actor=dina)
    assert project.members == ("rita",) and project.pending_members == ()
    refused = [e for e in _entries(gov) if e["action"] == "project.add_member"]
    assert [e["decision"] for e in refused] == ["denied", "denied"]


def test_an_admin_adding_an_accomplice_to_an_approved_project_waits_for_a_dpo(
    gov: Governance, people: dict[str, Principal]
) -> None:
    rita, dina, ada, ed = people["rita"], people["dina"], people["ada"], people["ed"]
    pid = _approved(gov, rita, dina)
    project = gov.add_member(pid, "ed", actor=ada)
    assert project.pending_members == ("ed",) and "ed" not in project.members
    assert not _extract_allowed(gov, ed, pid), "a pending member has no data access"
    with pytest.raises(AccessDenied):
        gov.approve_member(pid, "ed", actor=ada)  # admins are not DPOs
    gov.approve_member(pid, "ed", actor=dina)
    assert _extract_allowed(gov, ed, pid)


def test_a_member_who_is_not_the_owner_cannot_add_members(gov: Governance, people: dict[str, Principal]) -> None:
    rita, rob, dina, ed = people["rita"], people["rob"], people["dina"], people["ed"]
    pid = _project(gov, rita)
    gov.add_member(pid, "rob", actor=rita)  # draft: active, the DPO decides with the members in view
    gov.decide_request(gov.file_request(pid, actor=rita, justification="protocol approved by board").id, True,
                       "fine", actor=dina)  # fmt: skip
    assert _extract_allowed(gov, rob, pid)
    # The attack: a plain member adds a data engineer, who then extracts.
    with pytest.raises(AccessDenied, match="owner"):
        gov.add_member(pid, "ed", actor=rob)
    assert not _extract_allowed(gov, ed, pid)
    # Even the owner's addition waits for a DPO; the DPO who approves may not be the adder.
    gov.add_member(pid, "ed", actor=rita)
    assert not _extract_allowed(gov, ed, pid)
    gov.add_member(pid, "dora", actor=dina)
    with pytest.raises(AccessDenied, match="added"):
        gov.approve_member(pid, "dora", actor=dina)


def test_a_dpo_member_cannot_approve_members(gov: Governance, people: dict[str, Principal]) -> None:
    rita, dina, dora = people["rita"], people["dina"], people["dora"]
    pid = _project(gov, rita)
    gov.add_member(pid, "dora", actor=rita)
    gov.decide_request(gov.file_request(pid, actor=rita, justification="protocol approved by board").id, True,
                       "fine", actor=dina)  # fmt: skip
    gov.add_member(pid, "rob", actor=rita)
    with pytest.raises(AccessDenied, match="member"):
        gov.approve_member(pid, "rob", actor=dora)
    with pytest.raises(InvalidRequest, match="pending"):
        gov.approve_member(pid, "rita", actor=dina)


def test_removal_and_revocation_end_access_at_once(gov: Governance, people: dict[str, Principal]) -> None:
    rita, rob, dina = people["rita"], people["rob"], people["dina"]
    pid = _project(gov, rita)
    gov.add_member(pid, "rob", actor=rita)
    request = gov.decide_request(gov.file_request(pid, actor=rita, justification="protocol approved by board").id,
                                 True, "fine", actor=dina)  # fmt: skip
    assert _extract_allowed(gov, rob, pid)
    with pytest.raises(AccessDenied, match="owner"):
        gov.remove_member(pid, "rita", actor=rob)
    with pytest.raises(InvalidRequest, match="owns"):
        gov.remove_member(pid, "rita", actor=dina)
    gov.remove_member(pid, "rob", actor=rita)
    assert not _extract_allowed(gov, rob, pid)
    assert _extract_allowed(gov, rita, pid)
    with pytest.raises(AccessDenied):
        gov.revoke_request(request.id, "withdrawn", actor=rita)
    revoked = gov.revoke_request(request.id, "the protocol was withdrawn", actor=dina)
    assert revoked.status == "revoked" and revoked.revoked_by == "dina"
    assert not _extract_allowed(gov, rita, pid)
    assert gov.get_project(pid, actor=rita).status == "revoked"


def test_every_change_of_users_roles_tokens_members_and_approvals_is_audited(
    gov: Governance, people: dict[str, Principal]
) -> None:
    rita, dina, ada = people["rita"], people["dina"], people["ada"]
    before = len(_entries(gov))
    pid = _project(gov, rita)
    gov.add_member(pid, "rob", actor=rita)
    request = gov.file_request(pid, actor=rita, justification="protocol approved by the board")
    gov.decide_request(request.id, True, "fine", actor=dina)
    gov.add_member(pid, "ed", actor=rita)
    gov.approve_member(pid, "ed", actor=dina)
    gov.remove_member(pid, "ed", actor=rita)
    gov.revoke_request(request.id, "withdrawn", actor=dina)
    gov.create_user("newbie", None, [Role.RESEARCHER], actor=ada)
    gov.set_roles("newbie", [Role.DATA_ENGINEER], actor=ada)
    gov.set_disabled("newbie", True, actor=ada)
    token = gov.create_token("rita", None, actor=OPERATOR)
    gov.revoke_token(max(t.id for t in gov.list_tokens(actor=OPERATOR)), actor=OPERATOR)
    assert token
    changes = [(e["action"], e["decision"]) for e in _entries(gov)[before:]]
    assert changes == [
        ("project.create", "allowed"), ("project.add_member", "allowed"), ("request.file", "allowed"),
        ("request.decide", "allowed"), ("project.add_member", "allowed"), ("project.approve_member", "allowed"),
        ("project.remove_member", "allowed"), ("request.revoke", "allowed"), ("user.create", "allowed"),
        ("user.set_roles", "allowed"), ("user.disable", "allowed"),
        # the operator's acts are audited whatever the action: a token minted for rita (an administrative
        # act), the listing that finds it, its revocation
        ("token.create", "allowed"), ("token.create_for_user", "allowed"), ("token.list", "allowed"),
        ("token.revoke", "allowed"),
    ]  # fmt: skip
    entries = _entries(gov)[before:]
    assert entries[1]["resource"] == {"project_id": pid, "username": "rob"}
    assert entries[9]["new_roles"] == "data_engineer" and entries[10]["disabled"] is True


def test_nobody_changes_their_own_roles_or_disables_themself(gov: Governance, people: dict[str, Principal]) -> None:
    ada = people["ada"]
    with pytest.raises(AccessDenied, match="own roles"):
        gov.set_roles("ada", [Role.ADMIN, Role.DPO], actor=ada)
    with pytest.raises(AccessDenied, match="own account"):
        gov.set_disabled("ada", True, actor=ada)
    with pytest.raises(AccessDenied):
        gov.set_roles("rob", [Role.DPO], actor=people["rita"])


def test_disabling_and_role_changes_end_sessions(gov: Governance, people: dict[str, Principal]) -> None:
    rita, ada = people["rita"], people["ada"]
    epoch = gov.session_epoch(rita)
    assert gov.check_session(rita, epoch).subject == "rita"
    gov.set_roles("rita", [Role.DATA_ENGINEER], actor=ada)
    with pytest.raises(AuthenticationError, match="roles"):
        gov.check_session(rita, epoch)
    epoch = gov.session_epoch(rita)
    assert gov.check_session(rita, epoch).roles == frozenset({Role.DATA_ENGINEER})
    gov.set_disabled("rita", True, actor=ada)
    with pytest.raises(AuthenticationError, match="disabled"):
        gov.check_session(rita, gov.session_epoch(rita))
    gov.set_disabled("rita", False, actor=ada)
    with pytest.raises(AuthenticationError):
        gov.check_session(rita, epoch)  # re-enabling does not revive the old session


def test_roles_changed_by_the_identity_provider_end_sessions(gov: Governance) -> None:
    first = gov.upsert_oidc_user("https://idp.example", "sub-1", email="iris@example.org", name="Iris",
                                 roles=[Role.DPO])  # fmt: skip
    epoch = gov.session_epoch(first)
    same = gov.upsert_oidc_user("https://idp.example", "sub-1", email="iris@example.org", name="Iris",
                                roles=[Role.DPO])  # fmt: skip
    assert gov.check_session(same, epoch).roles == frozenset({Role.DPO}), "an unchanged login keeps sessions"
    gov.upsert_oidc_user("https://idp.example", "sub-1", email="iris@example.org", name="Iris",
                         roles=[Role.RESEARCHER])  # fmt: skip
    with pytest.raises(AuthenticationError, match="roles"):
        gov.check_session(first, epoch)
