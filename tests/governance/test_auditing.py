"""One signed tree head for a block of audits: every entry durable at once, all covered before the block returns."""

from __future__ import annotations

from pathlib import Path

import pytest

from massalia.governance import AccessDenied, Governance, Role, auditing, operator_principal
from massalia.ledger import LedgerLockedError, TransparencyLog


def _log(ledger: Path) -> tuple[int, int, int | None]:
    """(entries, signed tree heads, size covered by the latest head) as another process would read them."""
    with TransparencyLog(ledger, readonly=True) as log:
        heads = log.tree_heads()
        return log.size, len(heads), heads[-1].tree_size if heads else None


def test_audits_in_a_block_share_one_tree_head_signed_when_it_ends(gov: Governance, ledger_dir: Path) -> None:
    ledger = ledger_dir / "ledger"
    gov.audit(operator_principal(), "test.before")
    size, heads, covered = _log(ledger)
    assert covered == size  # outside a block, each audit is covered when it returns
    with gov.one_tree_head():
        for n in range(5):
            gov.audit(operator_principal(), "test.inside", n=n)
            inside = _log(ledger)
            assert inside[0] == size + n + 1  # appended (durable) before the call returned
        assert _log(ledger)[1] == heads  # no head signed yet
        with gov.one_tree_head():  # nested: the same block
            gov.audit(operator_principal(), "test.nested")
        assert _log(ledger)[1] == heads
    after = _log(ledger)
    assert after == (size + 6, heads + 1, size + 6)  # one head, covering every entry of the block
    with TransparencyLog(ledger, readonly=True) as log:
        assert log.verify().ok


def test_a_block_that_fails_still_covers_its_entries(gov: Governance, ledger_dir: Path) -> None:
    ledger = ledger_dir / "ledger"
    with pytest.raises(RuntimeError, match="midway"), gov.one_tree_head():
        gov.audit(operator_principal(), "test.denied", decision="denied")
        raise RuntimeError("midway")
    size, _, covered = _log(ledger)
    assert size >= 1 and covered == size


# --- audit_before_answer: the decision's entry is written while the caller reads, the answer waits for it ---


def test_a_gated_decision_is_durable_and_covered_when_the_block_ends(gov: Governance, ledger_dir: Path) -> None:
    ledger = ledger_dir / "ledger"
    gov.audit(operator_principal(), "test.before")
    size = _log(ledger)[0]
    with gov.audit_before_answer() as gate:
        grant = gov.authorize(operator_principal(), "audit.verify", detail={"resource": "gated"})
        assert grant.audit_index is None, "the gate holds the index: the entry is being written"
        with gov.audit_before_answer() as inner:  # nested: the same gate
            gov.authorize(operator_principal(), "audit.verify", detail={"resource": "nested"})
        assert inner is gate
    assert gate.indexes == [size, size + 1]
    after = _log(ledger)
    assert after[0] == size + 2 and after[2] == size + 2, "both durable and covered by a signed head"
    with TransparencyLog(ledger, readonly=True) as log:
        assert [log.get(i).entry["resource"] for i in gate.indexes] == ["gated", "nested"]
        assert log.verify().ok


def test_a_refusal_inside_the_gate_leaves_only_once_its_entry_is_durable(gov: Governance, ledger_dir: Path) -> None:
    rita = gov.create_user("rita", None, [Role.RESEARCHER], actor=operator_principal())
    size = _log(ledger_dir / "ledger")[0]
    with pytest.raises(AccessDenied), gov.audit_before_answer():
        gov.authorize(rita, "safety.search.read", detail={"resource": "refused"})
    with TransparencyLog(ledger_dir / "ledger", readonly=True) as log:
        assert log.size == size + 1 and log.get(size).entry["decision"] == "denied"
        assert log.latest_tree_head().tree_size == size + 1  # type: ignore[union-attr]


def test_attack_no_answer_leaves_when_its_audit_entry_cannot_be_written(
    gov: Governance, ledger_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another writer holds the ledger: the read in the block runs, but its answer must never leave unaudited."""
    monkeypatch.setattr(auditing, "LEDGER_LOCK_WAIT_S", 0.2)
    gov.audit(operator_principal(), "test.before")
    answers: list[str] = []
    with TransparencyLog(ledger_dir / "ledger") as holder:  # the writer lock, as a CLI run would hold it
        size = holder.size

        def search() -> str:
            with gov.audit_before_answer():
                gov.authorize(operator_principal(), "audit.verify", detail={"resource": "unwritable"})
                answer = "the personal data read"
            return answer  # pragma: no cover - reached only if the gate let an unaudited answer out

        with pytest.raises(LedgerLockedError):
            answers.append(search())
        assert holder.size == size
    assert answers == [], "the answer left without its audit entry"
