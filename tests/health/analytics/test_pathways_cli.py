"""``massalia analysis pathways|conformance`` for an approved member: the summary, the JSON, a bad rule file."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from analytics_world import AnalyticsWarehouse, project_of
from typer.testing import CliRunner

from massalia.cli import app
from massalia.config import Home
from massalia.governance import Governance, Role, operator_principal

runner = CliRunner()


@pytest.fixture(scope="module")
def home(analytics_warehouse: AnalyticsWarehouse, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    root = tmp_path_factory.mktemp("pathways-cli")
    shutil.copy(analytics_warehouse.path, root / "warehouse.duckdb")
    operator = operator_principal()
    with Governance.from_home(Home(root).ensure()) as gov:
        rita = gov.create_user("rita", None, [Role.RESEARCHER], actor=operator)
        gov.create_user("olga", None, [Role.RESEARCHER], actor=operator)
        dina = gov.create_user("dina", None, [Role.DPO], actor=operator)
        project = project_of(gov, rita, dina)
        tokens = {name: gov.create_token(name, None, dt.timedelta(days=1), actor=operator) for name in ("rita", "olga")}
    yield {"root": root, "project": project, "tokens": tokens}


def _run(home: dict, who: str, *args: str) -> tuple[int, str]:
    env = {"MASSALIA_TOKEN": home["tokens"][who], "MASSALIA_HOME": str(home["root"]), "COLUMNS": "200"}
    result = runner.invoke(app, ["analysis", *args, "--project", str(home["project"])], env=env)
    return result.exit_code, result.output


def test_pathways_and_conformance_from_the_command_line(home: dict, tmp_path: Path) -> None:
    code, out = _run(home, "rita", "pathways", "--steps", "2", "--top", "3")
    assert code == 0, out
    assert "→" in out and "persons; other pathways" in out
    code, out = _run(home, "rita", "conformance", "--rule", "er_positive_breast_endocrine", "--json")
    assert code == 0, out
    assert json.loads(out)["rules"][0]["overall"]["rate"] is not None


def test_the_command_line_refuses_others_and_names_bad_rules(home: dict, tmp_path: Path) -> None:
    code, out = _run(home, "olga", "pathways")
    assert code == 3 and "approved members" in out
    rules = tmp_path / "mine.yaml"
    rules.write_text("version: 1\nclasses: {a: {procedures: [surgery]}}\nrules: [{id: x, title: xyz}]\n")
    code, out = _run(home, "rita", "conformance", "--rules", str(rules))
    assert code == 1 and "rules_yaml: rules[0].guideline: Field required" in out
