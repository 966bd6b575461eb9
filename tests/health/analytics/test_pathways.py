"""Care pathways: sequences recover the generator's plans; rare pathways never leak; out-of-scope rows stay unread."""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from analytics_world import AnalyticsWarehouse, World, scoped_project

from massalia.governance import AccessDenied, Caller, ProjectScope
from massalia.health.analytics import run_pathways
from massalia.health.analytics.pathways import (
    NO_TREATMENT,
    Events,
    pathway_steps,
    pathway_summary,
    read_events,
    regimens,
    released_pathways,
)
from massalia.health.analytics.pathways_service import scoped_row_filter
from massalia.health.analytics.requests import PathwaysRequest

THRESHOLD = 10


def _truth(warehouse: AnalyticsWarehouse) -> pd.DataFrame:
    return pd.read_parquet(Path(warehouse.path).parent / "sources" / "truth")


@pytest.fixture(scope="module")
def study_result(world: World) -> dict:
    return run_pathways(Caller(world.rita, world.gov), world.engine, PathwaysRequest(project_id=world.study, top=50))


def test_secondary_suppression_never_leaves_a_small_other() -> None:
    """Attack: total persons minus the shown pathways would reveal an ``other`` of 1 to 9 persons."""
    rng = np.random.default_rng(3)
    for _ in range(500):
        counts = Counter({(f"s{i}",): int(n) for i, n in enumerate(rng.integers(1, 40, size=rng.integers(1, 12)))})
        shown, other = released_pathways(counts, top=int(rng.integers(1, 8)), threshold=THRESHOLD)
        assert other == 0 or other >= THRESHOLD or not shown  # nothing shown: the total is the small count
        assert all(n >= THRESHOLD for _, n in shown)
        assert sum(n for _, n in shown) + other == sum(counts.values())


def test_the_released_pathways_add_up_and_hide_small_cells(study_result: dict) -> None:
    persons = study_result["persons"]["count"]
    shown = [p["persons"]["count"] for p in study_result["pathways"]]
    other = study_result["other"]["persons"]["count"] or 0
    assert all(n >= THRESHOLD for n in shown) and (other == 0 or other >= THRESHOLD)
    assert sum(shown) + other == persons
    for link in study_result["sankey"]["links"]:
        assert link["value"]["count"] >= THRESHOLD and link["days_between"]["median"] is not None
    nodes = {node["id"] for node in study_result["sankey"]["nodes"]}
    assert all(link["source"] in nodes and link["target"] in nodes for link in study_result["sankey"]["links"])
    assert "person_id" not in json.dumps({k: v for k, v in study_result.items() if k != "provenance"})


def test_step_timing_recovers_the_generator(study_result: dict) -> None:
    """The generator operates 15-45 days after diagnosis and starts line 1 28-59 days after surgery (uniform)."""
    links = {(link["source"], link["target"]): link["days_between"] for link in study_result["sankey"]["links"]}
    to_surgery = links[("0:diagnosis", "1:surgery")]
    assert 27 <= to_surgery["median"] <= 33 and 18 <= to_surgery["q1"] <= 26 and 34 <= to_surgery["q3"] <= 42
    adjuvant = links[("1:surgery", "2:chemotherapy")]
    assert 38 <= adjuvant["median"] <= 50 and adjuvant["q1"] >= 28 and adjuvant["q3"] <= 60


def test_operated_and_targeted_persons_match_the_truth(world: World, analytics_warehouse: AnalyticsWarehouse) -> None:
    """The persons with a surgery step are the operated persons of the truth (within 3 %: dirty source rows)."""
    truth = _truth(analytics_warehouse)
    frame = world.engine.query("SELECT person_id, diagnosis_date FROM mart_patient").to_pandas()
    steps = pathway_steps(read_events(world.engine, lambda person, date: person.is_(None).not_()), frame)
    operated = steps[steps["kind"] == "surgery"]["person_id"].nunique()
    expected = int(truth["surgery"].notna().sum())
    assert abs(operated - expected) <= 0.03 * expected, (operated, expected)
    breast = truth[(truth["cancer"] == "breast")]
    # every HER2-positive breast cancer given trastuzumab shows a targeted regimen in its pathway
    her2_treated = int(breast["line1_regimen"].isin(["ec_docetaxel_trastuzumab", "tch_pertuzumab"]).sum())
    targeted = steps[steps["label"].str.contains("targeted")]["person_id"].nunique()
    assert targeted >= her2_treated


def test_regimens_are_rebuilt_from_drugs_without_episodes() -> None:
    """A warehouse without treatment episodes: ATC L01/L02 exposures grouped by pause (the ETL's 120-day rule)."""
    day = pd.Timestamp("2021-01-01")
    drugs = pd.DataFrame({
        "person_id": [1, 1, 1, 1, 2],
        "drug_exposure_id": [1, 2, 3, 4, 5],
        "start_date": [day, day, day + pd.Timedelta(days=21), day + pd.Timedelta(days=300), day],
        "ingredient": ["docetaxel", "trastuzumab", "docetaxel", "tamoxifen", "dexamethasone"],
        "atc": ["L01CD02", "L01FD01", "L01CD02", "L02BA01", "H02AB02"],
    })  # fmt: skip
    empty = pd.DataFrame(columns=["person_id", "episode_id", "start_date", "end_date", "modality"])
    events = Events(drugs, empty, pd.DataFrame(columns=["episode_id", "drug_exposure_id"]),
                    pd.DataFrame(columns=["person_id", "procedure_date", "kind"]))  # fmt: skip
    out = regimens(events)
    assert out[["person_id", "modality", "regimen"]].values.tolist() == [
        [1, "chemotherapy+targeted", "docetaxel+trastuzumab"],
        [1, "hormone", "tamoxifen"],
    ]


def test_no_treatment_is_a_pathway() -> None:
    steps = pd.DataFrame(columns=["person_id", "day", "kind", "label"])
    summary = pathway_summary(steps, list(range(12)), max_steps=3, top=5, threshold=THRESHOLD)
    assert summary["pathways"][0]["steps"] == [NO_TREATMENT] and summary["pathways"][0]["persons"]["count"] == 12


@pytest.mark.parametrize("who", ["olga", "nora"])
def test_pathways_refuse_callers_without_an_approved_membership(world: World, who: str) -> None:
    principal = {"olga": world.olga, "nora": world.nora}[who]
    with pytest.raises(AccessDenied, match="approved members of an approved, unexpired project"):
        run_pathways(Caller(principal, world.gov), world.engine, PathwaysRequest(project_id=world.study))


def test_out_of_scope_sites_and_dates_are_never_read(world: World) -> None:
    """Attack: a project scoped to one site and two years must not read other sites' or other years' OMOP rows."""
    start, end = dt.date(2019, 1, 1), dt.date(2020, 12, 31)
    project = scoped_project(world, ProjectScope(sites=("chu_nord",), period_start=start, period_end=end))
    caller = Caller(world.rita, world.gov)
    request = PathwaysRequest(project_id=project)
    row_filter, _ = scoped_row_filter(caller, world.engine, request, ["person_id", "diagnosis_date"])
    events = read_events(world.engine, row_filter)
    sites = world.engine.query(
        "SELECT p.person_id, cs.care_site_source_value AS site FROM person p JOIN care_site cs USING (care_site_id)"
    ).to_pandas()
    site_of = dict(zip(sites["person_id"], sites["site"], strict=True))
    read = pd.concat([events.drugs["person_id"], events.episodes["person_id"], events.procedures["person_id"]])
    assert len(read) > 0 and {site_of[p] for p in read} == {"chu_nord"}
    for frame, column in ((events.drugs, "start_date"), (events.episodes, "start_date"),
                          (events.procedures, "procedure_date")):  # fmt: skip
        dates = pd.to_datetime(frame[column]).dt.date
        assert dates.min() >= start and dates.max() <= end
    result = run_pathways(caller, world.engine, request)
    everyone = (
        world.engine.query(
            "SELECT count(*) FROM mart_patient WHERE care_site_code = 'chu_nord' "
            "AND diagnosis_date BETWEEN DATE '2019-01-01' AND DATE '2020-12-31'"
        )
        .column(0)[0]
        .as_py()
    )
    assert result["persons"]["count"] == everyone
