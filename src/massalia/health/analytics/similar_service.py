"""The guarded similar-patients analysis: the steps of :mod:`~massalia.health.analytics.service`, and a cache.

1. **authorize** ``health.analysis.similar`` under the named project (audited before any row is read): an
   approved member of an approved, unexpired project; the grant says whether the project is pseudonymized;
2. **scope** — the distance's and the endpoint's variables must be the project's, and the candidates are
   the person ids the service's scoped query returns (the project's sites and period, the request's
   filters and cohort): nobody else is ever compared, counted or returned;
3. **the index patient** — under a pseudonymized project, named by its project pseudonym, searched among
   those candidates (a person id, another project's pseudonym or a person of another site does not
   resolve); under any other approved project, described by a profile of values (``index_profile``), and
   then ``k`` must be at least the disclosure threshold;
4. **compute** the ``k`` nearest candidates (:mod:`~massalia.health.analytics.similar`) and their
   Kaplan–Meier curve;
5. **protect** — the neighbours come back as pseudonyms only under a pseudonymized grant; otherwise as a
   protected profile (counts under the threshold read ``<10``, quartiles only over ``threshold`` values);
   the curve is coarsened as every curve is;
6. **record** the provenance.

The encoded mart (:class:`~massalia.health.analytics.similar.GowerIndex`) is built once per mart build and
variable set and kept in memory (:data:`INDEX_CACHE_SIZE` entries), as are each project's pseudonyms of the
mart's persons: a query then costs one scoped query of person ids and a NumPy scan. The cache is the
server's copy of the mart, like the mart table itself; what a caller's query may use is decided per request
by the scoped query.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sqlglot import exp

from massalia.engine import Engine
from massalia.governance import AccessDenied, Caller, InvalidRequest, NotFound
from massalia.governance.pseudonym import pseudonymize
from massalia.health.analytics import survival
from massalia.health.analytics.outcomes import ENDPOINTS
from massalia.health.analytics.protect import protect_count
from massalia.health.analytics.requests import SimilarRequest
from massalia.health.analytics.service import _authorize, _provenance, _rows, _threshold, _variables_of
from massalia.health.analytics.similar import (
    SIMILARITY_WEIGHTS,
    Feature,
    GowerIndex,
    agreement_profile,
    comparable,
    features_of,
    neighbour_profile,
    neighbour_rows,
)
from massalia.health.marts.builder import MART_TABLE, last_build
from massalia.health.marts.catalogue import load_catalogue
from massalia.health.marts.filters import MartNotBuiltError
from massalia.health.research import project_scope

ACTION = "health.analysis.similar"
"""The action of a similar-patients query (``health/rights.yaml``): its grant says whether pseudonyms may leave."""

INDEX_CACHE_SIZE = 4
"""Encoded marts kept in memory (one per mart build and variable set); the oldest is dropped first."""

OUTCOME_VARIABLES = tuple(sorted({name for endpoint in ENDPOINTS.values() for name in endpoint.variables}))


@dataclass(frozen=True)
class MartIndex:
    """The encoded mart of one build: person ids (sorted), the distance's index, the endpoints' columns."""

    build_id: str
    person_id: np.ndarray
    index: GowerIndex
    outcomes: pd.DataFrame

    def positions(self, person_ids: np.ndarray) -> np.ndarray:
        """Index positions of ``person_ids`` (each must be in the build: the mart is the same table)."""
        positions = np.searchsorted(self.person_id, person_ids)
        positions = np.clip(positions, 0, max(self.person_id.size - 1, 0))
        if person_ids.size and not np.array_equal(self.person_id[positions], person_ids):
            raise MartNotBuiltError("the mart changed while it was read: run the analysis again")
        return positions


class _Cache:
    """A small thread-safe LRU of values built on demand."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._items: OrderedDict[Hashable, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable, build: Any) -> Any:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        value = build()  # outside the lock: a slow build does not stall other keys' hits
        with self._lock:
            self._items[key] = value
            while len(self._items) > self._size:
                self._items.popitem(last=False)
        return value

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


_INDEXES = _Cache(INDEX_CACHE_SIZE)
_PSEUDONYMS = _Cache(4 * INDEX_CACHE_SIZE)  # ~4 MB each at 100,000 persons


def mart_index(engine: Engine, features: Sequence[Feature]) -> MartIndex:
    """The encoded mart for ``features``, from the cache when this build was already encoded.

    Server-side only (no rights check): callers are the guarded entry points and the benchmark.
    """
    built = last_build(engine)
    if built is None:
        raise MartNotBuiltError(f"the mart is not built on this warehouse: run 'massalia mart build' ({MART_TABLE})")
    build_id = str(built["build_id"])

    def build() -> MartIndex:
        names = sorted({"person_id", *OUTCOME_VARIABLES, *(f.name for f in features)})
        query = exp.select(*(exp.column(name) for name in names)).from_(MART_TABLE).order_by("person_id")
        frame = engine.query(query).to_pandas()
        return MartIndex(build_id, frame["person_id"].to_numpy(dtype=np.int64), GowerIndex.build(frame, features),
                         frame[list(OUTCOME_VARIABLES)].reset_index(drop=True))  # fmt: skip

    # Keyed by the build, not the engine object: the HTTP API opens an engine per request. A build id hashes
    # the build's time and its inputs' fingerprint, so two warehouses do not share one.
    cached: MartIndex = _INDEXES.get((engine.name, build_id, tuple(features)), build)
    return cached


@dataclass(frozen=True)
class Pseudonyms:
    """A project's pseudonym of every mart person, as compact ASCII (about 40 bytes a person with its order)."""

    names: np.ndarray
    """``S32`` pseudonyms aligned with the index's positions."""
    order: np.ndarray
    """Positions sorting ``names``: a pseudonym is found by binary search."""

    def position(self, pseudonym: str) -> int:
        """The index position of ``pseudonym``, or -1 when no mart person has it in this project."""
        wanted = pseudonym.encode("ascii")
        found = int(np.searchsorted(self.names[self.order], wanted))
        if found < self.order.size and self.names[self.order[found]] == wanted:
            return int(self.order[found])
        return -1

    def of(self, positions: np.ndarray) -> list[str]:
        """The pseudonyms of the persons at ``positions``."""
        return [name.decode("ascii") for name in self.names[positions]]


def _pseudonyms(caller: Caller, mart: MartIndex, project_id: int) -> Pseudonyms:
    """The project's pseudonyms of the mart's persons, from the cache when this build and key were seen."""
    key = caller.governance.project_key(project_id)

    def build() -> Pseudonyms:
        text = pseudonymize(mart.person_id, key=key, project=project_id).to_pylist()
        names = np.array([name.encode("ascii") for name in text], dtype="S32")
        return Pseudonyms(names, np.argsort(names, kind="stable"))

    # The key's digest is part of the cache key: two governances over one warehouse may both have a project 1,
    # and one's pseudonyms must never resolve in the other (the key itself is not kept).
    cache_key = ("pseudonyms", mart.build_id, project_id, hashlib.sha256(key).hexdigest())
    value: Pseudonyms = _PSEUDONYMS.get(cache_key, build)
    return value


def _weights(caller: Caller, request: SimilarRequest) -> dict[str, float]:
    """The request's weights, else the documented defaults among the project's variables."""
    if request.weights is not None:
        return dict(request.weights)
    allowed = project_scope(caller, ACTION, request.project_id).variables
    return {name: w for name, w in SIMILARITY_WEIGHTS.items() if not allowed or name in allowed}


def _check_pseudonymized_filters(caller: Caller, request: SimilarRequest) -> None:
    """Where pseudonyms come back, the cohort may not be cut by an identifier, a date, a year or a place.

    Otherwise ``person_id = 123`` (or a diagnosis date) would list that person's pseudonym, or answer "found"
    for a pseudonym only when it is that person: a re-identification oracle that undoes the pseudonym or the
    date shift. The same rule as for the distance's variables (:func:`~massalia.health.analytics.similar.comparable`).
    """
    catalogue = load_catalogue()
    for name in sorted(_variables_of(request.filters)):
        try:
            variable = catalogue.variable(name)
        except KeyError as error:
            raise InvalidRequest(str(error.args[0])) from None
        if not comparable(variable):
            reason = (f"under a pseudonymized project, the filter may not use {name!r} (an identifier, a date, "
                      "a calendar year or a place would tie a pseudonym to a person)")  # fmt: skip
            _refuse(caller, request.project_id, reason)


def _refuse(caller: Caller, project_id: int, reason: str) -> None:
    caller.governance.audit(caller.principal, ACTION, decision="denied", denied_because=reason,
                            project_id=project_id, resource={"analysis": "similar"})  # fmt: skip
    raise AccessDenied(ACTION, reason)


def run_similar(caller: Caller, engine: Engine, request: SimilarRequest) -> dict[str, Any]:
    """The ``k`` patients most similar to an index patient, what they share with it, and their outcome.

    Examples
    --------
    >>> request = SimilarRequest(project_id=3, index_pseudonym="p3-…", k=30)  # doctest: +SKIP
    >>> run_similar(Caller(rita, gov), engine, request)  # doctest: +SKIP
    {'analysis': 'similar', 'neighbours': {...}, 'agreement': [...], 'km': {...}, 'listed': [...], ...}
    """
    grant = _authorize(caller, "similar", request, action=ACTION)
    threshold = _threshold()
    if request.index_pseudonym is not None and not grant.pseudonymized:
        _refuse(caller, request.project_id, "naming a patient needs a pseudonymized project: describe the index "
                "patient with index_profile instead")  # fmt: skip
    if grant.pseudonymized:
        _check_pseudonymized_filters(caller, request)
    if not grant.pseudonymized and request.k < threshold:
        raise InvalidRequest(
            f"k must be at least {threshold} (the disclosure threshold) outside a pseudonymized project"
        )
    try:
        features = features_of(load_catalogue(), _weights(caller, request))
    except (KeyError, ValueError) as error:
        raise InvalidRequest(f"similarity variables: {error.args[0]}") from None
    if not features:
        raise InvalidRequest("no similarity variable is in the project's scope: name them with weights")
    endpoint = ENDPOINTS[request.endpoint]
    scoped, spec = _rows(caller, engine, request, [], action=ACTION, keys=["person_id"],
                         checked=[*(f.name for f in features), *endpoint.variables])  # fmt: skip
    mart = mart_index(engine, features)
    # person ids are unique in the mart: their sorted positions are sorted and unique too
    candidates = mart.positions(np.sort(scoped["person_id"].to_numpy(dtype=np.int64)))
    index = mart.index
    names: Pseudonyms | None = None
    described: dict[str, Any]
    if request.index_pseudonym is not None:
        names = _pseudonyms(caller, mart, request.project_id)
        position = names.position(request.index_pseudonym)
        found = np.searchsorted(candidates, position)
        if position < 0 or found >= candidates.size or candidates[found] != position:
            raise NotFound(f"no person with pseudonym {request.index_pseudonym!r} among the persons of project "
                           f"{request.project_id}'s scope and cohort")  # fmt: skip
        query = index.row(position)
        candidates = np.delete(candidates, found)
        described = {"pseudonym": request.index_pseudonym, "values": {f.name: index.value(f, position)
                                                                      for f in index.features}}  # fmt: skip
    else:
        profile = dict(request.index_profile or {})
        unknown = sorted(set(profile) - {f.name for f in features})
        if unknown:
            raise InvalidRequest(f"index_profile names variables outside the distance: {', '.join(unknown)}")
        try:
            query = index.encode(profile)
        except (TypeError, ValueError) as error:
            raise InvalidRequest(f"index_profile: {error}") from None
        described = {"profile": profile}
    neighbours = index.nearest(query, candidates, request.k)
    time, event = endpoint.time_event(mart.outcomes.iloc[neighbours])
    keep = ~np.isnan(time)
    distance = index.distances(query, neighbours)
    result: dict[str, Any] = {
        "analysis": "similar",
        "threshold": threshold,
        "index": described,
        "distance": {
            "method": "Gower (weighted; a variable missing on either side does not count)",
            "features": [{"variable": f.name, "kind": f.kind, "weight": f.weight} for f in index.features],
            # Only where the neighbours are listed anyway: for a described profile, a nearest distance of 0
            # would tell that a person with exactly these values exists (a membership oracle).
            "range": [round(float(distance.min()), 4), round(float(distance.max()), 4)]
            if grant.pseudonymized and neighbours.size else None,
        },
        "candidates": protect_count(int(candidates.size), threshold),
        "neighbours": protect_count(int(neighbours.size), threshold),
        "agreement": agreement_profile(index, query, neighbours, threshold),
        "profile": neighbour_profile(index, neighbours, threshold),
        "endpoint": {"name": endpoint.name, "label": endpoint.label, "time_unit": "months since diagnosis"},
        "km": survival.kaplan_meier(time[keep], event[keep], threshold=threshold, step=request.time_step_months,
                                    table_at=request.at_risk_months),
    }  # fmt: skip
    if grant.pseudonymized:
        names = names or _pseudonyms(caller, mart, request.project_id)
        result["listed"] = neighbour_rows(index, query, neighbours, names.of(neighbours))
    result["provenance"] = _provenance(engine, "similar", request, spec, len(scoped))
    return result
