"""Conformance to reference practice: declarative rules (YAML), evaluated on each person's treatment steps.

A rule file (``reference_practice.yaml`` ships a small set) has this schema::

    version: 1
    classes:                       # how a treatment is recognized in the warehouse
      anti_her2: {ingredients: [trastuzumab, pertuzumab]}     # RxNorm ingredient names (any drug exposure)
      surgery: {procedures: [surgery]}                        # surgery | radiotherapy steps
      chemotherapy: {modalities: [chemotherapy]}              # modalities of a systemic regimen
    rules:
      - id: her2_early_breast_anti_her2                       # [a-z0-9_], unique
        title: HER2-positive early breast cancer receives anti-HER2 therapy
        guideline: {source: "...", year: 2024, url: "https://..."}   # the public guideline paraphrased
        population: ["primary_site = breast", "her2_status = positive", "stage_group in I,II,III"]
        expected: anti_her2        # a class name
        anchor: diagnosis          # 'diagnosis' or a class name (its first step on/after diagnosis)
        window: {min_days: 0, max_days: 365}   # the expected step starts this many days after the anchor

A person of the population **conforms** when a step of the expected class starts within the window after
the anchor. A person is **not evaluable** when the anchor never happened, or when the follow-up (the endpoint's time:
death or last observation) ended before the window did, treated or not: the rate is that of the persons
followed through the whole window, so that neither early deaths nor the data cut-off bias it.
Every error in a rule file names the file, the rule index and the field.

Examples
--------
>>> rules = load_rules(REFERENCE_RULES)
>>> [rule.id for rule in rules.rules][:2]
['her2_early_breast_anti_her2', 'er_positive_breast_endocrine']
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from statsmodels.stats.proportion import proportion_confint

from massalia.health.analytics.protect import protect_count
from massalia.health.marts.catalogue import load_catalogue
from massalia.health.marts.filters import Clause, FilterError, FilterSpec, compile_filter, parse_clause

REFERENCE_RULES = Path(str(resources.files("massalia.health.analytics") / "reference_practice.yaml"))
"""The reference rule set shipped with Massalia."""
MAX_RULE_FILE_BYTES = 200_000
ANCHOR_DIAGNOSIS = "diagnosis"
_NAME = r"^[a-z][a-z0-9_]{0,63}$"


class RuleError(ValueError):
    """A rule file that cannot be used; the message names the file, the rule index and the field."""


class TreatmentClass(BaseModel):
    """How a treatment class is recognized: ingredients given, regimen modalities, or procedure steps."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ingredients: tuple[str, ...] = Field(default=(), max_length=100)
    modalities: tuple[Literal["chemotherapy", "targeted", "immunotherapy", "hormone"], ...] = Field(
        default=(), max_length=4
    )
    procedures: tuple[Literal["surgery", "radiotherapy"], ...] = Field(default=(), max_length=2)

    @model_validator(mode="after")
    def _not_empty(self) -> TreatmentClass:
        if not (self.ingredients or self.modalities or self.procedures):
            raise ValueError("a class needs at least one of ingredients, modalities, procedures")
        if any(not 1 <= len(name) <= 100 for name in self.ingredients):
            raise ValueError("an ingredient name has 1 to 100 characters")
        return self


class Guideline(BaseModel):
    """The public guideline a rule paraphrases (cited, not copied)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: str = Field(min_length=3, max_length=300)
    year: int = Field(ge=1990, le=2100)
    url: str = Field(pattern=r"^https://\S{4,500}$")


class Window(BaseModel):
    """Days after the anchor within which the expected treatment must start (bounds included)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_days: int = Field(default=0, ge=-365, le=3650)
    max_days: int = Field(ge=0, le=3650)

    @model_validator(mode="after")
    def _ordered(self) -> Window:
        if self.max_days < self.min_days:
            raise ValueError("max_days must be at least min_days")
        return self


class Rule(BaseModel):
    """One reference-practice rule: population (mart filters), expected class, anchor and window."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=_NAME)
    title: str = Field(min_length=3, max_length=300)
    guideline: Guideline
    population: tuple[str, ...] = Field(min_length=1, max_length=20)
    expected: str = Field(pattern=_NAME)
    anchor: str = Field(default=ANCHOR_DIAGNOSIS, pattern=_NAME)
    window: Window

    def clauses(self) -> list[Clause]:
        """The population's mart filter clauses (``'variable op value'``)."""
        return [parse_clause(text) for text in self.population]

    def population_spec(self) -> FilterSpec:
        """The population as a mart filter."""
        return FilterSpec(all=self.clauses())


class RuleSet(BaseModel):
    """A rule file: its classes and rules."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1]
    classes: dict[str, TreatmentClass] = Field(min_length=1, max_length=100)
    rules: tuple[Rule, ...] = Field(min_length=1, max_length=50)


def _location(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def parse_rules(text: str, source: str = "<rules>") -> RuleSet:
    r"""A rule set from YAML text, checked: schema, class references, unique ids, population filters.

    Raises
    ------
    RuleError
        Every problem found, each as ``source: rules[2].window.max_days: what is wrong``.

    Examples
    --------
    >>> parse_rules("version: 1\nclasses: {}\nrules: []", "mine.yaml")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    massalia.health.analytics.conformance.RuleError: mine.yaml: classes: Dictionary should have at least 1 item...
    """
    if len(text.encode()) > MAX_RULE_FILE_BYTES:
        raise RuleError(f"{source}: a rule file has at most {MAX_RULE_FILE_BYTES} bytes")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise RuleError(f"{source}: not valid YAML: {error}") from None
    try:
        rules = RuleSet.model_validate(data)
    except ValidationError as error:
        problems = [f"{source}: {_location(e['loc'])}: {e['msg']}" for e in error.errors()]
        raise RuleError("; ".join(problems)) from None
    problems = _check_references(rules, source)
    if problems:
        raise RuleError("; ".join(problems))
    return rules


def _check_references(rules: RuleSet, source: str) -> list[str]:
    catalogue = load_catalogue()
    problems: list[str] = []
    bad_class = [name for name in rules.classes if not re.match(_NAME, name)]
    problems += [f"{source}: classes.{name}: a class name is lowercase letters, digits and _" for name in bad_class]
    seen: set[str] = set()
    for index, rule in enumerate(rules.rules):
        where = f"{source}: rules[{index}]"
        if rule.id in seen:
            problems.append(f"{where}.id: {rule.id!r} is used by an earlier rule")
        seen.add(rule.id)
        for field, name in (("expected", rule.expected), ("anchor", rule.anchor)):
            if name not in rules.classes and not (field == "anchor" and name == ANCHOR_DIAGNOSIS):
                problems.append(f"{where}.{field}: {name!r} is not a class of this file ({', '.join(rules.classes)})")
        for position, text in enumerate(rule.population):
            try:
                clause = parse_clause(text)
                catalogue.variable(clause.variable)
                compile_filter(
                    FilterSpec(all=[clause]), catalogue
                )  # the value fits the variable (type, allowed levels)
            except (FilterError, ValueError) as error:
                problems.append(f"{where}.population[{position}]: {error}")
            except KeyError as error:
                problems.append(f"{where}.population[{position}]: {error.args[0]}")
    return problems


def load_rules(path: Path | str) -> RuleSet:
    """A rule set from a YAML file (see :func:`parse_rules`)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise RuleError(f"{path}: cannot read the rule file: {error}") from None
    return parse_rules(text, str(path.name))


# -- evaluation -------------------------------------------------------------------------------------------


def class_days(treatment: TreatmentClass, steps: pd.DataFrame, drugs: pd.DataFrame) -> pd.DataFrame:
    """Every (person_id, day) on which a step or a drug of ``treatment`` starts (days since diagnosis).

    ``steps`` are :func:`~massalia.health.analytics.pathways.pathway_steps` rows at modality detail;
    ``drugs`` are person_id, day, ingredient rows.
    """
    parts = []
    if treatment.ingredients:
        wanted = {name.lower() for name in treatment.ingredients}
        parts.append(drugs.loc[drugs["ingredient"].isin(wanted), ["person_id", "day"]])
    if treatment.procedures:
        parts.append(steps.loc[steps["kind"].isin(treatment.procedures), ["person_id", "day"]])
    if treatment.modalities:
        wanted_modalities = set(treatment.modalities)
        systemic = steps[steps["kind"] == "systemic"]
        hit = systemic["label"].map(lambda label: bool(wanted_modalities & set(str(label).split("+"))))
        parts.append(systemic.loc[hit.astype(bool), ["person_id", "day"]])
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["person_id", "day"])


STATUSES = ("conforming", "not_given", "too_early", "too_late", "no_anchor", "short_follow_up")
"""A person's status under a rule: conforming; deviations (the expected treatment not given within the
follow-up, given before or after the window); not evaluable (no anchor event, follow-up shorter than the
window without the expected treatment)."""


@dataclass(frozen=True)
class Evaluation:
    """One rule over its population: each person's status, anchor day and landmark (days since diagnosis)."""

    rule: Rule
    person_id: np.ndarray
    status: np.ndarray
    anchor_day: np.ndarray
    landmark_day: np.ndarray

    @property
    def evaluable(self) -> np.ndarray:
        """Persons with a verdict (conforming or deviating)."""
        return np.isin(self.status, ("conforming", "not_given", "too_early", "too_late"))

    @property
    def conforming(self) -> np.ndarray:
        """Persons whose expected treatment started within the window."""
        return self.status == "conforming"


def evaluate_rule(
    rule: Rule, classes: dict[str, TreatmentClass], population: pd.DataFrame, steps: pd.DataFrame, drugs: pd.DataFrame
) -> Evaluation:
    """Each person of ``population`` (person_id, follow_up_days) judged against ``rule``.

    Examples
    --------
    >>> rules = load_rules(REFERENCE_RULES)
    >>> rule = rules.rules[0]  # anti-HER2 therapy within 365 days of diagnosis
    >>> population = pd.DataFrame({"person_id": [1, 2, 3], "follow_up_days": [900.0, 900.0, 100.0]})
    >>> drugs = pd.DataFrame({"person_id": [1], "day": [40.0], "ingredient": ["trastuzumab"]})
    >>> steps = pd.DataFrame(columns=["person_id", "day", "kind", "label"])
    >>> evaluate_rule(rule, rules.classes, population, steps, drugs).status.tolist()
    ['conforming', 'not_given', 'short_follow_up']
    """
    persons = population["person_id"].to_numpy(dtype=np.int64)
    follow_up = population["follow_up_days"].to_numpy(dtype=float)
    if rule.anchor == ANCHOR_DIAGNOSIS:
        anchor = np.zeros(len(persons))
    else:
        anchor_days = class_days(classes[rule.anchor], steps, drugs)
        first = anchor_days[anchor_days["day"] >= 0].groupby("person_id")["day"].min()
        anchor = pd.Series(persons).map(first).to_numpy(dtype=float)
    expected = class_days(classes[rule.expected], steps, drugs)
    expected = expected.assign(anchor=expected["person_id"].map(dict(zip(persons, anchor, strict=True))))
    offset = expected["day"].astype(float) - expected["anchor"].astype(float)
    expected = expected.assign(offset=offset).dropna(subset=["offset"])
    window = rule.window
    within = set(expected.loc[expected["offset"].between(window.min_days, window.max_days), "person_id"])
    before = set(expected.loc[expected["offset"] < window.min_days, "person_id"])
    after = set(expected.loc[expected["offset"] > window.max_days, "person_id"])
    landmark = anchor + window.max_days
    status = np.empty(len(persons), dtype=object)
    for i, person in enumerate(persons):
        if np.isnan(anchor[i]):
            status[i] = "no_anchor"
        elif np.isnan(follow_up[i]) or follow_up[i] < landmark[i]:
            # treated or not: counting the treated among the briefly followed (and not the untreated) would
            # bias the rate upward, so the rate is that of the persons followed through the whole window
            status[i] = "short_follow_up"
        elif person in within:
            status[i] = "conforming"
        elif person in after:
            status[i] = "too_late"
        elif person in before:
            status[i] = "too_early"
        else:
            status[i] = "not_given"
    return Evaluation(rule, persons, status.astype(str), anchor, landmark)


def rate(conforming: int, evaluable: int, threshold: int) -> dict[str, Any]:
    """A conformance rate with its Wilson 95 % CI, shown only when both cells reach ``threshold``.

    With fewer than ``threshold`` conforming or deviating persons, the rate and the total would give the
    small count away: only the protected counts are shown.

    Examples
    --------
    >>> rate(90, 120, 10)["rate"], rate(118, 120, 10)["rate"]
    (0.75, None)
    """
    deviating = evaluable - conforming
    out: dict[str, Any] = {
        "evaluable": protect_count(evaluable, threshold),
        "conforming": protect_count(conforming, threshold),
        "deviating": protect_count(deviating, threshold),
        "rate": None,
        "lower": None,
        "upper": None,
    }
    if evaluable and conforming >= threshold and deviating >= threshold:
        lower, upper = proportion_confint(conforming, evaluable, alpha=0.05, method="wilson")
        out |= {"rate": round(conforming / evaluable, 4), "lower": round(float(lower), 4),
                "upper": round(float(upper), 4)}  # fmt: skip
    else:
        out["suppressed"] = f"fewer than {threshold} conforming or deviating persons: the rate would reveal them"
    return out


def raw_rates(evaluation: Evaluation, groups: np.ndarray) -> dict[str, tuple[int, int, float, float]]:
    """Unprotected (conforming, evaluable, lower, upper) per group: for validation against the ground truth."""
    out: dict[str, tuple[int, int, float, float]] = {}
    keep = evaluation.evaluable
    for level in sorted(set(groups[keep].tolist())):
        mask = keep & (groups == level)
        k, n = int((mask & evaluation.conforming).sum()), int(mask.sum())
        lower, upper = proportion_confint(k, n, alpha=0.05, method="wilson")
        out[str(level)] = (k, n, float(lower), float(upper))
    return out


def rates_by(evaluation: Evaluation, groups: np.ndarray, threshold: int) -> list[dict[str, Any]]:
    """The protected rate of each group (site, period) among the evaluable persons."""
    keep = evaluation.evaluable
    return [
        {
            "group": str(level),
            **rate(
                int((keep & (groups == level) & evaluation.conforming).sum()),
                int((keep & (groups == level)).sum()),
                threshold,
            ),
        }
        for level in sorted(set(groups[keep].tolist()))
    ]


def deviations(evaluation: Evaluation, threshold: int) -> dict[str, Any]:
    """How many persons of the population have each status (aggregates only, protected)."""
    return {status: protect_count(int((evaluation.status == status).sum()), threshold) for status in STATUSES}
