"""Patterns over HTTP and the command line: chart-ready JSON for a member, 403 for another project, 422 input."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from analytics_world import AnalyticsWarehouse, client_of, project_of, serve_api
from typer.testing import CliRunner

from massalia.cli import app as cli_app

VARIABLES = ["er_status", "received_hormone_therapy", "primary_site"]


@pytest.fixture(scope="module")
def api(analytics_warehouse: AnalyticsWarehouse, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    with serve_api(analytics_warehouse, tmp_path_factory.mktemp("patterns-api")) as served_api:
        project = project_of(served_api.gov, served_api.users["rita"], served_api.users["dina"])
        yield {"app": served_api.app, "tokens": served_api.tokens, "project": project, "root": served_api.home.root}


def _post(api: dict, who: str, **body: object) -> tuple[int, dict]:
    client = client_of(api, who)
    response = client.post("/api/v1/analyses/patterns", json={"project_id": api["project"], **body})
    return response.status_code, response.json()


def test_a_member_gets_rules_and_sequences(api: dict) -> None:
    status, result = _post(api, "rita", variables=VARIABLES, max_length=2)
    assert status == 200, result
    rules = {(tuple(r["antecedent"]), r["consequent"]): r for r in result["associations"]["rules"]}
    planted = rules[(("er_status=positive",), "received_hormone_therapy=true")]
    assert planted["unexpected"] and planted["lift"] > 2 and planted["persons"]["count"] >= 10
    assert result["sequences"]["sequences"] and result["provenance"]["analysis"] == "patterns"
    assert all("person_id" not in json.dumps(s) for s in result["sequences"]["sequences"])


def test_attack_another_projects_owner_is_refused(api: dict) -> None:
    status, body = _post(api, "olga", variables=VARIABLES)
    assert status == 403, body


@pytest.mark.parametrize(
    ("body", "named"),
    [({"variables": ["age_at_diagnosis", "sex"]}, "age_at_diagnosis"), ({"variables": ["sex"]}, "two variables"),
     ({"max_length": 9}, "max_length"), ({"min_count": 0}, "min_count")],
)  # fmt: skip
def test_bad_input_is_a_422_naming_it(api: dict, body: dict, named: str) -> None:
    status, answer = _post(api, "rita", **body)
    assert status == 422 and named in str(answer), answer


def test_the_command_line_prints_the_rules(api: dict) -> None:
    env = {"MASSALIA_TOKEN": api["tokens"]["rita"], "MASSALIA_HOME": str(api["root"]), "COLUMNS": "200"}
    args = ["analysis", "patterns", "--project", str(api["project"]), "--max-length", "2", "--no-sequences"]
    for name in VARIABLES:
        args += ["--variable", name]
    result = CliRunner().invoke(cli_app, args, env=env)
    assert result.exit_code == 0, result.output
    assert "UNEXPECTED er_status=positive => received_hormone_therapy=true" in result.output
    result = CliRunner().invoke(cli_app, [*args, "--json"], env=env)
    assert result.exit_code == 0 and "sequences" not in json.loads(result.output)
