"""``massalia analysis …``: survival, comparison, prediction, care pathways and conformance of a project's cohort.

A thin layer over the guarded analytics service (:mod:`massalia.health.analytics`): the rights check
(an approved member of ``--project`` only), the project's scope, small-cell protection and the audit entry
all happen there. The full result (JSON ready for charts, with its provenance) goes to ``--out`` or, with
``--json``, to standard output; a short summary is printed otherwise.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError

from massalia.cli.common import (
    EngineOption,
    HomeOption,
    JsonOption,
    ProjectOption,
    console,
    existing_home,
    fail,
    governed,
    initialized_warehouse,
)
from massalia.health.analytics import (
    list_prediction_models,
    run_compare,
    run_conformance,
    run_control_arm,
    run_groups,
    run_hypotheses,
    run_pathways,
    run_patterns,
    run_prediction_score,
    run_prediction_train,
    run_similar,
    run_survival,
)
from massalia.health.analytics.requests import (
    ALGORITHM_NAMES,
    CompareRequest,
    ConformanceRequest,
    ControlArmRequest,
    GroupsRequest,
    HypothesesRequest,
    PathwaysRequest,
    PatternsRequest,
    PredictionRequest,
    PredictionScoreRequest,
    SimilarRequest,
    SurvivalRequest,
    TrialSummary,
)
from massalia.health.marts.filters import FilterError, FilterSpec, parse_clause

analysis_app = typer.Typer(help="Survival and treatment-effectiveness analyses of an approved project's cohort.")

WhereOption = Annotated[
    list[str] | None, typer.Option("--where", help="A cohort condition 'variable op value' (repeatable, AND).")
]
CohortOption = Annotated[int | None, typer.Option("--cohort", help="Only persons of this generated cohort.")]
EndpointOption = Annotated[str, typer.Option("--endpoint", help="os, pfs, rfs, relapse or second_cancer.")]
OutOption = Annotated[Path | None, typer.Option("--out", help="Write the full JSON result to this file.")]


def _require_project(project: int | None) -> None:
    if project is None:
        fail("analyses read row-level data: name the approved project they run under with --project")


def _spec(where: list[str] | None, cohort: int | None = None) -> FilterSpec:
    return FilterSpec(all=[parse_clause(text) for text in where or []], cohort_definition_id=cohort)


HOME = object()
"""Stands for the caller's home among :func:`_run`'s arguments (it is opened there, inside the guarded block)."""


@contextmanager
def _options() -> Iterator[None]:
    """Bad options (a malformed condition, a value out of range) end the command with what was wrong."""
    try:
        yield
    except (ValidationError, FilterError, ValueError) as error:
        fail(str(error))


def _emit(result: dict[str, Any], out: Path | None, as_json: bool) -> None:
    text = json.dumps(result, indent=2, default=str, ensure_ascii=False)
    if out is not None:
        out.write_text(text + "\n", encoding="utf-8")
    if as_json:
        typer.echo(text)


def _run(
    run: Callable[..., dict[str, Any]],
    *args: Any,
    home_dir: Path | None,
    engine: str | None,
    out: Path | None,
    as_json: bool,
) -> dict[str, Any] | None:
    """``run(caller, warehouse, *args)``, one guarded analysis, in the home as the CLI's caller; write its JSON.

    An argument given as :data:`HOME` is replaced by the home itself (the analyses that store models). The result
    to summarize, or ``None`` when ``--json`` printed it already (nothing else goes to standard output).
    """
    data = existing_home(home_dir)
    with governed(data) as caller, initialized_warehouse(data, engine) as warehouse:
        result = run(caller, warehouse, *(data if arg is HOME else arg for arg in args))
    _emit(result, out, as_json)
    return None if as_json else result


def _hr(estimate: dict[str, Any] | None) -> str:
    if not estimate or estimate.get("hr") is None:
        return "n/a"
    return f"{estimate['hr']:.2f} ({estimate['lower']:.2f}–{estimate['upper']:.2f})"


@analysis_app.command("survival")
def survival(
    project: ProjectOption = None,
    where: WhereOption = None,
    cohort: CohortOption = None,
    endpoint: EndpointOption = "os",
    by: Annotated[str | None, typer.Option("--by", help="KM curves and log-rank by this variable.")] = None,
    strata: Annotated[str | None, typer.Option("--strata", help="Stratify the log-rank and Cox model.")] = None,
    covariate: Annotated[list[str] | None, typer.Option("--covariate", help="A Cox covariate (repeatable).")] = None,
    categorical: Annotated[
        list[str] | None, typer.Option("--categorical", help="An integer covariate read as categories.")
    ] = None,
    competing_risks: Annotated[
        bool, typer.Option("--competing-risks", help="Aalen–Johansen incidence (relapse, second_cancer).")
    ] = False,
    out: OutOption = None,
    as_json: JsonOption = False,
    home_dir: HomeOption = None,
    engine: EngineOption = None,
) -> None:
    """Kaplan–Meier, log-rank, Cox model and cumulative incidence of a cohort (aggregates, small cells protected)."""
    _require_project(project)
    with _options():
        request = SurvivalRequest(project_id=project, filters=_spec(where, cohort), endpoint=endpoint,  # type: ignore[arg-type]
                                  group_by=by, strata=strata, covariates=covariate or [],
                                  categorical=categorical or [], competing_risks=competing_risks)  # fmt: skip
    result = _run(run_survival, request, home_dir=home_dir, engine=engine, out=out, as_json=as_json)
    if result is None:
        return
    overall = result["km"]["all"]
    console.print(f"{result['endpoint']['label']}: {overall['n']['shown']} persons, {overall['events']['shown']} "
                  f"events, median {overall['median'] or 'not reached'} months")  # fmt: skip
    if "logrank" in result:
        console.print(f"{result['logrank']['method']}: p = {result['logrank']['p_value']:.3g}")
    for term in result.get("cox", {}).get("terms", []):
        console.print(f"  HR {term['term']}: {term['hr']:.2f} ({term['lower']:.2f}–{term['upper']:.2f})")


@analysis_app.command("compare")
def compare(
    treated: Annotated[list[str], typer.Option("--treated", help="A condition of the treated cohort (repeatable).")],
    comparator: Annotated[
        list[str], typer.Option("--comparator", help="A condition of the comparator cohort (repeatable).")
    ],
    project: ProjectOption = None,
    where: WhereOption = None,
    cohort: CohortOption = None,
    endpoint: EndpointOption = "os",
    covariate: Annotated[
        list[str] | None, typer.Option("--covariate", help="A PS covariate (default: every baseline variable).")
    ] = None,
    negative_control: Annotated[
        list[str] | None, typer.Option("--negative-control", help="An outcome the treatment cannot affect.")
    ] = None,
    out: OutOption = None,
    as_json: JsonOption = False,
    home_dir: HomeOption = None,
    engine: EngineOption = None,
) -> None:
    """Treated versus comparator: propensity matching and weighting, balance, adjusted HR, calibration."""
    _require_project(project)
    with _options():
        request = CompareRequest(project_id=project, filters=_spec(where, cohort), endpoint=endpoint,  # type: ignore[arg-type]
                                 treated=_spec(treated), comparator=_spec(comparator), covariates=covariate or None,
                                 negative_controls=negative_control or [])  # type: ignore[arg-type]  # fmt: skip
    result = _run(run_compare, request, home_dir=home_dir, engine=engine, out=out, as_json=as_json)
    if result is None:
        return
    arms = result["arms"]
    console.print(f"treated {arms['treated']['n']['shown']}, comparator {arms['comparator']['n']['shown']}, "
                  f"matched pairs {result['matching']['pairs']['shown']}")  # fmt: skip
    for name, estimate in result["hazard_ratios"].items():
        console.print(f"  HR {name}: {_hr(estimate)}")
    for line in result["assumptions"]:
        console.print(f"- {line}", markup=False)


def _auc(card: dict[str, Any]) -> str:
    auc = card["metrics"]["test"]["auc"]
    return f"{auc['auc']:.3f} ({auc['lower']:.3f}–{auc['upper']:.3f})"


@analysis_app.command("predict-train")
def predict_train(
    project: ProjectOption = None,
    where: WhereOption = None,
    cohort: CohortOption = None,
    outcome: Annotated[
        str, typer.Option("--outcome", help="relapse, second_cancer, progression or hospitalization.")
    ] = "relapse",
    tar_days: Annotated[
        int | None, typer.Option("--tar-days", help="Time at risk after diagnosis, days (default: the outcome's).")
    ] = None,
    feature: Annotated[
        list[str] | None, typer.Option("--feature", help="A feature (repeatable; default: every baseline variable).")
    ] = None,
    algorithm: Annotated[
        list[str] | None, typer.Option("--algorithm", help="lasso_logistic or gradient_boosting (default: both).")
    ] = None,
    test_fraction: Annotated[
        float, typer.Option("--test-fraction", help="Share of persons, diagnosed last, held out.")
    ] = 0.25,
    out: OutOption = None,
    as_json: JsonOption = False,
    home_dir: HomeOption = None,
    engine: EngineOption = None,
) -> None:
    """Develop risk models (temporal split, AUC with CI, calibration, importance) and store them for the project."""
    _require_project(project)
    with _options():
        request = PredictionRequest(project_id=project, filters=_spec(where, cohort), outcome=outcome,  # type: ignore[arg-type]
                                    tar_days=tar_days, features=feature or None, test_fraction=test_fraction,
                                    algorithms=algorithm or list(ALGORITHM_NAMES))  # type: ignore[arg-type]  # fmt: skip
    result = _run(run_prediction_train, HOME, request, home_dir=home_dir, engine=engine, out=out, as_json=as_json)
    if result is None:
        return
    population = result["population"]
    console.print(f"{result['outcome']['label']} ({result['outcome']['time_at_risk_days']} days): train "
                  f"{population['train']['shown']} ({population['train_outcomes']['shown']} outcomes), test "
                  f"{population['test']['shown']} ({population['test_outcomes']['shown']} outcomes)")  # fmt: skip
    for model in result["models"]:
        card = model["card"]
        console.print(f"  {model['model_id']} {card['algorithm']}: test AUC {_auc(card)}, "
                      f"Brier {card['metrics']['test']['brier']:.4f}")  # fmt: skip


@analysis_app.command("predict-score")
def predict_score(
    model_id: Annotated[str, typer.Argument(help="The stored model (see 'massalia analysis models').")],
    project: ProjectOption = None,
    where: WhereOption = None,
    cohort: CohortOption = None,
    person: Annotated[
        list[str] | None, typer.Option("--person", help="A project pseudonym to score (repeatable).")
    ] = None,
    out: OutOption = None,
    as_json: JsonOption = False,
    home_dir: HomeOption = None,
    engine: EngineOption = None,
) -> None:
    """Score persons with a model of the same project: risks by pseudonym (pseudonymized projects) or their spread."""
    _require_project(project)
    with _options():
        request = PredictionScoreRequest(project_id=project, filters=_spec(where, cohort), persons=person or [])  # type: ignore[arg-type]
    result = _run(
        run_prediction_score, HOME, model_id, request, home_dir=home_dir, engine=engine, out=out, as_json=as_json
    )
    if result is None:
        return
    if result["row_level"]:
        for row in result["persons"]:
            console.print(f"{row['pseudonym']}\t{row['risk']:.4f}", markup=False)
        for missing in result.get("not_found", []):
            console.print(f"{missing}\tnot found in the project's scope", markup=False)
        return
    console.print(f"{result['n']['shown']} persons, mean risk {result['mean_risk']}")
    for band in result["risk_histogram"]:
        console.print(f"  {band['risk_from']:.1f}–{band['risk_to']:.1f}: {band['n']['shown']}")


@analysis_app.command("models")
def models(
    project: ProjectOption = None,
    as_json: JsonOption = False,
    home_dir: HomeOption = None,
    engine: EngineOption = None,
) -> None:
    """List the project's stored prediction models (outcome, TAR, test AUC, data version)."""
    _require_project(project)
    data = existing_home(home_dir)
    with governed(data) as caller, initialized_warehouse(data, engine) as warehouse:
        result = list_prediction_models(caller, warehouse, data, project)  # type: ignore[arg-type]
    if as_json:
        typer.echo(json.dumps(result, indent=2, default=str, ensure_ascii=False))
        return
    for model in result["models"]:
        stale = "" if model["current_data"] else " (trained on older data)"
        console.print(f"{model['model_id']} {model['algorithm']} {model['outcome']['name']} "
                      f"{model['time_at_risk']['end_days']} days: test AUC {_auc(model['card'])}{stale}")  # fmt: skip


@analysis_app.command("pathways")
def pathways(
    project: ProjectOption = None,
    where: WhereOption = None,
    cohort: CohortOption = None,
    max_steps: Annotated[int, typer.Option("--steps", help="Steps of each pathway (1 to 8).")] = 4,
    top: Annotated[int, typer.Option("--top", help="Most frequent pathways shown (1 to 50).")] = 10,
    detail: Annotated[str, typer.Option("--detail", help="Label regimens by 'modality' or 'regimen'.")] = "modality",
    out: OutOption = None,
    as_json: JsonOption = False,
    home_dir: HomeOption = None,
    engine: EngineOption = None,
) -> None:
    """The most frequent treatment pathways (regimens, surgery, radiotherapy), a Sankey and the days between steps."""
    _require_project(project)
    with _options():
        request = PathwaysRequest(project_id=project, filters=_spec(where, cohort), max_steps=max_steps, top=top,  # type: ignore[arg-type]
                                  detail=detail)  # type: ignore[arg-type]  # fmt: skip
    result = _run(run_pathways, request, home_dir=home_dir, engine=engine, out=out, as_json=as_json)
    if result is None:
        return
    console.print(f"{result['persons']['shown']} persons; other pathways: {result['other']['persons']['shown']}")
    for pathway in result["pathways"]:
        console.print(f"  {pathway['persons']['shown']:>6}  {' → '.join(pathway['steps'])}", markup=False)


@analysis_app.command("conformance")
def conformance(
    project: ProjectOption = None,
    where: WhereOption = None,
    cohort: CohortOption = None,
    rule: Annotated[list[str] | None, typer.Option("--rule", help="A rule id to evaluate (repeatable).")] = None,
    rules_file: Annotated[
        Path | None, typer.Option("--rules", help="A YAML rule file of one's own (default: the reference set).")
    ] = None,
    endpoint: EndpointOption = "os",
    covariate: Annotated[
        list[str] | None, typer.Option("--covariate", help="A Cox adjustment covariate (repeatable).")
    ] = None,
    out: OutOption = None,
    as_json: JsonOption = False,
    home_dir: HomeOption = None,
    engine: EngineOption = None,
) -> None:
    """Conformance to reference-practice rules: rates per site and period, deviations, outcomes."""
    _require_project(project)
    try:
        text = rules_file.read_text(encoding="utf-8") if rules_file is not None else None
    except (OSError, UnicodeDecodeError) as error:
        fail(f"cannot read the rule file {rules_file}: {error}")
    with _options():
        request = ConformanceRequest(project_id=project, filters=_spec(where, cohort), endpoint=endpoint,  # type: ignore[arg-type]
                                     rules=rule or [], rules_yaml=text,
                                     covariates=["age_at_diagnosis"] if covariate is None else covariate)  # fmt: skip
    result = _run(run_conformance, request, home_dir=home_dir, engine=engine, out=out, as_json=as_json)
    if result is None:
        return
    for item in result["rules"]:
        overall = item["overall"]
        shown = "suppressed" if overall["rate"] is None else (
            f"{overall['rate']:.1%} ({overall['lower']:.1%}–{overall['upper']:.1%})")  # fmt: skip
        console.print(f"{item['id']}: {shown} of {overall['evaluable']['shown']} evaluable persons", markup=False)


def _pairs(items: list[str] | None, option: str) -> dict[str, str]:
    """``name=value`` options as a mapping (values stay text: the service reads them by the variable's type)."""
    out: dict[str, str] = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            fail(f"{option} takes variable=value, got {item!r}")
        out[name.strip()] = value.strip()
    return out


def _profile(items: list[str] | None) -> dict[str, Any] | None:
    profile: dict[str, Any] = {}
    for name, value in _pairs(items, "--like").items():
        try:
            profile[name] = float(value)
        except ValueError:
            profile[name] = value
    return profile or None


@analysis_app.command("similar")
def similar(
    project: ProjectOption = None,
    pseudonym: Annotated[
        str | None, typer.Option("--pseudonym", help="The index patient's pseudonym (a pseudonymized project).")
    ] = None,
    like: Annotated[
        list[str] | None, typer.Option("--like", help="Describe the index patient: variable=value (repeatable).")
    ] = None,
    k: Annotated[int, typer.Option("--k", help="How many neighbours.")] = 50,
    weight: Annotated[
        list[str] | None, typer.Option("--weight", help="A distance variable and its weight: name=2.5 (repeatable).")
    ] = None,
    where: WhereOption = None,
    cohort: CohortOption = None,
    endpoint: EndpointOption = "os",
    out: OutOption = None,
    as_json: JsonOption = False,
    home_dir: HomeOption = None,
    engine: EngineOption = None,
) -> None:
    """The k patients most similar to an index patient, what they share with it, and their survival."""
    _require_project(project)
    with _options():
        weights = {name: float(value) for name, value in _pairs(weight, "--weight").items()} or None
        request = SimilarRequest(project_id=project, filters=_spec(where, cohort), endpoint=endpoint,  # type: ignore[arg-type]
                                 index_pseudonym=pseudonym, index_profile=_profile(like), k=k,
                                 weights=weights)  # fmt: skip
    result = _run(run_similar, request, home_dir=home_dir, engine=engine, out=out, as_json=as_json)
    if result is None:
        return
    km = result["km"]
    console.print(f"{result['neighbours']['shown']} neighbours among {result['candidates']['shown']} candidates; "
                  f"{result['endpoint']['label']}: median {km['median'] or 'not reached'} months")  # fmt: skip
    for row in result["agreement"][:8]:
        console.print(f"  {row['variable']}: {row['agreeing']['shown']} agree, {row['differing']['shown']} differ")
    for row in result.get("listed", [])[:20]:
        console.print(f"  {row['pseudonym']}  distance {row['distance']:.3f}")


@analysis_app.command("groups")
def groups(
    project: ProjectOption = None,
    variable: Annotated[
        list[str] | None, typer.Option("--variable", help="A variable to group on (repeatable; default: documented).")
    ] = None,
    min_groups: Annotated[int, typer.Option("--min-groups", help="Fewest groups tried.")] = 2,
    max_groups: Annotated[int, typer.Option("--max-groups", help="Most groups tried.")] = 8,
    where: WhereOption = None,
    cohort: CohortOption = None,
    endpoint: EndpointOption = "os",
    out: OutOption = None,
    as_json: JsonOption = False,
    home_dir: HomeOption = None,
    engine: EngineOption = None,
) -> None:
    """Homogeneous patient groups (k-means, k by silhouette), what distinguishes each, and its survival."""
    _require_project(project)
    with _options():
        request = GroupsRequest(project_id=project, filters=_spec(where, cohort), endpoint=endpoint,  # type: ignore[arg-type]
                                variables=variable or None, min_groups=min_groups, max_groups=max_groups)  # fmt: skip
    result = _run(run_groups, request, home_dir=home_dir, engine=engine, out=out, as_json=as_json)
    if result is None:
        return
    console.print(f"{result['k']} groups of {result['persons']['shown']} persons (silhouette {result['silhouette']})")
    for group in result["groups"]:
        top = ", ".join(f"{row['variable']} {row['smd']:+.2f}" for row in group["distinguishing"][:3])
        median = group.get("km", {}).get("median")
        console.print(f"  group {group['group']}: {group['size']['shown']} persons; {top}; median "
                      f"{median if median is not None else 'n/a'} months")  # fmt: skip


BASELINE_FIELDS = ("variable", "level", "statistic", "value")
MAX_BASELINE_BYTES = 1_000_000


def _trial_summary(path: Path, n: int | None, median: float | None) -> TrialSummary:
    """The trial's summary from a JSON file (a whole TrialSummary) or a CSV baseline table.

    The CSV's columns are variable, level, statistic, value; ``--trial-n`` gives n. Errors name the row and
    field at fault.
    """
    try:
        if path.stat().st_size > MAX_BASELINE_BYTES:
            fail(f"{path}: larger than {MAX_BASELINE_BYTES} bytes; a baseline table is a few dozen rows")
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        fail(f"cannot read the trial summary {path}: {error}")
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            fail(f"{path}: not JSON ({error})")
        if not isinstance(data, dict):
            fail(f"{path}: a JSON object with n, baseline, km, median_months is expected")
        if n is not None:
            data["n"] = n
        if median is not None:
            data["median_months"] = median
    else:
        reader = csv.DictReader(text.splitlines())
        missing = [name for name in ("variable", "statistic", "value") if name not in (reader.fieldnames or [])]
        if missing:
            fail(f"{path}: header lacks {', '.join(missing)} (columns: {', '.join(BASELINE_FIELDS)})")
        rows: list[dict[str, Any]] = []
        for line, record in enumerate(reader, start=2):
            try:
                value = float(record.get("value") or "")
            except ValueError:
                fail(f"{path}, row {line}, field value: {record.get('value')!r} is not a number")
            rows.append({"variable": (record.get("variable") or "").strip(),
                         "level": (record.get("level") or "").strip() or None,
                         "statistic": (record.get("statistic") or "").strip(), "value": value})  # fmt: skip
        if n is None:
            fail("a CSV baseline table needs the trial's size: --trial-n")
        data = {"n": n, "baseline": rows, "median_months": median}
    try:
        return TrialSummary.model_validate(data)
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(str(part) for part in item['loc'])}: {item['msg']}"
                             for item in error.errors())  # fmt: skip
        fail(f"{path}: {problems}")


@analysis_app.command("control-arm")
def control_arm(
    project: ProjectOption = None,
    where: WhereOption = None,
    cohort: CohortOption = None,
    trial: Annotated[
        list[str] | None, typer.Option("--trial", help="A condition naming the trial's patients (repeatable).")
    ] = None,
    control: Annotated[
        list[str] | None, typer.Option("--control", help="An extra condition on the controls (repeatable).")
    ] = None,
    summary: Annotated[
        Path | None, typer.Option("--summary", help="The trial's baseline table (CSV or JSON): MAIC mode.")
    ] = None,
    trial_n: Annotated[int | None, typer.Option("--trial-n", help="Patients in the trial (CSV summary).")] = None,
    trial_median: Annotated[
        float | None, typer.Option("--trial-median", help="The trial's reported median, in months.")
    ] = None,
    covariate: Annotated[
        list[str] | None, typer.Option("--covariate", help="A propensity covariate (repeatable; default all).")
    ] = None,
    landmark: Annotated[
        float, typer.Option("--landmark", help="Count the outcome from this many months after diagnosis.")
    ] = 0.0,
    endpoint: EndpointOption = "os",
    out: OutOption = None,
    as_json: JsonOption = False,
    home_dir: HomeOption = None,
    engine: EngineOption = None,
) -> None:
    """A synthetic control arm of a single-arm trial from real-world persons meeting its eligibility (--where).

    Name the trial's patients with --trial (propensity ATT weighting) or give its baseline table with
    --summary (matching-adjusted indirect comparison).
    """
    _require_project(project)
    if (summary is None) == (not trial):
        fail("give either --trial (its patients are in the warehouse) or --summary (its baseline table)")
    table = _trial_summary(summary, trial_n, trial_median) if summary is not None else None
    with _options():
        request = ControlArmRequest(project_id=project, filters=_spec(where, cohort), endpoint=endpoint,  # type: ignore[arg-type]
                                    trial=_spec(trial) if trial else None, trial_summary=table,
                                    controls=_spec(control) if control else None, covariates=covariate,
                                    landmark_months=landmark)  # fmt: skip
    result = _run(run_control_arm, request, home_dir=home_dir, engine=engine, out=out, as_json=as_json)
    if result is None:
        return
    if result["mode"] == "individual":
        arms = result["arms"]
        console.print(f"trial {arms['trial']['n']['shown']} persons; controls {arms['control']['n']['shown']} "
                      f"(effective {arms['control']['effective_sample_size']['shown']})")  # fmt: skip
        for name, estimate in result["hazard_ratios"].items():
            console.print(f"  HR {name}: {_hr(estimate)}")
    else:
        console.print(f"real-world {result['n']['shown']} persons, effective {result['effective_sample_size']['shown']}"
                      f"; weighted median {result['median_weighted'] or 'not reached'} months, trial "
                      f"{result['trial_median'] if result['trial_median'] is not None else 'not given'}")  # fmt: skip


@analysis_app.command("hypotheses")
def hypotheses(
    project: ProjectOption = None,
    group_a: Annotated[
        list[str] | None, typer.Option("--group-a", help="A condition of the first cohort (repeatable, ANDed).")
    ] = None,
    group_b: Annotated[
        list[str] | None, typer.Option("--group-b", help="A condition of the second cohort (repeatable, ANDed).")
    ] = None,
    variable: Annotated[
        list[str] | None, typer.Option("--variable", help="A mart variable to compare (repeatable, 1 to 50).")
    ] = None,
    alpha: Annotated[float, typer.Option("--alpha", help="Significance level.")] = 0.05,
    where: WhereOption = None,
    cohort: CohortOption = None,
    out: OutOption = None,
    as_json: JsonOption = False,
    home_dir: HomeOption = None,
    engine: EngineOption = None,
) -> None:
    """Compare mart variables between two cohorts: test by type, effect size, BH and Holm adjusted p-values."""
    _require_project(project)
    if not group_a or not group_b or not variable:
        fail("name both cohorts (--group-a, --group-b) and at least one --variable")
    with _options():
        request = HypothesesRequest(project_id=project, filters=_spec(where, cohort), group_a=_spec(group_a),  # type: ignore[arg-type]
                                    group_b=_spec(group_b), variables=variable, alpha=alpha)  # fmt: skip
    result = _run(run_hypotheses, request, home_dir=home_dir, engine=engine, out=out, as_json=as_json)
    if result is None:
        return
    console.print(f"group a: {result['groups']['group_a']['shown']} persons, "
                  f"group b: {result['groups']['group_b']['shown']} persons")  # fmt: skip
    if result.get("withheld"):
        console.print(result["withheld"])
    for row in result["comparisons"]:
        if row.get("p") is None:
            console.print(f"  {row['variable']}: {row.get('withheld') or row.get('note')}")
            continue
        effect = row["effect"]
        console.print(f"  {row['variable']}: {row['test']} p={row['p']:.3g} (BH {row['p_bh']:.3g}, Holm "
                      f"{row['p_holm']:.3g}); {effect['measure']} {effect['estimate']:.3f} "
                      f"[{effect['lower']:.3f}, {effect['upper']:.3f}]")  # fmt: skip


@analysis_app.command("patterns")
def patterns(
    project: ProjectOption = None,
    variable: Annotated[
        list[str] | None,
        typer.Option(
            "--variable",
            help="A boolean, category or code mart variable to mine (repeatable; default: a clinical set "
            "of diagnoses, biomarkers, comorbidities and treatments).",
        ),
    ] = None,
    sequences: Annotated[bool, typer.Option("--sequences/--no-sequences", help="Mine care sequences.")] = True,
    max_length: Annotated[int, typer.Option("--max-length", help="Most items of a rule or steps.")] = 3,
    min_count: Annotated[int, typer.Option("--min-count", help="Fewest persons of a pattern.")] = 20,
    min_lift: Annotated[float, typer.Option("--min-lift", help="Lift of an unexpected pattern.")] = 1.5,
    alpha: Annotated[float, typer.Option("--alpha", help="False discovery rate (Benjamini–Hochberg).")] = 0.05,
    top: Annotated[int, typer.Option("--top", help="Most rules and sequences listed.")] = 50,
    where: WhereOption = None,
    cohort: CohortOption = None,
    out: OutOption = None,
    as_json: JsonOption = False,
    home_dir: HomeOption = None,
    engine: EngineOption = None,
) -> None:
    """Find unexpected patterns: association rules and care sequences with support, lift and BH-adjusted p."""
    _require_project(project)
    with _options():
        request = PatternsRequest(project_id=project, filters=_spec(where, cohort), variables=variable or None,  # type: ignore[arg-type]
                                  sequences=sequences, max_length=max_length, min_count=min_count,
                                  min_lift=min_lift, alpha=alpha, top=top)  # fmt: skip
    result = _run(run_patterns, request, home_dir=home_dir, engine=engine, out=out, as_json=as_json)
    if result is None:
        return
    rules = result["associations"]
    console.print(f"{result['persons']['shown']} persons; {rules['tested']} candidate rules tested, "
                  f"{rules['withheld_small_cells']} withheld (small cells)")  # fmt: skip
    for rule in rules["rules"]:
        flag = "UNEXPECTED " if rule["unexpected"] else ""
        console.print(f"  {flag}{' & '.join(rule['antecedent'])} => {rule['consequent']}: "
                      f"{rule['persons']['shown']} persons, confidence {rule['confidence']:.2f}, "
                      f"lift {rule['lift']:.2f}, q={rule['q']:.3g}")  # fmt: skip
    for entry in result.get("sequences", {}).get("sequences", []):
        flag = "UNEXPECTED " if entry["unexpected"] else ""
        console.print(f"  {flag}{' -> '.join(entry['steps'])}: {entry['persons']['shown']} persons, "
                      f"lift {entry['lift']:.2f}, q={entry['q']:.3g}")  # fmt: skip
