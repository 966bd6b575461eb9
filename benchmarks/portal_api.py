"""What the portal's screens wait for, over the HTTP API, on a demo home (issue 12: live counts, first pages).

Usage::

    massalia demo --patients 100000 --no-serve          # with MASSALIA_HOME=DIR: the home measured here
    python benchmarks/portal_api.py --home DIR [--runs 20] [--users 4] [--json out.json]

The researcher of the demo signs in with a cookie session and a CSRF token as the portal does; every call
goes through the whole app in this process (middleware, rights, audit, disclosure). Measured:

* **feasibility count while editing** (``POST /cohorts/count`` with rule toggles, ``benchmarks/cohorts/q2.json``:
  breast cancer, chemotherapy within 90 days, haemoglobin): the first count of a definition, then each
  toggle. Peer, in the same process: what a toggle cost before the analysis cache, one uncached
  ``analyze_cohort`` (the cohort's SQL) plus the in-memory count, on the same warehouse;
* **attrition** (the chart redrawn after a toggle) and **mart count** (the quick mode);
* **dashboard** (``POST /mart/dashboard``, every panel) and the **portal's first page** (the HTML shell);
* with ``--users N``: **N researchers toggling at once** (N signed-in clients, one thread each, ``--runs`` toggles
  each): median, 90th percentile and max of every call, and requests per second.

Each figure is the median (and max) of ``--runs`` calls after one warm-up call.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from massalia.api.app import create_app
from massalia.config import Home
from massalia.engine.duckdb import DuckDBEngine
from massalia.health.cohorts import CohortDefinition
from massalia.health.cohorts.service import ANALYSIS_CACHE, analyze_cohort

DEFINITION = Path(__file__).parent / "cohorts" / "q2.json"
PROJECT_TITLE = "Démo : faisabilité en oncologie"


def timed(call: Callable[[], Any], runs: int) -> dict[str, float]:
    """Median and max wall time of ``runs`` calls, in milliseconds (after one warm-up call)."""
    call()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1000)
    return {"median_ms": round(statistics.median(times), 1), "max_ms": round(max(times), 1)}


def sign_in(client: TestClient, home: Path) -> None:
    """The demo researcher's cookie session and CSRF token, as the portal's sign-in page gets them."""
    accounts = (home / "demo-accounts.txt").read_text(encoding="utf-8").splitlines()
    username, _, password = next(line.split() for line in accounts if line.startswith("researcher.demo "))
    response = client.post("/api/v1/auth/login", json={"username": username, "password": password})
    response.raise_for_status()
    client.headers["X-CSRF-Token"] = response.json()["csrf_token"]


def ok(response: Any) -> Any:
    if response.status_code >= 400:
        raise SystemExit(f"{response.request.method} {response.request.url}: {response.status_code} {response.text}")
    return response.json()


def concurrent_toggles(app: Any, home: Path, body: dict[str, Any], users: int, runs: int) -> dict[str, float]:
    """``users`` signed-in clients toggling rules at once, ``runs`` counts each: latency and throughput."""
    clients = []
    for _ in range(users):
        client = TestClient(app)
        sign_in(client, home)
        clients.append(client)
    times: list[float] = []
    lock = threading.Lock()
    start = threading.Barrier(users)

    def toggle(client: TestClient) -> None:
        toggles = itertools.cycle([[True, False], [False, True], [False, False], [True, True]])
        start.wait()
        for _ in range(runs):
            began = time.perf_counter()
            ok(client.post("/api/v1/cohorts/count", json={**body, "enabled": next(toggles)}))
            with lock:
                times.append((time.perf_counter() - began) * 1000)

    threads = [threading.Thread(target=toggle, args=(client,)) for client in clients]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - began
    ordered = sorted(times)
    return {"users": users, "median_ms": round(statistics.median(ordered), 1),
            "p90_ms": round(ordered[int(0.9 * (len(ordered) - 1))], 1), "max_ms": round(ordered[-1], 1),
            "requests_per_s": round(len(ordered) / wall, 1)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--home", type=Path, required=True, help="a home made by 'massalia demo --no-serve'")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--users", type=int, default=0, help="also measure N researchers toggling at once")
    args = parser.parse_args()
    home = Home(args.home)
    definition = json.loads(DEFINITION.read_text(encoding="utf-8"))
    figures: dict[str, Any] = {}
    app = create_app(home)
    with TestClient(app) as client:
        sign_in(client, args.home)
        projects = ok(client.get("/api/v1/projects"))["items"]
        project = next(p["id"] for p in projects if p["title"] == PROJECT_TITLE and p["status"] == "approved")
        with DuckDBEngine(home.warehouse, read_only=True) as engine:
            persons = engine.scalar_int("SELECT count(*) FROM person")
        figures["patients"] = persons

        def count(enabled: list[bool] | None) -> Any:
            body = {"definition": definition, "project_id": project, "enabled": enabled}
            return ok(client.post("/api/v1/cohorts/count", json=body))

        ANALYSIS_CACHE.clear()
        start = time.perf_counter()
        first = count(None)
        figures["count_first_ms"] = round((time.perf_counter() - start) * 1000, 1)
        toggles = itertools.cycle([[True, False], [False, True], [False, False], [True, True]])
        figures["count_toggle"] = timed(lambda: count(next(toggles)), args.runs)
        figures["persons_all_rules"] = first["persons"]

        parsed = CohortDefinition.model_validate(definition)
        # Read-write like the app's own connections: DuckDB shares one open database per process and config.
        with DuckDBEngine(home.warehouse) as engine:
            figures["peer_uncached_toggle"] = timed(
                lambda: analyze_cohort(engine, parsed).count([True, False]), max(3, args.runs // 4)
            )
        cohort = {"definition": definition, "project_id": project}
        figures["attrition"] = timed(lambda: ok(client.post("/api/v1/cohorts/attrition", json=cohort)), args.runs)
        mart = {"filters": {"all": [{"variable": "primary_site", "op": "=", "value": "breast"}]}, "project_id": project}
        figures["mart_count"] = timed(lambda: ok(client.post("/api/v1/mart/count", json=mart)), args.runs)
        few = max(3, args.runs // 4)
        figures["dashboard"] = timed(lambda: ok(client.post("/api/v1/mart/dashboard", json=mart)), few)
        figures["portal_first_page"] = timed(lambda: client.get("/").raise_for_status(), args.runs)
        if args.users > 0:
            together = {"definition": definition, "project_id": project}
            figures["concurrent_toggles"] = concurrent_toggles(app, args.home, together, args.users, args.runs)
    ratio = figures["peer_uncached_toggle"]["median_ms"] / figures["count_toggle"]["median_ms"]
    print(f"Portal API on {args.home} ({figures['patients']:,} patients, project {project}):")
    print(f"  count, first of a definition   {figures['count_first_ms']:>9.1f} ms")
    print(f"  count, each toggle (median/max) {figures['count_toggle']['median_ms']:>8.1f} / "
          f"{figures['count_toggle']['max_ms']:.1f} ms")  # fmt: skip
    print(f"  peer: uncached analysis + count {figures['peer_uncached_toggle']['median_ms']:>8.1f} ms "
          f"-> toggle {ratio:.1f}x faster than recomputing")  # fmt: skip
    for name in ("attrition", "mart_count", "dashboard", "portal_first_page"):
        print(f"  {name:<31} {figures[name]['median_ms']:>8.1f} / {figures[name]['max_ms']:.1f} ms")
    if "concurrent_toggles" in figures:
        at_once = figures["concurrent_toggles"]
        label = f"{at_once['users']} users toggling at once"
        print(f"  {label:<31} {at_once['median_ms']:>8.1f} / {at_once['p90_ms']:.1f} (p90) / "
              f"{at_once['max_ms']:.1f} ms, {at_once['requests_per_s']} requests/s")  # fmt: skip
    if args.json is not None:
        args.json.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
