"""Homogeneous patient groups: k-means on encoded mart variables, the number of groups chosen by silhouette.

Mixed variables are made comparable the usual way (scikit-learn's ``ColumnTransformer``): a category (a
boolean, a code) becomes one-hot columns, a missing value its own level ``missing``; a number is imputed by
its median with a missing-indicator column, then standardized. Each variable's columns are multiplied by
the square root of its weight (:data:`~massalia.health.analytics.similar.SIMILARITY_WEIGHTS` by default),
so that its share of the squared Euclidean distance k-means minimizes follows the weight.

The number of groups is the ``k`` of ``min_groups..max_groups`` with the highest mean silhouette
(Rousseeuw 1987), computed on a random sample of at most :data:`SILHOUETTE_SAMPLE` persons; each k-means is
fitted (``n_init`` :data:`N_INIT`, fixed ``random_state``) on at most :data:`FIT_SAMPLE` persons and then
assigns everyone. Groups are numbered by size, largest first.

A group is described by what distinguishes it from the rest: the standardized difference (SMD) of each
variable between the group and all other persons (for a category, of its most distinguishing level), the
variables with the largest ``|SMD|`` first. This module reads no data and checks no right: the guarded
service gives it the rows of an approved project's scope and protects what it releases.

Examples
--------
>>> import numpy as np, pandas as pd
>>> rng = np.random.default_rng(0)
>>> frame = pd.DataFrame({"x": np.r_[rng.normal(0, 1, 60), rng.normal(6, 1, 60)],
...                       "c": ["a"] * 60 + ["b"] * 60})
>>> fit = find_groups(encode(frame, [Feature("x", "number", 1.0), Feature("c", "category", 1.0)]), range(2, 5))
>>> fit.k, sorted(np.bincount(fit.labels).tolist())
(2, [60, 60])
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.cluster import KMeans
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.metrics import silhouette_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from massalia.health.analytics.protect import protect_count
from massalia.health.analytics.similar import Feature, category_text

N_INIT = 3
"""k-means restarts per ``k`` (the best inertia is kept)."""

FIT_SAMPLE = 10_000
"""Persons k-means is fitted on (all when fewer); the fitted centres then assign everyone."""

SILHOUETTE_SAMPLE = 2_000
"""Persons the silhouette of each ``k`` is computed on (it is quadratic in the persons)."""


@dataclass(frozen=True)
class Design:
    """The encoded matrix (one row a person) and, for each of its columns, the variable it comes from."""

    matrix: np.ndarray
    columns: list[str]
    variables: list[str]


@dataclass(frozen=True)
class Grouping:
    """The chosen number of groups, everyone's group (0 the largest) and each tried ``k``'s silhouette."""

    k: int
    labels: np.ndarray
    silhouette: dict[int, float]


def _as_category(series: pd.Series) -> pd.Series:
    return series.map(lambda value: category_text(value) or "missing").astype(object)


def encode(frame: pd.DataFrame, features: Sequence[Feature]) -> Design:
    """One-hot categories (``missing`` a level), median-imputed standardized numbers, weighted (module docstring).

    Ordinals (stage) are numbers: their rank among the feature's levels.
    """
    data = pd.DataFrame(index=frame.index)
    transformers: list[tuple[str, Any, list[str]]] = []
    for feature in features:
        if feature.kind == "category":
            data[feature.name] = _as_category(frame[feature.name])
            encoder = OneHotEncoder(handle_unknown="ignore", sparse_output=False, dtype=float)
            transformers.append((feature.name, encoder, [feature.name]))
        else:
            if feature.kind == "ordinal":
                rank = {level: float(r) for r, level in enumerate(feature.levels)}
                data[feature.name] = frame[feature.name].map(lambda v, rank=rank: rank.get(str(v), np.nan))
            else:
                data[feature.name] = pd.to_numeric(frame[feature.name], errors="coerce")
            data[feature.name] = data[feature.name].astype(float)
            if data[feature.name].isna().all():
                continue  # nothing known: the variable cannot separate anyone
            pipeline = make_pipeline(SimpleImputer(strategy="median"), StandardScaler())
            transformers.append((feature.name, pipeline, [feature.name]))
    if not transformers:
        raise ValueError("no variable to group on: every variable is empty in this cohort")
    transformer = ColumnTransformer(transformers, sparse_threshold=0.0, verbose_feature_names_out=True)
    matrix = np.asarray(transformer.fit_transform(data), dtype=float)
    columns = [str(name) for name in transformer.get_feature_names_out()]
    variables = [name.split("__", 1)[0] for name in columns]
    weight = {feature.name: feature.weight for feature in features}
    # Two persons of different categories differ on two one-hot columns: 1/sqrt(2) makes that a squared
    # distance of 1, as one standard deviation apart on a number.
    one_hot = {feature.name for feature in features if feature.kind == "category"}
    factor = [np.sqrt(weight[v] / (2.0 if v in one_hot else 1.0)) for v in variables]
    matrix *= np.array(factor)[None, :]
    return Design(matrix, columns, variables)


def find_groups(design: Design, ks: Iterable[int], *, seed: int = 0) -> Grouping:
    """k-means for each ``k`` of ``ks``; the ``k`` of highest silhouette wins (module docstring).

    Raises
    ------
    ValueError
        Fewer persons than twice the largest ``k`` (no stable grouping).
    """
    matrix = design.matrix
    n = matrix.shape[0]
    ks = sorted(set(ks))
    if not ks:
        raise ValueError("no number of groups to try")
    if n < 2 * max(ks):
        raise ValueError(f"{n} persons cannot be split into up to {max(ks)} groups: widen the cohort or ask fewer")
    rng = np.random.default_rng(seed)
    fit_rows = np.sort(rng.choice(n, FIT_SAMPLE, replace=False)) if n > FIT_SAMPLE else np.arange(n)
    score_rows = np.sort(rng.choice(n, SILHOUETTE_SAMPLE, replace=False)) if n > SILHOUETTE_SAMPLE else np.arange(n)
    best: tuple[float, int, KMeans] | None = None
    scores: dict[int, float] = {}
    for k in ks:
        model = KMeans(n_clusters=k, n_init=N_INIT, random_state=seed).fit(matrix[fit_rows])
        labels = model.predict(matrix[score_rows])
        score = float(silhouette_score(matrix[score_rows], labels)) if len(set(labels)) > 1 else -1.0
        scores[k] = round(score, 4)
        if best is None or score > best[0]:
            best = (score, k, model)
    if best is None:
        raise ValueError("no number of groups to try")
    raw = best[2].predict(matrix)
    by_size = np.argsort(-np.bincount(raw, minlength=best[1]), kind="stable")
    relabel = np.empty_like(by_size)
    relabel[by_size] = np.arange(by_size.size)
    return Grouping(best[1], relabel[raw], scores)


def _smd(a: np.ndarray, b: np.ndarray) -> float:
    """Standardized mean difference of two samples (pooled SD; 0 when both are constant)."""
    if a.size == 0 or b.size == 0:
        return 0.0
    pooled = np.sqrt((a.var() + b.var()) / 2.0)
    return 0.0 if pooled == 0 else float((a.mean() - b.mean()) / pooled)


def _distinction(values: pd.Series, feature: Feature, member: np.ndarray, threshold: int) -> dict[str, Any]:
    """How one variable distinguishes the group from the rest: its SMD and the group's and rest's value."""
    if feature.kind == "category":
        text = _as_category(values)
        best: dict[str, Any] = {"variable": feature.name, "smd": 0.0}
        for level in sorted(set(text)):
            has = (text == level).to_numpy()
            smd = _smd(has[member].astype(float), has[~member].astype(float))
            if abs(smd) > abs(best["smd"]) or "level" not in best:
                count = protect_count(int(has[member].sum()), threshold)
                best = {"variable": feature.name, "level": level, "smd": round(smd, 3), "in_group": count,
                        "share_in_group": None if count["count"] is None else round(float(has[member].mean()), 3),
                        "share_in_rest": round(float(has[~member].mean()), 3) if (~member).sum() >= threshold
                        else None}  # fmt: skip
        return best
    if feature.kind == "ordinal":
        rank = {level: float(r) for r, level in enumerate(feature.levels)}
        numbers = values.map(lambda v: rank.get(str(v), np.nan)).astype(float).to_numpy()
    else:
        numbers = pd.to_numeric(values, errors="coerce").astype(float).to_numpy()
    inside, outside = numbers[member & ~np.isnan(numbers)], numbers[~member & ~np.isnan(numbers)]
    shown = inside.size >= threshold
    return {
        "variable": feature.name, "smd": round(_smd(inside, outside), 3) if shown else 0.0,
        "known_in_group": protect_count(int(inside.size), threshold),
        "mean_in_group": round(float(inside.mean()), 2) if shown else None,
        "mean_in_rest": round(float(outside.mean()), 2) if outside.size >= threshold else None,
    }  # fmt: skip


def profiles(
    frame: pd.DataFrame, features: Sequence[Feature], labels: np.ndarray, *, threshold: int, top: int
) -> list[dict[str, Any]]:
    """Each group's size (protected) and what distinguishes it; a group under ``threshold`` shows its size only."""
    out = []
    for group in range(int(labels.max()) + 1 if labels.size else 0):
        member = labels == group
        size = protect_count(int(member.sum()), threshold)
        if size["count"] is None:
            out.append({"group": group + 1, "size": size, "distinguishing": [], "smd": {}})
            continue
        rows = [_distinction(frame[f.name], f, member, threshold) for f in features]
        rows.sort(key=lambda row: -abs(float(row["smd"])))
        out.append({"group": group + 1, "size": size, "distinguishing": rows[:top],
                    "smd": {row["variable"]: row["smd"] for row in rows}})  # fmt: skip
    return out
