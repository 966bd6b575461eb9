"""Certification of published files: the log, proofs, ``massalia verify`` and the attacks on them.

Every attack is a test that fails if it works again: a modified byte, the proof of another file, a forged or
altered checkpoint, a rolled-back or forked log, an anonymous caller learning a non-public dataset through the
proof or the checkpoint, a producer publishing (and so certifying) into another organization, a proof lookup by
name or path.
"""

from __future__ import annotations

import base64
import io
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from opendata_world import OpenDataWorld, copy_world
from typer.testing import CliRunner

from massalia.cli import app
from massalia.governance import AccessDenied, NotFound
from massalia.ledger import TransparencyLog
from massalia.ledger.keys import load_signing_key
from massalia.ledger.verify import SignedTreeHead, log_id, sth_signed_bytes
from massalia.opendata.catalog import Catalog, Upload
from massalia.opendata.certify import (
    CertificateError,
    Certifier,
    checkpoint_text,
    ledger_directory,
    parse_checkpoint,
    verify_publication,
)
from massalia.opendata.models import ValidationFailed

DOC = Path(__file__).resolve().parents[2] / "docs" / "opendata-verify.md"
CSV = b"id;commune;puissance\n1;Marseille;22\n2;Nice;50\n"
HIDDEN_NAME = "projet-confidentiel-prefecture"


def _publish(world: OpenDataWorld, name: str, content: bytes, org: str = "region-sud") -> dict[str, Any]:
    alice = world.caller("alice")
    world.catalog.package_create(alice, {"name": name, "owner_org": org})
    return world.catalog.resource_create(
        alice, {"package_id": name, "name": "data"}, Upload("data.csv", io.BytesIO(content))
    )


@pytest.fixture(scope="module")
def published(world_template: OpenDataWorld, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """One world: a file published, then replaced (resource versions 1 and 2), a deleted dataset, proofs."""
    world = copy_world(world_template, tmp_path_factory.mktemp("certify") / "home")
    try:
        first = _publish(world, "bornes-irve", CSV)
        certifier = Certifier.for_home(world.home)
        anonymous = world.caller("anonymous")
        old_head = certifier.checkpoint(anonymous)
        proof_v1 = certifier.proof(anonymous, first["id"])
        world.catalog.resource_update(
            world.caller("alice"),
            {"id": first["id"], "name": "data"},
            Upload("data.csv", io.BytesIO(CSV + b"3;Gap;7\n")),
        )
        hidden = _publish(world, HIDDEN_NAME, b"secret;rows\n1;2\n")
        world.catalog.package_delete(world.caller("alice"), HIDDEN_NAME)
        yield {
            "world": world, "certifier": certifier, "resource": first, "hidden": hidden, "old_head": old_head,
            "proof_v1": proof_v1, "key": (ledger_directory(world.home) / "public-key.pem").read_bytes(),
        }  # fmt: skip
    finally:
        world.gov.close()


def _verify(published: dict[str, Any], data: bytes, proof: Any, **kwargs: Any) -> Any:
    return verify_publication(data, json.dumps(proof), key_pem=kwargs.pop("key", published["key"]), **kwargs)


def _fails_at(step: str, published: dict[str, Any], data: bytes, proof: Any, **kwargs: Any) -> str:
    with pytest.raises(CertificateError) as caught:
        _verify(published, data, proof, **kwargs)
    assert caught.value.step == step, str(caught.value)
    return str(caught.value)


def test_a_publication_is_certified_and_verifies_offline(published: dict[str, Any]) -> None:
    proof = published["proof_v1"]
    result = _verify(published, CSV, proof)
    entry = result.entry
    assert entry["resource_id"] == published["resource"]["id"] and entry["resource_version"] == 1
    assert entry["resource_sha256"] == published["resource"]["hash"].removeprefix("sha256:")
    assert entry["dataset_version"] == 2 and result.key_pinned  # created (1), then the upload (2)


def test_a_replaced_file_is_a_new_resource_version_and_the_old_one_still_verifies(published: dict[str, Any]) -> None:
    certifier, anonymous = published["certifier"], published["world"].caller("anonymous")
    rid = published["resource"]["id"]
    latest = certifier.proof(anonymous, rid)
    assert latest["entry"]["resource_version"] == 2
    assert _verify(published, CSV + b"3;Gap;7\n", latest).entry["resource_version"] == 2
    again = certifier.proof(anonymous, rid, 1)  # version 1 under the newer tree head
    assert again["checkpoint"]["tree_size"] > published["proof_v1"]["checkpoint"]["tree_size"]
    assert _verify(published, CSV, again).entry["resource_version"] == 1


def test_attack_a_modified_byte_fails_at_the_hash(published: dict[str, Any]) -> None:
    tampered = bytearray(CSV)
    tampered[5] ^= 1
    assert "not the published file" in _fails_at("hash", published, bytes(tampered), published["proof_v1"])


def test_attack_the_proof_of_another_file_fails_at_the_hash(published: dict[str, Any]) -> None:
    other = published["certifier"].proof(published["world"].caller("anonymous"), published["resource"]["id"], 2)
    _fails_at("hash", published, CSV, other)


def test_attack_an_altered_entry_or_audit_path_fails_at_the_inclusion(published: dict[str, Any]) -> None:
    proof = json.loads(json.dumps(published["proof_v1"]))
    proof["entry"]["published_at"] = "2020-01-01T00:00:00.000000"  # back-dating the publication
    _fails_at("inclusion proof", published, CSV, proof)
    proof = json.loads(json.dumps(published["proof_v1"]))
    proof["entry"]["dataset_version"] = 9
    _fails_at("inclusion proof", published, CSV, proof)


def _forged(proof: dict[str, Any], key: Ed25519PrivateKey, root: bytes | None = None) -> dict[str, Any]:
    head = SignedTreeHead.from_json(proof["checkpoint"])
    root = root or head.root_hash
    ident = log_id(key.public_key())
    signature = key.sign(sth_signed_bytes(head.tree_size, head.timestamp, root, ident))
    return {**proof, "checkpoint": SignedTreeHead(head.tree_size, head.timestamp, root, ident, signature).to_json()}


def test_attack_a_forged_checkpoint_fails_at_the_signed_tree_head(published: dict[str, Any]) -> None:
    forger = Ed25519PrivateKey.generate()
    _fails_at("signed tree head", published, CSV, _forged(published["proof_v1"], forger))
    # The forger re-signs a head with the real log id but its own key: the signature does not verify.
    proof = json.loads(json.dumps(published["proof_v1"]))
    head = SignedTreeHead.from_json(proof["checkpoint"])
    bad = forger.sign(head.signed_bytes())
    proof["checkpoint"]["signature"] = base64.b64encode(bad).decode()
    _fails_at("signed tree head", published, CSV, proof)
    # Without --key the bundle's own key is used: a fully re-signed bundle then passes, said to be unpinned.
    forged = _forged(published["proof_v1"], forger)
    forged["public_key"] = forger.public_key().public_bytes(*_pem()).decode()
    assert not verify_publication(CSV, json.dumps(forged)).key_pinned
    _fails_at("signed tree head", published, CSV, forged)  # pinned to the publisher's key: refused


def _pem() -> tuple[Any, Any]:
    from cryptography.hazmat.primitives import serialization

    return serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo


def test_attack_a_rolled_back_or_forked_log_fails_at_the_checkpoint(published: dict[str, Any]) -> None:
    certifier, anonymous = published["certifier"], published["world"].caller("anonymous")
    rid = published["resource"]["id"]
    newer = certifier.checkpoint(anonymous)
    old = published["proof_v1"]  # a proof at an older, smaller tree
    message = _fails_at("checkpoint", published, CSV, old, checkpoint=checkpoint_text(newer).encode())
    assert "rolled back" in message
    # The verifier's old checkpoint and a proof with its consistency proof: the log only grew.
    grown = certifier.proof(anonymous, rid, 1, since=published["old_head"].tree_size)
    old_text = checkpoint_text(published["old_head"]).encode()
    assert _verify(published, CSV, grown, checkpoint=old_text).checkpoint is not None
    # Without the consistency proof, or with one that does not match: refused.
    _fails_at("checkpoint", published, CSV, {**grown, "consistency": None}, checkpoint=old_text)
    # A fork: the same key signs another history of the same size (a second log with the stolen signing key).
    directory = ledger_directory(published["world"].home)
    signing = load_signing_key(directory / "signing-key.pem")
    with TransparencyLog(directory.parent / "fork", signing_key=signing) as fork:
        for _ in range(newer.tree_size):
            fork.append({"rewritten": True})
        forked = fork.tree_head()
    latest = certifier.proof(anonymous, rid)
    assert "forked" in _fails_at("checkpoint", published, CSV + b"3;Gap;7\n", latest,
                                 checkpoint=checkpoint_text(forked).encode())  # fmt: skip
    # A checkpoint that is not signed by the key is refused as such.
    tampered = checkpoint_text(newer).replace("tree_size: ", "tree_size: 1")
    _fails_at("checkpoint", published, CSV + b"3;Gap;7\n", latest, checkpoint=tampered.encode())


def test_the_checkpoint_text_format_round_trips(published: dict[str, Any]) -> None:
    head = published["certifier"].checkpoint(published["world"].caller("anonymous"))
    text = checkpoint_text(head)
    assert text.splitlines()[0] == "massalia-opendata-checkpoint/1" and len(text.splitlines()) == 6
    assert parse_checkpoint(text) == head == parse_checkpoint(json.dumps(head.to_json()))
    with pytest.raises(Exception, match="checkpoint"):
        parse_checkpoint(text.replace("root_hash", "root"))


def test_attack_anonymous_cannot_learn_a_non_public_dataset(published: dict[str, Any]) -> None:
    world, certifier = published["world"], published["certifier"]
    anonymous = world.caller("anonymous")
    hidden, unknown = published["hidden"]["id"], "00000000-0000-4000-8000-000000000000"
    answers = []
    for rid in (hidden, unknown):
        with pytest.raises(NotFound) as caught:
            certifier.proof(anonymous, rid)
        answers.append(str(caught.value).replace(rid, "<id>"))
    assert answers[0] == answers[1]  # the same words for a deleted dataset's file as for no file at all
    assert HIDDEN_NAME not in checkpoint_text(certifier.checkpoint(anonymous))
    # Nothing in the public log names a dataset, a title or a user: ids and hashes only.
    with TransparencyLog(ledger_directory(world.home), readonly=True) as log:
        text = "\n".join(log.get(i).data.decode() for i in range(log.size))
    for word in (HIDDEN_NAME, "bornes-irve", "od-alice", "region-sud"):
        assert word not in text


def test_attack_a_producer_of_another_organization_certifies_nothing(published: dict[str, Any]) -> None:
    world, certifier = published["world"], published["certifier"]
    before = certifier.checkpoint(world.caller("anonymous")).tree_size
    with pytest.raises(AccessDenied):
        world.catalog.resource_create(
            world.caller("bob"), {"package_id": "bornes-irve", "name": "x"}, Upload("x.csv", io.BytesIO(b"a\n1\n"))
        )
    with pytest.raises(AccessDenied):
        world.catalog.package_create(world.caller("bob"), {"name": "intrus", "owner_org": "region-sud"})
    assert certifier.checkpoint(world.caller("anonymous")).tree_size == before


def test_attack_the_proof_lookup_takes_ids_only(published: dict[str, Any]) -> None:
    certifier, anonymous = published["certifier"], published["world"].caller("anonymous")
    for ref in ("bornes-irve", "../../etc/passwd", "/etc/passwd", published["resource"]["id"].upper(), ""):
        with pytest.raises(ValidationFailed):
            certifier.proof(anonymous, ref)


def _cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})
    return result.exit_code, result.output


def test_massalia_verify_passes_and_fails_loudly(published: dict[str, Any], tmp_path: Path) -> None:
    data, proof, key = tmp_path / "irve.csv", tmp_path / "irve.csv.proof.json", tmp_path / "key.pem"
    data.write_bytes(CSV)
    proof.write_text(json.dumps(published["proof_v1"]))
    key.write_bytes(published["key"])
    code, out = _cli("verify", str(data), "--key", str(key))
    assert code == 0 and "OK: irve.csv is exactly the file published" in out, out
    data.write_bytes(CSV.replace(b"22", b"23"))
    code, out = _cli("verify", str(data), "--proof", str(proof), "--key", str(key))
    assert code == 1 and "FAILED at step 'hash'" in out, out
    data.write_bytes(CSV)
    held = tmp_path / "checkpoint.txt"
    held.write_text(checkpoint_text(published["certifier"].checkpoint(published["world"].caller("anonymous"))))
    code, out = _cli("verify", str(data), "--key", str(key), "--checkpoint", str(held))
    assert code == 1 and "FAILED at step 'checkpoint'" in out and "rolled back" in out, out


def _snippet() -> str:
    text = DOC.read_text(encoding="utf-8")
    found = re.search(r"<!-- verify-snippet:start -->\n```python\n(.*?)```\n<!-- verify-snippet:end -->", text, re.S)
    assert found, f"{DOC}: the verify snippet markers are missing"
    return found.group(1)


def test_the_documented_snippet_verifies_a_real_publication(published: dict[str, Any], tmp_path: Path) -> None:
    code = _snippet()
    assert len(code.splitlines()) <= 30
    script, data, proof, key = (tmp_path / n for n in ("verify.py", "data.csv", "proof.json", "key.pem"))
    script.write_text(code)
    proof.write_text(json.dumps(published["proof_v1"]))
    key.write_bytes(published["key"])
    data.write_bytes(CSV)
    ok = subprocess.run([sys.executable, str(script), str(data), str(proof), str(key)],
                        capture_output=True, text=True, check=False)  # fmt: skip
    assert ok.returncode == 0 and ok.stdout.startswith("OK " + published["resource"]["id"]), ok.stderr
    for tamper in ("file", "proof", "signature"):
        data.write_bytes(CSV + b"x" if tamper == "file" else CSV)
        bundle = json.loads(json.dumps(published["proof_v1"]))
        if tamper == "proof":
            bundle["entry"]["published_at"] = "2020-01-01T00:00:00.000000"
        if tamper == "signature":
            bundle = _forged(bundle, Ed25519PrivateKey.generate())
        proof.write_text(json.dumps(bundle))
        bad = subprocess.run([sys.executable, str(script), str(data), str(proof), str(key)],
                             capture_output=True, text=True, check=False)  # fmt: skip
        assert bad.returncode != 0, f"the snippet accepted a tampered {tamper}"


def test_a_publication_missed_by_the_log_is_caught_up(world: OpenDataWorld) -> None:
    """A file published while the log could not be written (here: a catalog without it) is certified later."""
    uncertified = Catalog(world.catalog.metadata_url, world.catalog.files)  # no ledger: nothing certified
    alice, anonymous = world.caller("alice"), world.caller("anonymous")
    uncertified.package_create(alice, {"name": "rattrapage", "owner_org": "region-sud"})
    made = uncertified.resource_create(alice, {"package_id": "rattrapage"}, Upload("r.csv", io.BytesIO(CSV)))
    certifier = Certifier.for_home(world.home)
    assert certifier.checkpoint(anonymous).tree_size == 0
    with pytest.raises(AccessDenied):
        certifier.catch_up(alice)  # reads every dataset: platform admins only
    assert certifier.catch_up(world.caller("admin")) == 1
    assert certifier.catch_up(world.caller("admin")) == 0  # nothing twice
    proof = certifier.proof(anonymous, made["id"])
    assert verify_publication(CSV, json.dumps(proof)).entry["resource_id"] == made["id"]


def test_a_proof_asked_for_a_missed_publication_certifies_it(world: OpenDataWorld) -> None:
    uncertified = Catalog(world.catalog.metadata_url, world.catalog.files)
    alice = world.caller("alice")
    uncertified.package_create(alice, {"name": "rattrapage-2", "owner_org": "region-sud"})
    made = uncertified.resource_create(alice, {"package_id": "rattrapage-2"}, Upload("r.csv", io.BytesIO(CSV)))
    proof = Certifier.for_home(world.home).proof(world.caller("anonymous"), made["id"])
    assert proof["entry"]["resource_version"] == 1 and proof["checkpoint"]["tree_size"] == 1
