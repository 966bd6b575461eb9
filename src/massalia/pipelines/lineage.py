"""Lineage of pipeline runs, kept in the platform metadata database (SQLAlchemy).

Every run is recorded: when it started and ended, which code ran it, every input file (path,
SHA-256, size, rows read, whether it was skipped as already loaded), every output table (rows
added), the rejected rows counted per reason, and how it ended. The schema is created on first use.
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import os
import re
import socket
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Integer,
    Select,
    String,
    Text,
    create_engine,
    func,
    select,
)
from sqlalchemy.engine import Engine as SqlEngine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship


class LineageBase(DeclarativeBase):
    """Declarative base of the lineage tables (kept apart from other metadata models)."""


class RunRecord(LineageBase):
    """One pipeline run."""

    __tablename__ = "etl_run"

    run_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    pipeline: Mapped[str] = mapped_column(String(100))
    started_at: Mapped[dt.datetime] = mapped_column(DateTime)
    ended_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    code_version: Mapped[str] = mapped_column(String(100))
    engine: Mapped[str] = mapped_column(String(50))
    status: Mapped[str] = mapped_column(String(20))
    message: Mapped[str | None] = mapped_column(Text, nullable=True)
    inputs: Mapped[list[InputRecord]] = relationship(back_populates="run", cascade="all, delete-orphan")
    outputs: Mapped[list[OutputRecord]] = relationship(back_populates="run", cascade="all, delete-orphan")
    rejects: Mapped[list[RejectCount]] = relationship(back_populates="run", cascade="all, delete-orphan")


class InputRecord(LineageBase):
    """One input file of a run."""

    __tablename__ = "etl_run_input"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("etl_run.run_id"), index=True)
    dataset: Mapped[str] = mapped_column(String(200))
    path: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    rows_read: Mapped[int] = mapped_column(BigInteger)
    skipped: Mapped[bool] = mapped_column(Boolean, default=False)
    run: Mapped[RunRecord] = relationship(back_populates="inputs")


class OutputRecord(LineageBase):
    """Rows a run added to one table."""

    __tablename__ = "etl_run_output"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("etl_run.run_id"), index=True)
    table_name: Mapped[str] = mapped_column(String(100))
    rows_added: Mapped[int] = mapped_column(BigInteger)
    run: Mapped[RunRecord] = relationship(back_populates="outputs")


class RejectCount(LineageBase):
    """How many rows a run rejected (or flagged) for one reason on one table."""

    __tablename__ = "etl_run_reject"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("etl_run.run_id"), index=True)
    target_table: Mapped[str] = mapped_column(String(100))
    reason: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(20))
    rows: Mapped[int] = mapped_column(BigInteger)
    run: Mapped[RunRecord] = relationship(back_populates="rejects")


RUN_SORTS: tuple[str, ...] = ("started_at", "ended_at", "status", "engine", "run_id")
"""Columns a list of runs may be sorted by."""

RUNNING = "running"
INTERRUPTED = "interrupted"
"""Status of a run whose process died (``kill -9``, a power cut) before it could record its end."""

_OWNER = re.compile(r"^running in process (\d+) on (\S+)$")


def run_owner() -> str:
    """The message a running run carries: which process on which host runs it."""
    return f"running in process {os.getpid()} on {socket.gethostname()}"


def owner_is_gone(message: str | None) -> bool:
    """Whether the process named by a running run's message has ended (only decidable on this host).

    A run started elsewhere, or one whose message names no process, is never declared gone: a
    live run must not be taken for a dead one.

    Examples
    --------
    >>> owner_is_gone(run_owner())
    False
    >>> owner_is_gone(None)
    False
    """
    match = _OWNER.match(message or "")
    if match is None or match.group(2) != socket.gethostname():
        return False
    pid = int(match.group(1))
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)  # signal 0: no signal sent, only whether the process exists
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # it exists, under another user
    return _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    """A killed child its parent has not reaped yet still answers signal 0: read its state."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[:1] == ["Z"]


@dataclass
class RunSummary:
    """A run as read back from the lineage store (plain data, detached from any session)."""

    run_id: str
    pipeline: str
    status: str
    started_at: dt.datetime
    ended_at: dt.datetime | None
    code_version: str
    engine: str
    message: str | None
    inputs: list[dict[str, Any]] = field(default_factory=list)
    outputs: dict[str, int] = field(default_factory=dict)
    rejects: list[dict[str, Any]] = field(default_factory=list)


def code_version() -> str:
    """Package version, plus the git commit when running from a checkout (read from ``.git``)."""
    try:
        version = importlib.metadata.version("massalia")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    for parent in Path(__file__).resolve().parents:
        head = parent / ".git" / "HEAD"
        if head.is_file():
            ref = head.read_text().strip()
            if ref.startswith("ref: "):
                ref_file = parent / ".git" / ref[5:]
                ref = ref_file.read_text().strip() if ref_file.is_file() else ""
            return f"{version}+g{ref[:12]}" if ref else version
    return version


class LineageStore:
    """Record and read runs in the metadata database at ``url``.

    Examples
    --------
    >>> store = LineageStore("sqlite://")
    >>> run_id = store.start_run("demo", engine="duckdb")
    >>> store.finish_run(run_id, "success", outputs={"person": 3})
    >>> store.get_run(run_id).outputs
    {'person': 3}
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self._engine: SqlEngine = create_engine(url)
        LineageBase.metadata.create_all(self._engine)

    def start_run(self, pipeline: str, *, engine: str, run_id: str | None = None) -> str:
        """Open a run in status ``running``; return its id."""
        run_id = run_id or str(uuid.uuid4())
        with Session(self._engine) as session, session.begin():
            session.add(
                RunRecord(
                    run_id=run_id,
                    pipeline=pipeline,
                    started_at=_now(),
                    code_version=code_version(),
                    engine=engine,
                    status=RUNNING,
                    message=run_owner(),
                )
            )
        return run_id

    def interrupted_runs(self, pipeline: str) -> list[RunSummary]:
        """Runs of ``pipeline`` still marked running whose process has ended (see :func:`owner_is_gone`)."""
        with Session(self._engine) as session:
            query = select(RunRecord).where(RunRecord.pipeline == pipeline, RunRecord.status == RUNNING)
            return [_summary(run) for run in session.scalars(query) if owner_is_gone(run.message)]

    def mark_interrupted(self, run_id: str, message: str) -> None:
        """Close a run whose process died: status ``interrupted``, ended now, with ``message``."""
        with Session(self._engine) as session, session.begin():
            run = session.get(RunRecord, run_id)
            if run is None:
                raise KeyError(f"no run {run_id} in the lineage store")
            if run.status == RUNNING:
                run.status = INTERRUPTED
                run.ended_at = _now()
                run.message = message[:4000]

    def add_input(
        self,
        run_id: str,
        *,
        dataset: str,
        path: Path | str,
        sha256: str,
        size_bytes: int,
        rows_read: int,
        skipped: bool = False,
    ) -> None:
        """Record one input file."""
        with Session(self._engine) as session, session.begin():
            session.add(
                InputRecord(
                    run_id=run_id,
                    dataset=dataset,
                    path=str(path),
                    sha256=sha256,
                    size_bytes=size_bytes,
                    rows_read=rows_read,
                    skipped=skipped,
                )
            )

    def finish_run(
        self,
        run_id: str,
        status: str,
        *,
        outputs: dict[str, int] | None = None,
        rejects: list[tuple[str, str, str, int]] | None = None,
        message: str | None = None,
    ) -> None:
        """Close a run: status (``success``, ``failed``, ``unchanged``), outputs, reject counts.

        ``rejects`` holds ``(target_table, reason, action, rows)`` tuples.
        """
        with Session(self._engine) as session, session.begin():
            run = session.get(RunRecord, run_id)
            if run is None:
                raise KeyError(f"no run {run_id} in the lineage store")
            run.status = status
            run.ended_at = _now()
            run.message = message
            for table, rows in (outputs or {}).items():
                run.outputs.append(OutputRecord(table_name=table, rows_added=rows))
            for table, reason, action, rows in rejects or []:
                run.rejects.append(RejectCount(target_table=table, reason=reason, action=action, rows=rows))

    def get_run(self, run_id: str) -> RunSummary:
        """One run with its inputs, outputs and reject counts."""
        with Session(self._engine) as session:
            run = session.get(RunRecord, run_id)
            if run is None:
                raise KeyError(f"no run {run_id} in the lineage store")
            return _summary(run)

    def list_runs(
        self,
        limit: int = 20,
        *,
        pipeline: str | None = None,
        offset: int = 0,
        sort: str = "started_at",
        descending: bool = True,
        status: str | None = None,
    ) -> list[RunSummary]:
        """The runs sorted by ``sort`` (one of :data:`RUN_SORTS`; default: the most recent first), one page.

        Ties are broken by run id, so consecutive pages never overlap.
        """
        if sort not in RUN_SORTS:
            raise ValueError(f"sort must be one of {', '.join(RUN_SORTS)}, got {sort!r}")
        column = getattr(RunRecord, sort)
        order = [column.desc(), RunRecord.run_id.desc()] if descending else [column.asc(), RunRecord.run_id.asc()]
        with Session(self._engine) as session:
            query = self._runs(select(RunRecord), pipeline, status).order_by(*order).offset(offset).limit(limit)
            return [_summary(run) for run in session.scalars(query)]

    def count_runs(self, *, pipeline: str | None = None, status: str | None = None) -> int:
        """How many runs :meth:`list_runs` pages through with the same filters."""
        with Session(self._engine) as session:
            return int(session.scalar(self._runs(select(func.count(RunRecord.run_id)), pipeline, status)) or 0)

    @staticmethod
    def _runs(query: Select[Any], pipeline: str | None, status: str | None) -> Select[Any]:
        if pipeline:
            query = query.where(RunRecord.pipeline == pipeline)
        if status:
            query = query.where(RunRecord.status == status)
        return query

    def close(self) -> None:
        """Release the database connections."""
        self._engine.dispose()


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def _summary(run: RunRecord) -> RunSummary:
    return RunSummary(
        run_id=run.run_id,
        pipeline=run.pipeline,
        status=run.status,
        started_at=run.started_at,
        ended_at=run.ended_at,
        code_version=run.code_version,
        engine=run.engine,
        message=run.message,
        inputs=[
            {
                "dataset": i.dataset,
                "path": i.path,
                "sha256": i.sha256,
                "size_bytes": i.size_bytes,
                "rows_read": i.rows_read,
                "skipped": i.skipped,
            }
            for i in run.inputs
        ],
        outputs={o.table_name: o.rows_added for o in run.outputs},
        rejects=[
            {"target_table": r.target_table, "reason": r.reason, "action": r.action, "rows": r.rows}
            for r in run.rejects
        ],
    )
