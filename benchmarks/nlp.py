"""Benchmark: clinical NLP notes/s into NOTE_NLP, with the F1 of the same run against the ground truth.

Generates ``--patients`` (real generator with documents, seed 11) and loads them with the real ETL into a
DuckDB warehouse (cached under ``--data``), then runs ``run_nlp`` (read NOTE page by page, extract, stage,
publish into NOTE_NLP in one transaction) with 1 and ``--workers`` worker processes, and scores what each
run stored against the generator's annotations (``stored_findings`` + ``evaluate``): the notes/s printed
and the F1 printed come from the same run.

Peer: a plain EDS-NLP pipeline of the rule pipes the issue names (sentences, normalizer, negation,
hypothesis, family, history, dates, TNM, quantities, and one ``eds.matcher`` per entity type with
Massalia's terms), run with ``nlp.pipe`` over the same notes in one process: what "a plain EDS-NLP
pipeline of ~20 rule pipes" costs here.

Usage::

    python benchmarks/nlp.py --patients 1000 [--workers 2] [--data DIR] [--skip-peer]
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

from massalia.engine.duckdb import DuckDBEngine
from massalia.health.etl import run_etl
from massalia.health.nlp import lexicon as lx
from massalia.health.nlp.evaluation import evaluate, read_truth
from massalia.health.nlp.service import stored_findings
from massalia.health.nlp.store import run_nlp
from massalia.health.synth import generate


def warehouse(data: Path, patients: int) -> tuple[Path, Path]:
    """The generated warehouse of ``patients`` (seed 11, documents) and its sources, built once under ``data``."""
    root = data / f"nlp-{patients}"
    path = root / "warehouse.duckdb"
    if not path.exists():
        generate(root / "sources", patients, seed=11, chunk_size=min(patients, 5000), with_documents=True)
        with DuckDBEngine(path) as engine:
            run_etl(engine, root / "sources", metadata_url=f"sqlite:///{(root / 'metadata.sqlite').as_posix()}")
    return path, root / "sources"


def peer(texts: list[str]) -> tuple[float, int]:
    """Seconds and pipe count of a plain EDS-NLP pipeline (one matcher per label) over ``texts``."""
    import edsnlp
    import edsnlp.pipes as eds
    from loguru import logger

    logger.disable("edsnlp")
    nlp = edsnlp.blank("eds")
    for pipe in (eds.sentences(), eds.normalizer()):
        nlp.add_pipe(pipe)
    by_label: dict[str, list[str]] = {}
    for term in lx.terms():
        by_label.setdefault(term.label, []).append(term.pattern)
    for label, patterns in by_label.items():
        nlp.add_pipe(eds.matcher(regex={label: patterns}, attr="NORM"), name=f"matcher_{label}")
    for pipe in (eds.negation(), eds.hypothesis(), eds.family(), eds.history(), eds.dates(), eds.tnm(),
                 eds.quantities()):  # fmt: skip
        nlp.add_pipe(pipe)
    start = time.perf_counter()
    for _ in nlp.pipe(texts, batch_size=64):
        pass
    return time.perf_counter() - start, len(nlp.pipe_names)


def _cpu_seconds() -> float:
    """User + system CPU time of this process and of its finished children (the worker processes)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--patients", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "massalia-bench")
    parser.add_argument("--skip-peer", action="store_true")
    args = parser.parse_args()
    path, sources = warehouse(args.data, args.patients)
    print(f"warehouse: {path} ({args.patients:,} patients); load average {os.getloadavg()[0]:.1f}")
    with DuckDBEngine(path) as engine:
        notes = engine.row_count("note")
        for workers in sorted({1, args.workers}):
            cpu = _cpu_seconds()
            report = run_nlp(engine, workers=workers)
            cpu = _cpu_seconds() - cpu
            scores = evaluate(stored_findings(engine), read_truth(sources))
            overall = scores.overall()
            qualifiers = ", ".join(f"{q} {c.f1:.3f}" for q, c in scores.qualifiers.items())
            print(
                f"massalia nlp run, {workers} worker(s): {report.notes:,} notes, {report.findings:,} findings in "
                f"{report.seconds:.1f} s = {report.notes_per_second:.0f} notes/s (whole run: read, extract, stage, "
                f"publish); F1 {overall.f1:.4f} (P {overall.precision:.4f}, R {overall.recall:.4f}); {qualifiers}"
            )
            print("  F1 per type: " + ", ".join(f"{label} {c.f1:.4f}" for label, c in sorted(scores.entities.items())))
            # The machine is shared: CPU seconds say what the run costs whatever else runs beside it.
            print(
                f"  CPU {cpu:.1f} s (this process and its workers) = {report.notes / cpu:.0f} notes per CPU-second; "
                f"load average {os.getloadavg()[0]:.1f}"
            )
        if not args.skip_peer:
            texts = [t or "" for t in engine.query("SELECT note_text FROM note ORDER BY note_id").column(0).to_pylist()]
            sample = texts[: min(len(texts), 3000)]
            cpu = _cpu_seconds()
            seconds, pipes = peer(sample)
            cpu = _cpu_seconds() - cpu
            print(
                f"peer, plain EDS-NLP ({pipes} pipes, nlp.pipe, 1 process): {len(sample):,} notes in {seconds:.1f} s "
                f"= {len(sample) / seconds:.0f} notes/s (extraction only); "
                f"{len(sample) / cpu:.0f} notes per CPU-second (pipeline build included)"
            )
    print(f"notes in the warehouse: {notes:,}; load average now {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
