"""The rights matrix at the service layer: every action of rights.yaml × every role × every project situation.

``EXPECTED`` is the policy written out independently of ``rights.yaml``: for each action, what a role
gets in a situation (denied, or which grant flags). The test runs ``Governance.authorize`` with real
users and projects in a metadata database, so membership, approval and expiry come from the tables.
An action added to ``rights.yaml`` without an expectation here fails ``test_every_action_has_an_expectation``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from gov_testing import Clock, memory_dir

from massalia.governance import AccessDenied, Governance, Principal, ProjectScope, Role, load_rights, operator_principal
from massalia.ledger import TransparencyLog

OWN_SITE, OTHER_SITE = "chu_nord", "clcc_sud"
# The public-safety roles have no right outside safety's actions (massalia/safety/rights.yaml).
SAFETY_ROLES = frozenset({Role.SAFETY_OPERATOR, Role.SAFETY_ANALYST, Role.SAFETY_MANAGER, Role.PARTNER})
STAFF = frozenset(Role) - {Role.PUBLIC} - SAFETY_ROLES
USERS = {
    Role.ADMIN: "ada",
    Role.DATA_ENGINEER: "ed",
    Role.DPO: "dina",
    Role.RESEARCHER: "rita",
    Role.CLINICIAN: "cleo",
    Role.SAFETY_OPERATOR: "oona",
    Role.SAFETY_ANALYST: "anna",
    Role.SAFETY_MANAGER: "max",
    Role.PARTNER: "pat",
}


@dataclass(frozen=True)
class Situation:
    """Where a check happens: which project (the principal's own, another's, none), its state, the data's site."""

    project: str  # "none" | "own" | "other"
    status: str = "-"  # "approved" | "unapproved" | "expired"
    level: str = "-"  # "aggregate" | "pseudonymized"
    site: str | None = None

    @property
    def label(self) -> str:
        return f"{self.project}-{self.status}-{self.level}-site:{self.site}"


SITUATIONS = [Situation("none"), Situation("none", site=OWN_SITE), Situation("none", site=OTHER_SITE)] + [
    Situation(project, status, level)
    for project in ("own", "other")
    for status in ("approved", "unapproved", "expired")
    for level in ("aggregate", "pseudonymized")
]


@dataclass(frozen=True)
class Case:
    """One check: the role and the situation (with the facts the expectations read)."""

    role: Role
    situation: Situation

    @property
    def active_member(self) -> bool:
        """Member of an approved, unexpired project (the only way to raw counts and records)."""
        return self.member and self.situation.status == "approved"

    @property
    def member(self) -> bool:
        return self.situation.project == "own" and self.role is not Role.PUBLIC

    @property
    def pseudonymized(self) -> bool:
        return self.situation.level == "pseudonymized"

    @property
    def own_site(self) -> bool:
        return self.role is Role.CLINICIAN and self.situation.site == OWN_SITE


Outcome = frozenset[str] | None  # the grant flags, or None for denied
DENY: Outcome = None
PLAIN: Outcome = frozenset()
RAW = frozenset({"raw_counts"})
ROWS = frozenset({"raw_counts", "row_level"})
PSEUDO_ROWS = frozenset({"raw_counts", "row_level", "pseudonymized"})
PROJECT_USERS = {Role.RESEARCHER, Role.ADMIN, Role.DATA_ENGINEER}


def roles(*allowed: Role) -> Callable[[Case], Outcome]:
    return lambda case: PLAIN if case.role in allowed else DENY


def granted(flags: Outcome, *allowed: Role) -> Callable[[Case], Outcome]:
    return lambda case: flags if case.role in allowed else DENY


def safety_aggregate(case: Case) -> Outcome:
    if case.role in {Role.SAFETY_OPERATOR, Role.SAFETY_ANALYST, Role.SAFETY_MANAGER, Role.ADMIN}:
        return RAW
    return PLAIN if case.role is Role.PARTNER else DENY


def safety_search(case: Case) -> Outcome:
    if case.role in {Role.SAFETY_OPERATOR, Role.SAFETY_MANAGER}:
        return ROWS
    return PLAIN if case.role in {Role.SAFETY_ANALYST, Role.PARTNER} else DENY


def aggregate(case: Case) -> Outcome:
    if case.role in PROJECT_USERS and case.active_member:
        return RAW
    return PLAIN if case.role in STAFF else DENY


def generate(case: Case) -> Outcome:
    if case.role in PROJECT_USERS and case.active_member:
        return RAW
    return PLAIN if case.role in {Role.ADMIN, Role.DATA_ENGINEER} else DENY


def explain(case: Case) -> Outcome:
    if case.role in PROJECT_USERS and case.active_member and case.pseudonymized:
        return PSEUDO_ROWS
    return ROWS if case.own_site else DENY  # no per-person verdict for the operator without a project


def extract(case: Case) -> Outcome:
    return PSEUDO_ROWS if case.role in PROJECT_USERS and case.active_member and case.pseudonymized else DENY


def analysis(case: Case) -> Outcome:
    """Analyses read rows but release aggregates: approved members only, whatever the access level."""
    return frozenset({"row_level"}) if case.role in PROJECT_USERS and case.active_member else DENY


def prediction_score(case: Case) -> Outcome:
    """Scoring with a stored model: per-person risks (pseudonymized) under a pseudonymized project, else spread."""
    if case.role in PROJECT_USERS and case.active_member:
        return frozenset({"row_level", "pseudonymized"}) if case.pseudonymized else PLAIN
    return DENY


def similar(case: Case) -> Outcome:
    """Similar patients: pseudonyms under a pseudonymized project, a protected profile under any other."""
    if case.role in PROJECT_USERS and case.active_member:
        return frozenset({"row_level", "pseudonymized"}) if case.pseudonymized else frozenset({"row_level"})
    return DENY


def patient_view(case: Case) -> Outcome:
    if case.own_site:
        return ROWS
    return extract(case)


def document_search(case: Case) -> Outcome:
    if case.own_site:
        return ROWS
    if case.role in PROJECT_USERS and case.active_member:
        return PSEUDO_ROWS if case.pseudonymized else RAW
    return PLAIN if case.role in STAFF else DENY


def member_or(*always: Role, members: frozenset[Role] = STAFF) -> Callable[[Case], Outcome]:
    def outcome(case: Case) -> Outcome:
        if case.role in always or (case.role in members and case.member):
            return PLAIN
        return DENY

    return outcome


EXPECTED: dict[str, Callable[[Case], Outcome]] = {
    "health.cohort.validate": roles(*STAFF),
    "health.cohort.sql": roles(*STAFF),
    "health.cohort.count": aggregate,
    "health.cohort.attrition": aggregate,
    "health.cohort.breakdowns": aggregate,
    "health.cohort.generate": generate,
    "health.cohort.explain": explain,
    "health.mart.variables": roles(*STAFF),
    "health.mart.count": aggregate,
    "health.mart.build": roles(Role.ADMIN, Role.DATA_ENGINEER),
    "privacy.budget": roles(*STAFF),
    "health.extract.create": extract,
    "health.analysis.run": analysis,
    "health.analysis.similar": similar,
    "health.prediction.score": prediction_score,
    "health.patient.view": patient_view,
    "project.create": roles(Role.ADMIN, Role.DPO, Role.RESEARCHER),
    "project.read": member_or(Role.ADMIN, Role.DPO),
    "project.list": roles(*STAFF),
    "project.add_member": member_or(Role.ADMIN, Role.DPO, members=frozenset({Role.RESEARCHER})),
    "project.approve_member": roles(Role.DPO),
    "project.remove_member": member_or(
        Role.ADMIN, Role.DPO, members=frozenset({Role.RESEARCHER, Role.DATA_ENGINEER, Role.CLINICIAN})
    ),
    "request.file": member_or(members=frozenset(PROJECT_USERS)),
    "request.decide": roles(Role.DPO),
    "request.revoke": roles(Role.DPO),
    "request.list": roles(*STAFF),
    "user.create": roles(Role.ADMIN),
    "user.disable": roles(Role.ADMIN),
    "user.set_roles": roles(Role.ADMIN),
    "user.list": roles(Role.ADMIN, Role.DPO),
    "token.create": roles(*STAFF),
    "token.list": roles(*STAFF),
    "token.revoke": roles(*STAFF),
    "health.quality.read": roles(Role.ADMIN, Role.DATA_ENGINEER, Role.DPO, Role.RESEARCHER),
    "health.quality.run": roles(Role.ADMIN, Role.DATA_ENGINEER),
    "health.etl.run": roles(Role.ADMIN, Role.DATA_ENGINEER),
    "health.nlp.run": roles(Role.ADMIN, Role.DATA_ENGINEER),
    "health.nlp.evaluate": roles(Role.ADMIN, Role.DATA_ENGINEER),
    "health.etl.read": roles(Role.ADMIN, Role.DATA_ENGINEER, Role.DPO),
    "health.etl.rejects": roles(Role.ADMIN, Role.DATA_ENGINEER),
    "token.create_for_user": roles(Role.ADMIN),
    "audit.read": roles(Role.ADMIN, Role.DPO),
    "audit.verify": roles(*(frozenset(Role) - SAFETY_ROLES)),
    # the portal's data: reference metadata for every staff role; saved definitions for the project's members
    # (approved or not: drafting a cohort precedes the request); documents' text for a clinician's own site only
    "health.vocabulary.read": roles(*STAFF),
    "health.definition.save": member_or(),
    "health.definition.read": member_or(),
    "health.document.read": lambda case: ROWS if case.own_site else DENY,
    # full-text search: a clinician's own site identified; an approved pseudonymized project's members by
    # pseudonym; other approved members exact totals; every staff role else a noisy count of persons
    "health.document.search": document_search,
    "health.document.index": roles(Role.ADMIN, Role.DATA_ENGINEER),
    # documents de-identified: the approved members of a pseudonymized project, like an extract
    "health.document.deidentified": extract,
    # public safety: personal fields (narratives, parties) are narrower than incidents; a partner gets masked
    # aggregates only (PLAIN: no raw counts), never rows
    "safety.catalogue.read": roles(Role.ADMIN, Role.DATA_ENGINEER, *SAFETY_ROLES),
    "safety.incident.load": roles(Role.ADMIN, Role.DATA_ENGINEER),
    "safety.incident.list": granted(ROWS, Role.SAFETY_OPERATOR, Role.SAFETY_ANALYST, Role.SAFETY_MANAGER),
    "safety.incident.narrative": granted(ROWS, Role.SAFETY_OPERATOR, Role.SAFETY_MANAGER),
    "safety.incident.parties": granted(ROWS, Role.SAFETY_OPERATOR),
    "safety.stats.read": safety_aggregate,
    "safety.map.read": safety_aggregate,
    "safety.quality.read": roles(Role.ADMIN, Role.DATA_ENGINEER, Role.SAFETY_ANALYST, Role.SAFETY_MANAGER),
    # search: snippets (row_level) only for the narrative readers; analyst and partner a noisy count (PLAIN)
    "safety.search.read": safety_search,
    "safety.search.index": roles(Role.ADMIN, Role.DATA_ENGINEER),
    "safety.search.save": roles(Role.SAFETY_OPERATOR, Role.SAFETY_ANALYST, Role.SAFETY_MANAGER),
    "safety.view.save": roles(Role.SAFETY_OPERATOR, Role.SAFETY_ANALYST, Role.SAFETY_MANAGER),
    # live ingest and alarms: a partner gets nothing live; analysts read alarms but do not decide on them
    "safety.live.ingest": roles(Role.DATA_ENGINEER, Role.SAFETY_OPERATOR),
    "safety.live.read": roles(Role.SAFETY_OPERATOR, Role.SAFETY_ANALYST, Role.SAFETY_MANAGER),
    "safety.alarm.read": roles(Role.SAFETY_OPERATOR, Role.SAFETY_ANALYST, Role.SAFETY_MANAGER),
    "safety.alarm.acknowledge": roles(Role.SAFETY_OPERATOR, Role.SAFETY_MANAGER),
    "safety.alarm.rules": roles(Role.SAFETY_MANAGER, Role.ADMIN),
    "safety.alarm.export": roles(Role.SAFETY_OPERATOR, Role.SAFETY_ANALYST, Role.SAFETY_MANAGER),
    # open data: published open data is everyone's to read, anonymous included (role public); writes are open to
    # signed-in roles here and narrowed by the catalog's organization check (tests/opendata/test_catalog.py)
    "opendata.catalog.read": roles(*Role),  # public reads: anonymous and every signed-in role
    "opendata.certificate.read": roles(*Role),  # the certification log is public: ids and hashes of public files
    "opendata.datastore.read": roles(*Role),
    "opendata.dataset.publish": roles(*STAFF),
    "opendata.datastore.write": roles(*STAFF),
    # staff may ask; the catalog then checks the organization's editors (tests/opendata/test_harvest.py)
    "opendata.harvest.run": roles(*STAFF),
    "opendata.organization.create": roles(Role.ADMIN),
    "opendata.organization.manage": roles(*STAFF),
}


@dataclass
class World:
    """A governance service with one user per role and one project per situation."""

    gov: Governance
    principals: dict[Role, Principal]
    projects: dict[tuple[str, str, str], int]
    clock: Clock


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("rights-matrix")
    clock = Clock()
    for ledger_root in memory_dir(root / "ledger-root"):
        gov = Governance(f"sqlite:///{(root / 'metadata.sqlite').as_posix()}", ledger_root / "ledger",
                         key_path=root / "master.key", clock=clock)  # fmt: skip
        operator = operator_principal()
        principals = {
            role: gov.create_user(name, None, [role], OWN_SITE if role is Role.CLINICIAN else None, actor=operator)
            for role, name in USERS.items()
        }
        principals[Role.PUBLIC] = Principal.anonymous()
        outsider = gov.create_user("olga", None, [Role.RESEARCHER], actor=operator)
        # Separation of duties: the DPO of the matrix is a member of the "own" projects, so another
        # DPO, a member of none, decides their requests.
        dpo = gov.create_user("dora", None, [Role.DPO], actor=operator)
        projects = {}
        today = clock().date()
        for project in ("own", "other"):
            for status in ("approved", "unapproved", "expired"):
                for level in ("aggregate", "pseudonymized"):
                    expires = today + dt.timedelta(days=10 if status == "expired" else 365)
                    created = gov.create_project(
                        f"{project} {status} {level}", "a study of the matrix of rights", scope=ProjectScope(),
                        access_level=level, expires=expires, actor=operator,
                    )  # fmt: skip
                    members = [outsider.subject] + (list(USERS.values()) if project == "own" else [])
                    for name in members:
                        gov.add_member(created.id, name, actor=operator)
                    if status != "unapproved":
                        request = gov.file_request(created.id, actor=outsider, justification="needed for the matrix")
                        gov.decide_request(request.id, True, "fine", actor=dpo)
                    projects[(project, status, level)] = created.id
        clock.advance(days=30)  # the "expired" projects are now past their date, the others still valid
        yield World(gov, principals, projects, clock)
        gov.close()


def test_every_action_has_an_expectation() -> None:
    declared = set(load_rights().actions)
    assert declared == set(EXPECTED), (
        f"actions without an expectation: {sorted(declared - set(EXPECTED))}; "
        f"expectations without an action: {sorted(set(EXPECTED) - declared)}"
    )


@pytest.mark.parametrize("action", sorted(EXPECTED))
def test_rights_matrix(world: World, action: str) -> None:
    gov = world.gov
    audited = gov.rights.audited(action)
    size_before = _ledger_size(gov.ledger_path)
    decisions = 0
    mismatches = []
    for role in Role:
        for situation in SITUATIONS:
            case = Case(role, situation)
            expected = EXPECTED[action](case)
            project_id = None if situation.project == "none" else world.projects[
                (situation.project, situation.status, situation.level)
            ]  # fmt: skip
            try:
                grant = gov.authorize(world.principals[role], action, project_id=project_id, site=situation.site)
            except AccessDenied as denied:
                got: Outcome = DENY
                assert denied.action == action and denied.reason
            else:
                got = frozenset(f for f in ("raw_counts", "row_level", "pseudonymized") if getattr(grant, f))
                assert grant.action == action
                if audited:
                    assert grant.audit_index is not None
                # Health's raw counts and rows come from a project; safety's rights use no project (city staff roles).
                if got & {"raw_counts", "row_level"} and not case.own_site and not action.startswith("safety."):
                    assert grant.project_id == project_id, "a project-bound grant names its project"
                if case.own_site and "row_level" in got and not case.active_member:
                    assert grant.site == OWN_SITE, "a clinician's records are limited to their site"
            decisions += 1
            if got != expected:
                mismatches.append(f"{role.value} in {situation.label}: expected {_show(expected)}, got {_show(got)}")
    assert not mismatches, "\n".join(mismatches)
    if audited:
        assert _ledger_size(gov.ledger_path) - size_before == decisions, "every decision must be audited"


def _show(outcome: Outcome) -> str:
    return "denied" if outcome is None else "allowed " + (",".join(sorted(outcome)) or "(plain)")


def _ledger_size(path: Path) -> int:
    if not path.exists():
        return 0
    with TransparencyLog(path, readonly=True) as log:
        return log.size


def test_the_audit_trail_of_the_matrix_verifies(world: World) -> None:
    with TransparencyLog(world.gov.ledger_path, readonly=True) as log:
        assert log.size > 0 and log.verify().ok
        entry = log.get(log.size - 1).entry
    assert {"time", "actor", "auth", "roles", "action", "decision"} <= set(entry)


def test_an_undeclared_action_is_denied(world: World) -> None:
    with pytest.raises(AccessDenied, match="no such action"):
        world.gov.authorize(world.principals[Role.ADMIN], "cohort.delete_everything")


def test_the_operator_gets_no_raw_counts_and_no_records_without_a_project(world: World) -> None:
    operator = operator_principal()
    assert operator.roles == {Role.ADMIN, Role.DATA_ENGINEER}
    grant = world.gov.authorize(operator, "health.cohort.count")
    assert not grant.raw_counts and not grant.row_level
    for action in ("health.cohort.explain", "health.extract.create", "health.patient.view"):
        with pytest.raises(AccessDenied):
            world.gov.authorize(operator, action)
