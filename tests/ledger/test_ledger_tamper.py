"""Tampering with the stored ledger is detected: any flipped byte, rewritten entries, forged tree heads."""

from __future__ import annotations

import random
import shutil
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from massalia.ledger import merkle, storage
from massalia.ledger.keys import load_signing_key
from massalia.ledger.log import TransparencyLog
from massalia.ledger.storage import LedgerError
from massalia.ledger.verify import canonical_entry, sth_signed_bytes

LEDGER_FILES = ("entries.log", "nodes.bin", "offsets.idx", "sths.bin", "signing-key.pem", "public-key.pem")
ENTRY_COUNT = 45


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[int]]:
    """A closed ledger of 45 entries and 3 tree heads, with the byte offset of each entry."""
    directory = tmp_path_factory.mktemp("pristine") / "ledger"
    ticks = iter(range(1_763_700_000_000, 1_763_700_100_000, 1000))
    with TransparencyLog(directory, clock=lambda: next(ticks)) as log:
        for start, end in ((0, 10), (10, 30), (30, ENTRY_COUNT)):
            log.append_many({"i": i, "actor": f"u{i % 5}", "pad": "é" * (i % 9)} for i in range(start, end))
            log.tree_head()
        offsets = [log._offset(i) for i in range(ENTRY_COUNT)]  # white-box: where each record starts
        assert log.verify().ok
    return directory, offsets


def outcome(directory: Path) -> tuple[str, int | None]:
    """Open the ledger and verify it: the refusal or the problems found ('' when all is well)."""
    try:
        with TransparencyLog(directory) as log:
            report = log.verify()
    except LedgerError as exc:
        return f"refused: {exc}", None
    return "\n".join(report.problems), report.first_bad_index


def sample_positions(size: int, rng: random.Random, limit: int = 160) -> list[int]:
    if size <= limit:
        return list(range(size))
    chosen = set(range(storage.HEADER_SIZE + 2)) | {size - 1, size - 2, size - 5}
    chosen |= set(range(0, size, size // (limit // 2)))
    chosen |= set(rng.sample(range(size), limit // 2))
    return sorted(chosen)


def entry_at(offsets: list[int], position: int) -> int | None:
    """Index of the entry record containing byte ``position`` of entries.log."""
    starts = [o for o in offsets if o <= position]
    return len(starts) - 1 if starts else None


@pytest.mark.parametrize("name", LEDGER_FILES)
def test_any_flipped_byte_is_detected(name: str, pristine: tuple[Path, list[int]], tmp_path: Path) -> None:
    source, offsets = pristine
    data = (source / name).read_bytes()
    rng = random.Random(f"flip-{name}")
    undetected = []
    work = tmp_path / "ledger"
    shutil.copytree(source, work)
    originals = {f: (source / f).read_bytes() for f in LEDGER_FILES}
    for position in sample_positions(len(data), rng):
        flipped = bytearray(data)
        flipped[position] ^= rng.randrange(1, 256)
        (work / name).write_bytes(bytes(flipped))
        message, first_bad = outcome(work)
        (work / name).write_bytes(data)
        if any((work / f).read_bytes() != content for f, content in originals.items()):
            shutil.rmtree(work)  # opening repaired something: start the next flip from a fresh copy
            shutil.copytree(source, work)
        if not message:
            undetected.append(position)
            continue
        # the message says where: a ledger file, and for an entry its index
        assert any(f in message for f in LEDGER_FILES), message
        if name == "entries.log" and position >= storage.HEADER_SIZE and not message.startswith("refused"):
            assert first_bad == entry_at(offsets, position), message
            assert f"entry {first_bad}" in message
    assert not undetected, f"flips of {name} at {undetected} went unnoticed"


def _rewrite_record(directory: Path, offsets: list[int], index: int, entry: dict[str, Any]) -> None:
    """Replace entry ``index`` by another of the same length, with a valid checksum (a careful forger)."""
    path = directory / "entries.log"
    data = bytearray(path.read_bytes())
    start = offsets[index]
    (length,) = struct.unpack_from(">I", data, start)
    payload = canonical_entry(entry)
    assert len(payload) == length
    data[start : start + length + 8] = storage.encode_record(payload)
    path.write_bytes(bytes(data))


def test_rewritten_entry_with_valid_checksum(pristine: tuple[Path, list[int]], tmp_path: Path) -> None:
    source, offsets = pristine
    work = tmp_path / "ledger"
    shutil.copytree(source, work)
    _rewrite_record(work, offsets, 17, {"i": 17, "actor": "u9", "pad": "é" * 8})  # was actor u2
    message, first_bad = outcome(work)
    assert first_bad == 17
    assert "entries.log entry 17: leaf hash differs" in message


def _rebuild_nodes(directory: Path) -> None:
    """Recompute nodes.bin from the entries, as a forger who understands the format would."""
    data = (directory / "entries.log").read_bytes()
    position, frontier, nodes, index = storage.HEADER_SIZE, [], bytearray(), 0
    while position < len(data):
        payload, position = storage.decode_record(data, position)
        for digest in merkle.append_to_frontier(frontier, merkle.leaf_hash(payload), index):
            nodes += digest
        index += 1
    (directory / "nodes.bin").write_bytes(storage.header("nodes.bin") + bytes(nodes))


def test_consistent_rewrite_is_caught_by_signed_tree_heads(pristine: tuple[Path, list[int]], tmp_path: Path) -> None:
    source, offsets = pristine
    work = tmp_path / "ledger"
    shutil.copytree(source, work)
    _rewrite_record(work, offsets, 17, {"i": 17, "actor": "u9", "pad": "é" * 8})
    _rebuild_nodes(work)
    message, _ = outcome(work)
    # entries 0..9 are untouched: the first head still verifies; the two covering entry 17 do not
    assert "tree head #0" not in message
    assert "sths.bin tree head #1 (size 30): signed root differs" in message
    assert "sths.bin tree head #2 (size 45): signed root differs" in message


def test_swapped_entries_are_detected(pristine: tuple[Path, list[int]], tmp_path: Path) -> None:
    source, offsets = pristine
    work = tmp_path / "ledger"
    shutil.copytree(source, work)
    data = (work / "entries.log").read_bytes()
    first, second = data[offsets[3] : offsets[4]], data[offsets[4] : offsets[5]]
    swapped = data[: offsets[3]] + second + first + data[offsets[5] :]
    (work / "entries.log").write_bytes(swapped)
    message, first_bad = outcome(work)
    assert first_bad == 3
    assert "entries.log entry 3" in message


def _forge_tree_head(directory: Path, key: Ed25519PrivateKey, tree_size: int, root: bytes) -> None:
    with TransparencyLog(directory, readonly=True) as log:
        log_id = log.log_id
    signature = key.sign(sth_signed_bytes(tree_size, 1_900_000_000_000, root, log_id))
    with (directory / "sths.bin").open("ab") as stream:
        stream.write(storage.encode_sth(tree_size, 1_900_000_000_000, root, signature))


@pytest.mark.parametrize("forgery", ["wrong key", "altered root", "size beyond the log"])
def test_forged_tree_head_in_storage_is_refused(forgery: str, pristine: tuple[Path, list[int]], tmp_path: Path) -> None:
    source, _ = pristine
    work = tmp_path / "ledger"
    shutil.copytree(source, work)
    with TransparencyLog(work, readonly=True) as log:
        root = log.root(20)
    key = load_signing_key(work / "signing-key.pem")
    if forgery == "wrong key":
        _forge_tree_head(work, Ed25519PrivateKey.generate(), 20, root)
        expected = "tree head #3 (size 20): signature is not valid"
    elif forgery == "altered root":
        _forge_tree_head(work, key, 20, merkle.node_hash(root, root))
        expected = "tree head #3 (size 20): signed root differs"
    else:
        _forge_tree_head(work, key, ENTRY_COUNT + 5, root)
        expected = "signed for 50 entries but only 45"
    message, _ = outcome(work)
    assert expected in message


def test_outcome_reports_nothing_for_an_intact_copy(pristine: tuple[Path, list[int]], tmp_path: Path) -> None:
    # guards the tamper tests above against passing for the wrong reason (e.g. copies never opening)
    source, _ = pristine
    shutil.copytree(source, tmp_path / "ledger")
    assert outcome(tmp_path / "ledger") == ("", None)


def test_flip_and_restore_round_trip(pristine: tuple[Path, list[int]], tmp_path: Path) -> None:
    flip: Callable[[bytes, int], bytes] = lambda b, i: b[:i] + bytes([b[i] ^ 0xFF]) + b[i + 1 :]  # noqa: E731
    source, offsets = pristine
    shutil.copytree(source, tmp_path / "ledger")
    path = tmp_path / "ledger" / "entries.log"
    original = path.read_bytes()
    path.write_bytes(flip(original, offsets[30] + 6))
    assert outcome(tmp_path / "ledger")[1] == 30
    path.write_bytes(original)
    assert outcome(tmp_path / "ledger") == ("", None)
