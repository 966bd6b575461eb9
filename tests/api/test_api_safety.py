"""The safety routes through the real ASGI app: filters bounded and validated, rights per role, partner masking."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient

from massalia.api import ApiSettings, create_app
from massalia.config import Home
from massalia.governance import Governance, Role, operator_principal
from massalia.pipelines import LineageStore
from massalia.safety.log import load_delivery
from massalia.safety.synth.generator import GeneratorConfig, generate
from massalia.warehouse import open_warehouse

USERS = {
    "olga.ops": Role.SAFETY_OPERATOR,
    "ana.lyst": Role.SAFETY_ANALYST,
    "pat.partner": Role.PARTNER,
    "rita.researcher": Role.RESEARCHER,
}


@dataclass
class Api:
    client: TestClient
    tokens: dict[str, str]

    def get(self, user: str, path: str, **params: object) -> tuple[int, dict[str, object]]:
        response = self.client.get(
            f"/api/v1/safety{path}", params=params, headers={"Authorization": f"Bearer {self.tokens[user]}"}
        )
        return response.status_code, response.json()


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    root = tmp_path_factory.mktemp("safety-api-home")
    home = Home(root).ensure()
    home.mark_initialized("duckdb")
    logs = generate(tmp_path_factory.mktemp("safety-api-logs"), GeneratorConfig(events=1500, seed=7))
    with open_warehouse(home) as engine:
        load_delivery(engine, logs.root, LineageStore(home.metadata_url))
    app = create_app(home, settings=ApiSettings())
    gov: Governance = app.state.massalia.governance
    tokens = {}
    for name, role in USERS.items():
        gov.create_user(name, None, [role], actor=operator_principal())
        tokens[name] = gov.create_token(name, None, dt.timedelta(days=1), actor=operator_principal())
    try:
        yield Api(TestClient(app, raise_server_exceptions=False), tokens)
    finally:
        gov.close()


def test_incidents_by_role_over_http(api: Api) -> None:
    status, body = api.get("ana.lyst", "/incidents", zone=["D01", "D02"], family="VOL", limit=5)
    assert status == 200 and body["incidents"]
    assert all(row["zone"] in ("D01", "D02") and row["family"] == "VOL" for row in body["incidents"])
    status, body = api.get("ana.lyst", "/incidents", include="parties")
    assert status == 403 and "safety.incident.parties" in body["error"]["message"]
    status, body = api.get("pat.partner", "/incidents", include="narrative")
    assert status == 403
    status, body = api.get("rita.researcher", "/stats")
    assert status == 403
    status, body = api.get("olga.ops", "/incidents", include=["narrative", "parties"], limit=2)
    assert status == 200 and all("parties" in r for row in body["incidents"] for r in row["reports"])
    incident = body["incidents"][0]["incident_id"]
    status, body = api.get("ana.lyst", f"/incidents/{incident}")
    assert status == 200 and body["reports"] and body["links"]
    assert api.get("ana.lyst", "/incidents/999999999")[0] == 404


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"zone": "D99"}, "zones"),
        ({"zone": "D01' OR 1=1 --"}, "zones"),
        ({"type": "x" * 300}, "type"),
        ({"start": "yesterday"}, "start"),
        ({"start": "2025-01-01T00:00:00+05:00"}, "start"),
        ({"end": "0001-01-01"}, "end"),
        ({"limit": 100_000}, "limit"),
        ({"include": "address"}, "include"),
    ],
)
def test_bad_filters_are_refused_naming_the_field(api: Api, params: dict[str, object], field: str) -> None:
    status, body = api.get("ana.lyst", "/incidents", **params)
    assert status == 422, body
    assert field in str(body)


def test_a_partner_gets_masked_aggregates_and_staff_exact_ones(api: Api) -> None:
    status, staff = api.get("ana.lyst", "/stats", by="type", family="ATP")
    assert status == 200 and staff["exact"] and all(isinstance(r["count"], int) for r in staff["rows"])
    status, partner = api.get("pat.partner", "/stats", by="type", family="ATP")
    assert status == 200 and not partner["exact"]
    assert all(r["count"] is None or r["count"] >= 10 for r in partner["rows"])
    status, grid = api.get("ana.lyst", "/map", cell=1000, start="2025-01-01", end="2025-07-01")
    assert status == 200 and grid["cells"]
    status, line = api.get("ana.lyst", "/timeline", bucket="month", start="2025-01-01", end="2025-07-01")
    assert status == 200
    assert sum(p["count"] for p in line["points"]) == sum(c["count"] for c in grid["cells"]) + sum(
        grid["without_point"].values()
    ), "the map and the timeline count the same incidents"
    status, catalogue = api.get("pat.partner", "/catalogue")
    assert status == 200 and len(catalogue["types"]) >= 100
