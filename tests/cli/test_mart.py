"""``massalia mart build|variables|count`` on a copy of the shared demo warehouse."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from typer.testing import CliRunner

from massalia.cli import app
from massalia.config import home

runner = CliRunner()


def test_build_then_count_noisy_without_a_project(demo_warehouse: Path, massalia_home: Path) -> None:
    shutil.copy(demo_warehouse, home(massalia_home).ensure().warehouse)
    built = runner.invoke(app, ["mart", "build", "--home", str(massalia_home), "--engine", "duckdb"])
    assert built.exit_code == 0, built.output
    assert re.search(r"600 persons × \d+ variables", built.output)
    assert "Massalia demo vocabulary" in built.output

    count = runner.invoke(app, ["mart", "count", "--where", "primary_site = breast", "--home", str(massalia_home)])
    assert count.exit_code == 0, count.output
    assert re.search(r"persons (~\d+|<10)", count.output) and "privacy budget left" in " ".join(count.output.split())

    small = runner.invoke(app, ["mart", "count", "--where", "age_at_diagnosis > 200", "--home", str(massalia_home)])
    # A true 0 is noisy like any count: never shown as 0, and mostly '<10' like any small count.
    assert small.exit_code == 0 and re.search(r"persons (<10|~[1-9]\d+)\n", small.output), small.output

    by_id = runner.invoke(app, ["mart", "count", "--where", "person_id <= 4", "--home", str(massalia_home)])
    assert by_id.exit_code == 1 and "person_id is an identifier" in by_id.output

    budget = runner.invoke(app, ["privacy", "budget", "--home", str(massalia_home)])
    assert budget.exit_code == 0 and re.search(r"ε 0\.2 spent of 5, 4\.8 left", budget.output), budget.output
    assert "2 release(s)" in budget.output

    split = runner.invoke(
        app, ["mart", "count", "--any", "stage_group = IV", "--any", "had_relapse = true", "--by", "sex",
              "--home", str(massalia_home)],
    )  # fmt: skip
    assert split.exit_code == 0, split.output
    assert "female" in split.output and "total" in split.output

    refused = runner.invoke(app, ["mart", "count", "--where", "stage_group = V", "--home", str(massalia_home)])
    assert refused.exit_code == 1
    assert "clause 1 (stage_group = 'V')" in refused.output


def test_count_before_build_says_what_to_do(massalia_home: Path) -> None:
    # A home never initialized says so first (tests/cli/test_common.py); a loaded one without a mart names the build.
    result = runner.invoke(app, ["mart", "count", "--where", "sex = female", "--home", str(massalia_home)])
    assert result.exit_code == 1 and "massalia init" in " ".join(result.output.split())
    assert runner.invoke(app, ["init", "--home", str(massalia_home)]).exit_code == 0
    result = runner.invoke(app, ["mart", "count", "--where", "sex = female", "--home", str(massalia_home)])
    assert result.exit_code == 1
    assert "massalia mart build" in " ".join(result.output.split())  # the console may wrap the line


def test_variables_in_french_and_english() -> None:
    french = runner.invoke(app, ["mart", "variables", "--lang", "fr", "--group", "survival"])
    assert french.exit_code == 0, french.output
    assert "Survie" in french.output and "os_days" in french.output
    english = runner.invoke(app, ["mart", "variables", "--group", "vital_status"])
    assert "Vital" in english.output and "deceased" in english.output
    assert runner.invoke(app, ["mart", "variables", "--lang", "de"]).exit_code != 0
    assert runner.invoke(app, ["mart", "variables", "--group", "nothing"]).exit_code == 1


def test_mart_commands_are_checked_and_audited(demo_warehouse: Path, massalia_home: Path) -> None:
    from massalia.ledger import TransparencyLog

    data = home(massalia_home).ensure()
    shutil.copy(demo_warehouse, data.warehouse)
    assert runner.invoke(app, ["mart", "build", "--home", str(massalia_home)]).exit_code == 0
    assert runner.invoke(app, ["mart", "count", "--where", "sex = female", "--home", str(massalia_home)]).exit_code == 0
    with TransparencyLog(data.ledger, readonly=True) as log:
        actions = [log.get(i).entry["action"] for i in range(log.size)]
    assert actions[-3:] == ["health.mart.build", "health.mart.count", "disclosure.release"]

    bogus = runner.invoke(
        app, ["mart", "count", "--where", "sex = female", "--home", str(massalia_home)],
        env={"MASSALIA_TOKEN": "msl_not-a-real-token"},
    )  # fmt: skip
    assert bogus.exit_code == 4, bogus.output
