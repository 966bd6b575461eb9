"""Ingest → alarm latency at a sustained rate, on ingest (Massalia) against ElastAlert-style polling, side by side.

Run: ``python benchmarks/safety_alarms.py [--rate 10000] [--seconds 60] [--batch 1000] [--poll 1,60]``.

A producer thread emits events at ``--rate`` per second (each stamped with its send time) into a queue, as an
MQTT subscriber's callback would; one ingest worker drains up to ``--batch`` events at a time through the
guarded service (rights checked and audited per batch, validation, catalogue mapping, outline check, cross-source
dedup, append to the incident log, rule evaluation). For every alarm opened, the latency is the time from the
send of the event that crossed the rule to the alarm's state being written.

The polling peer runs in the same process on the same engine, ElastAlert-style: every ``N`` seconds it queries
the incident log for the same rules (a ``count(*)`` per zone over each rule's window, as ElastAlert's frequency
rule asks OpenSearch) and reports each (rule, key) the first time it sees it over the threshold; its latency is
measured against the send time of the same crossing event. Printed: achieved rate, backlog, p50/p99 of both,
and their ratios. Not a test.
"""

from __future__ import annotations

import argparse
import datetime as dt
import queue
import random
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from massalia.engine import Engine, connect
from massalia.governance import Caller, Governance, Role, operator_principal
from massalia.safety.alarms import service
from massalia.safety.geo import districts, in_city, to_wgs84
from massalia.safety.log import INCIDENTS

RULES = """
version: 1
rules:
  - {id: rixes, kind: frequency, title: Rixes, types: [ATP.RIXE], count: 20, window_minutes: 10, group_by: zone}
  - {id: vols, kind: frequency, title: Vols, families: [VOL], count: 60, window_minutes: 10, group_by: zone}
  - {id: gare, kind: geofence, title: Gare, families: [ATP],
     polygon: [[5.375, 43.297], [5.385, 43.297], [5.385, 43.303], [5.375, 43.303]]}
"""
CODES = ["ATP03"] * 3 + ["VOL04", "VOL05", "DEG01", "BRU01", "CIR01", "SUR01", "ESP01"]
CITY_TZ = dt.timezone(dt.timedelta(hours=1))


def points(n: int, seed: int = 16) -> list[tuple[float, float]]:
    """``n`` points inside the city (WGS84), around the districts' seeds."""
    rng = np.random.default_rng(seed)
    seeds = np.array([d.seed for d in districts()])
    picked = seeds[rng.integers(0, len(seeds), n * 2)] + rng.normal(0, 700, (n * 2, 2))
    inside = picked[in_city(picked[:, 0], picked[:, 1])][:n]
    lon, lat = to_wgs84(inside[:, 0], inside[:, 1])
    return list(zip(lon.tolist(), lat.tolist(), strict=True))


def valid_codes() -> list[str]:
    from massalia.safety.catalogue import load_catalogue

    catalogue = load_catalogue()
    return [c for c in CODES if catalogue.resolve("csu", c)]


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=int, default=10_000)
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--poll", default="1,60", help="polling periods of the ElastAlert-style peers, seconds")
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args()
    root = args.dir or Path(tempfile.mkdtemp(prefix="safety-alarms-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    gov = Governance(f"sqlite:///{(root / 'meta.sqlite').as_posix()}", root / "ledger", key_path=root / "master.key")
    operator = gov.create_user("bench.ops", None, [Role.SAFETY_OPERATOR], actor=operator_principal())
    manager = gov.create_user("bench.manager", None, [Role.SAFETY_MANAGER], actor=operator_principal())
    caller = Caller(operator, gov, "bench")
    engine = connect("duckdb")
    service.declare_rules(Caller(manager, gov, "bench"), engine, RULES)
    alarms = service.situation(engine)
    codes = valid_codes()
    pool = points(20_000)
    rng = random.Random(16)
    sent_at: dict[str, float] = {}
    inbox: queue.Queue[tuple[float, bytes, str]] = queue.Queue()
    stop = threading.Event()
    produced = [0]
    start_event = dt.datetime.now(CITY_TZ).replace(microsecond=0) - dt.timedelta(hours=2)

    def produce() -> None:
        import json

        t0 = time.perf_counter()
        i = 0
        while not stop.is_set():
            due = int((time.perf_counter() - t0) * args.rate)
            while i < due:
                lon, lat = pool[i % len(pool)]
                # Event time advances 10 minutes of city time per second of run: windows fill and slide.
                at = start_event + dt.timedelta(milliseconds=i * 600_000 / args.rate)
                body = {"source": "csu", "message_id": f"b{i}", "source_id": f"b{i}", "occurred_at": at.isoformat(),
                        "local_code": rng.choice(codes), "lon": lon, "lat": lat}  # fmt: skip
                inbox.put((time.perf_counter(), json.dumps(body).encode(), f"b{i}"))
                i += 1
            produced[0] = i
            time.sleep(0.001)

    crossings: dict[tuple[str, str], tuple[float, float]] = {}  # (rule, key) -> (sent, raised)
    ingest_lat: list[float] = []
    backlog: list[int] = []

    def ingest() -> None:
        while not (stop.is_set() and inbox.empty()):
            try:
                first = inbox.get(timeout=0.05)
            except queue.Empty:
                continue
            batch = [first]
            while len(batch) < args.batch:
                try:
                    batch.append(inbox.get_nowait())
                except queue.Empty:
                    break
            backlog.append(inbox.qsize())
            result = service.ingest(caller, engine, [b for _, b, _ in batch], channel="bench")
            done = time.perf_counter()
            for sent, _, mid in batch:
                sent_at[mid] = sent
            ingest_lat.extend(done - sent for sent, _, _ in batch)
            for change in result["alarms"]:
                if change["change"] != "raised":
                    continue
                alarm = next(a for a in alarms.unclosed() if a.alarm_id == change["alarm_id"])
                crossing = alarm.incidents[-1] if alarm.incidents else None
                mid = _message_of(engine, crossing)
                if mid in sent_at:
                    crossings[(alarm.rule_id, alarm.key)] = (sent_at[mid], done)

    periods = [float(p) for p in args.poll.split(",") if p]
    polled: dict[float, dict[tuple[str, str], float]] = {p: {} for p in periods}

    def poll(period: float) -> None:
        rules = [("rixes", "type_code = 'ATP.RIXE'", 20), ("vols", "family = 'VOL'", 60)]
        while not stop.wait(period):
            for rule, where, count in rules:
                if not engine.table_exists(INCIDENTS):
                    continue
                rows = engine.query(
                    f"SELECT zone, count(*) AS n FROM {INCIDENTS} WHERE {where} AND occurred_at > "
                    f"(SELECT max(occurred_at) FROM {INCIDENTS}) - INTERVAL 10 MINUTE GROUP BY zone"
                ).to_pylist()
                now = time.perf_counter()
                for row in rows:
                    if int(row["n"]) >= count:
                        polled[period].setdefault((rule, str(row["zone"])), now)

    threads = [threading.Thread(target=produce), threading.Thread(target=ingest)]
    threads += [threading.Thread(target=poll, args=(p,)) for p in periods]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    time.sleep(args.seconds)
    stop.set()
    threads[0].join()
    sent_total = produced[0]
    threads[1].join()
    elapsed = time.perf_counter() - began
    for thread in threads[2:]:
        thread.join()
    print(f"target rate {args.rate}/s for {args.seconds} s, batches of <= {args.batch}")
    print(f"produced {sent_total} events, ingested {len(ingest_lat)} in {elapsed:.1f} s "
          f"(sustained {len(ingest_lat) / elapsed:,.0f} events/s); max backlog {max(backlog or [0])}")  # fmt: skip
    print(f"send -> written+evaluated, every event: p50 {percentile(ingest_lat, 50) * 1000:.1f} ms, "
          f"p99 {percentile(ingest_lat, 99) * 1000:.1f} ms")  # fmt: skip
    on_ingest = [raised - sent for sent, raised in crossings.values()]
    print(f"alarms opened on ingest: {len(crossings)}; send -> alarm p50 {percentile(on_ingest, 50) * 1000:.1f} ms, "
          f"p99 {percentile(on_ingest, 99) * 1000:.1f} ms")  # fmt: skip
    for period, seen in polled.items():
        pairs = [(seen[k] - crossings[k][0], crossings[k][1] - crossings[k][0]) for k in seen if k in crossings]
        lat = [p for p, _ in pairs]
        if not lat:
            print(f"polling every {period:g} s: no alarm seen in the run (a poll sees nothing before its first period)")
            continue
        p50, p99 = percentile(lat, 50), percentile(lat, 99)
        print(f"polling every {period:g} s: {len(seen)} (rule, zone) seen; send -> alarm p50 {p50 * 1000:.1f} ms, "
              f"p99 {p99 * 1000:.1f} ms; ratio to on-ingest p50 {p50 / max(statistics.median(on_ingest), 1e-9):.1f}x, "
              f"p99 {p99 / max(percentile(on_ingest, 99), 1e-9):.1f}x")  # fmt: skip
    gov.close()
    engine.close()


def _message_of(engine: Engine, incident_id: Any) -> str | None:
    if incident_id is None:
        return None
    rows = engine.query(
        f"SELECT m.message_id FROM safety_live_message AS m WHERE m.incident_id = {int(incident_id)} LIMIT 1"
    ).to_pylist()
    return str(rows[0]["message_id"]) if rows else None


if __name__ == "__main__":
    main()
