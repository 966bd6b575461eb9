"""The guarded NLP services: run the pipeline into NOTE_NLP, and evaluate what it wrote, rights first.

``health.nlp.run`` (admin, data engineer; audited) reads every note's text and replaces the pipeline's rows
of NOTE_NLP; ``health.nlp.evaluate`` (admin, data engineer) compares those rows with the generator's ground
truth and returns aggregate scores only (no text, no person). Both are what ``massalia nlp run|evaluate``
call; no interface reaches the pipeline's output another way.

Examples
--------
>>> report = run(caller, warehouse, workers=2)  # doctest: +SKIP
>>> evaluation = evaluate_warehouse(caller, warehouse, home.sources)  # doctest: +SKIP
>>> evaluation.overall().f1 > 0.8  # doctest: +SKIP
True
"""

from __future__ import annotations

from pathlib import Path

from massalia.engine import Engine
from massalia.governance import Caller, InvalidRequest
from massalia.health.nlp.evaluation import Evaluation, evaluate, read_truth
from massalia.health.nlp.pipeline import Finding
from massalia.health.nlp.store import SYSTEM_PREFIX, NlpRunReport, ProgressCallback, run_nlp

RUN_ACTION = "health.nlp.run"
EVALUATE_ACTION = "health.nlp.evaluate"
MAX_WORKERS = 32
MAX_LIMIT = 100_000_000


def run(
    caller: Caller,
    warehouse: Engine,
    *,
    workers: int = 1,
    limit: int | None = None,
    progress: ProgressCallback | None = None,
) -> NlpRunReport:
    """Run the pipeline over the notes into NOTE_NLP (``health.nlp.run``, checked before any note is read).

    Raises
    ------
    InvalidRequest
        ``workers`` or ``limit`` out of range.
    """
    if not 1 <= workers <= MAX_WORKERS:
        raise InvalidRequest(f"workers must be 1 to {MAX_WORKERS}, got {workers}")
    if limit is not None and not 1 <= limit <= MAX_LIMIT:
        raise InvalidRequest(f"limit must be 1 to {MAX_LIMIT}, got {limit}")
    detail: dict[str, object] = {"resource": {"workers": workers, "limit": limit}}
    if caller.channel:
        detail["channel"] = caller.channel
    caller.authorize(RUN_ACTION, detail=detail)
    return run_nlp(warehouse, workers=workers, limit=limit, progress=progress)


def stored_findings(warehouse: Engine) -> dict[str, list[Finding]]:
    """The pipeline's NOTE_NLP rows as findings, by the note's id at its site (``note_source_value``).

    Every note the run covered is present (with no findings if the pipeline found none in it).
    """
    # The notes the run covered: a run with a limit reads notes in note_id order, up to the last one it wrote.
    processed = (
        "SELECT note_source_value FROM note WHERE note_id <= (SELECT coalesce(max(note_id), -1) FROM note_nlp "
        f"WHERE nlp_system LIKE '{SYSTEM_PREFIX}%')"
    )
    out: dict[str, list[Finding]] = {str(v): [] for v in warehouse.query(processed).column(0).to_pylist() if v}
    rows = warehouse.query(
        'SELECT n.note_source_value, x."offset" AS start, x.lexical_variant, x.term_modifiers FROM note_nlp AS x '
        f"JOIN note AS n ON n.note_id = x.note_id WHERE x.nlp_system LIKE '{SYSTEM_PREFIX}%'"
    ).to_pylist()
    for row in rows:
        fields = dict(part.split("=", 1) for part in str(row["term_modifiers"] or "").split(";") if "=" in part)
        start, text = int(row["start"]), str(row["lexical_variant"])
        out.setdefault(str(row["note_source_value"]), []).append(
            Finding(
                start, start + len(text), fields.get("label", ""), fields.get("value", ""), text,
                negated=fields.get("negated") == "true", hypothesis=fields.get("hypothesis") == "true",
                family=fields.get("family") == "true", history=fields.get("history") == "true",
            )
        )  # fmt: skip
    return out


def evaluate_warehouse(caller: Caller, warehouse: Engine, truth_folder: Path) -> Evaluation:
    """Scores of the pipeline's NOTE_NLP rows against the annotations under ``truth_folder`` (``health.nlp.evaluate``).

    Raises
    ------
    InvalidRequest
        No annotations under ``truth_folder``.
    """
    caller.authorize(EVALUATE_ACTION, detail={"resource": {"truth": str(truth_folder)}})
    predicted = stored_findings(warehouse)
    try:
        return evaluate(predicted, read_truth(truth_folder))
    except FileNotFoundError as error:
        raise InvalidRequest(str(error)) from None
