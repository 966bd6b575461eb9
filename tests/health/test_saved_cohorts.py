"""Saved cohort definitions (health.saved_cohorts): health's own tables and history, immutable versions with
their hash, visibility within the project, and the audited decision before the database is touched."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect

from massalia.governance import AccessDenied, Caller, Governance, NotFound, ProjectScope, Role, operator_principal
from massalia.governance.schema import GOVERNANCE
from massalia.health import saved_cohorts
from massalia.health.cohorts import CohortDefinition
from massalia.ledger import TransparencyLog

FIRST = CohortDefinition.model_validate({"primary_criteria": {"criteria_list": [{"kind": "CancerDiagnosis"}]}})
SECOND = CohortDefinition.model_validate({"primary_criteria": {"criteria_list": [{"kind": "Death"}]}})


@pytest.fixture
def setting(tmp_path: Path) -> tuple[Governance, str, int]:
    url = f"sqlite:///{tmp_path / 'metadata.sqlite'}"
    gov = Governance(url, tmp_path / "ledger", key_path=tmp_path / "keys" / "master.key")
    operator = operator_principal()
    for name in ("ada.author", "max.member", "olga.outsider"):
        gov.create_user(name, None, roles=[Role.RESEARCHER], actor=operator)
    project = gov.create_project("Study", "A study of saved definitions.", scope=ProjectScope(),
                                 access_level="aggregate", expires=dt.date.today() + dt.timedelta(days=30),
                                 actor=gov.authenticate_token(_token(gov, "ada.author")))  # fmt: skip
    gov.add_member(project.id, "max.member", actor=operator)
    return gov, url, project.id


def _token(gov: Governance, username: str) -> str:
    return gov.create_token(username, None, dt.timedelta(days=1), actor=operator_principal())


def _who(gov: Governance, username: str) -> object:
    return gov.authenticate_token(_token(gov, username))


def test_health_keeps_its_own_tables_and_migration_history(setting: tuple[Governance, str, int]) -> None:
    gov, url, project = setting
    saved_cohorts.save_definition(Caller(_who(gov, "ada.author"), gov), url, project, "Any cancer", FIRST)
    engine = create_engine(url)
    try:
        tables = set(inspect(engine).get_table_names())
        assert {"health_saved_cohort", "health_saved_cohort_version", "health_alembic_version"} <= tables
        assert saved_cohorts.MIGRATIONS.current(engine) == saved_cohorts.MIGRATIONS.head()
        assert GOVERNANCE.current(engine) == GOVERNANCE.head()  # each history at its own head
        saved_cohorts.MIGRATIONS.downgrade(engine)
        assert "health_saved_cohort" not in set(inspect(engine).get_table_names())
        assert "gov_project" in set(inspect(engine).get_table_names())  # governance's tables untouched
    finally:
        engine.dispose()


def test_versions_are_immutable_and_carry_their_definition_hash(setting: tuple[Governance, str, int]) -> None:
    gov, url, project = setting
    author = _who(gov, "ada.author")
    saved = saved_cohorts.save_definition(Caller(author, gov), url, project, "Any cancer", FIRST, note="v1")
    again, added = saved_cohorts.add_version(Caller(author, gov), url, project, saved.id, FIRST)
    assert not added and again.latest_version == 1
    changed, added = saved_cohorts.add_version(Caller(author, gov), url, project, saved.id, SECOND, note="deaths")
    assert added and [v.definition_hash for v in changed.versions] == [FIRST.definition_hash(),
                                                                       SECOND.definition_hash()]  # fmt: skip
    _, first = saved_cohorts.get_definition(Caller(author, gov), url, project, saved.id, version=1)
    assert CohortDefinition.model_validate(first.definition).definition_hash() == FIRST.definition_hash()
    _, newest = saved_cohorts.get_definition(Caller(author, gov), url, project, saved.id)
    assert newest.version == 2 and newest.note == "deaths"


def test_private_until_shared_and_never_outside_the_project(setting: tuple[Governance, str, int]) -> None:
    """Attack: a member reads a colleague's private definition; an outsider reads it by id, audited or not."""
    gov, url, project = setting
    author, member, outsider = (_who(gov, name) for name in ("ada.author", "max.member", "olga.outsider"))
    saved = saved_cohorts.save_definition(Caller(author, gov), url, project, "Any cancer", FIRST)
    with pytest.raises(NotFound):
        saved_cohorts.get_definition(Caller(member, gov), url, project, saved.id)
    assert saved_cohorts.list_definitions(Caller(member, gov), url, project) == ([], 0)
    with pytest.raises(NotFound):
        saved_cohorts.share_definition(Caller(member, gov), url, project, saved.id, True)  # not theirs, not visible yet
    saved_cohorts.share_definition(Caller(author, gov), url, project, saved.id, True)
    items, total = saved_cohorts.list_definitions(Caller(member, gov), url, project)
    assert total == 1 and items[0].shared
    _, added = saved_cohorts.add_version(Caller(member, gov), url, project, saved.id, SECOND)
    assert added
    with pytest.raises(AccessDenied):
        saved_cohorts.share_definition(Caller(member, gov), url, project, saved.id, False)  # only its author
    with TransparencyLog(gov.ledger_path, readonly=True) as log:
        size = log.size
    with pytest.raises(AccessDenied):
        saved_cohorts.get_definition(Caller(outsider, gov), url, project, saved.id)
    with TransparencyLog(gov.ledger_path, readonly=True) as log:
        entry = log.get(size).entry
    assert entry["action"] == "health.definition.read" and entry["decision"] == "denied"
    assert entry["resource"]["saved_cohort_id"] == saved.id
