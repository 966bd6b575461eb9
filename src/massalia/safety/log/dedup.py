"""Deduplication across sources: which reports describe the same real-world incident, and why.

Two reports of *different* sources are candidates when their types share a family and they are at most three
hours apart (a banded join on three-hour buckets, so the cost follows the number of close pairs, not the square
of the log). A candidate pair matches under the first of these rules (in this order):

``same_place_time``
    at most 150 m and 30 minutes apart (a camera and a patrol seeing the same thing);
``late_complaint``
    one report is a complaint to the public tranquillity department (``dtp``, filed up to hours later), the
    types are the same, at most 300 m and 180 minutes apart;
``same_address``
    no usable distance but the same zone and street, the same type, at most 30 minutes apart.

Reports are taken in time order; each joins the incident of its best match (lowest rule, then time, then
distance) unless that incident already holds a report of the same source (a source logs distinct events
separately), else it opens a new incident (``new_incident``). A later version of a known record stays with its
record's incident (``new_version``). Every decision is a row of ``safety_incident_link`` with the distance
and the time between the two reports.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import pyarrow as pa

from massalia.engine import Engine
from massalia.safety.log.tables import INCIDENTS, REPORTS, street_key

SAME_PLACE_METRES, SAME_PLACE_MINUTES = 150, 30
LATE_METRES, LATE_MINUTES = 300, 180
WINDOW_MINUTES = 180
RULE_RANK = {"same_place_time": 1, "late_complaint": 2, "same_address": 3}

ASSIGNMENT_SCHEMA = pa.schema(
    [
        ("report_id", pa.int64()),
        ("incident_id", pa.int64()),
        ("matched_report_id", pa.int64()),
        ("rule", pa.string()),
        ("minutes_apart", pa.float64()),
        ("metres_apart", pa.float64()),
    ]
)


def _address_key(alias: str) -> str:
    return street_key(f"regexp_replace(coalesce({alias}.address, ''), '^[0-9]+ *', '')")


def candidate_pairs_sql(new: str) -> str:
    """SQL listing the matching pairs (new report ``a``, earlier or already loaded report ``b``) and their rule."""
    bucket = f"CAST(floor(epoch({{t}}) / {WINDOW_MINUTES * 60}) AS BIGINT)"
    # The address key (two regular expressions) is computed for the pairs that reach the third rule only, not
    # for every report of the window (three times, once per shifted bucket): the window is the whole log of the
    # last hours, the pairs are few.
    pool = (
        f"SELECT report_id, source, occurred_at, x_l93, y_l93, zone, type_code, CAST(NULL AS BIGINT) AS incident_id, "
        f"address FROM {new} AS n WHERE version = 1 "
        f"UNION ALL SELECT r.report_id, r.source, r.occurred_at, r.x_l93, r.y_l93, r.zone, r.type_code, r.incident_id, "
        f"r.address FROM {REPORTS} AS r WHERE r.version = 1 AND r.occurred_at BETWEEN "
        f"(SELECT min(occurred_at) FROM {new}) - INTERVAL {WINDOW_MINUTES} MINUTE AND "
        f"(SELECT max(occurred_at) FROM {new}) + INTERVAL {WINDOW_MINUTES} MINUTE "
        # Only a logged report some new report could pair with (same family, another source): the join below
        # asks both, so the pairs are the same; the window's other reports (a feed's own, other families) no
        # longer go through the threefold spread and the join, a cost that grew with the log's last hours.
        f"AND EXISTS (SELECT 1 FROM {new} AS q WHERE q.version = 1 AND q.source <> r.source "
        f"AND split_part(q.type_code, '.', 1) = split_part(r.type_code, '.', 1))"
    )
    spread = (
        f"SELECT p.*, split_part(p.type_code, '.', 1) AS family, "
        f"{bucket.format(t='p.occurred_at')} + d.shift AS bucket "
        f"FROM ({pool}) AS p CROSS JOIN (SELECT unnest([-1, 0, 1]) AS shift) AS d"
    )
    minutes = "abs(epoch(a.occurred_at) - epoch(b.occurred_at)) / 60.0"
    metres = "sqrt(power(a.x_l93 - b.x_l93, 2) + power(a.y_l93 - b.y_l93, 2))"
    rule = (
        f"CASE WHEN {metres} <= {SAME_PLACE_METRES} AND {minutes} <= {SAME_PLACE_MINUTES} THEN 'same_place_time' "
        f"WHEN (a.source = 'dtp' OR b.source = 'dtp') AND a.type_code = b.type_code AND {metres} <= {LATE_METRES} "
        f"AND {minutes} <= {LATE_MINUTES} THEN 'late_complaint' "
        f"WHEN a.zone = b.zone AND a.akey <> '' AND a.type_code = b.type_code AND {minutes} <= {SAME_PLACE_MINUTES} "
        f"AND a.akey = {_address_key('b')} THEN 'same_address' END"
    )
    return (
        f"SELECT * FROM (SELECT a.report_id AS a_id, b.report_id AS b_id, b.incident_id AS b_incident, "
        f"a.source AS a_source, {minutes} AS minutes_apart, {metres} AS metres_apart, {rule} AS rule "
        f"FROM (SELECT *, split_part(type_code, '.', 1) AS family, {bucket.format(t='occurred_at')} AS bucket, "
        f"{_address_key('n')} AS akey FROM {new} AS n WHERE version = 1) AS a "
        f"JOIN ({spread}) AS b ON b.family = a.family AND b.bucket = a.bucket AND b.source <> a.source "
        f"AND (b.incident_id IS NOT NULL OR b.occurred_at < a.occurred_at "
        f"OR (b.occurred_at = a.occurred_at AND b.report_id < a.report_id))) AS pairs WHERE rule IS NOT NULL"
    )


def assign(
    engine: Engine,
    new: str,
    families: dict[str, str],
    run_id: str,
    *,
    reports: list[dict[str, Any]] | None = None,
    next_incident: int | None = None,
) -> pa.Table:
    """Give every new report (table ``new``) its incident, with the rule that decided it.

    ``families`` (type code → family) is accepted for callers that know better than the code's prefix; today the
    prefix is the family (the catalogue checks it). A caller that holds the new reports already (the live ingest)
    passes them as ``reports`` (``report_id``, ``source``, ``source_id``, ``version``, ``occurred_at``, in time
    order) and the next free incident id as ``next_incident``: two round trips fewer per batch.
    """
    del families, run_id  # the type code's prefix is its family (checked by the catalogue)
    if reports is None:
        reports = engine.query(
            f"SELECT n.report_id, n.source, n.source_id, n.version, n.occurred_at FROM {new} AS n "
            "ORDER BY n.occurred_at, n.report_id"
        ).to_pylist()
    pairs = engine.query(candidate_pairs_sql(new)).to_pylist()
    candidates: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for pair in pairs:
        candidates[int(pair["a_id"])].append(pair)
    known_incidents = {int(p["b_incident"]) for p in pairs if p["b_incident"] is not None}
    sources_of: dict[int, set[str]] = defaultdict(set)
    if known_incidents:
        listed = ", ".join(str(i) for i in sorted(known_incidents))
        for row in engine.query(
            f"SELECT DISTINCT incident_id, source FROM {REPORTS} WHERE incident_id IN ({listed})"
        ).to_pylist():
            sources_of[int(row["incident_id"])].add(str(row["source"]))
    # Later versions of records already loaded keep their record's incident.
    previous: dict[tuple[str, str], tuple[int, int]] = {}
    later = [r for r in reports if r["version"] > 1]
    if later:
        keys = ", ".join(f"('{r['source']}', '{str(r['source_id']).replace(chr(39), chr(39) * 2)}')" for r in later)
        for row in engine.query(
            f"SELECT source, source_id, report_id, incident_id FROM {REPORTS} WHERE version = 1 "
            f"AND (source, source_id) IN ({keys})"
        ).to_pylist():
            previous[(str(row["source"]), str(row["source_id"]))] = (int(row["report_id"]), int(row["incident_id"]))
    if next_incident is None:
        next_incident = engine.scalar_int(f"SELECT coalesce(max(incident_id), 0) FROM {INCIDENTS}") + 1
    next_id = next_incident
    incident_of: dict[int, int] = {}
    first_in_run = {(str(r["source"]), str(r["source_id"])): int(r["report_id"]) for r in reports if r["version"] == 1}
    rows: list[tuple[int, int, int | None, str, object, object]] = []

    def emit(report: int, incident: int, matched: int | None, rule: str, minutes: object, metres: object) -> None:
        incident_of[report] = incident
        rows.append((report, incident, matched, rule, minutes, metres))  # one tuple a report, columns at the end

    for report in sorted(reports, key=lambda r: (r["version"], r["occurred_at"], r["report_id"])):
        rid = int(report["report_id"])
        if report["version"] > 1:
            key = (str(report["source"]), str(report["source_id"]))
            if key in previous:
                first, incident = previous[key]
            else:  # version 1 arrived in this same delivery
                first = first_in_run[key]
                incident = incident_of[first]
            emit(rid, incident, first, "new_version", None, None)
            continue
        chosen = None
        for pair in sorted(
            candidates.get(rid, ()),
            key=lambda p: (RULE_RANK[str(p["rule"])], p["minutes_apart"], p["metres_apart"] or 0.0),
        ):
            b = int(pair["b_id"])
            joined = int(pair["b_incident"]) if pair["b_incident"] is not None else incident_of.get(b)
            if joined is not None and str(report["source"]) not in sources_of[joined]:
                chosen = (joined, b, pair)
                break
        if chosen is None:
            incident = next_id
            next_id += 1
            emit(rid, incident, None, "new_incident", None, None)
        else:
            incident, b, pair = chosen
            emit(rid, incident, b, str(pair["rule"]), pair["minutes_apart"], pair["metres_apart"])
        sources_of[incident].add(str(report["source"]))
    columns = list(zip(*rows, strict=True)) if rows else [()] * len(ASSIGNMENT_SCHEMA)
    return pa.table(
        {name: list(values) for name, values in zip(ASSIGNMENT_SCHEMA.names, columns, strict=True)},
        schema=ASSIGNMENT_SCHEMA,
    )
