"""Pattern discovery: co-occurring findings and treatments (association rules) and frequent care sequences.

**Associations.** Each person is a basket of items read from the mart: ``her2_status=positive``,
``received_targeted_therapy=true``, ``age_group_at_diagnosis=80+``... The itemsets of up to three items are
counted exactly with matrix products (:func:`itemset_counts`: pairs ``XᵀX``, triples item by item over the
rows holding it — 1.6 s for 100,000 persons and 60 items, where mlxtend's FP-growth at the same support did
not finish in 10 minutes); each frequent itemset splits into the rules ``A ⇒ b`` (the itemset minus one item
implies it), with their support, confidence and lift.

**Sequences.** Each person's ordered care steps (surgery, radiotherapy, systemic modalities, from
:mod:`~massalia.health.analytics.pathways`): every ordered subsequence of 2 to ``max_length`` steps, gaps
allowed (``surgery → hormone`` matches ``surgery → radiotherapy → hormone``), counted once per person, with
the days between the first two steps.

**Guard against chance.** Mining thousands of candidate rules finds high lifts by chance in small cells.
Each rule is tested with the one-sided hypergeometric (Fisher exact) test of ``A`` and ``b`` co-occurring
more often than under independence, and the p-values of all candidates tested are adjusted by
Benjamini–Hochberg (statsmodels ``multipletests``), as :mod:`~massalia.health.analytics.hypotheses` does. A
pattern is **unexpected** when its observed count is well above the expected ``n_A · n_b / N``
(``lift ≥ min_lift``) and it survives the adjustment (``q < alpha``).

**Disclosure.** A rule is a 2×2 table (A and b, A without b, b without A, neither): with its released counts
any cell can be computed, so a rule is shown only when all four cells reach the threshold; a sequence only
when it and its prefix without it do. Suppressed candidates are counted, never listed.

Examples
--------
>>> rng = np.random.default_rng(0)
>>> a = rng.random(400) < 0.3
>>> b = (a & (rng.random(400) < 0.8)) | (rng.random(400) < 0.1)
>>> items = pd.DataFrame({"a": a, "b": b, "c": rng.random(400) < 0.5})
>>> found = associations(items, min_count=20, max_length=2, threshold=10, alpha=0.05, min_lift=1.5)
>>> [(r["antecedent"], r["consequent"]) for r in found["rules"] if r["unexpected"]]
[(['a'], 'b'), (['b'], 'a')]
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import special, stats
from statsmodels.stats.multitest import multipletests

from massalia.health.analytics.protect import protect_count

MAX_SEQUENCE_STEPS = 10
"""Steps of a person's pathway read for sequences: 10 steps give at most 120 subsequences of 3."""


def item_matrix(frame: pd.DataFrame, variables: Sequence[str], booleans: Iterable[str] = ()) -> pd.DataFrame:
    """One boolean column per item ``variable=value`` (missing values give no item), one row per person.

    ``booleans`` are read as ``true``/``false``; other variables as their string values.

    Examples
    --------
    >>> item_matrix(pd.DataFrame({"s": ["a", None], "x": [True, False]}), ["s", "x"], ["x"]).columns.tolist()
    ['s=a', 'x=false', 'x=true']
    """
    flags = set(booleans)
    columns: dict[str, np.ndarray] = {}
    for name in variables:
        values = frame[name]
        present = values.notna().to_numpy()
        if name in flags:
            labels = np.where(values.astype("boolean").fillna(False).to_numpy(dtype=bool), "true", "false")
        else:
            labels = values.astype(str).to_numpy()
        for level in sorted(set(labels[present].tolist())):
            columns[f"{name}={level}"] = present & (labels == level)
    return pd.DataFrame(columns, index=frame.index).reindex(sorted(columns), axis=1)


def _variable(item: str) -> str:
    return item.split("=", 1)[0]


def enrichment(n: int, n_a: int, n_b: int, n_ab: int) -> dict[str, float]:
    """Expected count under independence, lift, and the one-sided hypergeometric p of ``n_ab`` or more.

    Examples
    --------
    >>> out = enrichment(100, 20, 20, 12)
    >>> out["expected"], out["lift"], out["p"] < 0.001
    (4.0, 3.0, True)
    """
    expected = n_a * n_b / n if n else 0.0
    return {
        "expected": expected,
        "lift": n_ab / expected if expected else float("nan"),
        "p": float(stats.hypergeom.sf(n_ab - 1, n, n_a, n_b)),
    }


def _log_pmf(x: np.ndarray, population: np.ndarray, successes: np.ndarray, draws: np.ndarray) -> np.ndarray:
    def log_choose(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return special.gammaln(a + 1) - special.gammaln(b + 1) - special.gammaln(a - b + 1)

    return (log_choose(successes, x) + log_choose(population - successes, draws - x)
            - log_choose(population, draws))  # fmt: skip


def hypergeom_sf(k: np.ndarray, population: np.ndarray, successes: np.ndarray, draws: np.ndarray) -> np.ndarray:
    """``P(X ≥ k)`` for ``X ~ Hypergeometric(population, successes, draws)``, vectorized.

    scipy's ``hypergeom.sf`` loops in Python over its arguments (36 s for 300,000 tests); this sums the pmf
    from its tail side with the ratio of consecutive terms, all tests at once: above the mean upward from
    ``k``, else ``1 − P(X ≤ k − 1)`` downward, until the terms no longer change the sum.

    Examples
    --------
    >>> out = hypergeom_sf(np.array([12, 3, 0]), np.array([100, 100, 100]), np.array([20, 20, 20]),
    ...                    np.array([20, 20, 20]))
    >>> bool(np.allclose(out, stats.hypergeom.sf(np.array([11, 2, -1]), 100, 20, 20)))
    True
    """
    k, big, good, n = (np.asarray(a, dtype=float) for a in (k, population, successes, draws))
    low, high = np.maximum(0.0, n + good - big), np.minimum(good, n)
    upper = k > n * good / np.maximum(big, 1.0)
    x = np.where(upper, k, k - 1)
    inside = (x >= low) & (x <= high)
    term = np.where(inside, np.exp(_log_pmf(np.clip(x, low, high), big, good, n)), 0.0)
    total = term.copy()
    active = np.flatnonzero(term > 0)
    while active.size:
        xa, ga, na, ba = x[active], good[active], n[active], big[active]
        up = upper[active]
        ratio = np.where(
            up,
            (ga - xa) * (na - xa) / np.maximum((xa + 1) * (ba - ga - na + xa + 1), 1e-300),
            xa * (ba - ga - na + xa) / np.maximum((ga - xa + 1) * (na - xa + 1), 1e-300),
        )
        x[active] = xa + np.where(up, 1.0, -1.0)
        term[active] *= np.where((x[active] >= low[active]) & (x[active] <= high[active]), ratio, 0.0)
        total[active] += term[active]
        active = active[term[active] > total[active] * 1e-16]
    sf = np.where(upper, total, 1.0 - total)
    sf = np.where(k <= low, 1.0, np.where(k > high, 0.0, sf))
    return np.clip(sf, 0.0, 1.0)


def _cells_released(n: int, n_a: int, n_b: int, n_ab: int, threshold: int) -> bool:
    """All four cells of the rule's 2×2 table reach ``threshold`` (else one could be computed from the rest)."""
    return min(n_ab, n_a - n_ab, n_b - n_ab, n - n_a - n_b + n_ab) >= threshold


def _adjusted(pvalues: Sequence[float], alpha: float) -> list[float]:
    if not pvalues:
        return []
    return [float(q) for q in multipletests(list(pvalues), alpha=alpha, method="fdr_bh")[1]]


def itemset_counts(items: np.ndarray, floor: int, max_length: int) -> dict[tuple[int, ...], int]:
    """Persons holding each itemset of 1 to ``max_length`` (at most 3) items, for itemsets held by ``floor`` or more.

    Exact counts by matrix products on float32 (exact up to 2**24 persons): pairs are ``XᵀX``; the triples of
    item ``i`` are ``XᵢᵀXᵢ`` over the rows holding ``i``, kept when every pair in them is frequent (Apriori).

    Examples
    --------
    >>> x = np.array([[1, 1, 1], [1, 1, 0], [1, 0, 1], [0, 1, 1]], dtype=bool)
    >>> sorted(itemset_counts(x, 2, 3).items())
    [((0,), 3), ((0, 1), 2), ((0, 2), 2), ((1,), 3), ((1, 2), 2), ((2,), 3)]
    """
    if max_length > 3:
        raise ValueError("itemsets of more than 3 items are not counted")
    ones = items.astype(np.float32)
    single = items.sum(axis=0)
    out: dict[tuple[int, ...], int] = {(i,): int(c) for i, c in enumerate(single.tolist()) if c >= floor}
    if max_length < 2:
        return out
    pairs = np.rint(ones.T @ ones).astype(np.int64)
    frequent = np.triu(pairs >= floor, k=1)
    for i, j in np.argwhere(frequent).tolist():
        out[(i, j)] = int(pairs[i, j])
    if max_length < 3:
        return out
    for i in range(items.shape[1]):
        partners = np.flatnonzero(frequent[i])
        if partners.size < 2:
            continue
        rows = ones[items[:, i]][:, partners]
        triples = np.rint(rows.T @ rows).astype(np.int64)
        keep = np.triu((triples >= floor) & frequent[np.ix_(partners, partners)], k=1)
        for a, b in np.argwhere(keep).tolist():
            out[(i, int(partners[a]), int(partners[b]))] = int(triples[a, b])
    return out


def associations(
    items: pd.DataFrame,
    *,
    min_count: int,
    max_length: int,
    threshold: int,
    alpha: float,
    min_lift: float,
    top: int = 50,
    max_item_share: float = 0.8,
) -> dict[str, Any]:
    """Association rules ``A ⇒ b`` of the item matrix, tested against chance, protected, ranked.

    A rule with two or more antecedent items must also be **productive** (Webb 2007): each item of ``A``
    must add to the rule, i.e. among the persons with ``A`` minus that item, ``b`` is more frequent in
    those with it (one-sided hypergeometric); the rule's p is the largest of its tests, so that
    ``stage=III & diabetes=true ⇒ chemotherapy`` does not ride on ``stage=III ⇒ chemotherapy``.

    Parameters
    ----------
    items
        One boolean column per item, one row per person.
    min_count
        Fewest persons holding the whole rule for it to be a candidate (raised to ``threshold``).
    max_length
        Most items in a rule (antecedent and consequent), 2 or 3.
    threshold
        The disclosure threshold: every cell of a shown rule's table reaches it.
    alpha, min_lift
        A rule is unexpected when its BH-adjusted p is under ``alpha`` and its lift at least ``min_lift``.
    top
        Most rules listed (unexpected first, by excess persons over the expected, then the others by adjusted p).
    max_item_share
        Items held by more than this share of persons (``comorbidity_copd=false``) are left out: they
        co-occur with everything and multiply the candidates without saying anything.
    """
    n = len(items)
    floor = max(min_count, threshold)
    out: dict[str, Any] = {"persons": protect_count(n, threshold), "items": int(items.shape[1]), "items_mined": 0,
                           "tested": 0, "withheld_small_cells": 0, "rules": []}  # fmt: skip
    if n < max(floor, 1):
        return out
    share = items.sum(axis=0) / n
    frequent = items.loc[:, (share * n >= floor) & (share <= max_item_share)].astype(bool)
    out["items_mined"] = int(frequent.shape[1])
    if frequent.shape[1] < 2:
        return out
    names = frequent.columns.tolist()
    held = {frozenset(names[i] for i in itemset): count
            for itemset, count in itemset_counts(frequent.to_numpy(dtype=bool), floor, max_length).items()}  # fmt: skip
    candidates: list[dict[str, Any]] = []
    tests: list[tuple[int, int, int, int, int]] = []  # (candidate, k, population, draws, successes)
    for itemset, n_ab in held.items():
        if len(itemset) < 2:
            continue
        for consequent in sorted(itemset):
            antecedent = itemset - {consequent}
            if _variable(consequent) in {_variable(item) for item in antecedent}:
                continue  # two levels of one variable cannot co-occur: never a pattern
            n_a, n_b = held[antecedent], held[frozenset({consequent})]
            index = len(candidates)
            tests.append((index, n_ab, n, n_a, n_b))
            for item in antecedent if len(antecedent) > 1 else ():
                base = antecedent - {item}  # productive: ``item`` adds to ``base ⇒ consequent``
                tests.append((index, n_ab, held[base], n_a, held[base | {consequent}]))
            expected = n_a * n_b / n
            candidates.append({"antecedent": sorted(antecedent), "consequent": consequent, "n_ab": n_ab,
                               "n_a": n_a, "n_b": n_b, "expected": expected, "lift": n_ab / expected})  # fmt: skip
    if tests:
        # one vectorized call over every test (see hypergeom_sf: scipy's loops in Python)
        rows, k, population, draws, successes = (np.array(column) for column in zip(*tests, strict=True))
        pvalues = np.zeros(len(candidates))
        np.maximum.at(pvalues, rows, hypergeom_sf(k, population, draws, successes))
        for candidate, p in zip(candidates, pvalues.tolist(), strict=True):
            candidate["p"] = float(p)
    qvalues = _adjusted([c["p"] for c in candidates], alpha)
    shown: list[dict[str, Any]] = []
    for candidate, q in zip(candidates, qvalues, strict=True):
        if not _cells_released(n, candidate["n_a"], candidate["n_b"], candidate["n_ab"], threshold):
            out["withheld_small_cells"] += 1
            continue
        shown.append(_rule(candidate, q, n, threshold, alpha=alpha, min_lift=min_lift))
    # unexpected first, the largest excess of persons over the expected first; then the others by adjusted p
    shown.sort(key=lambda r: (not r["unexpected"], -r["excess_persons"] if r["unexpected"] else r["q"],
                              r["antecedent"], r["consequent"]))  # fmt: skip
    out["tested"] = len(candidates)
    out["significant"] = sum(1 for q in qvalues if q < alpha)
    out["rules"] = shown[:top]
    return out


def _rule(candidate: dict[str, Any], q: float, n: int, threshold: int, *, alpha: float,
          min_lift: float) -> dict[str, Any]:  # fmt: skip
    n_ab, n_a, n_b = candidate["n_ab"], candidate["n_a"], candidate["n_b"]
    return {
        "antecedent": candidate["antecedent"],
        "consequent": candidate["consequent"],
        "persons": protect_count(n_ab, threshold),
        "antecedent_persons": protect_count(n_a, threshold),
        "consequent_persons": protect_count(n_b, threshold),
        "support": round(n_ab / n, 4),
        "confidence": round(n_ab / n_a, 4),
        "lift": round(candidate["lift"], 4),
        "expected_persons": round(candidate["expected"], 1),
        "excess_persons": round(n_ab - candidate["expected"], 1),
        "p": candidate["p"],
        "q": q,
        "unexpected": bool(q < alpha and candidate["lift"] >= min_lift),
    }


def person_sequences(
    steps: pd.DataFrame, persons: Iterable[int], *, max_steps: int
) -> dict[int, list[tuple[str, float]]]:
    """Each person's first ``max_steps`` steps as ``(label, day)``, repeated consecutive labels merged.

    ``steps`` has person_id, day, label, sorted by person and day (:func:`.pathways.pathway_steps`).
    """
    out: dict[int, list[tuple[str, float]]] = {int(p): [] for p in persons}
    for person, label, day in zip(steps["person_id"].tolist(), steps["label"].tolist(), steps["day"].tolist(),
                                  strict=True):  # fmt: skip
        path = out.get(int(person))
        if path is None or len(path) >= max_steps or (path and path[-1][0] == label):
            continue
        path.append((str(label), float(day)))
    return out


def frequent_sequences(
    paths: dict[int, list[tuple[str, float]]],
    *,
    min_count: int,
    max_length: int,
    threshold: int,
    alpha: float,
    min_lift: float,
    top: int = 50,
) -> dict[str, Any]:
    """Ordered subsequences (gaps allowed) of 2 to ``max_length`` steps held by at least ``min_count`` persons.

    For ``prefix → last``: support, confidence (persons with the sequence among those with the prefix), lift
    against the prefix and the last step occurring independently, the one-sided hypergeometric p (BH
    adjusted over the candidates), and for two-step sequences the days from the first step to the next
    ``last`` after it (quartiles, over at least ``threshold`` persons).
    """
    n = len(paths)
    floor = max(min_count, threshold)
    held: Counter[tuple[str, ...]] = Counter()
    gaps: dict[tuple[str, ...], list[float]] = {}
    for path in paths.values():
        labels = [label for label, _ in path]
        seen: set[tuple[str, ...]] = set()
        for length in range(1, max_length + 1):
            seen.update(itertools.combinations(labels, length))
        held.update(seen)
        first: dict[tuple[str, str], float] = {}
        for i, (a, day_a) in enumerate(path):
            for b, day_b in path[i + 1 :]:
                first.setdefault((a, b), day_b - day_a)
        for pair, gap in first.items():
            gaps.setdefault(pair, []).append(gap)
    candidates: list[dict[str, Any]] = []
    for sequence, n_seq in held.items():
        if len(sequence) < 2 or n_seq < floor:
            continue
        n_prefix, n_last = held[sequence[:-1]], held[(sequence[-1],)]
        candidates.append({"sequence": sequence, "n_seq": n_seq, "n_prefix": n_prefix, "n_last": n_last,
                           **enrichment(n, n_prefix, n_last, n_seq)})  # fmt: skip
    qvalues = _adjusted([c["p"] for c in candidates], alpha)
    shown: list[dict[str, Any]] = []
    withheld = 0
    for candidate, q in zip(candidates, qvalues, strict=True):
        n_seq, n_prefix = candidate["n_seq"], candidate["n_prefix"]
        if n_prefix - n_seq < threshold or candidate["n_last"] < threshold:
            withheld += 1
            continue
        sequence = candidate["sequence"]
        entry: dict[str, Any] = {
            "steps": list(sequence),
            "persons": protect_count(n_seq, threshold),
            "prefix_persons": protect_count(n_prefix, threshold),
            "support": round(n_seq / n, 4),
            "confidence": round(n_seq / n_prefix, 4),
            "lift": round(candidate["lift"], 4),
            "expected_persons": round(candidate["expected"], 1),
            "p": candidate["p"],
            "q": q,
            "unexpected": bool(q < alpha and candidate["lift"] >= min_lift),
            "days_between": None,
        }
        if len(sequence) == 2:
            entry["days_between"] = _quartiles(gaps.get((sequence[0], sequence[1]), []), threshold)
        shown.append(entry)
    shown.sort(key=lambda s: (-s["support"], s["steps"]))
    return {"persons": protect_count(n, threshold), "candidates": len(candidates), "tested": len(candidates),
            "withheld_small_cells": withheld, "sequences": shown[:top]}  # fmt: skip


def _quartiles(values: Sequence[float], threshold: int) -> dict[str, Any] | None:
    if len(values) < threshold:
        return None
    q1, median, q3 = np.percentile(np.asarray(values, dtype=float), [25, 50, 75])
    return {"median": round(float(median), 1), "q1": round(float(q1), 1), "q3": round(float(q3), 1)}
