"""Measure the ledger: appends/s (single, batched), proofs at 100,000 entries, verify() and open times.

Run: ``python benchmarks/ledger_append.py [--entries 100000] [--dir /tmp/ledger-bench]``. Not a test
(benchmarks never run inside the test suite).
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import tempfile
import threading
import time
from pathlib import Path

from massalia.ledger.log import TransparencyLog
from massalia.ledger.verify import verify_consistency, verify_inclusion


def event(i: int) -> dict[str, object]:
    return {
        "actor": f"researcher-{i % 97}",
        "action": ["query", "extract", "patient_view", "approve"][i % 4],
        "resource": f"omop/person/{i * 7919 % 100_000}",
        "purpose": "projet-2026-014 survie",
        "time": "2026-11-21T10:00:00Z",
        "payload_sha256": f"{i:064x}",
    }


def timed(fn, repeat: int) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - start) / repeat


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--single", type=int, default=500)
    parser.add_argument("--batch", type=int, default=1_000)
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args()
    root = args.dir or Path(tempfile.mkdtemp(prefix="ledger-bench-"))
    directory = root / "ledger"
    shutil.rmtree(directory, ignore_errors=True)
    rng = random.Random(7)

    with TransparencyLog(directory) as log:
        start = time.perf_counter()
        for i in range(args.single):
            log.append(event(i))
        single = args.single / (time.perf_counter() - start)
        threads = [
            threading.Thread(target=lambda w=w: [log.append(event(w * 1000 + k)) for k in range(args.single // 8)])
            for w in range(8)
        ]
        start = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        concurrent = 8 * (args.single // 8) / (time.perf_counter() - start)
        start = time.perf_counter()
        i = first = log.size
        while i < args.entries:
            count = min(args.batch, args.entries - i)
            log.append_many(event(j) for j in range(i, i + count))
            i += count
        batched = (log.size - first) / (time.perf_counter() - start)
        old = log.tree_head()  # at the full size; extend a little to prove consistency from it
        log.append_many(event(j) for j in range(args.entries, args.entries + 10))
        sth = log.tree_head()
        n = sth.tree_size
        sign_time = timed(log.tree_head, 20)
        indexes = [rng.randrange(n) for _ in range(500)]
        incl_time = timed(lambda: log.inclusion_proof(rng.choice(indexes), n), 500)
        proofs = [log.inclusion_proof(k, n) for k in indexes[:50]]
        incl_len = statistics.mean(len(p.audit_path) for p in proofs)
        incl_json = statistics.mean(len(json.dumps(p.to_json())) for p in proofs)
        olds = [rng.randrange(1, n) for _ in range(200)]
        cons_time = timed(lambda: log.consistency_proof(rng.choice(olds), n), 200)
        cons = [log.consistency_proof(m, n) for m in olds[:50]]
        cons_len = statistics.mean(len(p.consistency_path) for p in cons)
        cons_json = statistics.mean(len(json.dumps(p.to_json())) for p in cons)
        pem = log.public_key_pem
        entry = log.get(indexes[0]).data
        check_time = timed(lambda: verify_inclusion(entry, proofs[0], sth, pem), 200)
        cproof = log.consistency_proof(old.tree_size, n)
        ccheck_time = timed(lambda: verify_consistency(old, sth, cproof, pem), 200)
        start = time.perf_counter()
        report = log.verify()
        verify_time = time.perf_counter() - start
    start = time.perf_counter()
    TransparencyLog(directory).close()
    open_time = time.perf_counter() - start
    sizes = {p.name: p.stat().st_size for p in sorted(directory.iterdir())}

    print(f"entries: {n:,}  (directory {directory})")
    print(f"single appends (fsync each):   {single:10,.0f} appends/s")
    print(f"8 threads of single appends:   {concurrent:10,.0f} appends/s (group commit)")
    print(f"batched appends ({args.batch:,}/batch): {batched:10,.0f} appends/s")
    print(f"tree_head() sign + store:      {sign_time * 1e3:10.2f} ms")
    print(f"inclusion proof:  {incl_time * 1e6:8.0f} µs, {incl_len:.1f} hashes, {incl_json:.0f} bytes JSON")
    print(f"consistency proof:{cons_time * 1e6:8.0f} µs, {cons_len:.1f} hashes, {cons_json:.0f} bytes JSON")
    print(f"standalone verify_inclusion:   {check_time * 1e6:10.0f} µs (Ed25519 + path)")
    print(f"standalone verify_consistency: {ccheck_time * 1e6:10.0f} µs")
    print(f"full verify(): {verify_time:.2f} s ({n / verify_time:,.0f} entries/s), ok={report.ok}")
    print(f"open (writer, with key checks): {open_time * 1e3:.1f} ms")
    print("files: " + ", ".join(f"{k} {v / 1e6:.2f} MB" for k, v in sizes.items() if v > 1000))


if __name__ == "__main__":
    main()
