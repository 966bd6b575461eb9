"""The one release mechanism for counts shown below an approved project's scope (feasibility counts).

Every count a caller without ``raw_counts`` sees (cohort counts and what-if toggles, attrition rows,
breakdowns, generation summaries, mart counts and breakdowns, quality-report counts) goes through
:func:`release_counts`:

1. **normalize** — the caller gives the normalized query (canonical JSON: filter with sorted clauses,
   definition hash + toggles, data version) and the cells it releases; their SHA-256 is the query key;
2. **consistency** — a release already stored under that key is returned as it is, to anyone, at no
   cost: repeating a query (or asking it from a colleague's account) gains nothing;
3. **budget** — otherwise the release costs ``epsilon_per_count × sensitivity`` (sensitivity: how many
   of the released counts one person can change), charged to the caller's budget for the current
   period and refused once the budget is spent; a caller who keeps getting the same true answer under
   different queries (the averaging attack of i2b2's literature) is locked out for the period;
4. **noise** — Laplace noise of scale ``1 / epsilon_per_count`` on every cell, drawn by OpenDP's
   vetted sampler (whose privacy map also computes the charge);
5. **post-processing** — clamp at 0, round to ``rounding_base``, and show any result under
   ``threshold`` as ``"<threshold"`` (``None``), whatever the true count (0 included);
6. **store and audit** — the release is stored under its key, the charge in the caller's budget, and a
   ``disclosure.release`` entry (key, cost, budget left, released values, never the true ones) is
   appended to the transparency log.

Members of an approved project get :func:`exact_release` instead (their grant says ``raw_counts``).
The guarantee and its limits are in ``docs/disclosure.md``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import hashlib
import hmac
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from massalia.governance import keys
from massalia.governance.caller import Caller
from massalia.governance.model import AccessDenied, InvalidRequest, Principal
from massalia.governance.tables import DisclosureChargeRow, DisclosureReleaseRow

MICRO = 1_000_000
"""Privacy loss is stored as integer micro-epsilon: budget sums stay exact."""

MAX_CELLS = 2048
"""Most counts in one release: a city's grid of 500 m cells (about 1,150) in one noisy release, not three."""
MAX_CELL_NAME = 128
MAX_QUERY_BYTES = 64_000
RELEASE_ACTION = "disclosure.release"
BUDGET_ACTION = "privacy.budget"


class BudgetExhausted(AccessDenied):
    """The caller's privacy budget for the period cannot pay for this release (or they are locked out)."""


@dataclass(frozen=True)
class DisclosureSettings:
    """The parameters of the release mechanism (documented in ``docs/disclosure.md``).

    Parameters
    ----------
    epsilon_per_count
        Privacy loss of one released count for one person (Laplace scale ``1 / epsilon_per_count``).
    budget
        Total privacy loss one user may spend per period.
    period_days
        Length of the rolling budget window, in days.
    threshold
        Released values under it are shown as ``"<threshold"`` (masked, never distinguishable from 0).
    rounding_base
        Released values are rounded to a multiple of it.
    lockout_repeats
        How many different queries may return the same true (non-zero) answer to one user in a period
        before the user is locked out for the rest of the period.
    """

    epsilon_per_count: float = 0.1
    budget: float = 5.0
    period_days: int = 30
    threshold: int = 10
    rounding_base: int = 5
    lockout_repeats: int = 5

    def __post_init__(self) -> None:
        if not (0 < self.epsilon_per_count <= 10) or not math.isfinite(self.epsilon_per_count):
            raise ValueError(f"epsilon_per_count must be in (0, 10], got {self.epsilon_per_count}")
        if not (0 < self.budget <= 1000) or not math.isfinite(self.budget):
            raise ValueError(f"budget must be in (0, 1000], got {self.budget}")
        if not 1 <= self.period_days <= 3660:
            raise ValueError(f"period_days must be 1 to 3660, got {self.period_days}")
        if not 1 <= self.threshold <= 10_000:
            raise ValueError(f"threshold must be 1 to 10000, got {self.threshold}")
        if not 1 <= self.rounding_base <= 1000:
            raise ValueError(f"rounding_base must be 1 to 1000, got {self.rounding_base}")
        if not 1 <= self.lockout_repeats <= 1000:
            raise ValueError(f"lockout_repeats must be 1 to 1000, got {self.lockout_repeats}")


_FIELDS = {
    "MASSALIA_DISCLOSURE_EPSILON": ("epsilon_per_count", float),
    "MASSALIA_DISCLOSURE_BUDGET": ("budget", float),
    "MASSALIA_DISCLOSURE_PERIOD_DAYS": ("period_days", int),
    "MASSALIA_DISCLOSURE_THRESHOLD": ("threshold", int),
    "MASSALIA_DISCLOSURE_ROUNDING": ("rounding_base", int),
    "MASSALIA_DISCLOSURE_LOCKOUT_REPEATS": ("lockout_repeats", int),
}


def settings_from_env(env: Mapping[str, str] | None = None) -> DisclosureSettings:
    """The settings, each overridable by an environment variable (``MASSALIA_DISCLOSURE_EPSILON``...).

    Examples
    --------
    >>> settings_from_env({"MASSALIA_DISCLOSURE_BUDGET": "2"}).budget
    2.0
    """
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    for variable, (name, kind) in _FIELDS.items():
        text = env.get(variable)
        if text is None or not text.strip():
            continue
        try:
            values[name] = kind(text.strip())
        except ValueError:
            raise ValueError(f"{variable}={text!r} is not a valid {kind.__name__}") from None
    return DisclosureSettings(**values)


@dataclass(frozen=True)
class Release:
    """Released counts and how they were released.

    ``values``: one entry per cell; under ``mode="noisy"`` a rounded noisy count, or ``None`` when it
    is under the threshold (shown ``"<threshold"``, whether the true count was 0 or not).
    """

    values: dict[str, int | None]
    mode: Literal["exact", "noisy"]
    threshold: int | None = None
    rounding_base: int | None = None
    epsilon_per_count: float | None = None
    charged: float = 0.0
    repeated: bool = False
    budget_remaining: float | None = None

    def shown(self, cell: str) -> str:
        """How a cell reads to a person: ``"120"`` exact, ``"~120"`` noisy, ``"<10"`` masked."""
        value = self.values[cell]
        if self.mode == "exact":
            return str(value)
        return f"<{self.threshold}" if value is None else f"~{value}"

    def describe(self) -> dict[str, Any]:
        """How the counts were released, for an API answer (no value)."""
        if self.mode == "exact":
            return {"mode": "exact"}
        return {
            "mode": "noisy",
            "threshold": self.threshold,
            "rounding_base": self.rounding_base,
            "epsilon_per_count": self.epsilon_per_count,
            "charged": self.charged,
            "repeated": self.repeated,
            "budget_remaining": self.budget_remaining,
            "note": f"noisy and rounded to {self.rounding_base}; null means under {self.threshold} (0 included)",
        }


@dataclass(frozen=True)
class Budget:
    """A user's privacy budget for the current period."""

    subject: str
    total: float
    spent: float
    remaining: float
    period_days: int
    period_start: dt.datetime
    releases: int
    locked_out: bool
    epsilon_per_count: float


def exact_release(true_counts: Mapping[str, int]) -> Release:
    """The counts as they are (callers whose grant allows raw counts: members of an approved project)."""
    return Release(values={str(k): int(v) for k, v in true_counts.items()}, mode="exact")


def canonical_json(value: Any) -> str:
    """Sorted-keys compact JSON (dates as ISO text): equal queries give equal text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def query_key(action: str, query: Mapping[str, Any], cells: list[str]) -> str:
    """The SHA-256 of the normalized query: action, the caller's normalized query, the cells released."""
    text = canonical_json({"action": action, "query": query, "cells": sorted(cells)})
    if len(text) > MAX_QUERY_BYTES:
        raise InvalidRequest(f"the normalized query is too long ({len(text)} > {MAX_QUERY_BYTES} characters)")
    return hashlib.sha256(text.encode()).hexdigest()


def _check_counts(true_counts: Mapping[str, int], sensitivity: int) -> list[str]:
    if not true_counts or len(true_counts) > MAX_CELLS:
        raise InvalidRequest(f"a release holds 1 to {MAX_CELLS} counts, got {len(true_counts)}")
    for name, value in true_counts.items():
        if not isinstance(name, str) or not name or len(name) > MAX_CELL_NAME:
            raise InvalidRequest(f"release cell name {name!r}: 1 to {MAX_CELL_NAME} characters")
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise InvalidRequest(f"release cell {name!r}: a count is a non-negative integer, got {value!r}")
    if not 1 <= sensitivity <= len(true_counts):
        raise InvalidRequest(f"sensitivity must be 1 to the number of cells ({len(true_counts)}), got {sensitivity}")
    return sorted(true_counts)


def prepare() -> None:
    """Load OpenDP's native library now (about 0.3 s, 1.5 s on a busy machine) rather than in the first release.

    The HTTP app calls it in a background thread at start-up, so the first noisy count a person asks for
    is as fast as the next ones.
    """
    import opendp.prelude as dp

    dp.enable_features("contrib")


@functools.lru_cache(maxsize=128)
def _laplace(scale: float, sensitivity: int, size: int) -> tuple[Any, float]:
    """OpenDP's vector Laplace mechanism on integer counts and the epsilon it costs for ``sensitivity``.

    Kept per (scale, sensitivity, size): building it through OpenDP's FFI costs about a millisecond, and a
    measurement draws fresh noise at every call.
    """
    import opendp.prelude as dp  # imported here: loading OpenDP's native library costs ~0.3 s at start-up

    dp.enable_features("contrib")
    measurement = dp.m.make_laplace(
        dp.vector_domain(dp.atom_domain(T=int), size=size), dp.l1_distance(T=int), scale=scale
    )
    return measurement, float(measurement.map(sensitivity))


def _post_process(noisy: int, settings: DisclosureSettings) -> int | None:
    base = settings.rounding_base
    rounded = math.floor(max(0, noisy) / base + 0.5) * base
    return None if rounded < settings.threshold else rounded


def coarsen_count(value: int | None, settings: DisclosureSettings | None = None) -> int | None:
    """A published count that is not user-queryable (a stored report): rounded, ``None`` under the threshold.

    The same post-processing as a noisy release, without noise or budget: the report is fixed, so a
    reader cannot difference queries against it (see ``docs/disclosure.md``).

    Examples
    --------
    >>> coarsen_count(3), coarsen_count(0), coarsen_count(1234)
    (None, None, 1235)
    """
    if value is None:
        return None
    return _post_process(int(value), settings or settings_from_env())


def _fingerprint_key(gov: Any) -> bytes:
    """The key of :func:`_fingerprint`, derived from the key file's secret (read once per release call)."""
    master = keys.load_or_create_master_key(gov.key_path)
    return hmac.new(master, b"massalia disclosure fingerprint", hashlib.sha256).digest()


def _fingerprint(key: bytes, action: str, counts: list[int]) -> str:
    """A keyed hash of the true answer (the key file's secret): the metadata database alone cannot reveal it."""
    return hmac.new(key, canonical_json({"action": action, "counts": counts}).encode(), hashlib.sha256).hexdigest()


def _period_start(gov: Any, settings: DisclosureSettings) -> dt.datetime:
    now: dt.datetime = gov._clock()  # the governance clock, which tests move
    return now - dt.timedelta(days=settings.period_days)


def _spent(session: Any, subject: str, since: dt.datetime) -> int:
    total = session.scalar(
        select(func.coalesce(func.sum(DisclosureChargeRow.micro_epsilon), 0)).where(
            DisclosureChargeRow.subject == subject, DisclosureChargeRow.charged_at >= since
        )
    )
    return int(total or 0)


def _locked(session: Any, subject: str, since: dt.datetime) -> bool:
    found = session.scalar(
        select(DisclosureChargeRow.id)
        .where(
            DisclosureChargeRow.subject == subject,
            DisclosureChargeRow.charged_at >= since,
            DisclosureChargeRow.kind == "lockout",
        )
        .limit(1)
    )
    return found is not None


def _repeats(session: Any, subject: str, since: dt.datetime, fingerprint: str) -> int:
    return int(
        session.scalar(
            select(func.count(DisclosureChargeRow.id)).where(
                DisclosureChargeRow.subject == subject,
                DisclosureChargeRow.charged_at >= since,
                DisclosureChargeRow.result_fingerprint == fingerprint,
                DisclosureChargeRow.kind == "release",
            )
        )
        or 0
    )


def _refuse(gov: Any, principal: Principal, action: str, key: str, reason: str) -> BudgetExhausted:
    gov.audit(
        principal,
        RELEASE_ACTION,
        decision="denied",
        denied_because=reason,
        resource={"query_key": key, "for_action": action},
    )
    return BudgetExhausted(action, reason)


@dataclass(frozen=True)
class CountsAsked:
    """One release asked for in :func:`release_batch`: what :func:`release_counts` takes, with a name.

    ``name`` says what the counts are in the batch's audit entry (a breakdown's variable, ``"count"``); it is
    not part of the query key, so a release made in a batch is the one a lone call for the same query gets.
    """

    name: str
    query: Mapping[str, Any]
    true_counts: Mapping[str, int]
    sensitivity: int = 1


@dataclass(frozen=True)
class BatchRelease:
    """The releases of a batch, in the order asked, up to the first one refused.

    ``refused`` is that refusal (already audited), or ``None`` when every release was made; nothing after
    the refused one was released, charged or stored.
    """

    releases: list[Release]
    refused: BudgetExhausted | None = None


@dataclass
class _Asked:
    """A request of a batch, prepared outside the transaction (key, cells, fingerprint, mechanism, cost)."""

    name: str
    key: str
    cells: list[str]
    counts: list[int]
    fingerprint: str
    measurement: Any
    cost: int


def _prepare(action: str, asked: CountsAsked, fingerprint_key: bytes, settings: DisclosureSettings) -> _Asked:
    cells = _check_counts(asked.true_counts, asked.sensitivity)
    key = query_key(action, asked.query, cells)
    counts = [int(asked.true_counts[cell]) for cell in cells]
    measurement, epsilon = _laplace(1.0 / settings.epsilon_per_count, asked.sensitivity, len(cells))
    return _Asked(asked.name, key, cells, counts, _fingerprint(fingerprint_key, action, counts), measurement,
                  math.ceil(epsilon * MICRO - 1e-6))  # fmt: skip


def _noisy(values: dict[str, int | None], settings: DisclosureSettings, charged: int, repeated: bool,
           remaining: int) -> Release:  # fmt: skip
    return Release(
        values=values,
        mode="noisy",
        threshold=settings.threshold,
        rounding_base=settings.rounding_base,
        epsilon_per_count=settings.epsilon_per_count,
        charged=charged / MICRO,
        repeated=repeated,
        budget_remaining=max(0, remaining) / MICRO,
    )


def _release_in(
    session: Any, asked: _Asked, subject: str, action: str, now: dt.datetime, since: dt.datetime,
    spent: int, settings: DisclosureSettings,
) -> tuple[Release | None, str | None]:  # fmt: skip
    """One release inside the batch's transaction: ``(release, None)`` or ``(None, why it is refused)``."""
    budget = round(settings.budget * MICRO)
    stored = session.scalar(select(DisclosureReleaseRow).where(DisclosureReleaseRow.query_key == asked.key))
    if stored is not None:
        session.add(DisclosureChargeRow(subject=subject, release_id=stored.id, kind="repeat", micro_epsilon=0,
                                        result_fingerprint=None, charged_at=now))  # fmt: skip
        return _noisy(json.loads(stored.released), settings, 0, True, budget - spent), None
    if _locked(session, subject, since):
        return None, "locked out of feasibility counts for this period (repeated near-identical queries)"
    if any(asked.counts) and _repeats(session, subject, since, asked.fingerprint) >= settings.lockout_repeats:
        # The averaging attack: many different queries with one true answer. Lock the rest of the
        # period (the lock says 'same answer' once; then nothing more can be asked).
        session.add(DisclosureChargeRow(subject=subject, release_id=None, kind="lockout",
                                        micro_epsilon=max(0, budget - spent), result_fingerprint=None,
                                        charged_at=now))  # fmt: skip
        return None, (f"locked out of feasibility counts for {settings.period_days} days: more than "
                      f"{settings.lockout_repeats} different queries gave the same answer")  # fmt: skip
    if spent + asked.cost > budget:
        return None, (f"privacy budget spent: this release costs {asked.cost / MICRO:g}, "
                      f"{max(0, budget - spent) / MICRO:g} of {settings.budget:g} left for the "
                      f"{settings.period_days}-day period")  # fmt: skip
    noisy = asked.measurement(asked.counts)
    values = {cell: _post_process(int(v), settings) for cell, v in zip(asked.cells, noisy, strict=True)}
    row = DisclosureReleaseRow(query_key=asked.key, action=action, released=canonical_json(values),
                               micro_epsilon=asked.cost, created_by=subject, created_at=now)  # fmt: skip
    session.add(row)
    session.flush()
    session.add(DisclosureChargeRow(subject=subject, release_id=row.id, kind="release", micro_epsilon=asked.cost,
                                    result_fingerprint=asked.fingerprint, charged_at=now))  # fmt: skip
    return _noisy(values, settings, asked.cost, False, budget - spent - asked.cost), None


def release_batch(
    gov: Any,
    principal: Principal,
    action: str,
    asked: Sequence[CountsAsked],
    *,
    settings: DisclosureSettings | None = None,
    _retry: bool = False,
) -> BatchRelease:
    """Release several sets of counts in order, each exactly as :func:`release_counts` would, in one transaction.

    Each is its own release (its own query key, noise, stored answer and charge), so a later lone call for
    one of them gets the same answer at no cost, and the batch costs the sum of what the lone calls would
    have cost, in the same order against the same budget and lockout rules. The first refusal ends the
    batch: what came before it is released, nothing after it is. One ``disclosure.release`` entry lists
    every release of the batch (its query key, released values, charge, whether repeated) and the budget
    left; a refusal is audited as :func:`release_counts` audits it. One transaction and one or two audit
    entries instead of one of each per release: a dashboard's dozen breakdowns cost one commit.

    Examples
    --------
    >>> batch = release_batch(gov, researcher, "health.mart.count",
    ...     [CountsAsked("count", {"q": 1}, {"persons": 1234}), CountsAsked("sex", {"q": 2}, {"F": 600, "M": 634}, 2)])
    ...  # doctest: +SKIP
    >>> [release.values for release in batch.releases]  # doctest: +SKIP
    [{'persons': 1235}, {'F': 600, 'M': 635}]
    """
    settings = settings or settings_from_env()
    if not asked:
        return BatchRelease([])
    fingerprint_key = _fingerprint_key(gov)
    prepared = [_prepare(action, one, fingerprint_key, settings) for one in asked]
    since = _period_start(gov, settings)
    now = gov._clock()
    subject = principal.subject
    releases: list[Release] = []
    refusal: tuple[_Asked, str] | None = None
    try:
        with gov._session() as session:  # the governance service's metadata database
            spent = _spent(session, subject, since)
            for one in prepared:
                release, why = _release_in(session, one, subject, action, now, since, spent, settings)
                if release is None:
                    refusal = (one, why or "no release")
                    break
                spent += round(release.charged * MICRO)
                releases.append(release)
    except IntegrityError:
        if _retry:
            raise
        # Released concurrently under the same key: answer with that release.
        return release_batch(gov, principal, action, asked, settings=settings, _retry=True)
    if releases:
        _audit_batch(gov, principal, action, prepared[: len(releases)], releases)
    refused = None if refusal is None else _refuse(gov, principal, action, refusal[0].key, refusal[1])
    return BatchRelease([dataclasses.replace(release, values=dict(release.values)) for release in releases], refused)


def _audit_batch(gov: Any, principal: Principal, action: str, prepared: list[_Asked], releases: list[Release]) -> None:
    """One ``disclosure.release`` entry for the releases made (a lone release keeps its entry's shape)."""
    left = releases[-1].budget_remaining
    if len(releases) == 1:
        release = releases[0]
        gov.audit(principal, RELEASE_ACTION, decision="allowed",
                  resource={"query_key": prepared[0].key, "for_action": action}, released=release.values,
                  charged=release.charged, repeated=release.repeated, budget_remaining=left)  # fmt: skip
        return
    names = [one.name for one in prepared]
    gov.audit(
        principal,
        RELEASE_ACTION,
        decision="allowed",
        resource={"for_action": action, "query_keys": {one.name: one.key for one in prepared}},
        released={name: release.values for name, release in zip(names, releases, strict=True)},
        charged=sum(round(release.charged * MICRO) for release in releases) / MICRO,
        charges={name: release.charged for name, release in zip(names, releases, strict=True)},
        repeated=[name for name, release in zip(names, releases, strict=True) if release.repeated],
        budget_remaining=left,
    )


def release_counts(
    gov: Any,
    principal: Principal,
    action: str,
    query: Mapping[str, Any],
    true_counts: Mapping[str, int],
    *,
    sensitivity: int = 1,
    settings: DisclosureSettings | None = None,
) -> Release:
    """Release ``true_counts`` to ``principal`` through the noisy, consistent, budgeted mechanism.

    Parameters
    ----------
    gov
        The :class:`~massalia.governance.Governance` service (metadata database, clock, audit).
    principal
        Who asks; their budget pays for a new release.
    action
        The action the counts answer (``health.cohort.count``, ``health.mart.count``...): part of the query key.
    query
        The normalized query: equal queries must give equal JSON (the caller normalizes).
    true_counts
        The exact counts, by cell name (never stored, never audited).
    sensitivity
        How many of these counts one person can change by one (1 for a count, 2 for cells + total...).
    settings
        The mechanism's parameters (default: :func:`settings_from_env`).

    Raises
    ------
    BudgetExhausted
        The release would overspend the caller's budget, or the caller is locked out (audited).

    Examples
    --------
    >>> release_counts(gov, researcher, "health.mart.count", {"filters": {}}, {"persons": 1234})  # doctest: +SKIP
    Release(values={'persons': 1230}, mode='noisy', ...)
    """
    batch = release_batch(gov, principal, action, [CountsAsked(action, query, true_counts, sensitivity)],
                          settings=settings)  # fmt: skip
    if batch.refused is not None:
        raise batch.refused
    return batch.releases[0]


def budget_of(gov: Any, principal: Principal, settings: DisclosureSettings | None = None) -> Budget:
    """The caller's budget for the current period (no rights check: see :func:`privacy_budget`)."""
    settings = settings or settings_from_env()
    since = _period_start(gov, settings)
    budget = round(settings.budget * MICRO)
    with gov._session() as session:
        spent = _spent(session, principal.subject, since)
        releases = int(
            session.scalar(
                select(func.count(DisclosureChargeRow.id)).where(
                    DisclosureChargeRow.subject == principal.subject,
                    DisclosureChargeRow.charged_at >= since,
                    DisclosureChargeRow.kind == "release",
                )
            )
            or 0
        )
        locked = _locked(session, principal.subject, since)
    return Budget(
        subject=principal.subject,
        total=settings.budget,
        spent=min(spent, budget) / MICRO,
        remaining=max(0, budget - spent) / MICRO,
        period_days=settings.period_days,
        period_start=since,
        releases=releases,
        locked_out=locked,
        epsilon_per_count=settings.epsilon_per_count,
    )


def privacy_budget(caller: Caller) -> Budget:
    """The guarded read of one's own privacy budget (action ``privacy.budget``).

    Examples
    --------
    >>> privacy_budget(Caller(researcher, gov)).remaining  # doctest: +SKIP
    4.9
    """
    caller.authorize(BUDGET_ACTION, detail={"channel": caller.channel})
    return budget_of(caller.governance, caller.principal)


def show_count(value: int | None, release: Mapping[str, Any] | None, *, withheld: bool = False) -> str:
    """How a released count reads on a console: ``"1,234"``, ``"~1,235"``, ``"<10"`` or ``"withheld"``.

    Examples
    --------
    >>> show_count(None, {"mode": "noisy", "threshold": 10}), show_count(120, {"mode": "noisy"})
    ('<10', '~120')
    """
    if withheld:
        return "withheld"
    if release is None or release.get("mode") == "exact":
        return "-" if value is None else f"{value:,}"
    return f"<{release.get('threshold')}" if value is None else f"~{value:,}"


def release_note(release: Mapping[str, Any] | None) -> str:
    """One line saying how counts were released (and the privacy budget left), for consoles."""
    if release is None or release.get("mode") == "exact":
        return "exact counts (approved project)"
    if release.get("mode") == "withheld":
        return f"counts withheld: {release.get('reason')}"
    cost = "already released: no cost" if release.get("repeated") else f"cost ε={release.get('charged'):g}"
    withheld = release.get("withheld")
    extra = f"; {', '.join(withheld)} withheld without an approved project" if withheld else ""
    threshold, left = release.get("threshold"), release.get("budget_remaining")
    return (f"noisy counts rounded to {release.get('rounding_base')}, <{threshold} means under {threshold} "
            f"(0 included); {cost}, privacy budget left ε={left:g}{extra}")  # fmt: skip
