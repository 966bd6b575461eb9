"""docs/ledger.md stays true: its worked example verifies, and it documents the CLI and the API."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from massalia.ledger import verify as verify_module
from massalia.ledger.log import TransparencyLog
from massalia.ledger.verify import VerificationError, main, verify_consistency, verify_inclusion

DOC = Path(__file__).resolve().parents[2] / "docs" / "ledger.md"


@pytest.fixture(scope="module")
def examples() -> dict[str, str]:
    text = DOC.read_text(encoding="utf-8")
    found = dict(re.findall(r"<!-- example: (\S+) -->\n```\w*\n(.*?)```", text, flags=re.DOTALL))
    assert set(found) == {"public-key.pem", "entry.json", "sth.json", "proof.json", "old.json", "consistency.json"}
    return found


def test_worked_example_verifies(examples: dict[str, str]) -> None:
    key = examples["public-key.pem"]
    head = verify_inclusion(examples["entry.json"], examples["proof.json"], examples["sth.json"], key)
    assert head.tree_size == 5
    old, new = verify_consistency(examples["old.json"], examples["sth.json"], examples["consistency.json"], key)
    assert (old.tree_size, new.tree_size) == (3, 5)
    with pytest.raises(VerificationError, match="not included at index 3"):
        verify_inclusion(
            examples["entry.json"].replace("extract", "view"), examples["proof.json"], examples["sth.json"], key
        )


def test_documented_cli_messages(examples: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for name, content in examples.items():
        (tmp_path / name).write_text(content, encoding="utf-8")
    args = [
        "inclusion",
        "--entry",
        "entry.json",
        "--proof",
        "proof.json",
        "--sth",
        "sth.json",
        "--key",
        "public-key.pem",
    ]
    assert main([a if a.startswith("-") or "." not in a else str(tmp_path / a) for a in args]) == 0
    assert "OK: the entry is included at index 3 of the log of 5 entries" in capsys.readouterr().out
    (tmp_path / "entry.json").write_text(examples["entry.json"].replace("extract", "view"), encoding="utf-8")
    assert main([a if a.startswith("-") or "." not in a else str(tmp_path / a) for a in args]) == 1
    assert "FAILED: the entry is not included at index 3" in capsys.readouterr().err


def test_doc_names_every_command_and_public_member() -> None:
    text = DOC.read_text(encoding="utf-8")
    for command in ("inclusion", "consistency", "sth"):
        assert f"python -m massalia.ledger.verify {command}" in text
    public = [name for name in vars(TransparencyLog) if not name.startswith("_")]
    missing = [name for name in public if not re.search(rf"`{name}\b", text)]
    assert not missing, f"docs/ledger.md does not document {missing}"
    for name in ("verify_inclusion", "verify_consistency", "verify_tree_head", "canonical_entry"):
        assert hasattr(verify_module, name)
    for fmt in (verify_module.STH_FORMAT, verify_module.INCLUSION_FORMAT, verify_module.CONSISTENCY_FORMAT):
        assert fmt in text
    assert '"MASSALIA-LEDGER-STH" 0x00' in text
