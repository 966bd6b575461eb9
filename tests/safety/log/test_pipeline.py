"""The unified incident log: rejects with file/line/field, idempotent reloads, versions, explained dedup."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from safety_world import Loaded, truth_table

from massalia.pipelines import REJECTS, LineageStore
from massalia.safety.log import INCIDENTS, LINKS, REPORTS, dedup, load_delivery
from massalia.safety.synth.generator import GeneratorConfig, generate


def test_three_layouts_load_into_one_log_with_lineage(loaded: Loaded) -> None:
    engine = loaded.engine
    assert loaded.first.status == "success"
    rows = engine.query(f"SELECT source, count(*) AS n FROM {REPORTS} GROUP BY 1").to_pylist()
    per_source = {r["source"]: r["n"] for r in rows}
    assert set(per_source) == {"mc", "csu", "dtp"}
    missing = engine.scalar_int(
        f"SELECT count(*) FROM {REPORTS} WHERE source_file IS NULL OR source_line IS NULL OR run_id IS NULL"
    )
    assert missing == 0, "every report names its file, line and run"
    assert engine.scalar_int(f"SELECT count(*) FROM {INCIDENTS}") < engine.scalar_int(f"SELECT count(*) FROM {REPORTS}")
    placed = engine.scalar_int(f"SELECT count(*) FROM {INCIDENTS} WHERE x_l93 IS NOT NULL")
    assert placed / engine.scalar_int(f"SELECT count(*) FROM {INCIDENTS}") > 0.9, "addresses are geocoded"


def test_every_dirty_row_is_rejected_naming_its_file_line_and_field(loaded: Loaded) -> None:
    engine = loaded.engine
    truth_table(engine, loaded.logs.root)
    rejects = engine.query(
        f"SELECT site, reason, field, source_file, source_line, value FROM {REJECTS} "
        f"WHERE target_table = '{REPORTS}' AND action = 'reject'"
    ).to_pylist()
    reasons = {(r["site"], r["reason"]) for r in rejects}
    assert ("mc", "invalid_date") in reasons and ("mc", "unmapped_code") in reasons
    assert ("dtp", "unknown_value") in reasons, "an arrondissement that does not exist (17e)"
    assert ("csu", "impossible_coordinates") in reasons
    assert all(r["source_file"] and r["source_line"] and r["field"] for r in rejects)
    # Each rejected mc row is a row the generator made dirty, at the line the reject names.
    mc_lines = Path(loaded.logs.files["mc"][0]).read_text(encoding="utf-8").splitlines()
    dirty_ids = {r["source_id"] for r in engine.query("SELECT source_id FROM truth_obs WHERE dirty <> ''").to_pylist()}
    for r in rejects:
        if r["site"] == "mc" and r["source_file"].endswith("main_courante_2025.csv"):
            assert mc_lines[r["source_line"] - 1].split(";")[0] in dirty_ids
    unmapped = {r["value"] for r in rejects if r["reason"] == "unmapped_code"}
    assert unmapped <= {"PM999", "XX", "DIVERS", "ZZZ", "NUI-999"}
    # Nothing lost: every source row is loaded, rejected, or flagged as a repeat.
    flagged = engine.scalar_int(f"SELECT count(*) FROM {REJECTS} WHERE reason = 'duplicate_row'")
    rejected_rows = engine.scalar_int(
        f"SELECT count(DISTINCT (source_file, source_line)) FROM {REJECTS} WHERE action = 'reject'"
    )
    loaded_rows = engine.scalar_int(f"SELECT count(*) FROM {REPORTS}")
    written = sum(loaded.logs.rows.values()) + sum(
        len(p.read_text(encoding="utf-8").splitlines()) - 1 for p in loaded.logs.files["mc"][1:]
    )
    assert loaded_rows + rejected_rows + flagged == written


def test_a_delivery_sent_again_adds_nothing(loaded: Loaded, tmp_path: Path) -> None:
    engine = loaded.engine
    before = {t: engine.row_count(t) for t in (REPORTS, INCIDENTS, LINKS)}
    again = load_delivery(engine, loaded.logs.root, loaded.store)
    assert again.status == "unchanged", "the same files are skipped by their hash"
    # Part of a log replayed in a new file (a feed sent twice): its rows are known records, flagged, not added.
    replay = tmp_path / "replay"
    (replay / "mc").mkdir(parents=True)
    lines = loaded.logs.files["mc"][0].read_text(encoding="utf-8").splitlines()
    (replay / "mc" / "replayed.csv").write_text("\n".join(lines[:51]) + "\n", encoding="utf-8")
    flagged_before = engine.scalar_int(f"SELECT count(*) FROM {REJECTS} WHERE reason = 'duplicate_row'")
    result = load_delivery(engine, replay, loaded.store)
    assert result.status == "success"
    assert {t: engine.row_count(t) for t in (REPORTS, INCIDENTS, LINKS)} == before, "no duplicated incidents"
    flagged = engine.scalar_int(f"SELECT count(*) FROM {REJECTS} WHERE reason = 'duplicate_row'") - flagged_before
    invalid = engine.scalar_int(
        f"SELECT count(*) FROM {REJECTS} WHERE action = 'reject' AND source_file LIKE '%replayed.csv'"
    )
    assert flagged + invalid == 50


def test_corrections_append_versions_and_never_overwrite(loaded: Loaded) -> None:
    engine = loaded.engine
    rows = engine.query(
        f"SELECT source_id, version, status, narrative, incident_id FROM {REPORTS} WHERE source_id IN "
        f"(SELECT source_id FROM {REPORTS} WHERE version = 2) ORDER BY source_id, version"
    ).to_pylist()
    assert rows, "the corrections file gave later versions"
    for first, second in zip(rows[::2], rows[1::2], strict=True):
        assert first["source_id"] == second["source_id"] and (first["version"], second["version"]) == (1, 2)
        assert second["narrative"].startswith(first["narrative"]) and second["status"] == "Clos"
        assert first["incident_id"] == second["incident_id"], "a new version stays with its incident"
    rules = {r["rule"] for r in engine.query(f"SELECT DISTINCT rule FROM {LINKS}").to_pylist()}
    assert {"new_incident", "new_version", "same_place_time", "late_complaint"} <= rules


def test_deduplication_matches_the_ground_truth_and_explains_itself(loaded: Loaded) -> None:
    engine = loaded.engine
    truth_table(engine, loaded.logs.root)
    found = engine.query(
        f"""WITH r AS (SELECT r.report_id, r.incident_id, o.event_id FROM {REPORTS} AS r
        JOIN truth_obs AS o ON o.source = r.source AND o.source_id = r.source_id WHERE r.version = 1),
        pairs AS (SELECT a.incident_id = b.incident_id AS merged, a.event_id = b.event_id AS same
        FROM r AS a JOIN r AS b ON a.report_id < b.report_id
        AND (a.incident_id = b.incident_id OR a.event_id = b.event_id))
        SELECT count(*) FILTER (WHERE merged AND same) AS tp, count(*) FILTER (WHERE merged AND NOT same) AS fp,
        count(*) FILTER (WHERE same AND NOT merged) AS fn FROM pairs"""
    ).to_pylist()[0]
    precision = found["tp"] / (found["tp"] + found["fp"])
    recall = found["tp"] / (found["tp"] + found["fn"])
    assert precision >= 0.97 and recall >= 0.9, found
    explained = engine.query(
        f"SELECT rule, max(minutes_apart) AS minutes, max(metres_apart) AS metres FROM {LINKS} "
        "WHERE matched_report_id IS NOT NULL AND rule <> 'new_version' GROUP BY 1"
    ).to_pylist()
    limits = {"same_place_time": (30, 150), "late_complaint": (180, 300), "same_address": (30, None)}
    for row in explained:
        minutes, metres = limits[row["rule"]]
        assert row["minutes"] <= minutes and (metres is None or row["metres"] <= metres), row
    one_source_twice = engine.scalar_int(
        f"SELECT count(*) FROM (SELECT incident_id, source, count(DISTINCT source_id) AS n FROM {REPORTS} "
        "GROUP BY 1, 2) WHERE n > 1"
    )
    assert one_source_twice == 0, "an incident never merges two records of the same source"


def test_a_failed_load_leaves_the_log_as_it_was(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from massalia.engine import connect

    logs = generate(tmp_path / "logs", GeneratorConfig(events=200, seed=5))
    store = LineageStore(f"sqlite:///{(tmp_path / 'lineage.sqlite').as_posix()}")
    with connect("duckdb") as engine:

        def broken(*args: object, **kwargs: object) -> None:
            raise RuntimeError("disk full during dedup")

        monkeypatch.setattr(dedup, "assign", broken)
        with pytest.raises(RuntimeError, match="disk full"):
            load_delivery(engine, logs.root, store)
        assert engine.row_count(REPORTS) == 0 and engine.row_count(INCIDENTS) == 0
        monkeypatch.undo()
        done = load_delivery(engine, logs.root, store)
        assert done.status == "success" and engine.row_count(REPORTS) > 0, "the files were not marked as loaded"


def test_sources_delivered_in_separate_runs_still_merge(tmp_path: Path) -> None:
    from massalia.engine import connect

    logs = generate(tmp_path / "logs", GeneratorConfig(events=1500, seed=9))
    first, second = tmp_path / "police", tmp_path / "others"
    shutil.copytree(logs.root / "mc", first / "mc")
    shutil.copytree(logs.root / "reference", first / "reference")
    shutil.copytree(logs.root / "csu", second / "csu")
    shutil.copytree(logs.root / "dtp", second / "dtp")
    store = LineageStore(f"sqlite:///{(tmp_path / 'lineage.sqlite').as_posix()}")
    with connect("duckdb") as engine:
        assert load_delivery(engine, first, store).status == "success"
        police_only = engine.row_count(INCIDENTS)
        assert load_delivery(engine, second, store).status == "success"
        joined = engine.scalar_int(
            f"SELECT count(*) FROM {LINKS} AS l JOIN {REPORTS} AS r ON r.report_id = l.matched_report_id "
            "WHERE r.source = 'mc' AND l.rule <> 'new_version'"
        )
        assert joined > 0, "a later run's reports join incidents loaded by an earlier run"
        truth_table(engine, logs.root)
        wrong = engine.scalar_int(
            f"""SELECT count(*) FROM {LINKS} AS l JOIN {REPORTS} AS a ON a.report_id = l.report_id
            JOIN {REPORTS} AS b ON b.report_id = l.matched_report_id
            JOIN truth_obs AS ta ON ta.source = a.source AND ta.source_id = a.source_id
            JOIN truth_obs AS tb ON tb.source = b.source AND tb.source_id = b.source_id
            WHERE l.rule <> 'new_version' AND ta.event_id <> tb.event_id"""
        )
        assert wrong <= 0.03 * joined
        assert engine.row_count(INCIDENTS) > police_only
