"""``run_nlp`` on a copy of the demo warehouse: NOTE_NLP rows, concepts, idempotence, atomicity, evaluation."""

from __future__ import annotations

import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from massalia.engine.base import UnsupportedOperation
from massalia.engine.duckdb import DuckDBEngine
from massalia.health.nlp.evaluation import evaluate, read_truth
from massalia.health.nlp.pipeline import ClinicalPipeline, Finding
from massalia.health.nlp.service import stored_findings
from massalia.health.nlp.store import NlpRunReport, run_nlp

NOTES = 300
STABLE = (
    'note_nlp_id, note_id, snippet, "offset", lexical_variant, note_nlp_concept_id, note_nlp_source_concept_id, '
    "nlp_system, term_exists, term_temporal, term_modifiers"
)
OTHER = (
    "INSERT INTO note_nlp (note_nlp_id, note_id, lexical_variant, nlp_system, nlp_date, term_modifiers) "
    "SELECT 900000000, min(note_id), 'x', 'other-nlp 2.0', DATE '2024-01-01', 'kept' FROM note"
)


@pytest.fixture(scope="module")
def warehouse(
    demo_warehouse: Path, tmp_path_factory: pytest.TempPathFactory, pipeline: ClinicalPipeline
) -> Iterator[tuple[DuckDBEngine, NlpRunReport]]:
    path = tmp_path_factory.mktemp("nlp-store") / "warehouse.duckdb"
    shutil.copy(demo_warehouse, path)
    with DuckDBEngine(path) as engine:
        engine.execute(OTHER)  # another system's finding: never touched by the pipeline's runs
        report = run_nlp(engine, limit=NOTES, pipeline=pipeline)
        yield engine, report


def test_findings_are_written_with_offsets_into_the_note(warehouse: tuple[DuckDBEngine, NlpRunReport]) -> None:
    engine, report = warehouse
    assert report.notes == NOTES and report.findings > NOTES
    assert engine.scalar_int("SELECT count(*) FROM note_nlp WHERE nlp_system LIKE 'massalia-nlp%'") == report.findings
    wrong = engine.scalar_int(
        "SELECT count(*) FROM note_nlp x JOIN note n ON n.note_id = x.note_id WHERE x.nlp_system LIKE 'massalia-nlp%' "
        'AND substr(n.note_text, CAST(x."offset" AS INTEGER) + 1, length(x.lexical_variant)) <> x.lexical_variant'
    )
    assert wrong == 0
    assert engine.scalar_int("SELECT count(DISTINCT note_nlp_id) FROM note_nlp") == engine.row_count("note_nlp")


def test_concepts_come_from_the_vocabulary_never_invented(warehouse: tuple[DuckDBEngine, NlpRunReport]) -> None:
    engine, _ = warehouse
    unknown = engine.scalar_int(
        "SELECT count(*) FROM note_nlp x WHERE x.note_nlp_concept_id <> 0 AND NOT EXISTS "
        "(SELECT 1 FROM concept c WHERE c.concept_id = x.note_nlp_concept_id AND c.standard_concept = 'S')"
    )
    assert unknown == 0
    mapped = engine.query(
        "SELECT split_part(term_modifiers, ';', 1) AS label, count(*) AS n FROM note_nlp "
        "WHERE note_nlp_concept_id <> 0 GROUP BY 1"
    ).to_pylist()
    assert {"label=cancer", "label=ecog", "label=drug", "label=biomarker"} <= {r["label"] for r in mapped}


def test_qualifiers_follow_omop_semantics(warehouse: tuple[DuckDBEngine, NlpRunReport]) -> None:
    engine, _ = warehouse
    rows = engine.query(
        "SELECT term_exists, term_temporal, term_modifiers FROM note_nlp WHERE nlp_system LIKE 'massalia-nlp%'"
    ).to_pylist()
    for row in rows:
        modifiers = row["term_modifiers"]
        doubtful = any(f"{q}=true" in modifiers for q in ("negated", "hypothesis", "family"))
        assert row["term_exists"] == ("N" if doubtful else "Y")
        assert row["term_temporal"] == ("past" if "history=true" in modifiers else "present")
    assert any("negated=true" in r["term_modifiers"] for r in rows)
    assert any("family=true" in r["term_modifiers"] for r in rows)


def test_a_rerun_gives_the_same_rows(warehouse: tuple[DuckDBEngine, NlpRunReport], pipeline: ClinicalPipeline) -> None:
    engine, first = warehouse
    before = engine.query(f"SELECT {STABLE} FROM note_nlp ORDER BY note_nlp_id").to_pylist()
    again = run_nlp(engine, limit=NOTES, pipeline=pipeline)
    assert again.replaced == first.findings and again.findings == first.findings
    assert engine.query(f"SELECT {STABLE} FROM note_nlp ORDER BY note_nlp_id").to_pylist() == before
    assert engine.scalar_int("SELECT count(*) FROM note_nlp WHERE nlp_system = 'other-nlp 2.0'") == 1


class _FailingPipeline:
    """The real pipeline, failing on its second batch of notes (a crash in the middle of a run)."""

    def __init__(self, pipeline: ClinicalPipeline) -> None:
        self.pipeline = pipeline
        self.calls = 0

    def extract(self, texts: Sequence[str]) -> list[list[Finding]]:
        self.calls += 1
        if self.calls == 2:
            raise RuntimeError("worker died")
        return self.pipeline.extract(texts)


def test_a_failed_run_leaves_note_nlp_as_it_was(
    warehouse: tuple[DuckDBEngine, NlpRunReport], pipeline: ClinicalPipeline
) -> None:
    """Attack on atomicity: a run dying midway must not leave half its rows (nor delete the previous run's)."""
    engine, _ = warehouse
    before = engine.query(f"SELECT {STABLE} FROM note_nlp ORDER BY note_nlp_id").to_pylist()
    tables = set(engine.list_tables())
    with pytest.raises(RuntimeError, match="worker died"):
        run_nlp(engine, limit=NOTES, pipeline=_FailingPipeline(pipeline))  # type: ignore[arg-type]
    assert engine.query(f"SELECT {STABLE} FROM note_nlp ORDER BY note_nlp_id").to_pylist() == before
    assert set(engine.list_tables()) == tables  # no staging table left behind


def test_the_stored_findings_score_against_the_ground_truth(
    warehouse: tuple[DuckDBEngine, NlpRunReport], demo_warehouse: Path
) -> None:
    engine, _ = warehouse
    predicted = stored_findings(engine)
    assert len(predicted) == NOTES
    result = evaluate(predicted, read_truth(demo_warehouse.parent / "sources"))
    assert result.notes == NOTES
    assert result.overall().f1 >= 0.97, result.rows()
    assert result.qualifiers["negated"].f1 >= 0.85, result.rows()


def test_an_engine_without_transactions_is_refused_before_anything_is_written(
    warehouse: tuple[DuckDBEngine, NlpRunReport], monkeypatch: pytest.MonkeyPatch
) -> None:
    engine, _ = warehouse
    monkeypatch.setattr(type(engine), "capabilities", engine.capabilities.__class__(
        **{**engine.capabilities.__dict__, "transactions": False}))  # fmt: skip
    with pytest.raises(UnsupportedOperation, match="no transactions"):
        run_nlp(engine, limit=1)
