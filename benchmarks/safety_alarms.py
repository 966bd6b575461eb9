"""Ingest → alarm latency at a sustained rate, on ingest (Massalia) against ElastAlert-style polling, side by side.

Run: ``python benchmarks/safety_alarms.py [--rate 10000] [--seconds 60] [--batch 1000] [--poll 1,60]``, or
``--saturate 20000`` for the batch path's capacity alone (pre-built events ingested back to back).

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
import json
import os
import queue
import random
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from massalia.engine import Engine, connect
from massalia.governance import Caller, Governance, Role, operator_principal
from massalia.safety.alarms import service
from massalia.safety.geo import district_of, districts, in_city, to_lambert93, to_wgs84
from massalia.safety.log import INCIDENTS

RULES = """
version: 1
rules:
  - {id: rixes, kind: frequency, title: Rixes, types: [ATP.RIXE], count: 20, window_minutes: 1, group_by: zone}
  - {id: vols, kind: frequency, title: Vols, families: [VOL], count: 60, window_minutes: 10, group_by: zone}
  - {id: gare, kind: geofence, title: Gare, families: [ATP],
     polygon: [[5.375, 43.297], [5.385, 43.297], [5.385, 43.303], [5.375, 43.303]]}
"""
CODES = ["VOL04", "VOL05", "DEG01", "BRU01", "CIR01", "SUR01", "ESP01"]
BURST = 25
"""Brawls (ATP.RIXE) sent together in one zone every ``--burst-every`` seconds: the 20th crosses rule ``rixes``."""
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
    parser.add_argument("--burst-every", type=float, default=4.0, help="seconds between two bursts of brawls")
    parser.add_argument("--poll", default="1,10,60", help="polling periods of the ElastAlert-style peers, seconds")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds left out of the figures")
    parser.add_argument("--saturate", type=int, default=0,
                        help="instead: ingest this many pre-built events in --batch batches as fast as possible "
                             "(the batch path's capacity, without the producer's share of the CPU)")  # fmt: skip
    parser.add_argument("--prefill", type=int, default=0,
                        help="with --saturate: first log this many past messages (the message table of a feed that "
                             "has run for a while; the batch lookups' cost grows with it)")  # fmt: skip
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="safety-alarms-bench-"))
    gov = Governance(f"sqlite:///{(root / 'meta.sqlite').as_posix()}", root / "ledger", key_path=root / "master.key")
    operator = gov.create_user("bench.ops", None, [Role.SAFETY_OPERATOR], actor=operator_principal())
    manager = gov.create_user("bench.manager", None, [Role.SAFETY_MANAGER], actor=operator_principal())
    caller = Caller(operator, gov, "bench")
    engine = connect("duckdb")
    service.declare_rules(Caller(manager, gov, "bench"), engine, RULES)
    alarms = service.situation(engine)
    codes = valid_codes()
    pool = points(20_000)
    if args.saturate:
        saturate(caller, engine, codes, pool, args.saturate, args.batch, prefill=args.prefill)
        gov.close()
        engine.close()
        return
    by_zone: dict[str, list[tuple[float, float]]] = {}
    xs, ys = to_lambert93(np.array([p[0] for p in pool]), np.array([p[1] for p in pool]))
    for point, number in zip(pool, district_of(xs, ys).tolist(), strict=True):
        by_zone.setdefault(f"D{number:02d}", []).append(point)
    zones = sorted(by_zone)
    rng = random.Random(16)
    inbox: queue.Queue[tuple[float, bytes, str]] = queue.Queue()
    stop = threading.Event()
    produced = [0]
    bursts: list[tuple[str, str]] = []  # (zone, message id of the event that crosses the rule)
    sent_at: dict[str, float] = {}
    began = time.perf_counter()

    stamp = [0.0, ""]

    def body(i: int, code: str, point: tuple[float, float]) -> bytes:
        # Real time (a burst stays in the rule's 1-minute window for a minute), formatted once a millisecond and
        # the JSON written by a template: the feeds' devices are not this process, their CPU should not count.
        now = time.time()
        if now - stamp[0] >= 0.001:
            stamp[0], stamp[1] = now, dt.datetime.fromtimestamp(now, CITY_TZ).isoformat()
        return (f'{{"source": "csu", "message_id": "b{i}", "source_id": "b{i}", "occurred_at": "{stamp[1]}", '
                f'"local_code": "{code}", "lon": {point[0]!r}, "lat": {point[1]!r}}}').encode()  # fmt: skip

    def produce() -> None:
        i, next_burst = 0, began + 1.0
        while not stop.is_set():
            now = time.perf_counter()
            due = int((now - began) * args.rate)
            while i < due:
                if now >= next_burst:
                    # Zones in turn: 16 zones x 4 s, a zone's previous burst has left its 1-minute window.
                    zone = zones[len(bursts) % len(zones)]
                    for k in range(BURST):
                        mid = f"b{i}"
                        sent_at[mid] = time.perf_counter()
                        if k == 19:
                            bursts.append((zone, mid))
                        inbox.put((sent_at[mid], body(i, "ATP03", rng.choice(by_zone[zone])), mid))
                        i += 1
                    next_burst += args.burst_every
                    continue
                inbox.put((time.perf_counter(), body(i, rng.choice(codes), pool[i % len(pool)]), f"b{i}"))
                i += 1
            produced[0] = i
            time.sleep(0.001)

    raised: dict[str, float] = {}  # crossing message id -> when its alarm was written
    ingest_lat: list[tuple[float, float]] = []
    backlog: list[int] = []

    ingest_cpu = [0.0]

    def ingest() -> None:
        began_cpu = time.thread_time()
        try:
            drain()
        finally:
            ingest_cpu[0] = time.thread_time() - began_cpu

    def drain() -> None:
        while not stop.is_set():  # what is left in the queue at the end is the backlog, reported
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
            ingest_lat.extend((sent, done - sent) for sent, _, _ in batch)
            for change in result["alarms"]:
                if change["change"] != "raised" or change["rule"] != "rixes":
                    continue
                alarm = next(a for a in alarms.unclosed() if a.alarm_id == change["alarm_id"])
                mid = _message_of(engine, alarm.detail.get("crossing_incident"))
                if mid is not None:
                    raised[mid] = done
                # An operator closes it at once, so that the next burst in the zone raises a new one.
                alarms.act(engine, alarm.alarm_id, "close", actor="bench", reason="benchmark")

    periods = [float(p) for p in args.poll.split(",") if p]
    polled: dict[float, dict[str, float]] = {p: {} for p in periods}

    def poll(period: float) -> None:
        """ElastAlert-style: every period, count brawls per zone over the window, on the same engine."""
        while not stop.wait(period):
            if not engine.table_exists(INCIDENTS):
                continue
            rows = engine.query(
                f"SELECT zone, count(*) AS n FROM {INCIDENTS} WHERE type_code = 'ATP.RIXE' AND occurred_at > "
                f"(SELECT max(occurred_at) FROM {INCIDENTS}) - INTERVAL 1 MINUTE GROUP BY zone"
            ).to_pylist()
            now = time.perf_counter()
            over = {str(r["zone"]) for r in rows if int(r["n"]) >= 20}
            for zone, mid in list(bursts):
                if zone in over and mid not in polled[period] and mid in sent_at and sent_at[mid] < now:
                    polled[period][mid] = now

    threads = [threading.Thread(target=produce), threading.Thread(target=ingest)]
    threads += [threading.Thread(target=poll, args=(p,)) for p in periods]
    cpu_began = time.process_time()
    for thread in threads:
        thread.start()
    time.sleep(args.seconds)
    stop.set()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    cpu = time.process_time() - cpu_began
    cut = began + args.warmup
    every = [lat for sent, lat in ingest_lat if sent >= cut]
    counted = [(z, m) for z, m in bursts if sent_at[m] >= cut and sent_at[m] < began + args.seconds - 5]
    on_ingest = [raised[m] - sent_at[m] for _, m in counted if m in raised]
    print(f"target {args.rate:,} events/s for {args.seconds} s, batches <= {args.batch}, warm-up {args.warmup:g} s "
          f"left out; load {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")  # fmt: skip
    print(f"produced {produced[0]:,}, ingested {len(ingest_lat):,} ({len(ingest_lat) / elapsed:,.0f} events/s "
          f"sustained); max backlog {max(backlog or [0]):,}, left unprocessed {inbox.qsize():,}")  # fmt: skip
    print(f"CPU {cpu:.1f} s for the whole process (producer, ingest, pollers, DuckDB's threads): "
          f"{cpu / max(len(ingest_lat), 1) * 10_000:.2f} CPU-seconds per 10,000 events ingested; the ingest "
          f"thread alone {ingest_cpu[0]:.1f} s, {ingest_cpu[0] / max(len(ingest_lat), 1) * 10_000:.2f} per 10,000 "
          "(DuckDB's worker threads not included)")  # fmt: skip
    print(f"send -> written + rules evaluated, every event: p50 {percentile(every, 50) * 1000:.1f} ms, "
          f"p99 {percentile(every, 99) * 1000:.1f} ms")  # fmt: skip
    p50, p99 = percentile(on_ingest, 50), percentile(on_ingest, 99)
    print(f"on ingest: {len(on_ingest)}/{len(counted)} bursts alarmed; send -> alarm p50 {p50 * 1000:.1f} ms, "
          f"p99 {p99 * 1000:.1f} ms")  # fmt: skip
    for period, seen in polled.items():
        # Only bursts a poll could have seen before the end of the run (sent a period or more before it).
        eligible = [m for _, m in counted if sent_at[m] < began + args.seconds - period - 1]
        lat = [seen[m] - sent_at[m] for m in eligible if m in seen]
        mine = [raised[m] - sent_at[m] for m in eligible if m in raised]
        if not eligible:
            print(f"polling every {period:g} s: the run is too short to compare (--seconds > {period:g} + warm-up)")
            continue
        if not lat:
            print(f"polling every {period:g} s: 0/{len(eligible)} bursts seen")
            continue
        q50, q99 = percentile(lat, 50), percentile(lat, 99)
        m50, m99 = percentile(mine, 50), percentile(mine, 99)
        print(f"polling every {period:g} s: {len(lat)}/{len(eligible)} bursts seen; send -> alarm p50 "
              f"{q50 * 1000:.1f} ms, p99 {q99 * 1000:.1f} ms; on ingest, same bursts: p50 {m50 * 1000:.1f} ms, "
              f"p99 {m99 * 1000:.1f} ms; ratio x{q50 / m50:.1f} (p50), x{q99 / m99:.1f} (p99)")  # fmt: skip
    gov.close()
    engine.close()


def saturate(
    caller: Caller,
    engine: Engine,
    codes: list[str],
    pool: list[tuple[float, float]],
    total: int,
    size: int,
    *,
    prefill: int = 0,
) -> None:
    """Ingest ``total`` pre-built events in batches of ``size`` back to back; print events/s and batch times.

    ``prefill`` past messages are logged first (message table rows only, as a feed that ran for a while leaves).
    """
    rng = random.Random(16)
    at = dt.datetime.now(CITY_TZ).isoformat()
    bodies = [
        json.dumps({"source": "csu", "message_id": f"s{i}", "source_id": f"s{i}", "occurred_at": at,
                    "local_code": rng.choice(codes), "lon": pool[i % len(pool)][0],
                    "lat": pool[i % len(pool)][1]}).encode()
        for i in range(total + size)
    ]  # fmt: skip
    service.ingest(caller, engine, bodies[:size], channel="bench")  # warm-up: tables, rule engine
    if prefill:
        import pyarrow as pa

        received = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        engine.insert("safety_live_message", pa.table({
            "source": pa.repeat(pa.scalar("csu"), prefill), "message_id": [f"past-{i}" for i in range(prefill)],
            "report_id": pa.nulls(prefill, pa.int64()), "incident_id": pa.nulls(prefill, pa.int64()),
            "outcome": pa.repeat(pa.scalar("duplicate_row"), prefill),
            "channel": pa.repeat(pa.scalar("bench"), prefill),
            "actor": pa.repeat(pa.scalar("bench"), prefill),
            "received_at": pa.repeat(pa.scalar(received, pa.timestamp("us")), prefill),
            "run_id": pa.repeat(pa.scalar("prefill"), prefill),
        }))  # fmt: skip
    times: list[float] = []
    began, cpu_began, thread_began = time.perf_counter(), time.process_time(), time.thread_time()
    for start in range(size, total + size, size):
        t0 = time.perf_counter()
        service.ingest(caller, engine, bodies[start : start + size], channel="bench")
        times.append(time.perf_counter() - t0)
    elapsed, cpu = time.perf_counter() - began, time.process_time() - cpu_began
    own = time.thread_time() - thread_began
    print(f"saturate: {total:,} events in batches of {size}: {total / elapsed:,.0f} events/s; batch p50 "
          f"{percentile(times, 50) * 1000:.0f} ms, p99 {percentile(times, 99) * 1000:.0f} ms; "
          f"load {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")  # fmt: skip
    per_batch = own / len(times) * 1000
    print(f"saturate: CPU {cpu:.1f} s (the process, DuckDB's threads included): {cpu / total * 10_000:.2f} "
          f"CPU-seconds per 10,000 events; {total / cpu:,.0f} events per CPU-second; the ingesting thread "
          f"alone {own / total * 10_000:.2f} CPU-s per 10,000 events, {per_batch:.1f} ms a batch")  # fmt: skip


def _message_of(engine: Engine, incident_id: Any) -> str | None:
    if incident_id is None:
        return None
    rows = engine.query(
        f"SELECT m.message_id FROM safety_live_message AS m WHERE m.incident_id = {int(incident_id)} LIMIT 1"
    ).to_pylist()
    return str(rows[0]["message_id"]) if rows else None


if __name__ == "__main__":
    main()
