"""Orchestration: patients drawn block by block, written chunk by chunk as part files per site."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from massalia.health.synth import documents as docgen
from massalia.health.synth.cohort import Cohort, draw_cohort
from massalia.health.synth.dirty import inject_defects
from massalia.health.synth.hazard import DEFAULT_MODEL, HazardModel
from massalia.health.synth.sites import SITES, ch_est, chu_nord, clcc_sud
from massalia.health.synth.sites.common import SiteData, write_table
from massalia.health.synth.sites.ids import source_ids
from massalia.health.synth.timeline import Timeline, build_timeline
from massalia.health.synth.truth import ground_truth, patient_truth

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

BLOCK = 1000
"""Patients per RNG block: patient ``i`` is drawn from ``default_rng([seed, i // BLOCK])``."""

SITE_WEIGHTS: dict[str, float] = {"chu_nord": 0.45, "clcc_sud": 0.35, "ch_est": 0.20}
WRITERS = {"chu_nord": chu_nord.build_tables, "clcc_sud": clcc_sud.build_tables, "ch_est": ch_est.build_tables}


@dataclass
class GenerationSummary:
    """What a run wrote.

    Attributes
    ----------
    rows
        Rows written per file kind, keyed ``"<site>/<kind>"`` (summed over parts).
    files
        Rows written per file, keyed by its path relative to the output folder.
    patients_per_site
        Patients generated per site.
    seconds
        Wall-clock duration of the run.
    parts
        Part numbers written.
    documents
        Documents written (all sites).
    defects
        Defects injected (all sites).
    """

    rows: dict[str, int] = field(default_factory=dict)
    files: dict[str, int] = field(default_factory=dict)
    patients_per_site: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    parts: list[int] = field(default_factory=list)
    documents: int = 0
    defects: int = 0

    @property
    def total_rows(self) -> int:
        """Rows over every file."""
        return sum(self.rows.values())


def subset(c: Cohort, t: Timeline, mask: np.ndarray) -> tuple[Cohort, Timeline]:
    """Patients where ``mask`` is true and their events, with ``pid`` renumbered."""
    keep = np.flatnonzero(mask)
    new_pid = np.full(len(c), -1, dtype=np.int64)
    new_pid[keep] = np.arange(keep.size)

    def cut(table: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        sel = mask[table["pid"]]
        out = {k: v[sel] for k, v in table.items()}
        out["pid"] = new_pid[out["pid"]]
        return out

    anchors = {k: v[keep] for k, v in t.anchors.items()}
    tl = Timeline(**{f.name: cut(getattr(t, f.name)) for f in fields(t) if f.name != "anchors"}, anchors=anchors)
    return c.take(keep), tl


def generate(
    out_dir: Path,
    n_patients: int,
    *,
    seed: int = 0,
    sites: Sequence[str] | None = None,
    start_index: int = 0,
    chunk_size: int = 10_000,
    dirty_rate: float = 0.0,
    with_documents: bool = True,
    progress: Progress | None = None,
    model: HazardModel = DEFAULT_MODEL,
) -> GenerationSummary:
    """Generate the extracts of ``n_patients`` synthetic cancer patients spread over the sites.

    Parameters
    ----------
    out_dir
        Folder receiving one sub-folder per site, ``truth/`` and ``ground_truth.json``.
    n_patients
        Number of NEW patients (global indexes ``start_index .. start_index + n_patients - 1``).
    seed
        Seed of every random draw; same seed and arguments give byte-identical files.
    sites
        Sites to generate (default: all of ``SITES``); patients are spread by ``SITE_WEIGHTS``.
    start_index
        First global patient index, a multiple of ``chunk_size``: a later batch adds new part files.
    chunk_size
        Patients per part file (memory is bounded by it).
    dirty_rate
        Share of rows given a defect (recorded in ``truth/defects_partNNNN.parquet``).
    with_documents
        Also write French clinical documents and their annotations.
    progress
        A Rich progress display to report on (one task, advanced per block).
    model
        Outcome model (defaults to the documented one).

    Returns
    -------
    GenerationSummary
        Rows per file kind, patients per site, seconds.

    Examples
    --------
    >>> import tempfile
    >>> s = generate(Path(tempfile.mkdtemp()), 50, with_documents=False)
    >>> sum(s.patients_per_site.values())
    50
    """
    if n_patients < 0 or chunk_size <= 0:
        raise ValueError("n_patients must be >= 0 and chunk_size > 0")
    if start_index % chunk_size:
        raise ValueError(f"start_index ({start_index}) must be a multiple of chunk_size ({chunk_size})")
    if not 0.0 <= dirty_rate <= 1.0:
        raise ValueError("dirty_rate must be within [0, 1]")
    names = list(sites) if sites is not None else list(SITES)
    unknown = [s for s in names if s not in SITES]
    if unknown or not names:
        raise ValueError(f"unknown sites {unknown}; known: {sorted(SITES)}")
    t0 = time.perf_counter()
    out_dir = Path(out_dir)
    weights = np.array([SITE_WEIGHTS[s] for s in names])
    weights = weights / weights.sum()
    _write_ground_truth(out_dir, seed, model, dict(zip(names, weights.tolist(), strict=True)))
    summary = GenerationSummary(patients_per_site=dict.fromkeys(names, 0))
    task = progress.add_task("generating patients", total=n_patients) if progress is not None else None
    end = start_index + n_patients
    for lo in range(start_index, end, chunk_size):
        hi = min(lo + chunk_size, end)
        part = lo // chunk_size
        _write_chunk(
            out_dir, part, lo, hi, seed, names, weights, model, dirty_rate, with_documents, summary, progress, task
        )
        summary.parts.append(part)
    summary.seconds = time.perf_counter() - t0
    return summary


def _write_ground_truth(out_dir: Path, seed: int, model: HazardModel, weights: dict[str, float]) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "ground_truth.json"
    truth = ground_truth(seed, model, weights)
    if path.exists():
        previous = json.loads(path.read_text(encoding="utf-8"))
        if previous.get("seed") != seed or previous.get("site_weights") != truth["site_weights"]:
            raise ValueError(f"{path} was written with another seed or site list; use a new folder")
    path.write_text(json.dumps(truth, indent=2, ensure_ascii=False, sort_keys=True) + "\n", encoding="utf-8")


def _write_chunk(
    out_dir: Path,
    part: int,
    lo: int,
    hi: int,
    seed: int,
    names: list[str],
    weights: np.ndarray,
    model: HazardModel,
    dirty_rate: float,
    with_documents: bool,
    summary: GenerationSummary,
    progress: Progress | None,
    task: TaskID | None,
) -> None:
    tables: dict[str, dict[str, list[pa.Table]]] = {s: {} for s in names}
    truths: list[pa.Table] = []
    annotations: list[str] = []
    for block in range(lo // BLOCK, (hi - 1) // BLOCK + 1):
        rng = np.random.default_rng([seed, block])
        index = np.arange(block * BLOCK, (block + 1) * BLOCK, dtype=np.int64)
        # the pregnancy facts have their own stream: adding them left every other draw of a seed unchanged
        cohort = draw_cohort(rng, index, weights, model, pregnancy_rng=np.random.default_rng([seed, block, 2]))
        timeline = build_timeline(rng, cohort)
        in_chunk = (index >= lo) & (index < hi)
        for s, site in enumerate(names):
            c, t = subset(cohort, timeline, in_chunk & (cohort.site == s))
            if len(c) == 0:
                continue
            docs = None
            if with_documents:
                doc_rng = np.random.default_rng([seed, block, 1, s])
                docs, notes = docgen.build_documents(doc_rng, c, t, site)
                annotations.extend(notes)
            data = SiteData(cohort=c, timeline=t, documents=docs)
            for kind, table in WRITERS[site](data).items():
                tables[site].setdefault(kind, []).append(table)
            emergency = np.bincount(t.visits["pid"][t.visits["kind"] == 3], minlength=len(c))
            truth = patient_truth(c, [site] * len(c), source_ids(site, c.index))
            truths.append(truth.append_column("n_unplanned_stays", pa.array(emergency, pa.int32())))
            summary.patients_per_site[site] += len(c)
        if progress is not None and task is not None:
            progress.advance(task, int(in_chunk.sum()))
    defects: list[dict[str, object]] = []
    for s, site in enumerate(names):
        layout = SITES[site]
        for f in layout.files:
            if f.kind == "documents" and not with_documents:
                continue
            parts = tables[site].get(f.kind)
            table = pa.concat_tables(parts) if parts else _empty(f.column_names)
            table = table.select(f.column_names)
            name = f"{site}/{f.file_name(part)}"
            if dirty_rate > 0 and f.kind != "documents":
                drng = np.random.default_rng([seed, part, s, len(f.kind), 99])
                table, found = inject_defects(table, f, layout, dirty_rate, drng, name)
                defects.extend(found)
            if f.kind == "documents" and site == "ch_est":
                docgen.write_ndjson(table, out_dir / name)
            else:
                write_table(table, out_dir / name, layout)
            summary.rows[f"{site}/{f.kind}"] = summary.rows.get(f"{site}/{f.kind}", 0) + table.num_rows
            summary.files[name] = table.num_rows
            if f.kind == "documents":
                summary.documents += table.num_rows
    truth_dir = out_dir / "truth"
    truth_dir.mkdir(parents=True, exist_ok=True)
    if truths:
        pq.write_table(
            pa.concat_tables(truths, promote_options="default"),
            truth_dir / f"patients_part{part:04d}.parquet",
            compression="zstd",
        )
    if dirty_rate > 0:
        pq.write_table(_defects_table(defects), truth_dir / f"defects_part{part:04d}.parquet")
        summary.defects += len(defects)
    if with_documents:
        (truth_dir / f"annotations_part{part:04d}.jsonl").write_text(
            "".join(line + "\n" for line in annotations), encoding="utf-8"
        )


def _empty(columns: list[str]) -> pa.Table:
    return pa.table({c: pa.array([], type=pa.string()) for c in columns})


def _defects_table(defects: list[dict[str, object]]) -> pa.Table:
    cols = ("site", "file", "row", "field", "kind", "original", "written")
    return pa.table(
        {c: pa.array([d[c] for d in defects], type=pa.int64() if c == "row" else pa.string()) for c in cols}
    )
