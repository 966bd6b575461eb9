"""The stored log: appends, reads, roots, proofs, tree heads, keys, locking, concurrency, crash recovery."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from massalia.ledger import merkle, storage
from massalia.ledger.log import TransparencyLog
from massalia.ledger.storage import LedgerCorruptError, LedgerError, LedgerLockedError
from massalia.ledger.verify import canonical_entry, verify_consistency, verify_inclusion, verify_tree_head

OpenLog = Callable[..., TransparencyLog]
Event = Callable[[int], dict[str, Any]]


def test_append_get_and_root_follow_rfc(audit_event: Event, open_log: OpenLog) -> None:
    log = open_log()
    assert log.size == 0
    assert log.root() == merkle.EMPTY_ROOT
    first = log.append({"b": 2, "a": "é"})
    assert (first.index, first.data) == (0, '{"a":"é","b":2}'.encode())
    assert first.leaf_hash == merkle.leaf_hash(first.data)
    rest = log.append_many(audit_event(i) for i in range(1, 40))
    assert [e.index for e in rest] == list(range(1, 40))
    assert log.size == 40
    data = [log.get(i).data for i in range(40)]
    assert data[5] == canonical_entry(audit_event(5))
    assert log.get(5).entry == audit_event(5)
    for size in (0, 1, 7, 16, 33, 40):
        assert log.root(size) == merkle.merkle_tree_hash(data[:size])
    with pytest.raises(IndexError):
        log.get(40)
    with pytest.raises(ValueError, match="outside"):
        log.root(41)
    assert log.append_many([]) == []


@pytest.mark.parametrize("bad", [[1, 2], "text", {"x": float("nan")}, {"x": object()}])
def test_entries_must_be_json_objects(open_log: OpenLog, bad: object) -> None:
    log = open_log()
    with pytest.raises(ValueError):
        log.append(bad)  # type: ignore[arg-type]
    assert log.size == 0


def test_proofs_and_tree_heads_verify_across_reopen(audit_event: Event, tmp_path: Path, open_log: OpenLog) -> None:
    log = open_log()
    log.append_many(audit_event(i) for i in range(13))
    old = log.tree_head()
    log.append_many(audit_event(i) for i in range(13, 50))
    new = log.tree_head()
    assert (old.tree_size, new.tree_size) == (13, 50)
    assert new.timestamp > old.timestamp
    pem = log.public_key_pem
    log.close()

    log = open_log()
    assert log.size == 50 and log.recovery == ()
    assert log.tree_heads() == [old, new]
    assert log.latest_tree_head() == new
    for index in (0, 12, 13, 31, 49):
        proof = log.inclusion_proof(index, new.tree_size)
        verify_inclusion(log.get(index).data, proof.to_json(), new.to_json(), pem)
    verify_inclusion(audit_event(7), log.inclusion_proof(7, 13), old, pem)
    verify_consistency(old, new, log.consistency_proof(13, 50).to_json(), pem)
    for size in range(51):
        assert log.consistency_proof(size, 50).consistency_path == tuple(
            merkle.MemoryTree([log.get(i).leaf_hash for i in range(50)]).consistency_path(size)
        )
    assert log.verify().ok


def test_tree_head_of_empty_log_and_clock_going_back(tmp_path: Path) -> None:
    times = iter([5_000, 4_000])
    with TransparencyLog(tmp_path / "l", clock=lambda: next(times)) as log:
        first = log.tree_head()
        second = log.tree_head()
    assert (first.tree_size, first.root_hash) == (0, merkle.EMPTY_ROOT)
    assert second.timestamp == 5_000  # never goes back in time
    verify_tree_head(first.to_json(), (tmp_path / "l" / "public-key.pem").read_bytes())


def test_signing_key_file_and_public_key(tmp_path: Path, open_log: OpenLog) -> None:
    log = open_log()
    key_file = tmp_path / "ledger" / "signing-key.pem"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert (tmp_path / "ledger" / "public-key.pem").read_bytes() == log.public_key_pem
    log.append({"a": 1})
    head = log.tree_head()
    log.close()
    reopened = open_log()
    assert reopened.public_key_pem == log.public_key_pem
    verify_tree_head(reopened.tree_head(), log.public_key_pem)
    reopened.close()
    # another key cannot take over the log: its tree heads would not verify with the published key
    with pytest.raises(LedgerCorruptError, match=r"public-key\.pem"):
        open_log(signing_key=Ed25519PrivateKey.generate())
    # a key file others can read is refused
    key_file.chmod(0o640)
    with pytest.raises(LedgerError, match="chmod 600"):
        open_log()
    key_file.chmod(0o600)
    assert open_log().tree_heads()[0] == head


def test_supplied_key_and_missing_key(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    with TransparencyLog(tmp_path / "l", signing_key=key) as log:
        log.append({"a": 1})
        verify_tree_head(log.tree_head(), log.public_key_pem)
    assert not (tmp_path / "l" / "signing-key.pem").exists()
    with pytest.raises(LedgerError, match="supply the key"):
        TransparencyLog(tmp_path / "l")
    with TransparencyLog(tmp_path / "l", signing_key=key) as log:
        assert log.size == 1


def test_readonly_reader_and_writer_lock(audit_event: Event, tmp_path: Path, open_log: OpenLog) -> None:
    writer = open_log()
    writer.append_many(audit_event(i) for i in range(10))
    writer.tree_head()
    with pytest.raises(LedgerLockedError):
        TransparencyLog(tmp_path / "ledger")
    reader = open_log(readonly=True)
    assert reader.size == 10
    assert reader.get(3).entry == audit_event(3)
    assert reader.verify().ok
    writer.append({"later": True})
    writer.tree_head()  # a head beyond the reader's snapshot is not its business
    assert reader.size == 10  # a reader sees the entries committed when it opened
    assert reader.verify().ok
    with pytest.raises(LedgerError, match="read-only"):
        reader.append({"a": 1})
    with pytest.raises(LedgerError, match="read-only"):
        reader.tree_head()


def test_concurrent_appenders_and_readers(open_log: OpenLog, monkeypatch: pytest.MonkeyPatch) -> None:
    log = open_log()
    log.append({"seed": 0})
    syncs = {"n": 0}
    real_sync = storage.sync

    def counting_sync(fd: int) -> None:
        syncs["n"] += 1
        real_sync(fd)

    monkeypatch.setattr("massalia.ledger.log.sync", counting_sync)
    errors: list[BaseException] = []
    results: list[int] = []

    def appender(worker: int) -> None:
        try:
            for i in range(25):
                results.append(log.append({"worker": worker, "i": i}).index)
        except BaseException as exc:  # collected and re-raised in the main thread
            errors.append(exc)

    def reader() -> None:
        try:
            for _ in range(60):
                size = log.size
                head_root = log.root(size)
                index = size - 1
                proof = log.inclusion_proof(index, size)
                assert merkle.verify_inclusion(log.get(index).leaf_hash, index, size, proof.audit_path, head_root)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=appender, args=(w,)) for w in range(4)]
    threads += [threading.Thread(target=reader) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert syncs["n"] < 3 * 100  # group commit: concurrent appends shared fsync rounds
    assert sorted(results) == list(range(1, 101))
    assert log.size == 101
    entries = [log.get(i).entry for i in range(1, 101)]
    assert sorted((e["worker"], e["i"]) for e in entries) == [(w, i) for w in range(4) for i in range(25)]
    assert log.verify().ok


# -- crash recovery --------------------------------------------------------------------------------
def _stored_log(open_log: OpenLog, n: int = 20) -> Path:
    log = open_log()
    log.append_many({"i": i, "who": "dr.é", "pad": "p" * (i % 13)} for i in range(n))
    log.tree_head()
    log.close()
    return log.directory


def _append_bytes(path: Path, data: bytes) -> None:
    with path.open("ab") as stream:
        stream.write(data)


@pytest.mark.parametrize("cut", [1, 3, 4, 10, -1])
def test_torn_last_record_is_discarded_as_never_committed(open_log: OpenLog, cut: int) -> None:
    directory = _stored_log(open_log)
    record = storage.encode_record(canonical_entry({"torn": True, "pad": "y" * 50}))
    _append_bytes(directory / "entries.log", record[:cut])
    _append_bytes(directory / "nodes.bin", b"\x07" * 17)  # a hash being written, torn too
    _append_bytes(directory / "offsets.idx", b"\x00\x00\x01")
    log = open_log()
    assert log.size == 20
    assert any("discarded" in note and "never returned" in note for note in log.recovery)
    assert log.verify().ok
    assert log.append({"after": "crash"}).index == 20
    assert log.get(20).entry == {"after": "crash"}
    assert log.verify().ok


def test_zero_filled_tail_is_discarded(open_log: OpenLog) -> None:
    directory = _stored_log(open_log)
    _append_bytes(directory / "entries.log", bytes(4096))
    _append_bytes(directory / "sths.bin", bytes(storage.STH_RECORD_SIZE))
    log = open_log()
    assert log.size == 20 and len(log.tree_heads()) == 1
    assert len(log.recovery) == 2
    assert log.verify().ok


def test_durable_but_unindexed_entries_roll_forward(audit_event: Event, open_log: OpenLog) -> None:
    directory = _stored_log(open_log)
    extra = [canonical_entry(audit_event(i)) for i in (100, 101)]
    _append_bytes(directory / "entries.log", b"".join(storage.encode_record(p) for p in extra))
    log = open_log()
    assert log.size == 22
    assert "rolled forward 2 entries" in log.recovery[0]
    assert log.get(21).entry == audit_event(101)
    assert log.verify().ok


def test_truncated_committed_record_is_reported(open_log: OpenLog) -> None:
    directory = _stored_log(open_log)
    entries = directory / "entries.log"
    os.truncate(entries, entries.stat().st_size - 3)
    with pytest.raises(LedgerCorruptError, match=r"entries.log entry 19 .*incomplete"):
        open_log()


def test_removed_entries_are_caught_by_the_tree_head(open_log: OpenLog) -> None:
    directory = _stored_log(open_log)
    log = open_log(readonly=True)
    cut = log._offset(15)  # the test plays an attacker removing entries 15..19
    log.close()
    os.truncate(directory / "entries.log", cut)
    os.truncate(directory / "offsets.idx", storage.HEADER_SIZE + 15 * storage.OFFSET_SIZE)
    os.truncate(directory / "nodes.bin", storage.HEADER_SIZE + 32 * merkle.nodes_for_size(15))
    with pytest.raises(LedgerCorruptError, match="signed for 20 entries but only 15"):
        open_log()


def test_failed_write_blocks_the_log_until_reopened(
    audit_event: Event, open_log: OpenLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = open_log()
    log.append_many(audit_event(i) for i in range(5))
    calls = {"n": 0}
    real_sync = storage.sync

    def failing_sync(fd: int) -> None:
        calls["n"] += 1
        if calls["n"] == 2:  # entries are durable, writing their hashes fails (disk full...)
            raise OSError(28, "No space left on device")
        real_sync(fd)

    monkeypatch.setattr("massalia.ledger.log.sync", failing_sync)
    with pytest.raises(OSError, match="No space"):
        log.append({"lost": 1})
    with pytest.raises(LedgerError, match="reopen"):
        log.append({"lost": 2})
    assert log.size == 5
    log.close()
    monkeypatch.setattr("massalia.ledger.log.sync", real_sync)
    reopened = open_log()
    assert reopened.size == 6  # the entry was durable: rolled forward
    assert reopened.get(5).entry == {"lost": 1}
    assert reopened.verify().ok


CRASHER = """
import sys
from massalia.ledger.log import TransparencyLog
log = TransparencyLog(sys.argv[1])
batch = 0
while True:
    entries = log.append_many({"batch": batch, "i": i, "pad": "z" * (i % 50)} for i in range(200))
    log.tree_head()
    print(entries[-1].index + 1, flush=True)
    batch += 1
"""


def test_process_killed_mid_append_recovers(tmp_path: Path) -> None:
    directory = tmp_path / "ledger"
    child = subprocess.Popen([sys.executable, "-c", CRASHER, str(directory)], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    acknowledged = 0
    for _ in range(8):
        acknowledged = int(child.stdout.readline())
    child.kill()  # SIGKILL: no cleanup, possibly in the middle of a write
    child.wait()
    with TransparencyLog(directory) as log:
        assert log.size >= acknowledged
        assert log.size % 200 == 0  # a batch is all or nothing
        report = log.verify()
        assert report.ok, report.summary()
        heads = log.tree_heads()
        assert heads[-1].tree_size <= log.size
        assert [json.loads(log.get(i).data)["batch"] for i in (0, log.size - 1)] == [0, log.size // 200 - 1]


def test_oversized_entry_is_refused_before_writing(open_log: OpenLog, monkeypatch: pytest.MonkeyPatch) -> None:
    log = open_log()
    monkeypatch.setattr("massalia.ledger.log.MAX_ENTRY_SIZE", 100)
    with pytest.raises(ValueError, match="exceeds 100 bytes"):
        log.append_many([{"ok": 1}, {"big": "x" * 200}])
    assert log.size == 0
    assert log.append({"ok": 1}).index == 0  # the log is still usable


def test_readonly_open_of_a_missing_ledger(tmp_path: Path) -> None:
    with pytest.raises(LedgerError, match="no ledger in"):
        TransparencyLog(tmp_path / "nowhere", readonly=True)
    assert not (tmp_path / "nowhere").exists()


def test_writer_verify_flags_bytes_past_the_committed_data(open_log: OpenLog) -> None:
    log = open_log()
    log.append_many({"i": i} for i in range(5))
    log.tree_head()
    assert log.verify().ok
    _append_bytes(log.directory / "nodes.bin", b"\x00" * 32)
    report = log.verify()
    assert not report.ok
    assert report.problems == (f"nodes.bin: {16 + 32 * 9} bytes where the committed data takes {16 + 32 * 8}",)


def test_reader_refuses_persistent_damage(open_log: OpenLog) -> None:
    directory = _stored_log(open_log)
    data = bytearray((directory / "sths.bin").read_bytes())
    data[-1] ^= 0x20
    (directory / "sths.bin").write_bytes(bytes(data))
    with pytest.raises(LedgerCorruptError, match=r"sths\.bin tree head #0"):
        open_log(readonly=True)
