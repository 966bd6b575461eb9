"""Hypothesis tests between two cohorts: the test chosen by the variable's type, effect sizes, multiplicity.

Numbers (``integer``, ``number``): Welch's t-test and the Mann–Whitney U test (scipy), Hedges' g with its
95 % CI (Hedges & Olkin's large-sample standard error). Booleans and categories: Fisher's exact test for a
2×2 table with the risk difference (Wald 95 % CI), the chi-square test otherwise with Cramér's V (95 %
percentile bootstrap CI, fixed seed). Several variables: Benjamini–Hochberg and Holm adjusted p-values
(statsmodels ``multipletests``), both reported.

Examples
--------
>>> import numpy as np
>>> result = compare_numbers(np.arange(20.0), np.arange(20.0) + 10)
>>> result["test"], round(result["effect"]["estimate"], 2)
('welch_t', -1.66)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import stats
from statsmodels.stats.multitest import multipletests

from massalia.health.analytics.protect import protect_count

Z95 = 1.959963984540054
BOOTSTRAP = 400
"""Resamples of the Cramér's V bootstrap CI (a few milliseconds per variable)."""


def _float(value: float) -> float | None:
    return None if value is None or not np.isfinite(value) else float(value)


def hedges_g(a: np.ndarray, b: np.ndarray) -> dict[str, Any]:
    """Hedges' g of ``a`` minus ``b`` (pooled SD, small-sample correction) with its 95 % CI."""
    n1, n2 = a.size, b.size
    pooled = np.sqrt(((n1 - 1) * a.var(ddof=1) + (n2 - 1) * b.var(ddof=1)) / (n1 + n2 - 2))
    d = (a.mean() - b.mean()) / pooled if pooled > 0 else 0.0
    g = d * (1 - 3 / (4 * (n1 + n2) - 9))
    se = np.sqrt((n1 + n2) / (n1 * n2) + g**2 / (2 * (n1 + n2)))
    return {"measure": "hedges_g", "estimate": float(g), "lower": float(g - Z95 * se), "upper": float(g + Z95 * se)}


def compare_numbers(a: np.ndarray, b: np.ndarray) -> dict[str, Any]:
    """Welch's t-test (the primary p-value), Mann–Whitney U, Hedges' g; ``a`` and ``b`` without missing values."""
    welch = stats.ttest_ind(a, b, equal_var=False)
    mann_whitney = stats.mannwhitneyu(a, b, alternative="two-sided")
    return {
        "test": "welch_t",
        "statistic": _float(welch.statistic),
        "p": _float(welch.pvalue),
        "mann_whitney": {"statistic": _float(mann_whitney.statistic), "p": _float(mann_whitney.pvalue)},
        "effect": hedges_g(a, b),
        "summary": {
            name: {
                "mean": round(float(x.mean()), 4),
                "sd": round(float(x.std(ddof=1)), 4),
                "median": round(float(np.median(x)), 4),
            }
            for name, x in (("group_a", a), ("group_b", b))
        },
    }


def cramers_v(table: np.ndarray) -> float:
    """Cramér's V of a contingency table (rows: groups), 0 for a table without variation."""
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2:
        return 0.0
    chi2 = stats.chi2_contingency(table, correction=False).statistic
    return float(np.sqrt(chi2 / (table.sum() * (min(table.shape) - 1))))


def compare_levels(a: Sequence[str], b: Sequence[str], levels: Sequence[str], *, threshold: int,
                   seed: int = 0) -> dict[str, Any]:  # fmt: skip
    """Fisher's exact test and risk difference (2 levels) or chi-square and Cramér's V (more levels).

    ``levels`` are the catalogue's (in order; a boolean's are ``true``, ``false``); the released table has
    its counts protected. The risk difference is of the first level, group a minus group b.
    """
    observed = [level for level in levels if level in set(a) | set(b)]
    table = np.array([[sum(1 for x in group if x == level) for level in observed] for group in (a, b)])
    cells = {level: {"group_a": protect_count(table[0, i], threshold), "group_b": protect_count(table[1, i], threshold)}
             for i, level in enumerate(observed)}  # fmt: skip
    if len(observed) < 2:
        return {"test": "none", "statistic": None, "p": None, "effect": None, "table": cells,
                "note": "a single level is observed in both groups: nothing to test"}  # fmt: skip
    if len(observed) == 2:
        odds_ratio, p = stats.fisher_exact(table)
        n1, n2 = table.sum(axis=1)
        p1, p2 = table[0, 0] / n1, table[1, 0] / n2
        se = np.sqrt(p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2)
        effect = {"measure": "risk_difference", "level": observed[0], "estimate": float(p1 - p2),
                  "lower": float(p1 - p2 - Z95 * se), "upper": float(p1 - p2 + Z95 * se)}  # fmt: skip
        return {"test": "fisher_exact", "statistic": _float(odds_ratio), "p": _float(p), "effect": effect,
                "table": cells}  # fmt: skip
    chi2 = stats.chi2_contingency(table, correction=False)
    rng = np.random.default_rng(seed)
    sizes = table.sum(axis=1)
    shares = table / sizes[:, None]
    draws = [cramers_v(np.vstack([rng.multinomial(sizes[i], shares[i]) for i in range(2)])) for _ in range(BOOTSTRAP)]
    effect = {"measure": "cramers_v", "estimate": cramers_v(table), "lower": float(np.quantile(draws, 0.025)),
              "upper": float(np.quantile(draws, 0.975))}  # fmt: skip
    return {"test": "chi_square", "statistic": _float(chi2.statistic), "dof": int(chi2.dof), "p": _float(chi2.pvalue),
            "effect": effect, "table": cells}  # fmt: skip


def adjust(pvalues: Sequence[float], alpha: float) -> dict[str, list[float]]:
    """Benjamini–Hochberg and Holm adjusted p-values (statsmodels ``multipletests``), in the input order."""
    if not pvalues:
        return {"bh": [], "holm": []}
    return {method: [float(p) for p in multipletests(list(pvalues), alpha=alpha, method=name)[1]]
            for method, name in (("bh", "fdr_bh"), ("holm", "holm"))}  # fmt: skip
