"""k-anonymity over quasi-identifiers: measure it, and generalize a table until it holds.

A table is *k-anonymous* over its quasi-identifiers (age, sex, postcode, diagnosis date...) when every
combination of their values that occurs is shared by at least ``k`` records: the rows with the same
combination form an *equivalence class*, and ``k`` is the size of the smallest class.

Generalization hierarchies coarsen one column step by step (level 0 is the value as is; the top level
is ``"*"`` for every row, nulls included):

- ``NumberBands``: numbers → bands of growing width (``40-44`` → ``40-49`` → ``40-59``...);
- ``DateLevels``: dates → month (``2020-03``) → year (``2020``) → decade (``2020s``);
- ``RareToOther``: categories seen fewer than ``t`` times → ``"other"``, for growing ``t``;
- ``Truncate``: text cut to fewer leading characters (postcode ``13005`` → ``130**`` → ``13***``);
- ``Suppress``: the single step to ``"*"``.

``generalize_to_k`` looks for the level of each column that reaches k with the least information lost
(the share of each column's entropy that the generalization removes). Small lattices of level
combinations are searched exhaustively, in order of loss; larger ones greedily, one column one level at a
time, taking the step that brings the most records into classes of size ≥ k per unit of loss, then walking
back any step that turned out unnecessary. The few records still in small classes may be suppressed
(removed) within a budget. When the target cannot be met under the policy it refuses with
``KAnonymityError``.
Everything is vectorised: classes are found by dictionary-encoding each column and ``numpy.unique``.
"""

from __future__ import annotations

import itertools
import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

TOP = "*"
"""The value of every cell at a hierarchy's top level."""


class KAnonymityError(ValueError):
    """The target k cannot be reached under the generalization policy (the message says how far it got)."""

    def __init__(self, message: str, *, target: int, best_k: int, records_below: int) -> None:
        super().__init__(message)
        self.target = target
        self.best_k = best_k
        self.records_below = records_below


# -- measuring ---------------------------------------------------------------------------------
def _check_columns(table: pa.Table, columns: Sequence[str]) -> list[str]:
    names = list(columns)
    missing = [name for name in names if name not in table.column_names]
    if missing:
        raise KeyError(f"quasi-identifier column(s) {missing} not in the table (columns: {table.column_names})")
    if len(set(names)) != len(names):
        raise ValueError(f"quasi-identifiers listed twice: {names}")
    return names


def _codes(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """Integer codes equal exactly when the values are equal (null is one value of its own)."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    if pa.types.is_dictionary(column.type):
        column = column.dictionary_decode()
    if pa.types.is_floating(column.type):
        # -0.0 and 0.0 are equal values; normalise them so the hash sees one value.
        column = pc.if_else(pc.equal(column, 0), pa.scalar(0.0, column.type), column)
    encoded = column.dictionary_encode(null_encoding="encode")
    return np.asarray(encoded.indices.to_numpy(zero_copy_only=False), dtype=np.int64)


def class_ids(table: pa.Table, quasi_identifiers: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """The equivalence class of every row and the size of every class.

    Returns
    -------
    (ids, sizes)
        ``ids[i]`` is row ``i``'s class number and ``sizes[c]`` the number of rows in class ``c``.

    Examples
    --------
    >>> ids, sizes = class_ids(pa.table({"sex": ["F", "M", "F"]}), ["sex"])
    >>> sizes[ids].tolist()
    [2, 1, 2]
    """
    names = _check_columns(table, quasi_identifiers)
    return _classes([_codes(table.column(name)) for name in names], table.num_rows)


def _classes(codes: Sequence[np.ndarray], rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Class ids and sizes from each column's integer codes."""
    if rows == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    key = np.zeros(rows, dtype=np.int64)
    for column in codes:
        # Fold the columns into one key, re-numbering after each so the product never overflows.
        combined = key * (int(column.max()) + 1) + column
        _, key = np.unique(combined, return_inverse=True)
        key = key.reshape(-1).astype(np.int64)
    return key, np.bincount(key)


def _fold(key: np.ndarray, column: np.ndarray) -> np.ndarray:
    """The class key over ``key``'s columns and one more (re-numbered 0..n-1, so it never overflows)."""
    if len(key) == 0:
        return key
    combined = key * (int(column.max()) + 1) + column
    return np.unique(combined, return_inverse=True)[1].reshape(-1).astype(np.int64)


@dataclass(frozen=True)
class KReport:
    """How k-anonymous a table is over its quasi-identifiers.

    Attributes
    ----------
    k
        The size of the smallest equivalence class (``0`` for an empty table; the row count without
        quasi-identifiers).
    classes
        Number of equivalence classes.
    rows
        Number of records.
    target
        The k asked for (``None`` when only measured).
    classes_below, records_below
        Classes smaller than ``target`` and the records in them (``0`` without a target).
    """

    k: int
    classes: int
    rows: int
    target: int | None = None
    classes_below: int = 0
    records_below: int = 0

    @property
    def satisfied(self) -> bool:
        """Whether every class has at least ``target`` records (an empty table satisfies any target)."""
        return self.target is None or self.records_below == 0


def k_anonymity(table: pa.Table, quasi_identifiers: Sequence[str], target: int | None = None) -> KReport:
    """Measure k over ``quasi_identifiers`` and, given a ``target``, the classes and records below it.

    Examples
    --------
    >>> report = k_anonymity(pa.table({"age": [40, 40, 41], "sex": ["F", "F", "F"]}), ["age", "sex"], target=2)
    >>> report.k, report.classes, report.records_below
    (1, 2, 1)
    """
    if target is not None:
        _check_target(target)
    _, sizes = class_ids(table, quasi_identifiers)
    small = sizes < target if target is not None else np.zeros(len(sizes), dtype=bool)
    return KReport(
        k=int(sizes.min()) if len(sizes) else 0,
        classes=len(sizes),
        rows=table.num_rows,
        target=target,
        classes_below=int(small.sum()),
        records_below=int(sizes[small].sum()),
    )


def _check_target(k: int) -> int:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    return k


# -- hierarchies -------------------------------------------------------------------------------
class Hierarchy(ABC):
    """A generalization ladder for one column: level 0 keeps the values, level ``height`` is all ``"*"``."""

    @property
    @abstractmethod
    def height(self) -> int:
        """Number of levels above the original values (the last one being ``"*"``)."""

    @abstractmethod
    def _generalize(self, column: pa.Array, level: int) -> pa.Array:
        """Values at ``level``, for ``1 <= level < height``."""

    @abstractmethod
    def describe(self, level: int) -> str:
        """What ``level`` does, in words (for manifests and reports)."""

    def generalize(self, column: pa.Array | pa.ChunkedArray, level: int) -> pa.Array | pa.ChunkedArray:
        """The column generalized to ``level`` (0: unchanged; ``height``: ``"*"`` everywhere)."""
        if isinstance(level, bool) or not isinstance(level, int) or not 0 <= level <= self.height:
            raise ValueError(f"level {level!r} outside 0..{self.height} for {type(self).__name__}")
        if level == 0:
            return column
        if level == self.height:
            return pa.array([TOP] * len(column), pa.string())
        array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
        return self._generalize(array, level)

    def _top_description(self, level: int) -> str | None:
        if level == 0:
            return "unchanged"
        if level == self.height:
            return f"replaced by '{TOP}'"
        return None


class Suppress(Hierarchy):
    """One step: every value becomes ``"*"`` (for columns with nothing in between, such as sex)."""

    @property
    def height(self) -> int:  # noqa: D102 (documented on the base class)
        return 1

    def _generalize(self, column: pa.Array, level: int) -> pa.Array:  # pragma: no cover (no middle level)
        raise AssertionError("Suppress has no intermediate level")

    def describe(self, level: int) -> str:  # noqa: D102
        return self._top_description(level) or ""


class NumberBands(Hierarchy):
    """Numbers → bands ``lo-hi`` (inclusive labels of ``[lo, lo + width)``) of growing width.

    Parameters
    ----------
    widths
        Band widths, one level each, each a whole multiple of the one before (e.g. ``(5, 10, 20, 40)`` years
        of age), so that every band lies inside one band of the next level.
    origin
        Where bands start (``0``: bands ``0-4``, ``5-9``...).

    Examples
    --------
    >>> NumberBands((5, 10)).generalize(pa.array([42, 47, None]), 2).to_pylist()
    ['40-49', '40-49', None]
    """

    def __init__(self, widths: Sequence[float] = (5, 10, 20, 40), origin: float = 0) -> None:
        widths = tuple(widths)
        nested = all(b > a and float(b / a).is_integer() for a, b in itertools.pairwise(widths))
        if not widths or any(w <= 0 for w in widths) or not nested:
            raise ValueError(f"band widths must be positive, each a multiple (> 1) of the one before; got {widths}")
        self.widths = widths
        self.origin = origin

    @property
    def height(self) -> int:  # noqa: D102
        return len(self.widths) + 1

    def _generalize(self, column: pa.Array, level: int) -> pa.Array:
        kind = column.type
        if not (pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind)):
            raise TypeError(f"NumberBands needs a numeric column, got {kind}")
        width = self.widths[level - 1]
        values = pc.cast(column, pa.float64())
        lows = pc.add(pc.multiply(pc.floor(pc.divide(pc.subtract(values, self.origin), width)), width), self.origin)
        if pa.types.is_integer(column.type) and float(width).is_integer() and float(self.origin).is_integer():
            # Integers: inclusive labels, 40-44.
            low_text = pc.cast(pc.cast(lows, pa.int64()), pa.string())
            high_text = pc.cast(pc.cast(pc.add(lows, width - 1), pa.int64()), pa.string())
            return pc.binary_join_element_wise(low_text, high_text, "-")
        # Reals: half-open intervals, [40, 45); NaN (a value of its own) keeps the label "NaN".
        finite = pc.is_finite(lows)
        low_text = pc.cast(lows, pa.string())
        high_text = pc.cast(pc.add(lows, width), pa.string())
        labels = pc.binary_join_element_wise(pa.scalar("["), low_text, pa.scalar(", "), high_text, pa.scalar(")"), "")
        return pc.if_else(finite, labels, pc.cast(values, pa.string()))

    def describe(self, level: int) -> str:  # noqa: D102
        return self._top_description(level) or f"bands of width {self.widths[level - 1]:g}"


class DateLevels(Hierarchy):
    """Dates or timestamps → month ``2020-03`` → year ``2020`` → decade ``2020s``.

    Examples
    --------
    >>> import datetime as dt
    >>> DateLevels().generalize(pa.array([dt.date(2021, 3, 9)]), 2).to_pylist()
    ['2021']
    """

    _STEPS = ("month", "year", "decade")

    @property
    def height(self) -> int:  # noqa: D102
        return len(self._STEPS) + 1

    def _generalize(self, column: pa.Array, level: int) -> pa.Array:
        if not (pa.types.is_date(column.type) or pa.types.is_timestamp(column.type)):
            raise TypeError(f"DateLevels needs a date or timestamp column, got {column.type}")
        year = pc.year(column)
        step = self._STEPS[level - 1]
        if step == "month":
            return pc.strftime(column, format="%Y-%m")
        if step == "year":
            return pc.cast(year, pa.string())
        decade = pc.multiply(pc.divide(year, 10), 10)
        return pc.binary_join_element_wise(pc.cast(decade, pa.string()), pa.scalar("s"), "")

    def describe(self, level: int) -> str:  # noqa: D102
        return self._top_description(level) or f"dates to the {self._STEPS[level - 1]}"


class RareToOther(Hierarchy):
    """Categories seen fewer than ``threshold`` times in the column → ``"other"``, for growing thresholds.

    Examples
    --------
    >>> RareToOther((2,)).generalize(pa.array(["a", "a", "b", None]), 1).to_pylist()
    ['a', 'a', 'other', None]
    """

    def __init__(self, thresholds: Sequence[int] = (5, 10, 20, 50), other: str = "other") -> None:
        thresholds = tuple(thresholds)
        if not thresholds or any(t < 2 for t in thresholds) or sorted(set(thresholds)) != list(thresholds):
            raise ValueError(f"thresholds must be ≥ 2 and strictly growing, got {thresholds}")
        self.thresholds = thresholds
        self.other = other

    @property
    def height(self) -> int:  # noqa: D102
        return len(self.thresholds) + 1

    def _generalize(self, column: pa.Array, level: int) -> pa.Array:
        text = column if pa.types.is_string(column.type) else pc.cast(column, pa.string())
        counts = pc.value_counts(text.drop_null())
        values, frequencies = counts.field("values"), counts.field("counts")
        rare = values.filter(pc.less(frequencies, self.thresholds[level - 1]))
        return pc.if_else(pc.is_in(text, value_set=rare), pa.scalar(self.other), text)

    def describe(self, level: int) -> str:  # noqa: D102
        top = self._top_description(level)
        return top or f"values seen fewer than {self.thresholds[level - 1]} times → '{self.other}'"


class Truncate(Hierarchy):
    """Text cut to its first ``n`` characters, the rest masked by ``*`` (postcode ``13005`` → ``13***``).

    Examples
    --------
    >>> Truncate((3, 2)).generalize(pa.array(["13005", "75"]), 2).to_pylist()
    ['13***', '75']
    """

    def __init__(self, keep: Sequence[int] = (3, 2, 1)) -> None:
        keep = tuple(keep)
        if not keep or any(n < 1 for n in keep) or any(b >= a for a, b in itertools.pairwise(keep)):
            raise ValueError(f"kept lengths must be ≥ 1 and strictly decreasing, got {keep}")
        self.keep = keep

    @property
    def height(self) -> int:  # noqa: D102
        return len(self.keep) + 1

    def _generalize(self, column: pa.Array, level: int) -> pa.Array:
        text = column if pa.types.is_string(column.type) else pc.cast(column, pa.string())
        keep = self.keep[level - 1]
        head = pc.utf8_slice_codeunits(text, 0, keep)
        masked_length = pc.max_element_wise(pc.subtract(pc.utf8_length(text), keep), 0)
        return pc.binary_join_element_wise(head, pc.binary_repeat(pa.scalar("*"), masked_length), "")

    def describe(self, level: int) -> str:  # noqa: D102
        return self._top_description(level) or f"first {self.keep[level - 1]} character(s) kept"


def default_hierarchy(kind: pa.DataType) -> Hierarchy:
    """The ladder used for a column of this Arrow type when a policy names none.

    Numbers → ``NumberBands``; dates and timestamps → ``DateLevels``; booleans → ``Suppress``;
    anything else (text, categories) → ``RareToOther``.
    """
    if pa.types.is_boolean(kind):
        return Suppress()
    if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind):
        return NumberBands()
    if pa.types.is_date(kind) or pa.types.is_timestamp(kind):
        return DateLevels()
    return RareToOther()


# -- generalizing ------------------------------------------------------------------------------
@dataclass(frozen=True)
class GeneralizationPolicy:
    """What ``generalize_to_k`` may do.

    Attributes
    ----------
    hierarchies
        The ladder of each quasi-identifier (those absent get ``default_hierarchy`` of their type).
    max_levels
        The highest level allowed per column (absent: the hierarchy's top, ``"*"``); ``0`` forbids
        generalizing that column.
    max_suppression
        The fraction of records (0 to 1) that may be removed when they are left in classes below k.
    weights
        How much each column's information loss counts relative to the others (default 1 each).
    """

    hierarchies: Mapping[str, Hierarchy] = field(default_factory=dict)
    max_levels: Mapping[str, int] = field(default_factory=dict)
    max_suppression: float = 0.0
    weights: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 0.0 <= self.max_suppression <= 1.0:
            raise ValueError(f"max_suppression is a fraction of records from 0 to 1, got {self.max_suppression!r}")
        bad = {name: w for name, w in self.weights.items() if not w > 0}
        if bad:
            raise ValueError(f"weights must be positive: {bad}")


@dataclass(frozen=True)
class Generalization:
    """The result of ``generalize_to_k``.

    Attributes
    ----------
    table
        The released table: quasi-identifiers generalized, suppressed records removed, other columns untouched.
    k
        The k achieved on ``table`` (``0`` if it is empty).
    levels
        The level applied to each quasi-identifier.
    applied
        One entry per generalized column: ``{"column", "level", "height", "hierarchy", "description"}``.
    suppressed
        How many records were removed.
    kept
        The positions, in the input table, of the rows of ``table`` (in order).
    information_loss
        Share of the quasi-identifiers' entropy lost (0: none, 1: all ``"*"``), weighted mean over the columns.
    search
        ``"exhaustive"`` (the least loss within the policy) or ``"greedy"`` (large lattices).
    """

    table: pa.Table
    k: int
    levels: dict[str, int]
    applied: list[dict[str, Any]]
    suppressed: int
    kept: pa.Array
    information_loss: float
    search: str


class _Ladders:
    """Generalized columns per (column, level), computed once each, with their entropy."""

    def __init__(self, table: pa.Table, names: list[str], policy: GeneralizationPolicy) -> None:
        self.table = table
        self.names = names
        self.hierarchies = {
            name: policy.hierarchies.get(name) or default_hierarchy(table.schema.field(name).type) for name in names
        }
        self.caps = {}
        for name in names:
            cap = policy.max_levels.get(name, self.hierarchies[name].height)
            if isinstance(cap, bool) or not isinstance(cap, int) or not 0 <= cap <= self.hierarchies[name].height:
                raise ValueError(f"max level of {name!r} must be 0..{self.hierarchies[name].height}, got {cap!r}")
            self.caps[name] = cap
        self.weights = {name: float(policy.weights.get(name, 1.0)) for name in names}
        self._columns: dict[tuple[str, int], Any] = {}
        self._entropy: dict[tuple[str, int], tuple[float, int]] = {}
        self._codes: dict[tuple[str, int], np.ndarray] = {}

    def column(self, name: str, level: int) -> Any:
        if (name, level) not in self._columns:
            self._columns[(name, level)] = self.hierarchies[name].generalize(self.table.column(name), level)
        return self._columns[(name, level)]

    def codes(self, name: str, level: int) -> np.ndarray:
        if (name, level) not in self._codes:
            self._codes[(name, level)] = _codes(self.column(name, level))
        return self._codes[(name, level)]

    def entropy(self, name: str, level: int) -> tuple[float, int]:
        """Shannon entropy (bits) of the column at ``level`` and its number of distinct values."""
        if (name, level) not in self._entropy:
            counts = np.bincount(self.codes(name, level))
            shares = counts[counts > 0] / counts.sum()
            self._entropy[(name, level)] = (float(-(shares * np.log2(shares)).sum()), int((counts > 0).sum()))
        return self._entropy[(name, level)]

    def column_loss(self, name: str, level: int) -> float:
        """Share of the column's information (entropy) lost at ``level``: 0 unchanged, 1 all ``"*"``."""
        original = self.entropy(name, 0)[0]
        if level == 0 or original == 0:
            return 0.0
        return max(0.0, 1.0 - self.entropy(name, level)[0] / original)

    def loss(self, levels: Mapping[str, int]) -> float:
        total = sum(self.weights.values())
        if not total:
            return 0.0
        return sum(self.weights[n] * self.column_loss(n, lv) for n, lv in levels.items()) / total

    def next_level(self, name: str, level: int) -> int | None:
        """The next allowed level that actually merges values (levels that change nothing are skipped)."""
        distinct = self.entropy(name, level)[1]
        for candidate in range(level + 1, self.caps[name] + 1):
            if self.entropy(name, candidate)[1] < distinct:
                return candidate
        return None

    def canonical(self, levels: Mapping[str, int]) -> dict[str, int]:
        """The lowest level giving the same values for each column (levels that changed nothing undone)."""
        out = dict(levels)
        for name in levels:
            while out[name] > 0 and self.entropy(name, out[name] - 1)[1] == self.entropy(name, out[name])[1]:
                out[name] -= 1
        return out

    def view(self, levels: Mapping[str, int]) -> pa.Table:
        view = self.table.select([])  # keeps the row count when there is no quasi-identifier
        for name, level in levels.items():
            view = view.append_column(name, self.column(name, level))
        return view

    def keys_without_each(self, levels: Mapping[str, int]) -> dict[str, np.ndarray]:
        """For each column, the class key of the rows over every *other* column at ``levels``.

        Built from prefix and suffix folds, so trying one move of each of ``C`` columns costs ``O(C)``
        groupings instead of ``O(C²)``: what makes the greedy search usable on a hundred columns.
        """
        rows = self.table.num_rows
        codes = [self.codes(name, levels[name]) for name in self.names]
        prefix = [np.zeros(rows, dtype=np.int64)]
        for column in codes:
            prefix.append(_fold(prefix[-1], column))
        suffix = [np.zeros(rows, dtype=np.int64)]
        for column in reversed(codes):
            suffix.append(_fold(suffix[-1], column))
        suffix.reverse()  # suffix[i]: the key over columns i..C-1
        return {name: _fold(prefix[i], suffix[i + 1]) for i, name in enumerate(self.names)}

    def below_with(self, others: np.ndarray, name: str, level: int, k: int) -> int:
        """Records in classes smaller than ``k`` when ``name`` moves to ``level`` and the rest stay (``others``)."""
        key = _fold(others, self.codes(name, level))
        sizes = np.bincount(key)
        return int(sizes[sizes < k].sum())

    def below(self, levels: Mapping[str, int], k: int) -> tuple[int, np.ndarray]:
        """Records in classes smaller than ``k`` at ``levels``, and which."""
        ids, sizes = _classes([self.codes(name, levels[name]) for name in self.names], self.table.num_rows)
        small = sizes[ids] < k
        return int(small.sum()), small


EXHAUSTIVE_NODES = 1024
"""Lattices of at most this many level combinations are searched exhaustively (optimal); larger ones greedily."""

EXHAUSTIVE_CELLS = 20_000_000
"""...and only while combinations × records stays below this (each combination is one grouping pass)."""


def _exhaustive(ladders: _Ladders, k: int, budget: int) -> dict[str, int] | None:
    """The least-loss level combination within the caps that leaves at most ``budget`` records below k.

    Combinations are tried in order of loss; one below a known failure (coarser on no column) is skipped,
    since with nested hierarchies it fails too.
    """
    names = ladders.names
    nodes = list(itertools.product(*(range(ladders.caps[name] + 1) for name in names)))
    nodes.sort(key=lambda node: (round(ladders.loss(dict(zip(names, node, strict=True))), 12), sum(node), node))
    failures: list[tuple[int, ...]] = []
    for node in nodes:
        if any(all(a <= b for a, b in zip(node, failed, strict=True)) for failed in failures):
            continue
        levels = dict(zip(names, node, strict=True))
        if ladders.below(levels, k)[0] <= budget:
            return levels
        failures.append(node)
    return None


def _greedy(ladders: _Ladders, k: int, budget: int) -> dict[str, int] | None:
    """Climb one column one (effective) level at a time, best records-rescued-per-loss first; then walk back."""
    names = ladders.names
    levels = dict.fromkeys(names, 0)
    below = ladders.below(levels, k)[0]
    total = sum(ladders.weights.values()) or 1.0
    order: list[str] = []
    while below > budget:
        nexts = {name: ladders.next_level(name, levels[name]) for name in names}
        steps = {name: step for name, step in nexts.items() if step is not None}
        candidates = list(steps)
        if not candidates:
            return None
        scores: dict[str, tuple[float, float, int]] = {}
        outcome: dict[str, int] = {}
        others = ladders.keys_without_each(levels)
        for position, name in enumerate(candidates):
            outcome[name] = ladders.below_with(others[name], name, steps[name], k)
            # The loss is a weighted mean over columns: a one-column move changes one term only.
            change = ladders.column_loss(name, steps[name]) - ladders.column_loss(name, levels[name])
            cost = ladders.weights[name] * change / total
            gain = below - outcome[name]
            ratio = gain / cost if cost > 0 else (math.inf if gain > 0 else 0.0)
            # Most records rescued per unit of loss; then the cheaper step; then the column order.
            scores[name] = (-ratio, cost, position)
        chosen = min(candidates, key=scores.__getitem__)
        levels[chosen] = steps[chosen]
        order.append(chosen)
        below = outcome[chosen]
    # Walk back: undo steps (latest first) that are not needed to stay within the budget.
    for name in reversed(order):
        while levels[name] > 0:
            trial = {**levels, name: levels[name] - 1}
            if ladders.below(trial, k)[0] > budget:
                break
            levels = trial
    return levels


def generalize_to_k(
    table: pa.Table,
    quasi_identifiers: Sequence[str],
    k: int,
    policy: GeneralizationPolicy | None = None,
) -> Generalization:
    """Generalize (and if allowed suppress) until every equivalence class has at least ``k`` records.

    Information loss is measured per column as the share of its entropy lost (a level that merges nothing
    costs nothing; ``"*"`` costs everything), averaged over the quasi-identifiers with the policy's weights.
    Small lattices (at most ``EXHAUSTIVE_NODES`` level combinations) are searched exhaustively for the
    least loss; larger ones greedily. Residual records in classes below ``k`` are suppressed within the
    policy's budget.

    Parameters
    ----------
    table
        The records; only the ``quasi_identifiers`` columns are changed.
    quasi_identifiers
        The columns an attacker may know from elsewhere.
    k
        The target.
    policy
        Hierarchies, level caps, suppression budget and weights (default: default ladders, no suppression).

    Raises
    ------
    KAnonymityError
        When the caps and the suppression budget cannot bring every class to ``k``, or when the table
        has fewer than ``k`` records (nothing can make it k-anonymous but releasing nothing).

    Examples
    --------
    >>> t = pa.table({"age": [41, 42, 43, 57, 58, 59], "dx": ["a", "b", "c", "d", "e", "f"]})
    >>> result = generalize_to_k(t, ["age"], 3, GeneralizationPolicy({"age": NumberBands((10,))}))
    >>> result.table.column("age").to_pylist(), result.k, result.search
    (['40-49', '40-49', '40-49', '50-59', '50-59', '50-59'], 3, 'exhaustive')
    """
    _check_target(k)
    policy = policy or GeneralizationPolicy()
    names = _check_columns(table, quasi_identifiers)
    rows = table.num_rows
    if rows < k:
        raise KAnonymityError(
            f"{rows} record(s) cannot be {k}-anonymous: at least {k} are needed", target=k, best_k=0, records_below=rows
        )
    ladders = _Ladders(table, names, policy)
    budget = math.floor(policy.max_suppression * rows + 1e-9)
    nodes = math.prod(ladders.caps[name] + 1 for name in names)
    search = "exhaustive" if nodes <= EXHAUSTIVE_NODES and nodes * rows <= EXHAUSTIVE_CELLS else "greedy"
    found = _exhaustive(ladders, k, budget) if search == "exhaustive" else _greedy(ladders, k, budget)
    if found is None:
        highest = {name: ladders.caps[name] for name in names}
        below = ladders.below(highest, k)[0]
        best_k = k_anonymity(ladders.view(highest), names).k
        raise KAnonymityError(
            f"cannot reach k={k}: with every quasi-identifier at its highest allowed level ({highest}) k is "
            f"{best_k} and {below} record(s) remain in classes below {k}, more than the {budget} the policy "
            "allows to suppress",
            target=k,
            best_k=best_k,
            records_below=below,
        )
    levels = ladders.canonical(found)
    below, small = ladders.below(levels, k)
    if below > budget:  # a custom hierarchy whose levels are not nested: keep what the search found
        levels = found
        below, small = ladders.below(levels, k)
    keep = np.flatnonzero(~small)
    released = table
    for name in names:
        if levels[name]:
            index = released.column_names.index(name)
            released = released.set_column(index, name, ladders.column(name, levels[name]))
    if below:
        released = released.take(pa.array(keep, pa.int64()))
    applied = [
        {
            "column": name,
            "level": levels[name],
            "height": ladders.hierarchies[name].height,
            "hierarchy": type(ladders.hierarchies[name]).__name__,
            "description": ladders.hierarchies[name].describe(levels[name]),
            "information_loss": round(ladders.column_loss(name, levels[name]), 4),
        }
        for name in names
        if levels[name]
    ]
    return Generalization(
        table=released,
        k=k_anonymity(released, names).k,
        levels=levels,
        applied=applied,
        suppressed=rows - len(keep),
        kept=pa.array(keep, pa.int64()),
        information_loss=ladders.loss(levels),
        search=search,
    )
