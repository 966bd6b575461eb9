"""One signed tree head for a block of audits: every entry durable at once, all covered before the block returns."""

from __future__ import annotations

from pathlib import Path

import pytest

from massalia.governance import Governance, operator_principal
from massalia.ledger import TransparencyLog


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
