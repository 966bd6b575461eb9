"""The standalone verifier: formats, signatures, size binding, the CLI end to end, and its imports."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

import massalia.ledger.verify as verify_module
from massalia.ledger import merkle
from massalia.ledger.keys import public_key_pem
from massalia.ledger.log import TransparencyLog
from massalia.ledger.verify import (
    ConsistencyProof,
    InclusionProof,
    SignedTreeHead,
    VerificationError,
    canonical_entry,
    log_id,
    main,
    sth_signed_bytes,
    verify_consistency,
    verify_inclusion,
    verify_tree_head,
)

KEY = Ed25519PrivateKey.generate()
PEM = public_key_pem(KEY.public_key())
LOG_ID = log_id(KEY.public_key())


def signed_head(
    tree_size: int, root: bytes, key: Ed25519PrivateKey = KEY, timestamp: int = 1_763_700_000_000
) -> SignedTreeHead:
    ident = log_id(key.public_key())
    return SignedTreeHead(
        tree_size, timestamp, root, ident, key.sign(sth_signed_bytes(tree_size, timestamp, root, ident))
    )


def entry(i: int) -> dict[str, Any]:
    return {"i": i, "action": "extract", "resource": f"dataset/{i}"}


def build(n: int) -> merkle.MemoryTree:
    return merkle.MemoryTree([merkle.leaf_hash(canonical_entry(entry(i))) for i in range(n)])


def flip_b64(value: str, at: int) -> str:
    raw = bytearray(__import__("base64").b64decode(value))
    raw[at % len(raw)] ^= 0x01
    return __import__("base64").b64encode(bytes(raw)).decode()


def test_json_round_trip_and_strict_parsing() -> None:
    tree = build(5)
    head = signed_head(5, tree.root())
    proof = InclusionProof(2, 5, tuple(tree.inclusion_path(2)))
    cproof = ConsistencyProof(3, 5, tuple(tree.consistency_path(3)))
    assert SignedTreeHead.from_json(json.dumps(head.to_json())) == head
    assert InclusionProof.from_json(json.dumps(proof.to_json()).encode()) == proof
    assert ConsistencyProof.from_json(cproof.to_json()) == cproof
    bad_cases = [
        {**head.to_json(), "extra": 1},
        {**head.to_json(), "format": "massalia-ledger-sth/2"},
        {**head.to_json(), "tree_size": True},
        {**head.to_json(), "tree_size": -1},
        {**head.to_json(), "root_hash": "not base64!"},
        {**head.to_json(), "root_hash": head.to_json()["root_hash"][:-4]},
        {**head.to_json(), "signature": head.to_json()["root_hash"]},
    ]
    for case in bad_cases:
        with pytest.raises(VerificationError):
            SignedTreeHead.from_json(case)
    with pytest.raises(VerificationError, match="not valid JSON"):
        SignedTreeHead.from_json("{")
    with pytest.raises(VerificationError):
        InclusionProof.from_json({**proof.to_json(), "audit_path": "abc"})


def test_signed_bytes_layout() -> None:
    raw = sth_signed_bytes(0x0102, 0x0304, b"R" * 32, b"L" * 32)
    assert (
        raw
        == b"MASSALIA-LEDGER-STH\x00"
        + b"\x01"
        + b"L" * 32
        + (0x0102).to_bytes(8, "big")
        + (0x0304).to_bytes(8, "big")
        + b"R" * 32
    )


def test_forged_tree_heads_are_refused() -> None:
    tree = build(9)
    head = signed_head(9, tree.root())
    verify_tree_head(head, PEM)
    forged_by_other = signed_head(9, tree.root(), key=Ed25519PrivateKey.generate())
    with pytest.raises(VerificationError, match="another log"):
        verify_tree_head(forged_by_other, PEM)
    # right log id, signature from another key
    impostor = SignedTreeHead(9, head.timestamp, head.root_hash, LOG_ID, forged_by_other.signature)
    with pytest.raises(VerificationError, match="signature"):
        verify_tree_head(impostor, PEM)
    for altered in (
        {**head.to_json(), "root_hash": flip_b64(head.to_json()["root_hash"], 3)},
        {**head.to_json(), "tree_size": 10},
        {**head.to_json(), "timestamp": head.timestamp + 1},
        {**head.to_json(), "signature": flip_b64(head.to_json()["signature"], 40)},
    ):
        with pytest.raises(VerificationError, match="signature"):
            verify_tree_head(altered, PEM)
    with pytest.raises(VerificationError, match="PEM"):
        verify_tree_head(head, b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 300), data=st.data())
def test_signed_proofs_verify_and_any_alteration_fails(n: int, data: st.DataObject) -> None:
    tree = build(n)
    index = data.draw(st.integers(0, n - 1))
    m = data.draw(st.integers(0, n))
    head, old = signed_head(n, tree.root()), signed_head(m, tree.root(m))
    proof = InclusionProof(index, n, tuple(tree.inclusion_path(index))).to_json()
    cproof = ConsistencyProof(m, n, tuple(tree.consistency_path(m))).to_json()
    verify_inclusion(json.dumps(entry(index), indent=2), proof, head.to_json(), PEM)
    verify_consistency(old.to_json(), head.to_json(), cproof, PEM)

    at = data.draw(st.integers(0, 10_000))
    inclusion_changes: list[tuple[dict[str, Any], Any, dict[str, Any]]] = [
        ({**entry(index), "i": index + 1}, proof, head.to_json()),
        (entry(index), {**proof, "leaf_index": (index + 1 + at % (n - 1)) % n if n > 1 else 1}, head.to_json()),
        (entry(index), {**proof, "tree_size": n + 1}, head.to_json()),
        (entry(index), proof, {**head.to_json(), "tree_size": n + 1}),
        (entry(index), proof, {**head.to_json(), "root_hash": flip_b64(head.to_json()["root_hash"], at)}),
    ]
    if proof["audit_path"]:
        k = at % len(proof["audit_path"])
        path = list(proof["audit_path"])
        path[k] = flip_b64(path[k], at)
        inclusion_changes.append((entry(index), {**proof, "audit_path": path}, head.to_json()))
    if n > 1:  # the same proof under a correctly signed head of another size
        other = signed_head(n - 1, tree.root(n - 1))
        inclusion_changes.append((entry(index), {**proof, "tree_size": n - 1}, other.to_json()))
    for changed_entry, changed_proof, changed_head in inclusion_changes:
        with pytest.raises(VerificationError):
            verify_inclusion(changed_entry, changed_proof, changed_head, PEM)

    consistency_changes: list[tuple[Any, Any, Any]] = [
        ({**old.to_json(), "tree_size": m + 1}, head.to_json(), cproof),
        (old.to_json(), head.to_json(), {**cproof, "new_size": n + 1}),
        (signed_head(m, merkle.node_hash(tree.root(m), tree.root(m))).to_json(), head.to_json(), cproof),
    ]
    if m:
        consistency_changes.append(
            (old.to_json(), signed_head(n, merkle.node_hash(tree.root(), tree.root())).to_json(), cproof)
        )
    if cproof["consistency_path"]:
        path = list(cproof["consistency_path"])
        k = at % len(path)
        path[k] = flip_b64(path[k], at)
        consistency_changes.append((old.to_json(), head.to_json(), {**cproof, "consistency_path": path}))
    if m < n:  # swapping old and new is not an extension
        consistency_changes.append((head.to_json(), old.to_json(), cproof))
    for changed_old, changed_new, changed_proof in consistency_changes:
        with pytest.raises(VerificationError):
            verify_consistency(changed_old, changed_new, changed_proof, PEM)


# -- the command line, end to end on a real stored log ---------------------------------------------
def run_cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "massalia.ledger.verify", *map(str, args)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def call_main(capsys: pytest.CaptureFixture[str], *args: str | Path) -> subprocess.CompletedProcess[str]:
    """The same command in-process (faster); a few tests above run the real subprocess."""
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return subprocess.CompletedProcess(list(args), code, captured.out, captured.err)


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What a third party receives: public key, tree heads, proofs and an entry, as files."""
    out = tmp_path_factory.mktemp("published")
    with TransparencyLog(out / "ledger") as log:
        log.append_many({"actor": f"researcher-{i}", "action": "query", "purpose": "survie"} for i in range(30))
        old = log.tree_head()
        log.append_many({"actor": "dpo", "action": "approve", "request": i} for i in range(30, 77))
        new = log.tree_head()
        (out / "pub.pem").write_bytes(log.public_key_pem)
        (out / "old.json").write_text(json.dumps(old.to_json()))
        (out / "sth.json").write_text(json.dumps(new.to_json(), indent=2))
        (out / "e.json").write_text(json.dumps(log.get(42).entry, indent=2, ensure_ascii=True))
        (out / "p.json").write_text(json.dumps(log.inclusion_proof(42, new.tree_size).to_json()))
        (out / "c.json").write_text(json.dumps(log.consistency_proof(30, 77).to_json()))
    return out


def test_cli_verifies_a_real_inclusion_proof(published: Path) -> None:
    d = published
    result = run_cli(
        "inclusion", "--entry", d / "e.json", "--proof", d / "p.json", "--sth", d / "sth.json", "--key", d / "pub.pem"
    )
    assert result.returncode == 0, result.stderr
    assert "OK: the entry is included at index 42 of the log of 77 entries" in result.stdout


def test_cli_refuses_a_tampered_entry_and_proof(
    published: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    d = published
    tampered = json.loads((d / "e.json").read_text())
    tampered["action"] = "view"
    (tmp_path / "e.json").write_text(json.dumps(tampered))
    result = run_cli(
        "inclusion",
        "--entry",
        tmp_path / "e.json",
        "--proof",
        d / "p.json",
        "--sth",
        d / "sth.json",
        "--key",
        d / "pub.pem",
    )
    assert result.returncode == 1
    assert "FAILED: the entry is not included at index 42" in result.stderr

    proof = json.loads((d / "p.json").read_text())
    proof["leaf_index"] = 41
    (tmp_path / "p.json").write_text(json.dumps(proof))
    result = call_main(
        capsys,
        "inclusion",
        "--entry",
        d / "e.json",
        "--proof",
        tmp_path / "p.json",
        "--sth",
        d / "sth.json",
        "--key",
        d / "pub.pem",
    )
    assert result.returncode == 1 and "FAILED" in result.stderr

    other_key = public_key_pem(Ed25519PrivateKey.generate().public_key())
    (tmp_path / "other.pem").write_bytes(other_key)
    result = call_main(
        capsys,
        "inclusion",
        "--entry",
        d / "e.json",
        "--proof",
        d / "p.json",
        "--sth",
        d / "sth.json",
        "--key",
        tmp_path / "other.pem",
    )
    assert result.returncode == 1 and "another log" in result.stderr

    result = call_main(
        capsys,
        "inclusion",
        "--entry",
        tmp_path / "missing.json",
        "--proof",
        d / "p.json",
        "--sth",
        d / "sth.json",
        "--key",
        d / "pub.pem",
    )
    assert result.returncode == 1 and "cannot read" in result.stderr


def test_cli_consistency_and_tree_head(published: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = published
    result = run_cli(
        "consistency",
        "--old-sth",
        d / "old.json",
        "--new-sth",
        d / "sth.json",
        "--proof",
        d / "c.json",
        "--key",
        d / "pub.pem",
    )
    assert result.returncode == 0, result.stderr
    assert "extends the log of 30 entries" in result.stdout
    result = call_main(
        capsys,
        "consistency",
        "--old-sth",
        d / "sth.json",
        "--new-sth",
        d / "old.json",
        "--proof",
        d / "c.json",
        "--key",
        d / "pub.pem",
    )
    assert result.returncode == 1 and "FAILED" in result.stderr
    (tmp_path / "bad.json").write_text("{not json")
    result = call_main(capsys, "sth", "--sth", tmp_path / "bad.json", "--key", d / "pub.pem")
    assert result.returncode == 1 and "not valid JSON" in result.stderr
    assert call_main(capsys, "sth", "--sth", d / "old.json", "--key", d / "pub.pem").returncode == 0


ALLOWED_IMPORTS = {
    "argparse",
    "base64",
    "binascii",
    "hashlib",
    "json",
    "struct",
    "sys",
    "collections",
    "dataclasses",
    "pathlib",
    "typing",
    "__future__",
    "cryptography",
    "massalia",
}


def test_verifier_imports_only_merkle_and_cryptography() -> None:
    tree = ast.parse(Path(verify_module.__file__).read_text())
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module + ("." + node.names[0].name if node.module == "massalia.ledger" else ""))
    assert {name.split(".")[0] for name in imported} <= ALLOWED_IMPORTS
    assert {name for name in imported if name.startswith("massalia")} == {"massalia.ledger.merkle"}
    merkle_tree = ast.parse(Path(merkle.__file__).read_text())
    merkle_imports = {
        n.module if isinstance(n, ast.ImportFrom) else a.name
        for n in ast.walk(merkle_tree)
        if isinstance(n, ast.Import | ast.ImportFrom)
        for a in n.names
    }
    assert merkle_imports <= {"__future__", "hashlib", "hmac", "collections.abc"}
    loaded = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, massalia.ledger.verify; print(sorted(m for m in sys.modules if m.startswith('massalia')))",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    assert loaded.strip() == "['massalia', 'massalia.ledger', 'massalia.ledger.merkle', 'massalia.ledger.verify']"
