"""The audit trail: who the local operator is, and each decision appended to the transparency log."""

from __future__ import annotations

import hashlib
import json
import os
import pwd
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from massalia.governance.model import (
    InvalidRequest,
    Principal,
    Role,
)
from massalia.governance.store import ANONYMOUS_AUDIT_BURST, ANONYMOUS_AUDIT_REFILL_S, GovernanceStore
from massalia.ledger import LedgerLockedError, TransparencyLog

LEDGER_LOCK_WAIT_S = 10.0
RESERVED_AUDIT_KEYS = frozenset(
    {"time", "actor", "auth", "roles", "action", "decision", "denied_because", "grant", "project_id", "os_uid",
     "os_account"}
)  # fmt: skip
# The audit trail whose audits in this context leave their signed tree head to the end of a block (one_tree_head).
_ONE_TREE_HEAD: ContextVar[object | None] = ContextVar("massalia_one_tree_head", default=None)
# The gate of the audit trail whose decisions in this context are written while the block reads (audit_before_answer).
_ANSWER_GATE: ContextVar[AuditGate | None] = ContextVar("massalia_answer_gate", default=None)
AUDIT_WRITERS = 8
"""Threads writing gated audit entries: concurrent requests' entries meet in the ledger's group commit."""
# An audit value whose canonical JSON is longer than this is recorded as its SHA-256 and length: the trail
# proves what was asked without storing (or letting an anonymous caller store) megabytes per entry.
AUDIT_VALUE_MAX_BYTES = 2048


def operator_account() -> tuple[int, str]:
    """The OS account running this process, from its real uid (not ``LOGNAME``/``USER``, which anyone sets).

    Examples
    --------
    >>> uid, name = operator_account()
    >>> uid == __import__("os").getuid()
    True
    """
    uid = os.getuid()
    try:
        return uid, pwd.getpwuid(uid).pw_name
    except KeyError:  # a uid without a passwd entry (some containers): the number is the identity
        return uid, f"uid{uid}"


def bounded_audit_value(value: Any) -> Any:
    """``value`` itself if its canonical JSON is short, else ``{"sha256": …, "bytes": …}`` of that JSON.

    Examples
    --------
    >>> bounded_audit_value("short")
    'short'
    >>> sorted(bounded_audit_value("x" * 5000))
    ['bytes', 'sha256']
    """
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    encoded = text.encode("utf-8")
    if len(encoded) <= AUDIT_VALUE_MAX_BYTES:
        return value
    return {"sha256": hashlib.sha256(encoded).hexdigest(), "bytes": len(encoded)}


def operator_principal() -> Principal:
    """The local operator of a home (whoever can read its files): roles ``admin`` + ``data_engineer``.

    The operator administers the platform but gets no raw counts and no patient-level data without a
    project (``rights.yaml`` grants those only through approved projects). Its name is the OS account of
    the process's real uid, and every decision on its actions is audited with that account (see
    :meth:`Governance.authorize`): holding the home's files is power, so the trail must say who used it.
    """
    return Principal(
        subject=f"operator:{operator_account()[1]}",
        roles=frozenset({Role.ADMIN, Role.DATA_ENGINEER}),
        auth="operator",
    )


_writer_lock = threading.Lock()
_writer: tuple[int, ThreadPoolExecutor] | None = None


def _audit_writer() -> ThreadPoolExecutor:
    """The process's pool of audit writers (made again in a forked child, whose copy has no threads)."""
    global _writer
    with _writer_lock:
        if _writer is None or _writer[0] != os.getpid():
            _writer = (os.getpid(), ThreadPoolExecutor(AUDIT_WRITERS, thread_name_prefix="massalia-audit"))
        return _writer[1]


class AuditGate:
    """The decisions audited in one :meth:`AuditTrail.audit_before_answer` block, written while the block reads.

    ``indexes`` holds their transparency-log indexes, in the order they were decided, once the block has ended
    (every entry durable and covered by a signed tree head by then).
    """

    def __init__(self, trail: AuditTrail) -> None:
        self.trail = trail
        self.indexes: list[int] = []
        self._pending: list[Future[int]] = []

    def start(self, entry: dict[str, Any], sign: bool) -> None:
        """Hand ``entry`` to an audit writer; the block's end waits for it."""
        self._pending.append(_audit_writer().submit(self.trail._write_entry, entry, sign))

    def wait(self) -> None:
        """Wait for every entry started; raise the first write that failed (after all have finished)."""
        failed: BaseException | None = None
        for pending in self._pending:
            try:
                self.indexes.append(pending.result())
            except BaseException as error:  # re-raised below, once every write has finished
                failed = failed or error
        self._pending = []
        if failed is not None:
            raise failed


class AuditTrail(GovernanceStore):
    """Appends the governance service's entries to the transparency log (a part of ``Governance``)."""

    def _anonymous_quota(self) -> int | None:
        """Take one anonymous audit entry from the bucket: ``None`` if empty, else how many were skipped.

        Unauthenticated calls cost nothing to make; without a bound they would grow the (append-only,
        never pruned) trail as fast as anyone can send requests.
        """
        with self._anonymous_lock:
            now = time.monotonic()
            refill = (now - self._anonymous_refilled) / ANONYMOUS_AUDIT_REFILL_S
            self._anonymous_budget = min(float(ANONYMOUS_AUDIT_BURST), self._anonymous_budget + refill)
            self._anonymous_refilled = now
            if self._anonymous_budget < 1.0:
                self._anonymous_skipped += 1
                return None
            self._anonymous_budget -= 1.0
            skipped, self._anonymous_skipped = self._anonymous_skipped, 0
            return skipped

    def audit(self, principal: Principal, action: str, **detail: Any) -> int:
        """Append a canonical JSON entry (who, how, when, what, ``detail``) to the ledger; return its index.

        The entry is durable and covered by a fresh signed tree head when this returns (inside
        :meth:`one_tree_head`, durable when this returns and covered when the block ends). Each ``detail``
        value is bounded (:func:`bounded_audit_value`); an operator's entry names the OS account and uid
        of the process (never an environment variable).
        """
        return self._write_entry(self._entry(principal, action, detail), _ONE_TREE_HEAD.get() is not self)

    def audit_decision(self, principal: Principal, action: str, **detail: Any) -> int | None:
        """:meth:`audit` for a rights decision: inside :meth:`audit_before_answer`, written while the block reads.

        Returns the entry's index, or ``None`` when the block's gate writes it (the gate then holds the index).
        """
        gate = _ANSWER_GATE.get()
        if gate is None or gate.trail is not self:
            return self.audit(principal, action, **detail)
        # Signed by its writer whatever the context: a one_tree_head block inside this one may end (and sign)
        # before the entry is committed, so its head could not be relied on to cover it.
        gate.start(self._entry(principal, action, detail), True)
        return None

    def _entry(self, principal: Principal, action: str, detail: dict[str, Any]) -> dict[str, Any]:
        clash = set(detail) & {"time", "actor", "auth", "roles", "action", "os_uid", "os_account"}
        if clash:
            raise InvalidRequest(f"audit detail may not use the reserved key(s) {', '.join(sorted(clash))}")
        entry = {
            "time": self._clock().isoformat(timespec="seconds"),
            "actor": principal.subject,
            "auth": principal.auth,
            "roles": sorted(role.value for role in principal.roles),
            "action": action,
            **{key: bounded_audit_value(value) for key, value in detail.items() if value is not None},
        }
        if principal.auth == "operator":
            entry["os_uid"], entry["os_account"] = operator_account()
        return entry

    def _write_entry(self, entry: dict[str, Any], sign: bool) -> int:
        """Append ``entry`` durably; with ``sign``, make sure a signed tree head covers it before returning."""
        log = self._open_audit_log()
        try:
            written = log.append(entry)
            head = log.latest_tree_head()
            # Appends of concurrent requests are committed together (the log's group commit); a tree head
            # signed after this entry was committed covers it already, so only an uncovered entry signs one.
            if sign and (head is None or head.tree_size <= written.index):
                log.tree_head()
            return written.index
        finally:
            self._close_audit_log()

    @contextmanager
    def audit_before_answer(self) -> Iterator[AuditGate]:
        """Decisions audited in the block are written while it reads; the block ends once all are durable.

        For a read whose own cost is close to the audit's (a search: a few milliseconds of index, a few fsyncs
        of the transparency log): the decision is taken first, as always (a refusal reads nothing), then its
        entry is appended (durably, and covered by a signed tree head) by an audit writer while the block
        reads, and the block does not end, with its answer or its error, before every entry of the block is
        durable and covered. So no answer leaves before its audit entry is durable, as before, and a search
        costs the longer of the two rather than their sum. A write that fails fails the block (the answer
        never leaves). Entries appended by :meth:`audit` itself (not a decision) are written in line as ever.
        Nested blocks are one block.
        """
        current = _ANSWER_GATE.get()
        if current is not None and current.trail is self:
            yield current
            return
        gate = AuditGate(self)
        token = _ANSWER_GATE.set(gate)
        try:
            yield gate
        except BaseException:
            _ANSWER_GATE.reset(token)
            gate.wait()  # the error leaves after the entries too (a failed write replaces it)
            raise
        _ANSWER_GATE.reset(token)
        gate.wait()

    @contextmanager
    def one_tree_head(self) -> Iterator[None]:
        """Audits within the block share one signed tree head, signed as the block ends (error or not).

        For one request that makes many guarded calls (a dashboard's dozen breakdowns, each authorized and
        released on its own): every entry is still appended durably before its call goes on, and the block's
        caller returns nothing before the block has ended, so every entry is covered by a signed head before any
        answer leaves; one signature and one fsync instead of one per entry. Nested blocks are one block.
        """
        if _ONE_TREE_HEAD.get() is self:
            yield
            return
        log = self._open_audit_log()  # held open for the block: no reopening per audit
        token = _ONE_TREE_HEAD.set(self)
        try:
            yield
        finally:
            _ONE_TREE_HEAD.reset(token)
            try:
                head = log.latest_tree_head()
                if log.size and (head is None or head.tree_size < log.size):
                    log.tree_head()
            finally:
                self._close_audit_log()

    def _open_audit_log(self) -> TransparencyLog:
        """The transparency log, opened for the audits under way in this process (shared by them).

        Each audit used to open the log, take its writer lock, append, sign and close: concurrent requests of
        one server then waited for each other's lock (retrying every 50 ms) instead of committing together.
        The audits under way now share one open log; the last one closes it, so between audits the writer
        lock is free for another process (a CLI run), which waits for it as before.
        """
        with self._audit_log_lock:
            if self._audit_log is None:
                self._audit_log = self._wait_for_audit_log()
            self._audit_log_users += 1
            log: TransparencyLog = self._audit_log
            return log

    def _wait_for_audit_log(self) -> TransparencyLog:
        deadline = time.monotonic() + LEDGER_LOCK_WAIT_S
        while True:
            try:
                return TransparencyLog(self.ledger_path)
            except LedgerLockedError:
                # Another process (the API server, a CLI run) is writing: its append is short.
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def _close_audit_log(self) -> None:
        with self._audit_log_lock:
            self._audit_log_users -= 1
            if self._audit_log_users == 0 and self._audit_log is not None:
                log, self._audit_log = self._audit_log, None
                log.close()  # a log that failed is reopened (and recovered) by the next audit
