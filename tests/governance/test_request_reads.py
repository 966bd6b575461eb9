"""A caller's facts and a project's scope are read once per API request, and never outlive what changes them."""

from __future__ import annotations

import contextvars
import datetime as dt
from typing import Any

import pytest
from sqlalchemy import event

from massalia.governance import AccessDenied, Governance, Principal, ProjectScope, Role, operator_principal
from massalia.governance.store import read_once_per_request

OPERATOR = operator_principal()
NEXT_YEAR = dt.date(2027, 6, 1)


@pytest.fixture
def world(gov: Governance) -> dict[str, Any]:
    """Rita's approved project (rob not a member yet), and the decider."""
    rita = gov.create_user("rita", None, [Role.RESEARCHER], actor=OPERATOR)
    rob = gov.create_user("rob", None, [Role.RESEARCHER], actor=OPERATOR)
    dina = gov.create_user("dina", None, [Role.DPO], actor=OPERATOR)
    project = gov.create_project("Lung survival", "overall survival of stage III lung cancer",
                                 scope=ProjectScope(variables=("age_at_diagnosis",)), access_level="aggregate",
                                 expires=NEXT_YEAR, actor=rita)  # fmt: skip
    request = gov.file_request(project.id, actor=rita, justification="Protocol LUNG-01 approved by the board.")
    gov.decide_request(request.id, True, "Protocol and DPIA reviewed.", actor=dina)
    return {"rita": rita, "rob": rob, "dina": dina, "project": project.id, "request": request.id}


def metadata_reads(gov: Governance) -> list[str]:
    """Every statement the governance sends to its metadata database from now on."""
    statements: list[str] = []

    @event.listens_for(gov._engine, "before_cursor_execute")
    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    return statements


def in_one_request(call: Any) -> Any:
    """Run ``call`` as the API runs a request: in a context of its own where reads are remembered."""

    def request() -> Any:
        read_once_per_request()
        return call()

    return contextvars.copy_context().run(request)


def checks(gov: Governance, who: Principal, project: int) -> list[bool]:
    """What a guarded service asks in one call: may name the project, the decision, the scope, again."""
    named = gov.may_name_project(who, project)
    granted = gov.authorize(who, "project.read", project_id=project)
    scope = gov.project_scope(project)
    again = gov.may_name_project(who, project) and gov.project_scope(project) == scope
    return [named, granted.action == "project.read", again]


def test_one_request_reads_the_facts_once(gov: Governance, world: dict[str, Any]) -> None:
    statements = metadata_reads(gov)
    assert checks(gov, world["rita"], world["project"]) == [True, True, True]
    outside = len(statements)
    statements.clear()
    assert in_one_request(lambda: checks(gov, world["rita"], world["project"])) == [True, True, True]
    assert len(statements) < outside / 2, (len(statements), outside)


def test_the_next_request_reads_a_revocation(gov: Governance, world: dict[str, Any]) -> None:
    """Nothing is remembered across requests: a project revoked between two is unapproved in the second."""
    assert in_one_request(lambda: checks(gov, world["rita"], world["project"])) == [True, True, True]
    gov.revoke_request(world["request"], "Consent withdrawn.", actor=world["dina"])
    assert in_one_request(lambda: gov.facts(world["rita"], world["project"]).approved) is False


def test_a_write_within_the_request_is_read_back(gov: Governance, world: dict[str, Any]) -> None:
    """A revocation written inside the request (any write) makes the request read the facts again."""

    def request() -> tuple[bool, bool]:
        first = gov.facts(world["rita"], world["project"]).approved
        gov.revoke_request(world["request"], "Consent withdrawn.", actor=world["dina"])
        return first, gov.facts(world["rita"], world["project"]).approved

    assert in_one_request(request) == (True, False)


def test_callers_never_share_remembered_facts(gov: Governance, world: dict[str, Any]) -> None:
    """The remembered facts are keyed by the caller: another caller in the same context is decided on its own."""

    def request() -> tuple[bool, bool]:
        return gov.may_name_project(world["rita"], world["project"]), gov.may_name_project(
            world["rob"], world["project"]
        )

    assert in_one_request(request) == (True, False)
    with pytest.raises(AccessDenied):
        in_one_request(lambda: gov.authorize(world["rob"], "project.read", project_id=world["project"]))
