"""``massalia nlp run``: the pipeline over the warehouse's notes, findings published into NOTE_NLP atomically.

Each run reads NOTE page by page, extracts findings (:mod:`massalia.health.nlp.pipeline`), writes them to a
staging table, then replaces every row an earlier run of this pipeline wrote (``nlp_system`` starting with
``massalia-nlp``) by the new rows in one transaction: readers see the old findings or the new ones, never a
half-written run, and a failed run leaves NOTE_NLP as it was. Rerunning gives the same rows (idempotent):
ids are numbered after the highest id of other systems' rows, in note and offset order.

How a finding becomes a row:

- ``offset``: the start character (OMOP convention); the end is ``offset + length(lexical_variant)``;
- ``note_nlp_concept_id`` / ``note_nlp_source_concept_id``: the lexicon's source code through the vocabulary
  (:mod:`massalia.health.nlp.concepts`), 0 when it has none;
- ``term_exists``: ``N`` when negated, hypothetical or about a relative (OMOP's definition), else ``Y``;
- ``term_temporal``: ``past`` for a history mention, else ``present``;
- ``term_modifiers``: ``label=…;value=…;negated=…;hypothesis=…;family=…;history=…`` (the value is the
  finding's: a biomarker's result, an ECOG score, a date in ISO form, a TNM...);
- ``nlp_system``: the pipeline and EDS-NLP versions; ``nlp_date`` / ``nlp_datetime``: when the run started.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pyarrow as pa

from massalia.engine import Engine
from massalia.engine.base import UnsupportedOperation
from massalia.health.nlp import lexicon as lx
from massalia.health.nlp.concepts import ConceptPair, resolve_concepts
from massalia.health.nlp.pipeline import ClinicalPipeline, Finding, extract_parallel, nlp_system
from massalia.health.omop.schema import cdm_table

SYSTEM_PREFIX = "massalia-nlp"
PAGE = 2_000
"""Notes read per query (their text held in memory at once)."""
SNIPPET_CONTEXT = 60
NOTE_NLP_SCHEMA = pa.schema(
    [
        ("note_nlp_id", pa.int64()),
        ("note_id", pa.int64()),
        ("section_concept_id", pa.int32()),
        ("snippet", pa.string()),
        ("offset", pa.string()),
        ("lexical_variant", pa.string()),
        ("note_nlp_concept_id", pa.int32()),
        ("note_nlp_source_concept_id", pa.int32()),
        ("nlp_system", pa.string()),
        ("nlp_date", pa.date32()),
        ("nlp_datetime", pa.timestamp("us")),
        ("term_exists", pa.string()),
        ("term_temporal", pa.string()),
        ("term_modifiers", pa.string()),
    ]
)
ProgressCallback = Callable[[int, int], None]
"""Called with (notes done, notes in all) after each page."""


@dataclass(frozen=True)
class NlpRunReport:
    """What a run did: notes read, findings written (per label), the system written, time taken."""

    notes: int
    findings: int
    by_label: dict[str, int]
    nlp_system: str
    seconds: float
    replaced: int

    @property
    def notes_per_second(self) -> float:
        """Throughput of the whole run (reading, extraction, writing)."""
        return self.notes / self.seconds if self.seconds else 0.0


def lexicon_codes() -> set[tuple[str, str]]:
    """Every source code a finding can carry (the lexicon is finite, so concepts are resolved once per run)."""
    codes = {(t.vocabulary, t.code) for t in lx.terms() if t.vocabulary}
    codes |= {(v, c) for _, v, c, _ in lx.BIOMARKERS}
    codes.add(("LOINC", "89247-1"))
    return codes


def modifiers(f: Finding) -> str:
    """The ``term_modifiers`` text of a finding.

    Examples
    --------
    >>> modifiers(Finding(0, 8, "biomarker", "her2:positive", "HER2 +", negated=False))
    'label=biomarker;value=her2:positive;negated=false;hypothesis=false;family=false;history=false'
    """
    flags = ";".join(
        f"{q}={'true' if getattr(f, q) else 'false'}" for q in ("negated", "hypothesis", "family", "history")
    )
    return f"label={f.label};value={f.value};{flags}"


def _rows(
    note_ids: list[int],
    texts: list[str],
    findings: list[list[Finding]],
    concepts: dict[tuple[str, str], ConceptPair],
    system: str,
    started: dt.datetime,
) -> pa.RecordBatch:
    columns: dict[str, list[object]] = {name: [] for name in NOTE_NLP_SCHEMA.names}
    for note_id, text, found in zip(note_ids, texts, findings, strict=True):
        for f in found:
            pair = concepts.get((f.vocabulary, f.code), ConceptPair())
            lo, hi = max(0, f.start - SNIPPET_CONTEXT), min(len(text), f.end + SNIPPET_CONTEXT)
            columns["note_nlp_id"].append(0)  # numbered when published
            columns["note_id"].append(note_id)
            columns["section_concept_id"].append(0)
            columns["snippet"].append(" ".join(text[lo:hi].split())[:250])
            columns["offset"].append(str(f.start))
            columns["lexical_variant"].append(f.lexical_variant[:250])
            columns["note_nlp_concept_id"].append(pair.standard)
            columns["note_nlp_source_concept_id"].append(pair.source)
            columns["nlp_system"].append(system)
            columns["nlp_date"].append(started.date())
            columns["nlp_datetime"].append(started)
            columns["term_exists"].append("N" if (f.negated or f.hypothesis or f.family) else "Y")
            columns["term_temporal"].append("past" if f.history else "present")
            columns["term_modifiers"].append(modifiers(f)[:2000])
    return pa.RecordBatch.from_pydict(columns, schema=NOTE_NLP_SCHEMA)


def _pages(engine: Engine, limit: int | None) -> Iterator[tuple[list[int], list[str]]]:
    """NOTE's (note_id, note_text) page by page, in note_id order (keyset pagination)."""
    last: int | None = None
    read = 0
    while limit is None or read < limit:
        size = PAGE if limit is None else min(PAGE, limit - read)
        after = "" if last is None else f"WHERE note_id > {int(last)} "
        page = engine.query(f"SELECT note_id, note_text FROM note {after}ORDER BY note_id LIMIT {size}")
        if page.num_rows == 0:
            return
        ids = [int(i) for i in page.column("note_id").to_pylist()]
        texts = [t or "" for t in page.column("note_text").to_pylist()]
        read += len(ids)
        last = ids[-1]
        yield ids, texts


def run_nlp(
    engine: Engine,
    *,
    workers: int = 1,
    limit: int | None = None,
    progress: ProgressCallback | None = None,
    pipeline: ClinicalPipeline | None = None,
) -> NlpRunReport:
    """Extract findings from every note (or the first ``limit``) and publish them into NOTE_NLP atomically.

    Raises
    ------
    UnsupportedOperation
        The engine has no transactions (NOTE_NLP is then never half-replaced: nothing is written).
    """
    if not engine.capabilities.transactions:
        raise UnsupportedOperation(
            f"{engine.name} has no transactions: NOTE_NLP cannot be replaced atomically there (run on DuckDB or "
            "PostgreSQL)"
        )
    began = time.perf_counter()
    started = dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)
    system = nlp_system()
    concepts = resolve_concepts(engine, lexicon_codes())
    total = engine.scalar_int("SELECT count(*) FROM note")
    total = min(total, limit) if limit is not None else total
    by_label: dict[str, int] = {}
    counter = {"notes": 0}

    def batches() -> Iterator[pa.RecordBatch]:
        pages = _pages(engine, limit)
        buffered: list[tuple[list[int], list[str]]] = []

        def texts() -> Iterator[str]:
            for ids, page_texts in pages:
                buffered.append((ids, page_texts))
                yield from page_texts

        pending_ids: list[int] = []
        pending_texts: list[str] = []
        for found in extract_parallel(texts(), workers=workers, pipeline=pipeline):
            while len(pending_ids) < len(found):
                ids, page_texts = buffered.pop(0)
                pending_ids += ids
                pending_texts += page_texts
            ids, pending_ids = pending_ids[: len(found)], pending_ids[len(found) :]
            chunk_texts, pending_texts = pending_texts[: len(found)], pending_texts[len(found) :]
            for group in found:
                for f in group:
                    by_label[f.label] = by_label.get(f.label, 0) + 1
            counter["notes"] += len(found)
            if progress is not None:
                progress(counter["notes"], total)
            yield _rows(ids, chunk_texts, found, concepts, system, started)

    staging = engine.staging_name("note_nlp")
    try:
        # The staging table grows page by page: the notes are read on the same connection, which cannot serve a
        # query while a streamed write holds it.
        written = engine.write_new_table(staging, [], schema=NOTE_NLP_SCHEMA)
        for batch in batches():
            if batch.num_rows:
                written += engine.insert(staging, [batch], schema=NOTE_NLP_SCHEMA)
        replaced = _publish(engine, staging)
    finally:
        engine.drop_table(staging)
    return NlpRunReport(counter["notes"], written, by_label, system, time.perf_counter() - began, replaced)


def _publish(engine: Engine, staging: str) -> int:
    """Replace this pipeline's earlier rows by the staged ones in one transaction; return how many were replaced."""
    ours = f"nlp_system LIKE '{SYSTEM_PREFIX}%'"
    names = [f.name for f in cdm_table("note_nlp").fields]
    target = ", ".join(f'"{n}"' if n == "offset" else n for n in names)
    source = ", ".join(
        'base + ROW_NUMBER() OVER (ORDER BY s.note_id, CAST(s."offset" AS INTEGER), s.lexical_variant)'
        if n == "note_nlp_id"
        else f's."{n}"'
        if n == "offset"
        else f"s.{n}"
        for n in names
    )
    with engine.transaction():
        replaced = engine.scalar_int(f"SELECT count(*) FROM note_nlp WHERE {ours}")
        engine.execute(f"DELETE FROM note_nlp WHERE {ours}")
        engine.execute(
            f"INSERT INTO note_nlp ({target}) SELECT {source} FROM {staging} AS s "
            "CROSS JOIN (SELECT coalesce(max(note_nlp_id), 0) AS base FROM note_nlp) AS b"
        )
    return replaced
