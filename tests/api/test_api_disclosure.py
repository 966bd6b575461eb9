"""No aggregate route bypasses the release mechanism (noise, rounding, threshold: docs/disclosure.md).

The routes under test are found, not listed: every route of the app whose action has a rule granting
``raw_counts`` in ``rights.yaml`` and none granting ``row_level`` returns counts that depend on who asks
(actions granting ``row_level`` return records: their own tests check who sees which). Each is called
twice with the same body: by a member of an approved project (raw counts) and by a caller whose rights fall through to
the rule without ``raw_counts`` (another project). The other answer must say it is noisy, and every count
the raw answer shows must be released rounded and never under the threshold (``null`` instead, whether
the true count is 0 or small); each route must show at least one small count, so the test cannot pass by
looking at empty answers. A new aggregate route without a case here fails.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from api_world import ROLE_USERS
from test_api_rights_matrix import ROUTES, SPECS, Matrix, expected, matrix  # noqa: F401 (the fixture)

from massalia.governance import load_rights
from massalia.health.cohorts.suppression import DEFAULT_THRESHOLD as THRESHOLD  # the API's default

ROLES = tuple(role for role in ROLE_USERS if role != "public")  # public sees no aggregate at all


def _aggregate_routes() -> list[tuple[str, str]]:
    rights = load_rights()
    routes = []
    for method, path, action in ROUTES:
        # Health's noisy release (budget, OpenDP); public safety masks a partner's small counts instead
        # (tests/safety/test_services.py::test_a_partner_gets_aggregates_with_small_counts_masked).
        if action is None or action not in rights or not action.startswith("health."):
            continue
        grants = set().union(*(rule.grant for rule in rights.get(action).rules))
        if "raw_counts" in grants and "row_level" not in grants:
            routes.append((method, path))
    return routes


AGGREGATE_ROUTES = _aggregate_routes()


def _leaves(value: Any, path: str = "$") -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _leaves(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _leaves(item, f"{path}[{index}]")
    else:
        yield path, value


def _is_count(path: str) -> bool:
    """Whether a leaf is a count (not an id, a threshold, a rule index or an age band's bounds)."""
    name = path.rsplit(".", 1)[-1].split("[", 1)[0]
    return name not in {"threshold", "cohort_id", "cohort_definition_id", "project_id", "index", "rule_index",
                        "age_band_start", "age_band_end", "gender_concept_id", "id", "rounding_base",
                        "epsilon_per_count", "charged", "budget_remaining", "value"}  # fmt: skip


def _small(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value < THRESHOLD


def _call(m: Matrix, method: str, path: str, caller: str, relation: str) -> Any:
    spec = SPECS.get(f"{method} {path}", lambda m, c, r: {})(m, caller, relation)
    response = m.world.client(caller).request(
        method, path.format(**spec.get("path", {})), json=spec.get("json"), params=spec.get("params")
    )
    assert response.status_code < 300, f"{caller} ({relation}) {method} {path}: {response.text[:500]}"
    return response.json()


def test_the_aggregate_routes_are_the_expected_ones() -> None:
    found = {f"{method} {path}" for method, path in AGGREGATE_ROUTES}
    assert found >= {
        "POST /api/v1/cohorts/count", "POST /api/v1/cohorts/attrition", "POST /api/v1/cohorts/breakdowns",
        "POST /api/v1/cohorts/generate", "POST /api/v1/mart/count", "POST /api/v1/mart/breakdown",
    }, sorted(found)  # fmt: skip


@pytest.mark.parametrize(
    ("method", "path"),
    [pytest.param(m, p, id=f"{m} {p}") for m, p in AGGREGATE_ROUTES],
)
def test_counts_are_released_noisy_unless_raw_counts_are_granted(matrix: Matrix, method: str, path: str) -> None:  # noqa: F811
    raw = dict(_leaves(_call(matrix, method, path, "researcher", "own")))
    assert {v for leaf, v in raw.items() if leaf.endswith(".mode")} == {"exact"}, raw
    small = {leaf: value for leaf, value in raw.items() if _is_count(leaf) and _small(value)}
    assert small, f"{method} {path}: the approved member's answer shows no count below {THRESHOLD}: {raw}"
    counts = [leaf for leaf, value in raw.items() if _is_count(leaf) and isinstance(value, int)]
    # Every role whose call on another project is allowed falls through to the rule without raw_counts.
    callers = [role for role in ROLES if expected(method, path, role, "other") < 300]
    assert callers, f"{method} {path}: no role may call it outside an approved project"
    for caller in callers:
        noisy = dict(_leaves(_call(matrix, method, path, caller, "other")))
        assert {v for leaf, v in noisy.items() if leaf.endswith(".mode")} == {"noisy"}, noisy
        missing = [leaf for leaf in counts if leaf not in noisy]
        assert not missing, f"{method} {path}: counts missing from the noisy answer: {missing}"
        shown = {leaf: noisy[leaf] for leaf in counts if noisy[leaf] is not None}
        bad = {leaf: v for leaf, v in shown.items() if not isinstance(v, int) or v < THRESHOLD or v % 5}
        assert not bad, f"{caller} outside the project sees unrounded or small counts on {method} {path}: {bad}"


def test_quality_results_publish_coarsened_row_counts(matrix: Matrix) -> None:  # noqa: F811
    import json

    report = json.loads((matrix.world.home.reports / "quality.json").read_text(encoding="utf-8"))
    exact = {r["check_id"]: r for r in report["results"]}
    assert exact, "the matrix world has a quality report"
    published = matrix.world.client("researcher").get("/api/v1/quality/report/results", params={"limit": 500})
    assert published.status_code == 200, published.text
    for result in published.json()["items"]:
        true = exact[result["check_id"]]
        for field in ("num_violated_rows", "num_denominator_rows"):
            value = result[field]
            assert value is None or (value >= THRESHOLD and value % 5 == 0), (field, result)
            if true[field] is not None and 0 <= true[field] < THRESHOLD:
                assert value is None  # a small count (0 included) is never shown


def test_each_noisy_release_is_charged_to_the_budget_the_caller_can_read(matrix: Matrix) -> None:  # noqa: F811
    client = matrix.world.client("dpo")  # no project: noisy counts
    before = client.get("/api/v1/me/privacy-budget").json()
    body = {"filters": {"all": [{"variable": "age_at_diagnosis", "op": ">=", "value": 47.5 + next(matrix.counter)}]}}
    first = client.post("/api/v1/mart/count", json=body).json()
    again = client.post("/api/v1/mart/count", json=body).json()
    after = client.get("/api/v1/me/privacy-budget").json()
    assert (
        first["release"]["charged"] == pytest.approx(before["epsilon_per_count"]) and not first["release"]["repeated"]
    )
    assert again["count"] == first["count"] and again["release"]["repeated"] and again["release"]["charged"] == 0
    assert after["spent"] == pytest.approx(before["spent"] + first["release"]["charged"])
    assert after["remaining"] == pytest.approx(first["release"]["budget_remaining"])
    assert after["releases"] == before["releases"] + 1 and after["subject"] == matrix.world.usernames["dpo"]
    refused = client.post("/api/v1/mart/count", json={"filters": {"all": [{"variable": "person_id", "op": "=",
                                                                            "value": 1}]}})  # fmt: skip
    assert refused.status_code == 422 and "identifier" in refused.text
