"""The safety domain's guarded services: the only way the API and the CLI reach the incident log.

Each service takes the :class:`~massalia.governance.Caller` first (the engine second) and asks governance
before reading anything. Personal data lives in two fields, the narratives and the parties: reading either is
its own action (``safety.incident.narrative``, ``safety.incident.parties``), audited in the transparency log
with the incidents it touched, and asked for only when the caller asks for those fields. Aggregates
(``safety.stats.read``, ``safety.map.read``) give exact counts to the city's staff; a partner gets the same
tables with every count under the disclosure threshold masked (``null``, shown ``"<10"``), and never a
narrative nor a party (no rule of ``rights.yaml`` gives a partner those actions).
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

from massalia.engine import Engine
from massalia.governance import Caller, InvalidRequest, NotFound
from massalia.governance.disclosure import settings_from_env
from massalia.pipelines import REJECTS, LineageStore
from massalia.safety import notify
from massalia.safety import release as safety_release
from massalia.safety.basemap import basemap
from massalia.safety.catalogue import coverage, load_catalogue
from massalia.safety.geo import districts
from massalia.safety.log import INCIDENTS, LINKS, REPORTS, load_delivery
from massalia.safety.query import SOURCES, IncidentFilter

GROUPINGS = {
    "zone": "i.zone",
    "family": "i.family",
    "type": "i.type_code",
    "month": "strftime(i.occurred_at, '%Y-%m')",
    "weekday": "CAST(isodow(i.occurred_at) AS VARCHAR)",
    "hour": "lpad(CAST(hour(i.occurred_at) AS VARCHAR), 2, '0')",
}
TIMELINE_BUCKETS = {"hour": "hour", "day": "day", "week": "week", "month": "month"}
MAX_ROWS = 1000
SORTS = {
    "occurred_at": "i.occurred_at",
    "zone": "i.zone",
    "type": "i.type_code",
    "family": "i.family",
    "source": "i.first_source",
    "id": "i.incident_id",
}
"""Columns an incident list may be sorted by (server-side; the id breaks ties so pages never overlap)."""
BIAS_RATIO = 0.5
"""A zone's share of incidents seen by a source under half the city's share gets a reporting-bias note."""


P = ParamSpec("P")
R = TypeVar("R")


def _audited_while_read(service: Callable[Concatenate[Caller, P], R]) -> Callable[Concatenate[Caller, P], R]:
    """An aggregate service whose decision is audited while it reads, with one signed tree head for the call.

    The decision is taken first (a refusal reads nothing); its entry is written while the service aggregates
    (:meth:`~massalia.governance.Governance.audit_before_answer`), the releases' own entries share one signed
    tree head (:meth:`~massalia.governance.Governance.one_tree_head`), and the answer leaves only once every
    entry is durable and covered: the guarantees of an audit per entry, for the cost of the longer of the two.
    """

    @functools.wraps(service)
    def guarded(caller: Caller, /, *args: P.args, **kwargs: P.kwargs) -> R:
        with caller.governance.audit_before_answer(), caller.governance.one_tree_head():
            return service(caller, *args, **kwargs)

    return guarded


def _ready(engine: Engine) -> bool:
    return engine.table_exists(INCIDENTS)


def catalogue_view(caller: Caller) -> dict[str, Any]:
    """The incident-type catalogue: version, families, types with their crosswalks, local codes, coverage."""
    caller.authorize("safety.catalogue.read")
    catalogue = load_catalogue()
    return {
        "version": catalogue.version,
        "families": catalogue.families,
        "types": catalogue.rows(),
        "local_codes": [
            {"source": c.source, "local_code": c.code, "label": c.label, "type_code": c.type_code}
            for c in catalogue.local_codes
        ],
        "coverage": coverage(catalogue),
        "schemes": {name: scheme.get("name") for name, scheme in catalogue.schemes.items()},
    }


def basemap_view(caller: Caller) -> dict[str, Any]:
    """The offline map background (commune outline, districts; no personal data), as the catalogue is read."""
    caller.authorize("safety.catalogue.read")
    return basemap()


def load(
    caller: Caller, engine: Engine, root: Path, store: LineageStore, *, index_root: Path | None = None
) -> dict[str, Any]:
    """Load a delivery folder (``safety.incident.load``): one atomic run, files already loaded skipped.

    With ``index_root``, the reports just loaded are then added to the search index (``safety.search.index``,
    incremental: only the new reports), so a search sees incidents as they load, and the saved searches are
    run over them for their owners (:func:`massalia.safety.notify.notify_new_matches`).
    """
    caller.authorize("safety.incident.load", detail={"channel": caller.channel, "root": str(root)})
    result = load_delivery(engine, root, store)
    indexed = (
        notify.index_and_notify(caller, engine, index_root)
        if index_root is not None and result.status == "success"
        else None
    )
    return {
        "search_index": indexed,
        "run_id": result.run_id,
        "status": result.status,
        "seconds": round(result.seconds, 3),
        "rows_added": result.rows_added,
        "rejects": [
            {"table": table, "reason": reason, "action": action, "rows": rows}
            for table, reason, action, rows in result.rejects
        ],
        "files": [{"path": str(f.input.path), "skipped": f.skipped, "rows": f.rows_read} for f in result.files],
    }


def list_incidents(
    caller: Caller,
    engine: Engine,
    where: IncidentFilter,
    *,
    include: Sequence[str] = (),
    limit: int = 100,
    offset: int = 0,
    sort: str = "occurred_at",
    descending: bool = True,
) -> dict[str, Any]:
    """Incidents matching ``where``, sorted by ``sort`` (a key of :data:`SORTS`; newest first by default).

    ``include`` may ask for ``narrative`` and ``parties``.

    Each personal field is its own audited action, asked for only when included; the audit entry names the
    filter and the incidents returned.
    """
    unknown = set(include) - {"narrative", "parties"}
    if unknown:
        raise InvalidRequest(f"include: unknown field(s) {', '.join(sorted(unknown))} (narrative, parties)")
    if not 1 <= limit <= MAX_ROWS or offset < 0:
        raise InvalidRequest(f"limit must be 1 to {MAX_ROWS} and offset >= 0")
    if sort not in SORTS:
        raise InvalidRequest(f"sort: unknown column {sort!r} ({', '.join(SORTS)})")
    caller.authorize("safety.incident.list", detail={"filter": where.describe()})
    # Each personal field is its own audited decision, taken before anything is read (a refusal reads nothing);
    # the filter, limit and offset in the entry determine exactly which incidents were returned.
    for field in ("narrative", "parties"):
        if field in include:
            caller.authorize(
                f"safety.incident.{field}", detail={"filter": where.describe(), "limit": limit, "offset": offset}
            )
    if not _ready(engine):
        return {"total": 0, "incidents": []}
    total = engine.scalar_int(f"SELECT count(*) FROM {INCIDENTS} AS i WHERE {where.where('i')}")
    direction = "DESC" if descending else "ASC"
    order = f"{SORTS[sort]} {direction} NULLS LAST, i.incident_id {direction}"
    rows = engine.query(
        f"SELECT i.incident_id, i.occurred_at, i.zone, i.x_l93, i.y_l93, i.type_code, i.family, i.first_source, "
        f"(SELECT list(DISTINCT r.source ORDER BY r.source) FROM {REPORTS} AS r WHERE r.incident_id = i.incident_id) "
        f"AS sources FROM {INCIDENTS} AS i WHERE {where.where('i')} ORDER BY {order} "
        f"LIMIT {int(limit)} OFFSET {int(offset)}"
    ).to_pylist()
    ids = [int(r["incident_id"]) for r in rows]
    if include and ids:
        latest = _latest_reports(engine, ids, include)
        for row in rows:
            row["reports"] = latest.get(int(row["incident_id"]), [])
    for row in rows:
        row["occurred_at"] = row["occurred_at"].isoformat()
    return {"total": total, "incidents": rows, "sort": sort, "descending": descending, "limit": limit, "offset": offset}


def _latest_reports(engine: Engine, ids: list[int], fields: Sequence[str]) -> dict[int, list[dict[str, Any]]]:
    columns = ", ".join(f"r.{f}" for f in ("narrative", "parties") if f in fields)
    listed = ", ".join(str(i) for i in ids)
    rows = engine.query(
        f"SELECT r.incident_id, r.source, r.source_id, r.version, {columns} FROM {REPORTS} AS r "
        f"WHERE r.incident_id IN ({listed}) "
        "QUALIFY r.version = max(r.version) OVER (PARTITION BY r.source, r.source_id) "
        "ORDER BY r.incident_id, r.source"
    ).to_pylist()
    out: dict[int, list[dict[str, Any]]] = {}
    for row in rows:
        out.setdefault(int(row.pop("incident_id")), []).append(row)
    return out


def incident_detail(caller: Caller, engine: Engine, incident_id: int, *, include: Sequence[str] = ()) -> dict[str, Any]:
    """One incident: its reports with every version (the history), and why each report joined it."""
    caller.authorize("safety.incident.list", detail={"incident": incident_id})
    for field in include:
        if field not in ("narrative", "parties"):
            raise InvalidRequest(f"include: unknown field {field!r} (narrative, parties)")
        caller.authorize(f"safety.incident.{field}", detail={"incidents": [incident_id]})
    if not _ready(engine):
        raise NotFound(f"no incident {incident_id}")
    found = engine.query(f"SELECT * FROM {INCIDENTS} WHERE incident_id = {int(incident_id)}").to_pylist()
    if not found:
        raise NotFound(f"no incident {incident_id}")
    personal = [f for f in ("narrative", "parties") if f in include]
    columns = ", ".join(
        [
            "report_id",
            "source",
            "source_id",
            "version",
            "occurred_at",
            "zone",
            "x_l93",
            "y_l93",
            "local_code",
            "type_code",
            "status",
            "attachments",
            "source_file",
            "source_line",
            "run_id",
            "catalogue_version",
            *personal,
        ]
    )
    reports = engine.query(
        f"SELECT {columns} FROM {REPORTS} WHERE incident_id = {int(incident_id)} ORDER BY source, source_id, version"
    ).to_pylist()
    links = engine.query(
        f"SELECT report_id, matched_report_id, rule, minutes_apart, metres_apart, run_id FROM {LINKS} "
        f"WHERE incident_id = {int(incident_id)} ORDER BY report_id"
    ).to_pylist()
    incident = found[0]
    incident["occurred_at"] = incident["occurred_at"].isoformat()
    for report in reports:
        report["occurred_at"] = report["occurred_at"].isoformat()
    return {"incident": incident, "reports": reports, "links": links}


def _counts(engine: Engine, where: IncidentFilter, key: str) -> dict[str, int]:
    rows = engine.query(
        f"SELECT {key} AS k, count(*) AS n FROM {INCIDENTS} AS i WHERE {where.where('i')} GROUP BY 1"
    ).to_pylist()
    return {str(r["k"]): int(r["n"]) for r in rows}


def _mask(value: int | None, exact: bool, threshold: int) -> int | None:
    if value is None or exact:
        return value
    return None if value < threshold else value


def reporting_bias(engine: Engine, where: IncidentFilter, totals: dict[str, int] | None = None) -> list[dict[str, Any]]:
    """Zones where a source sees a share of incidents under half its city-wide share (uneven reporting).

    Counts compare badly across such zones: fewer cameras or patrols mean fewer incidents recorded, not fewer
    incidents. Each note names the zone, the source, both shares and a sentence for the reader.
    """
    rows = engine.query(
        f"SELECT i.zone, r.source, count(DISTINCT i.incident_id) AS n FROM {INCIDENTS} AS i "
        f"JOIN {REPORTS} AS r ON r.incident_id = i.incident_id WHERE {where.where('i')} GROUP BY 1, 2"
    ).to_pylist()
    totals = totals if totals is not None else _counts(engine, where, "i.zone")
    city_total = sum(totals.values())
    if not city_total:
        return []
    by_source: dict[str, int] = {}
    seen: dict[tuple[str, str], int] = {}
    for row in rows:
        by_source[row["source"]] = by_source.get(row["source"], 0) + int(row["n"])
        seen[(row["zone"], row["source"])] = int(row["n"])
    notes = []
    for zone, total in sorted(totals.items()):
        for source in SOURCES:
            city_share = by_source.get(source, 0) / city_total
            if city_share < 0.05 or total < 20:
                continue
            share = seen.get((zone, source), 0) / total
            if share < BIAS_RATIO * city_share:
                notes.append(
                    {
                        "zone": zone,
                        "source": source,
                        "zone_share": round(share, 3),
                        "city_share": round(city_share, 3),
                        "note": (
                            f"In {zone}, {share:.0%} of incidents are known from source {source} against "
                            f"{city_share:.0%} city-wide: this zone's counts likely under-record what {source} "
                            f"would see; compare rates across zones with care."
                        ),
                    }
                )
    return notes


@_audited_while_read
def statistics(caller: Caller, engine: Engine, where: IncidentFilter, by: str = "zone") -> dict[str, Any]:
    """Incident counts by ``by`` (zone, family, type, month, weekday, hour), past periods, rates, bias notes.

    With a period, each row also gives the previous period of the same length (``previous``, ``change``) and
    the same dates a year earlier (``last_year``, ``change_last_year``). Rates are per 10,000 inhabitants of
    the zone (``by="zone"``) or of the city. A caller without ``raw_counts`` (a partner) gets every count
    through the core's noisy release (:mod:`massalia.safety.release`): noisy, rounded, masked under the
    threshold (``null``), budgeted, and rates computed from the released counts only.
    """
    if by not in GROUPINGS:
        raise InvalidRequest(f"by: unknown grouping {by!r} ({', '.join(GROUPINGS)})")
    grant = caller.authorize("safety.stats.read", detail={"filter": where.describe(), "by": by})
    exact = grant.raw_counts
    threshold = settings_from_env().threshold
    populations = {d.zone: d.population for d in districts()}
    city = sum(populations.values())
    if not _ready(engine):
        return {"by": by, "rows": [], "total": 0, "bias": [], "exact": exact}
    series = {"count": where, "previous": where.previous(), "last_year": where.last_year()}
    counts = {name: _counts(engine, chosen, GROUPINGS[by]) if chosen else {} for name, chosen in series.items()}
    keys = sorted(set().union(*counts.values()))
    shown: dict[str, dict[str, int | None]] = {name: dict(values) for name, values in counts.items()}
    release: dict[str, Any] = {"mode": "exact"}
    if not exact:
        cells = {f"{name}|{key}": counts[name].get(key, 0) for name in counts if series[name] for key in keys}
        # One incident falls in one key of a series, and in as many series as their periods overlap at its time.
        depth = _overlap_depth([chosen for chosen in series.values() if chosen is not None])
        released, release = safety_release.release_table(caller, engine, "safety.stats.read",
                                                         {"filter": where.describe(), "by": by}, cells,
                                                         sensitivity=depth, present=True)  # fmt: skip
        shown = {name: {key: released.get(f"{name}|{key}") for key in keys} for name in counts if series[name]}
    rows = []
    for key in keys:
        population = populations.get(key, city) if by == "zone" else city
        value = shown["count"].get(key, 0)
        row: dict[str, Any] = {
            "key": key,
            "count": value,
            "rate_per_10k": None if value is None else round(value * 10_000 / population, 2),
            "population": population,
        }
        for name, change in (("previous", "change"), ("last_year", "change_last_year")):
            prior = shown[name].get(key, 0) if series[name] else None
            row[name] = prior
            row[change] = None if value is None or not prior else round((value - prior) / prior, 3)
        rows.append(row)
    current = [r["count"] for r in rows]
    total = sum(c for c in current if c is not None)
    return {
        "by": by,
        "filter": where.describe(),
        "previous_period": series["previous"].describe() if series["previous"] else None,
        "last_year_period": series["last_year"].describe() if series["last_year"] else None,
        "rows": rows,
        # A partner's total is the sum of the released cells (post-processing, no extra release).
        "total": total if exact or None not in current else None,
        "exact": exact,
        "threshold": None if exact else threshold,
        "release": release,
        "bias": _bias_for(exact, reporting_bias(engine, where, counts["count"] if by == "zone" else None)),
    }


def _overlap_depth(filters: list[IncidentFilter]) -> int:
    """The most periods of ``filters`` one instant falls in (an open period covers every instant)."""
    lowest, highest = dt.datetime.min, dt.datetime.max
    spans = [(f.start or lowest, f.end or highest) for f in filters]
    return max((sum(1 for low, high in spans if low <= at < high) for at, _ in spans), default=1) or 1


def _bias_for(exact: bool, notes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Bias notes as a caller may read them: a partner learns which zone and source, not the exact shares."""
    if exact:
        return notes
    return [{"zone": n["zone"], "source": n["source"],
             "note": f"In {n['zone']}, source {n['source']} sees a much smaller share of incidents than city-wide: "
                     "this zone's counts likely under-record; compare rates across zones with care."}
            for n in notes]  # fmt: skip


@_audited_while_read
def map_grid(caller: Caller, engine: Engine, where: IncidentFilter, cell_metres: int = 500) -> dict[str, Any]:
    """Incidents counted on a square grid (Lambert-93 cells of ``cell_metres``), every filter honoured, no cap.

    Incidents without a point (an address the gazetteer did not know) are counted apart, by zone.
    """
    if not 50 <= cell_metres <= 10_000:
        raise InvalidRequest(f"cell_metres must be 50 to 10000, got {cell_metres}")
    grant = caller.authorize("safety.map.read", detail={"filter": where.describe(), "cell": cell_metres})
    threshold = settings_from_env().threshold
    if not _ready(engine):
        return {"cell_metres": cell_metres, "cells": [], "without_point": {}}
    size = int(cell_metres)
    # One scan: placed incidents by cell, the others by zone (a cell of NULLs per zone).
    rows = engine.query(
        f"SELECT CAST(floor(i.x_l93 / {size}) AS BIGINT) AS gx, CAST(floor(i.y_l93 / {size}) AS BIGINT) AS gy, "
        f"CASE WHEN i.x_l93 IS NULL THEN i.zone END AS unplaced, count(*) AS n FROM {INCIDENTS} AS i "
        f"WHERE {where.where('i')} GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"
    ).to_pylist()
    if grant.raw_counts:
        cells = [
            {"x_l93": r["gx"] * size, "y_l93": r["gy"] * size, "count": int(r["n"])}
            for r in rows
            if r["unplaced"] is None
        ]
        without = {str(r["unplaced"]): int(r["n"]) for r in rows if r["unplaced"] is not None}
        return {"cell_metres": size, "crs": "EPSG:2154", "cells": cells, "masked_cells": 0, "without_point": without,
                "threshold": None, "release": {"mode": "exact"}}  # fmt: skip
    return _partner_grid(caller, engine, where, size, rows, threshold)


def _partner_grid(
    caller: Caller, engine: Engine, where: IncidentFilter, size: int, rows: list[dict[str, Any]], threshold: int
) -> dict[str, Any]:
    """A partner's grid: every cell meeting the city and every zone's unplaced count, empty or not, released noisy.

    Listing only the non-empty cells (then masking the small ones) told exactly where incidents are, whatever
    the noise on their counts. The released cells are fixed by the geometry (:func:`release.city_cells`) and
    the zones by the catalogue, so the set says nothing; an empty cell is released like any other (its noisy
    count may show, a small non-empty cell's may be masked). Masked cells are left out of the list and
    counted in ``masked_cells``: that is post-processing of released values, which the noise already covers.
    """
    grid = safety_release.city_cells(size)
    if len(grid) > safety_release.MAX_GRID_CELLS:
        raise InvalidRequest(
            f"cell_metres={size} gives {len(grid)} cells over the city, more than a partner's "
            f"{safety_release.MAX_GRID_CELLS}: ask a larger cell"
        )
    true: dict[str, int] = {f"{gx}:{gy}": 0 for gx, gy in grid}
    true.update({f"zone:{d.zone}": 0 for d in districts()})
    for row in rows:
        name = f"zone:{row['unplaced']}" if row["unplaced"] is not None else f"{row['gx']}:{row['gy']}"
        # An incident outside every cell of the outline (a corner sliver) is left out rather than add a cell.
        if name in true:
            true[name] += int(row["n"])
    released, release = safety_release.release_table(  # disjoint cells: one incident changes one count
        caller,
        engine,
        "safety.map.read",
        {"filter": where.describe(), "cell": size, "grid": "fixed"},
        true,
        present=True,
    )
    cells = [{"x_l93": gx * size, "y_l93": gy * size, "count": released[f"{gx}:{gy}"]} for gx, gy in grid]
    shown = [c for c in cells if c["count"] is not None]
    without = {d.zone: released[f"zone:{d.zone}"] for d in districts()}
    return {"cell_metres": size, "crs": "EPSG:2154", "cells": shown, "masked_cells": len(cells) - len(shown),
            "grid_cells": len(cells), "without_point": without, "threshold": threshold,
            "release": release}  # fmt: skip


@_audited_while_read
def timeline(caller: Caller, engine: Engine, where: IncidentFilter, bucket: str = "day") -> dict[str, Any]:
    """Incident counts per time bucket (hour, day, week, month) under ``where``, for a timeline linked to the map."""
    if bucket not in TIMELINE_BUCKETS:
        raise InvalidRequest(f"bucket: unknown {bucket!r} ({', '.join(TIMELINE_BUCKETS)})")
    grant = caller.authorize("safety.map.read", detail={"filter": where.describe(), "timeline": bucket})
    threshold = settings_from_env().threshold
    if not _ready(engine):
        return {"bucket": bucket, "points": []}
    rows = engine.query(
        f"SELECT date_trunc('{TIMELINE_BUCKETS[bucket]}', i.occurred_at) AS t, count(*) AS n FROM {INCIDENTS} AS i "
        f"WHERE {where.where('i')} GROUP BY 1 ORDER BY 1"
    ).to_pylist()
    if grant.raw_counts:
        return {"bucket": bucket, "points": [{"t": r["t"].isoformat(), "count": int(r["n"])} for r in rows]}
    # Every bucket of the period, empty or not: only listing the non-empty ones told exactly when incidents
    # happened. Without a period, the period is the log's whole years (unfiltered: it says nothing of the filter).
    start, end = where.start, where.end
    if start is None or end is None:
        span = engine.query(f"SELECT min(occurred_at) AS low, max(occurred_at) AS high FROM {INCIDENTS}").to_pylist()
        low, high = span[0]["low"], span[0]["high"]
        if low is None:
            return {"bucket": bucket, "points": [], "threshold": threshold, "release": {"mode": "noisy"}}
        start = start or dt.datetime(low.year, 1, 1)
        end = end or dt.datetime(high.year + 1, 1, 1)
    buckets = [b.isoformat() for b in safety_release.fixed_buckets(start, end, bucket)]
    true = dict.fromkeys(buckets, 0)
    for r in rows:
        if r["t"].isoformat() in true:
            true[r["t"].isoformat()] = int(r["n"])
    period = [start.isoformat(), end.isoformat()]
    released, release = safety_release.release_table(
        caller,
        engine,
        "safety.map.read",
        {"filter": where.describe(), "timeline": bucket, "period": period},
        true,
        present=True,
    )
    points = [{"t": b, "count": released[b]} for b in buckets]
    return {"bucket": bucket, "points": points, "threshold": threshold, "release": release}


def quality(caller: Caller, engine: Engine) -> dict[str, Any]:
    """What the loads set aside: rejects by source and reason, unmapped local codes, dedup decisions by rule."""
    caller.authorize("safety.quality.read")
    if not (engine.table_exists(REJECTS) and engine.table_exists(LINKS)):
        return {"rejects": [], "unmapped_codes": [], "links": []}
    rejects = engine.query(
        f"SELECT site AS source, reason, field, action, count(*) AS n FROM {REJECTS} WHERE target_table = '{REPORTS}' "
        "GROUP BY 1, 2, 3, 4 ORDER BY 5 DESC"
    ).to_pylist()
    unmapped = engine.query(
        f"SELECT site AS source, value AS local_code, count(*) AS n FROM {REJECTS} WHERE target_table = '{REPORTS}' "
        "AND reason = 'unmapped_code' GROUP BY 1, 2 ORDER BY 3 DESC, 2 LIMIT 200"
    ).to_pylist()
    links = engine.query(
        f"SELECT rule, count(*) AS n, round(avg(minutes_apart), 1) AS avg_minutes, "
        f"round(avg(metres_apart), 1) AS avg_metres FROM {LINKS} GROUP BY 1 ORDER BY 1"
    ).to_pylist()
    return {"rejects": rejects, "unmapped_codes": unmapped, "links": links}


def parse_day(value: str | None, field: str) -> dt.datetime | None:
    """An ISO date or date-time from a command line or a query string (``None`` stays ``None``)."""
    if value is None or value == "":
        return None
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise InvalidRequest(f"{field}: not an ISO date or date-time: {value!r}") from None
    # The log keeps Paris wall-clock times: an offset would silently compare with the wrong clock.
    if parsed.tzinfo is not None:
        raise InvalidRequest(f"{field}: give a local (Europe/Paris) date-time without an offset, got {value!r}")
    if not 1900 <= parsed.year <= 2200:
        raise InvalidRequest(f"{field}: year {parsed.year} is outside 1900-2200")
    return parsed
