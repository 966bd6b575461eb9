"""The history of quality runs: each run's summary, kept beside the latest report, and the trend between runs.

``quality.json`` holds the latest report only; each run also appends its summary (counts per status, Kahn
category, severity and level, pass rate: checks, not persons) as one JSON line to ``quality-runs.jsonl`` in
the same folder, so a dashboard can show the runs and what changed from one to the next. A folder written
before the history existed has a report but no line for it: :func:`read_runs` counts that report as a run.

Examples
--------
>>> runs = with_trend([{"started_at": "2026-01-01T00:00:00+00:00", "summary": {"pass_rate": 90.0,
...     "status": {"failed": 4}, "category": {"Conformance": {"passed": 9, "failed": 1}}}},
...     {"started_at": "2026-02-01T00:00:00+00:00", "summary": {"pass_rate": 95.0,
...     "status": {"failed": 2}, "category": {"Conformance": {"passed": 10, "failed": 0}}}}])
>>> runs[1]["trend"]["pass_rate"], runs[1]["trend"]["status"]["failed"], runs[1]["trend"]["category"]["Conformance"]
(5.0, -2, {'failed': -1, 'pass_rate': 10.0})
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from massalia.quality.report import QualityReport

HISTORY_FILE = "quality-runs.jsonl"
REPORT_FILE = "quality.json"
MAX_RUNS = 10_000
"""Most runs read back (the newest): a bound on what one request reads, whatever the file's size."""


def run_record(report: QualityReport) -> dict[str, Any]:
    """What the history keeps of a run: when, on which engine, how long, and its summary."""
    return {"started_at": report.started_at, "engine": report.engine, "seconds": round(report.seconds, 3),
            "summary": report.summary()}  # fmt: skip


def record_run(out_dir: Path, report: QualityReport) -> Path:
    """Append ``report``'s summary to the history in ``out_dir``; return the history file."""
    path = Path(out_dir) / HISTORY_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(run_record(report), sort_keys=True, separators=(",", ":")) + "\n"
    with path.open("a+b") as history:
        history.seek(0, 2)
        if history.tell() > 0:
            history.seek(-1, 2)
            if history.read(1) != b"\n":  # a torn last line (a run killed while writing): end it, keep ours whole
                line = "\n" + line
        history.write(line.encode("utf-8"))
    return path


def _latest_report(out_dir: Path) -> dict[str, Any] | None:
    path = Path(out_dir) / REPORT_FILE
    if not path.is_file():
        return None
    report = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(report, dict) or not isinstance(report.get("summary"), dict):
        raise ValueError(f"{REPORT_FILE} is not a quality report")
    return {key: report.get(key) for key in ("started_at", "engine", "seconds", "summary")}


def read_runs(out_dir: Path) -> list[dict[str, Any]]:
    """Every recorded run, oldest first (lines that are not a run's summary are skipped).

    The latest report counts as a run when the history lacks it (a folder from before the history).

    Raises
    ------
    OSError, ValueError
        The latest report exists but cannot be read.
    """
    path = Path(out_dir) / HISTORY_FILE
    runs: list[dict[str, Any]] = []
    if path.is_file():
        with path.open(encoding="utf-8") as history:
            lines = history.readlines()[-MAX_RUNS:]
        for line in lines:
            try:
                run = json.loads(line)
            except ValueError:
                continue  # a torn last line (a run killed while writing): not a run
            if _is_run(run):
                runs.append(run)
    latest = _latest_report(out_dir)
    if latest is not None and not any(run.get("started_at") == latest.get("started_at") for run in runs):
        runs.append(latest)
    return sorted(runs, key=lambda run: str(run.get("started_at") or ""))


def _is_run(value: object) -> bool:
    return (
        isinstance(value, dict) and isinstance(value.get("summary"), dict) and isinstance(value.get("started_at"), str)
    )


def _rate(counts: Mapping[str, Any]) -> float | None:
    passed = int(counts.get("passed") or 0)
    counted = passed + int(counts.get("failed") or 0) + int(counts.get("error") or 0)
    return round(100.0 * passed / counted, 2) if counted else None


def _delta(new: Any, old: Any) -> Any:
    if isinstance(new, int | float) and isinstance(old, int | float):
        return round(new - old, 2)
    return None


def _counts(summary: Mapping[str, Any], part: str) -> dict[str, Any]:
    value = summary.get(part)
    return dict(value) if isinstance(value, Mapping) else {}


def _trend(summary: Mapping[str, Any], before: Mapping[str, Any]) -> dict[str, Any]:
    """What changed from the summary ``before`` to ``summary``: pass rate, statuses, failed checks per category."""
    status, status_before = _counts(summary, "status"), _counts(before, "status")
    category, category_before = _counts(summary, "category"), _counts(before, "category")
    per_category: dict[str, Any] = {}
    for name in {**category_before, **category}:
        now, then = category.get(name) or {}, category_before.get(name) or {}
        per_category[name] = {"failed": int(now.get("failed") or 0) - int(then.get("failed") or 0),
                              "pass_rate": _delta(_rate(now), _rate(then))}  # fmt: skip
    return {
        "pass_rate": _delta(summary.get("pass_rate"), before.get("pass_rate")),
        "status": {name: int(status.get(name) or 0) - int(status_before.get(name) or 0)
                   for name in {**status_before, **status}},
        "category": per_category,
    }  # fmt: skip


def with_trend(runs: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The runs (oldest first), each numbered (``run``) and with its ``trend``: what changed since the previous run.

    ``trend`` holds the change of the pass rate, of each status count, and per Kahn category of the failed
    checks and the category's pass rate; ``None`` for the first run.
    """
    shown: list[dict[str, Any]] = []
    for number, run in enumerate(runs, start=1):
        before = runs[number - 2].get("summary") if number > 1 else None
        trend = _trend(run.get("summary") or {}, before) if isinstance(before, Mapping) else None
        shown.append({"run": number, **run, "trend": trend})
    return shown
