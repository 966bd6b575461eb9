"""An API over a home that was never initialized answers 503, and creates no empty warehouse there."""

from __future__ import annotations

from api_world import ApiWorld

API = "/api/v1"


def test_a_warehouse_route_on_an_uninitialized_home_is_a_503(empty_world: ApiWorld) -> None:
    """open_warehouse used to create an empty DuckDB file; it now refuses, and the API says why."""
    assert not empty_world.home.initialized
    body = {"definition": {"primary_criteria": {"criteria_list": [{"kind": "Death"}]}}}
    response = empty_world.client("researcher").post(f"{API}/cohorts/count", json=body)
    assert response.status_code == 503, response.text
    assert response.json()["error"]["code"] == "unavailable"
    assert "not initialized" in response.json()["error"]["message"]
    assert not empty_world.home.warehouse.exists()
