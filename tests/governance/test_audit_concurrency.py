"""Concurrent audits share one open transparency log: every entry kept, each covered by a signed tree head."""

from __future__ import annotations

import threading

from massalia.governance import Governance, Role, operator_principal
from massalia.ledger import TransparencyLog

THREADS = 6
EACH = 4


def test_concurrent_audits_are_all_written_and_covered(gov: Governance) -> None:
    rita = gov.create_user("rita", None, [Role.RESEARCHER], actor=operator_principal())
    with TransparencyLog(gov.ledger_path, readonly=True) as log:
        before = log.size
    indexes: list[int] = []
    lock = threading.Lock()
    start = threading.Barrier(THREADS)

    def audits(thread: int) -> None:
        start.wait()
        for n in range(EACH):
            index = gov.audit(rita, "health.cohort.count", decision="allowed", resource={"thread": thread, "n": n})
            with lock:
                indexes.append(index)

    workers = [threading.Thread(target=audits, args=(i,)) for i in range(THREADS)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert sorted(indexes) == list(range(before, before + THREADS * EACH))  # none dropped, none twice
    # The writer lock is free again once no audit is under way: another writer (a CLI run) opens the log.
    with TransparencyLog(gov.ledger_path) as log:
        head = log.latest_tree_head()
        assert head is not None and head.tree_size == before + THREADS * EACH  # the last entry is covered
        assert log.verify().ok
        written = {(e["resource"]["thread"], e["resource"]["n"]) for e in (log.get(i).entry for i in indexes)}
    assert written == {(t, n) for t in range(THREADS) for n in range(EACH)}


def test_each_audit_returns_covered_by_a_signed_tree_head(gov: Governance) -> None:
    """When audit returns, a stored tree head covers its entry (what an auditor checks against)."""
    rita = gov.create_user("rita", None, [Role.RESEARCHER], actor=operator_principal())
    for n in range(3):
        index = gov.audit(rita, "health.cohort.count", decision="allowed", resource={"n": n})
        with TransparencyLog(gov.ledger_path, readonly=True) as log:
            heads = log.tree_heads()
        assert heads and heads[-1].tree_size > index
