"""The governance tables: the Alembic migration matches the models, and everything runs on PostgreSQL too."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect
from sqlalchemy.engine import Engine

from massalia.governance import Governance, ProjectScope, Role, operator_principal
from massalia.governance.schema import VERSION_TABLE, current_revision, downgrade, head_revision, upgrade
from massalia.governance.tables import Base
from massalia.ledger import TransparencyLog

GOV_TABLES = {table.name for table in Base.metadata.sorted_tables}


def _differences(engine: Engine) -> list[object]:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True, "version_table": VERSION_TABLE})
        return [d for d in compare_metadata(context, Base.metadata) if not _is_foreign_table(d)]


def _is_foreign_table(difference: object) -> bool:
    # Other packages keep their own tables in the same metadata database: only gov_ tables are ours.
    return (
        isinstance(difference, tuple) and difference[0] == "remove_table" and not difference[1].name.startswith("gov_")
    )


def _check_migrations(engine: Engine) -> None:
    assert current_revision(engine) is None
    upgrade(engine)
    assert current_revision(engine) == head_revision()
    assert set(inspect(engine).get_table_names()) >= GOV_TABLES
    assert _differences(engine) == [], "the migration and the models disagree: write a new migration"
    upgrade(engine)  # idempotent
    downgrade(engine)
    assert not GOV_TABLES & set(inspect(engine).get_table_names())
    upgrade(engine)


def test_the_migration_builds_the_models_tables_on_sqlite(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{(tmp_path / 'metadata.sqlite').as_posix()}")
    try:
        _check_migrations(engine)
    finally:
        engine.dispose()


@pytest.fixture
def pg_metadata_url(pg_dsn: str) -> Iterator[str]:
    """A fresh PostgreSQL database for the metadata, dropped afterwards."""
    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    name = f"gov_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_dsn, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    info = conninfo_to_dict(pg_dsn)
    host, port, user = info.get("host", "127.0.0.1"), info.get("port", "5432"), info.get("user", "postgres")
    password = f":{info['password']}" if info.get("password") else ""
    try:
        yield f"postgresql+psycopg://{user}{password}@{host}:{port}/{name}"
    finally:
        with psycopg.connect(pg_dsn, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


ACTIONS_ON_POSTGRES = [
    "user.create", "user.create", "token.create", "token.create_for_user", "project.create", "health.cohort.count",
    "request.file", "request.decide", "health.cohort.count", "token.list", "token.list",
]  # fmt: skip


@pytest.mark.postgres
def test_the_governance_runs_on_postgresql(pg_metadata_url: str, tmp_path: Path) -> None:
    engine = create_engine(pg_metadata_url)
    try:
        _check_migrations(engine)
    finally:
        engine.dispose()
    operator = operator_principal()
    clock_now = dt.datetime(2026, 6, 1, 9, tzinfo=dt.UTC)
    with Governance(pg_metadata_url, tmp_path / "ledger", key_path=tmp_path / "master.key",
                    clock=lambda: clock_now) as gov:  # fmt: skip
        gov.create_user("rita", "a long enough password", [Role.RESEARCHER], actor=operator)
        gov.create_user("dina", None, [Role.DPO], actor=operator)
        rita = gov.authenticate_password("rita", "a long enough password")
        token_rita = gov.authenticate_token(gov.create_token(rita, ["health.cohort.*"], actor=rita))
        dina = gov.authenticate_token(gov.create_token("dina", None, actor=operator))
        project = gov.create_project("PG", "check the governance on PostgreSQL", scope=ProjectScope(),
                                     access_level="pseudonymized", expires=dt.date(2027, 1, 1), actor=rita)  # fmt: skip
        assert not gov.authorize(token_rita, "health.cohort.count", project_id=project.id).raw_counts
        request = gov.file_request(project.id, actor=rita, justification="run it on the production database")
        gov.decide_request(request.id, True, "fine", actor=dina)
        assert gov.authorize(token_rita, "health.cohort.count", project_id=project.id).raw_counts
        key = gov.project_key(project.id)
        assert gov.project_key(project.id) == key
        assert [t.last_used_at is not None for t in gov.list_tokens(actor=operator)] == [True, True]
        assert gov.list_tokens(actor=operator)[0].created_at.tzinfo is not None
    with TransparencyLog(tmp_path / "ledger", readonly=True) as log:
        # every change is audited, and every operator decision (accounts, a token minted for another user,
        # token listings) besides the project, the counts, the request and its decision
        actions = [log.get(index).entry["action"] for index in range(log.size)]
        assert log.verify().ok
        assert actions == ACTIONS_ON_POSTGRES, repr(actions)


def test_the_metadata_database_writes_ahead_into_files_as_private_as_itself(tmp_path: Path) -> None:
    """SQLite's write-ahead log (one fsync a commit) holds recent writes: a local user must not read it either."""
    import os
    import stat

    from sqlalchemy import text

    database = tmp_path / "metadata.sqlite"
    database.touch(mode=0o600)  # as a home makes it (massalia.config)
    database.chmod(0o600)
    previous = os.umask(0o022)  # a process that did not narrow its umask
    try:
        with Governance(
            f"sqlite:///{database.as_posix()}", tmp_path / "ledger", key_path=tmp_path / "k" / "m.key"
        ) as gov:
            gov.create_user("wal.reader", "a long enough passphrase 1", actor=operator_principal())
            with gov._session() as session:
                assert session.execute(text("PRAGMA journal_mode")).scalar() == "wal"
                assert session.execute(text("PRAGMA synchronous")).scalar() == 2  # FULL: every commit is synced
            for name in ("metadata.sqlite-wal", "metadata.sqlite-shm"):
                assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600, name
    finally:
        os.umask(previous)
