"""The Analyses page's pathways, conformance and prediction renderers in a real browser (issues 12, 13).

A researcher of the demo's approved (aggregate) project runs each analysis on the demo home and sees the Sankey,
the conformance rates with their CIs and the risk models, every value exactly as the API released it ("<10"
cells as such, suppressed rates saying why); a rule file of one's own shows the API's 422 beside its text; a
stored model scores the cohort as a distribution. Each renderer passes axe-core with no console error. Timings go
to ``analyses-timings.json`` in the artifacts folder.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from portal_browser import Browsing, Site, artifacts_dir
from test_accessibility import audit
from test_analyses_page import open_page, run, texts

from massalia.governance import ProjectScope, operator_principal
from massalia.health.analytics.conformance import REFERENCE_RULES, load_rules

TIMINGS: dict[str, float] = {}
STATUSES = ("conforming", "not_given", "too_early", "too_late", "no_anchor", "short_follow_up")
JS = Path(__file__).parents[2] / "src/massalia/health/portal/analysis-conformance.js"

# A rule of one's own that the 600-patient demo fills: breast cancer operated within 35 days of the diagnosis
# (the generator operates 15–45 days after it, so about a third are late) — an overall rate, one site's rate
# and a Cox HR are released, the other sites' rates are suppressed.
OWN_RULE = """\
version: 1
classes:
  surgery: {procedures: [surgery]}
rules:
  - id: breast_surgery_within_35_days
    title: Breast cancer is operated within 35 days of diagnosis
    guideline: {source: "A portal test's rule", year: 2024, url: "https://example.org/rule"}
    population: ["primary_site = breast"]
    expected: surgery
    anchor: diagnosis
    window: {min_days: 0, max_days: 35}
"""


def write_timings() -> None:
    path = artifacts_dir() / "analyses-timings.json"
    known = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    known.update(TIMINGS)
    path.write_text(json.dumps(known, indent=2) + "\n", encoding="utf-8")


def spaced(text: str) -> str:
    """French number formats use narrow and non-breaking spaces: read them as spaces."""
    return text.replace("\u202f", " ").replace("\xa0", " ")


def fr(value: float, digits: int) -> str:
    return f"{value:.{digits}f}".replace(".", ",")


def fr_percent(value: float) -> str:
    return f"{fr(value * 100, 1)} %"


def chart_option(page: Any, selector: str) -> dict[str, Any]:
    """The option ECharts drew in an element (what the chart shows, read back from the library)."""
    return page.evaluate(
        "sel => { const o = echarts.getInstanceByDom(document.querySelector(sel)).getOption();"
        " return JSON.parse(JSON.stringify(o, (k, v) => (typeof v === 'function' ? undefined : v))); }",
        selector,
    )


def test_shipped_rule_list_matches_the_reference_file() -> None:
    """The portal's rule picker offers exactly the shipped rules, in the file's order (the list cannot drift)."""
    shipped = load_rules(REFERENCE_RULES)
    source = JS.read_text(encoding="utf-8")
    listed = source.split("export const SHIPPED_RULES = [", 1)[1].split("];", 1)[0]
    assert [item.strip().strip('",') for item in listed.split() if item.strip()] == [r.id for r in shipped.rules]


@pytest.mark.browser
def test_pathways_sankey_ranked_table_and_days(
    browsing: Browsing, axe_source: str, screenshot: Callable[[Any, str], Path]
) -> None:
    """The Sankey's links are the API's (width = persons), the tables show its counts; "<10" cells as such."""
    page, addresses = open_page(browsing)
    page.select_option("#analyses-kind", "pathways")
    page.select_option("#pathways-steps", "6")
    result, status, seconds = run(page, "pathways")
    TIMINGS["pathways_run_to_charts_ms"] = round(seconds * 1000)
    assert status == 200, result
    page.wait_for_selector("#pathways-sankey-chart canvas")
    pathways = result["pathways"]
    rows = [texts(page, f"#pathways-table tbody tr:nth-child({i + 1}) td") for i in range(len(pathways) + 1)]
    assert [row[1] for row in rows[:-1]] == [p["persons"]["shown"] for p in pathways]
    assert rows[-1][1] == result["other"]["persons"]["shown"]
    assert result["other"]["distinct_pathways"]["shown"] in rows[-1][0]
    links = result["sankey"]["links"]
    drawn = chart_option(page, "#pathways-sankey-chart")["series"][0]
    assert [(x["source"], x["target"], x["value"]) for x in drawn["links"]] == [
        (link["source"], link["target"], link["value"]["count"]) for link in links
    ]
    assert {node["name"] for node in drawn["data"]} == {node["id"] for node in result["sankey"]["nodes"]}
    link_rows = [texts(page, f"#pathways-links tbody tr:nth-child({i + 1}) td") for i in range(len(links))]
    assert [row[0] for row in link_rows] == [link["value"]["shown"] for link in links]
    first = links[0]["days_between"]
    assert spaced(link_rows[0][1]) == f"{fr(first['median'], 1)} (EIQ {fr(first['q1'], 1)}–{fr(first['q3'], 1)})"
    days = result["days_to_step"]
    assert [texts(page, f"#pathways-days tbody tr:nth-child({i + 1}) td")[0] for i in range(len(days))] == [
        row["n"]["shown"] for row in days
    ]
    assert "<10" in [row["n"]["shown"] for row in days], "the late steps of six hold fewer than 10 persons"
    screenshot(page, "63-analyses-pathways")
    violations = audit(page, axe_source)
    assert not violations, "\n".join(violations)
    # In English, redrawn from the same answer (no new request): the steps' names translated, the counts unchanged.
    asked = len([url for url in addresses if "/analyses/" in url])
    page.click("#language-switch")
    page.wait_for_selector("#pathways-table caption:text('most frequent pathways')")
    page.wait_for_selector("#pathways-sankey-chart canvas")
    assert (
        texts(page, "#pathways-table tbody tr:nth-child(1) td")[0] == "surgery" or "surgery" not in pathways[0]["steps"]
    )
    assert [texts(page, f"#pathways-table tbody tr:nth-child({i + 1}) td")[1] for i in range(len(pathways))] == [
        p["persons"]["shown"] for p in pathways
    ]
    assert len([url for url in addresses if "/analyses/" in url]) == asked
    write_timings()


@pytest.mark.browser
def test_conformance_rates_sites_statuses_outcomes_and_own_rules(
    browsing: Browsing, axe_source: str, screenshot: Callable[[Any, str], Path]
) -> None:
    """Shipped rules (suppressed rates say why), then a rule file: its 422 beside it, then rates, CIs and the HR."""
    browsing.watch.expect(r"HTTP 422: POST .*/api/v1/analyses/conformance")
    browsing.watch.expect(r"console error: Failed to load resource: .* 422")
    page, _ = open_page(browsing)
    page.select_option("#analyses-kind", "conformance")
    result, status, seconds = run(page, "conformance")
    TIMINGS["conformance_shipped_run_ms"] = round(seconds * 1000)
    assert status == 200, result
    assert [rule["id"] for rule in result["rules"]] == [
        node.get_attribute("data-rule") for node in page.locator("#analysis-result section[data-rule]").all()
    ]
    for index, rule in enumerate(result["rules"]):
        line = page.text_content(f"#conformance-{index}-rate")
        if rule["overall"]["rate"] is None:
            assert "non affiché" in line and "moins de 10 personnes" in line, line
        statuses = texts(page, f"#conformance-{index}-statuses tbody td")
        assert statuses == [rule["statuses"][s]["shown"] for s in STATUSES]
    # A rule file of one's own, missing its guideline's address: the API's 422, shown beside the text area.
    page.check("#conformance-own")
    page.fill("#conformance-yaml", OWN_RULE.replace(', url: "https://example.org/rule"', ""))
    result, status, _ = run(page, "conformance")
    assert status == 422 and "guideline.url" in result["error"]["message"]
    problems = texts(page, "#conformance-yaml-errors li")
    assert any("rules[0].guideline.url" in problem for problem in problems), problems
    page.fill("#conformance-yaml", OWN_RULE)
    result, status, seconds = run(page, "conformance")
    TIMINGS["conformance_own_rule_run_ms"] = round(seconds * 1000)
    assert status == 200, result
    assert not texts(page, "#conformance-yaml-errors li"), "the errors go once the file is accepted"
    (rule,) = result["rules"]
    overall = rule["overall"]
    assert overall["rate"] is not None
    line = spaced(page.text_content("#conformance-0-rate"))
    assert (
        f"{fr_percent(overall['rate'])} (IC 95 % {fr_percent(overall['lower'])} – {fr_percent(overall['upper'])})"
        in line
    )
    sites = [
        texts(page, f"#conformance-0-site-table tbody tr:nth-child({i + 1}) td") for i in range(len(rule["by_site"]))
    ]
    for row, cell in zip(sites, rule["by_site"], strict=True):
        assert row[:3] == [cell["evaluable"]["shown"], cell["conforming"]["shown"], cell["deviating"]["shown"]]
        assert spaced(row[3]) == (fr_percent(cell["rate"]) if cell["rate"] is not None else "non affiché")
    released = [cell for cell in rule["by_site"] if cell["rate"] is not None]
    assert released and len(released) < len(rule["by_site"]), "one site's rate shown, the others suppressed"
    page.wait_for_selector("#conformance-0-sites canvas")
    drawn = chart_option(page, "#conformance-0-sites")["series"]
    assert drawn[0]["data"] == [cell["rate"] or 0 for cell in rule["by_site"]]
    whiskers = [list(point[1:]) for point in drawn[1]["data"]]
    assert [w for w, c in zip(whiskers, rule["by_site"], strict=True) if c["rate"] is not None] == [
        [c["lower"], c["upper"]] for c in released
    ]
    term = next(t for t in rule["outcomes"]["cox"]["terms"] if t["term"] == "deviating")
    hr = spaced(page.text_content("#conformance-0-hr"))
    assert f"HR {fr(term['hr'], 2)} (IC 95 % {fr(term['lower'], 2)} – {fr(term['upper'], 2)})" in hr
    page.wait_for_selector("#conformance-0-km canvas")
    km = rule["outcomes"]["km"]
    assert [texts(page, f"#conformance-0-groups tbody tr:nth-child({i + 1}) td")[:2] for i in range(2)] == [
        [km[group]["n"]["shown"], km[group]["events"]["shown"]] for group in ("conforming", "deviating")
    ]
    assert "<10" in texts(page, "#conformance-0-groups tbody td"), "the deviating persons' events are few"
    screenshot(page, "64-analyses-conformance")
    violations = audit(page, axe_source)
    assert not violations, "\n".join(violations)
    write_timings()


@pytest.mark.browser
def test_prediction_models_calibration_card_and_scoring(
    browsing: Browsing, axe_source: str, screenshot: Callable[[Any, str], Path]
) -> None:
    """Train both learners: AUC with CI, Brier, calibration, importance, card; list the models; score one."""
    page, addresses = open_page(browsing)
    page.select_option("#analyses-kind", "prediction")
    page.select_option("#prediction-bootstrap", "200")
    result, status, seconds = run(page, "prediction")
    TIMINGS["prediction_train_two_models_ms"] = round(seconds * 1000)
    assert status == 200, result
    models = result["models"]
    assert [m["card"]["algorithm"] for m in models] == ["lasso_logistic", "gradient_boosting"]
    for index, model in enumerate(models):
        test = model["card"]["metrics"]["test"]
        auc = test["auc"]
        shown = spaced(page.text_content(f"#prediction-{index}-metrics [data-metric=auc]"))
        assert shown == f"{fr(auc['auc'], 3)} ({fr(auc['lower'], 3)} – {fr(auc['upper'], 3)})"
        assert page.text_content(f"#prediction-{index}-metrics [data-metric=brier]") == fr(test["brier"], 4)
        bins = test["calibration"]
        table = [
            texts(page, f"#prediction-{index}-calibration-table tbody tr:nth-child({i + 1}) td")
            for i in range(len(bins))
        ]
        assert table == [
            [fr(b["predicted"], 4), fr(b["observed"], 4), b["n"]["shown"], b["outcomes"]["shown"]] for b in bins
        ]
        page.wait_for_selector(f"#prediction-{index}-calibration canvas")
        drawn = chart_option(page, f"#prediction-{index}-calibration")["series"]
        assert drawn[0]["data"] == [[0, 0], [1, 1]], "the diagonal"
        assert drawn[1]["data"] == [[b["predicted"], b["observed"]] for b in bins]
        bars = chart_option(page, f"#prediction-{index}-importance")["series"][0]["data"]
        assert bars == [f["auc_drop"] for f in model["card"]["metrics"]["feature_importance"][:15]][::-1]
        card = json.loads(page.text_content(f"#prediction-{index}-card pre"))
        assert card == model["card"]
    # The project's stored models are listed again after the training, the new ones among them.
    page.wait_for_selector("#prediction-models[data-state='done'] #prediction-models-table")
    listed = texts(page, "#prediction-models-table tbody tr th code")
    assert {m["model_id"] for m in models} <= set(listed)
    # Scoring under the aggregate demo project: a distribution of risks, counts protected.
    model_id = models[0]["model_id"]
    started = time.perf_counter()
    with page.expect_response(lambda r: r.url.endswith(f"/prediction/{model_id}/score")) as answer:
        page.click(f"#prediction-models-table button[data-model='{model_id}']")
    page.wait_for_selector("#prediction-score[data-state='done'] #prediction-score-chart canvas")
    TIMINGS["prediction_score_ms"] = round((time.perf_counter() - started) * 1000)
    scored = answer.value.json()
    assert scored["row_level"] is False and "persons" not in scored
    rows = texts(page, "#prediction-score-table tbody td")
    assert rows == [band["n"]["shown"] for band in scored["risk_histogram"]]
    assert fr(scored["mean_risk"], 4) in page.text_content("#prediction-score-mean")
    assert page.locator("#prediction-score-persons").count() == 0
    assert not [url for url in addresses if "/score" in url and "?" in url], "the cohort goes in the body"
    screenshot(page, "65-analyses-prediction")
    violations = audit(page, axe_source)
    assert not violations, "\n".join(violations)
    write_timings()


@pytest.fixture(scope="module")
def row_level_project(portal_site: Site) -> int:
    """A pseudonymized project of its own researcher (so the demo researcher's projects stay as they were)."""
    gov = portal_site.app.state.massalia.governance
    password = secrets.token_urlsafe(15)
    owner = gov.create_user("pseudo.analyses", password, roles=["researcher"], actor=operator_principal())
    project = gov.create_project(
        "Projet pseudonymisé", "Scores de risque pour une RCP (test).", scope=ProjectScope(),
        access_level="pseudonymized", expires=dt.date.today() + dt.timedelta(days=30), actor=owner,
    )  # fmt: skip
    request = gov.file_request(project.id, actor=owner, justification="Test du portail (données synthétiques).")
    dpo_name, dpo_password = portal_site.accounts["dpo"]
    gov.decide_request(request.id, True, "Test.", actor=gov.authenticate_password(dpo_name, dpo_password))
    portal_site.accounts["pseudo"] = ("pseudo.analyses", password)
    return int(project.id)


@pytest.mark.browser
def test_prediction_scores_pseudonyms_under_a_pseudonymized_project(
    browsing: Browsing, row_level_project: int, axe_source: str
) -> None:
    """Under a row-level project: pseudonyms and risks, highest first; a list restricts it, unknown ones said."""
    page, _ = open_page(browsing, "pseudo")
    assert page.input_value("#analyses-project") == str(row_level_project)
    page.select_option("#analyses-kind", "prediction")
    page.uncheck("#prediction-algorithm-gradient_boosting")
    page.select_option("#prediction-bootstrap", "200")
    result, status, seconds = run(page, "prediction")
    TIMINGS["prediction_train_one_model_ms"] = round(seconds * 1000)
    assert status == 200, result
    (model,) = result["models"]
    page.wait_for_selector("#prediction-models[data-state='done'] #prediction-models-table")
    assert texts(page, "#prediction-models-table tbody tr th code") == [model["model_id"]], "this project's only"

    def score() -> dict[str, Any]:
        with page.expect_response(lambda r: r.url.endswith(f"/prediction/{model['model_id']}/score")) as answer:
            page.click(f"#prediction-models-table button[data-model='{model['model_id']}']")
        page.wait_for_selector("#prediction-score[data-state='done'] #prediction-score-persons")
        return answer.value.json()

    scored = score()
    persons = scored["persons"]
    assert scored["row_level"] is True and len(persons) > 100
    assert page.locator("#prediction-score-persons tbody tr").count() == len(persons)
    for index in (0, len(persons) - 1):
        row = [
            page.text_content(f"#prediction-score-persons tbody tr:nth-child({index + 1}) {cell}")
            for cell in ("th", "td")
        ]
        assert row == [persons[index]["pseudonym"], fr(persons[index]["risk"], 4)]
    assert page.locator("#prediction-score-chart").count() == 0, "no distribution: the persons themselves"
    # A tumour board's list: two of the cohort's pseudonyms and one that is not there.
    wanted = [persons[3]["pseudonym"], persons[0]["pseudonym"], "P0-not-a-person"]
    page.fill("#prediction-pseudonyms", "\n".join(wanted))
    scored = score()
    assert {p["pseudonym"] for p in scored["persons"]} == set(wanted[:2])
    risks = [p["risk"] for p in scored["persons"]]
    assert risks == sorted(risks, reverse=True), "highest risk first"
    assert texts(page, "#prediction-score-persons tbody th") == [p["pseudonym"] for p in scored["persons"]]
    assert scored["not_found"] == ["P0-not-a-person"]
    assert "P0-not-a-person" in page.text_content("#prediction-not-found")
    violations = audit(page, axe_source)
    assert not violations, "\n".join(violations)
    write_timings()
