"""``massalia token …``: what the local operator is told when it asks for a token of its own."""

from __future__ import annotations

import os
import pwd
from pathlib import Path

from cli_testing import run


def test_the_operator_is_told_it_has_no_account_and_how_to_make_a_token(tmp_path: Path) -> None:
    home = tmp_path / "home"
    operator = f"operator:{pwd.getpwuid(os.getuid()).pw_name}"  # the real OS account, as the CLI names it
    for extra in ((), ("--user", operator)):
        code, out = run(home, "token", "create", *extra)
        flat = " ".join(out.split())
        assert code == 1, out
        assert "is the local operator" in flat and "not a user account" in flat, out
        assert "massalia token create --user NAME" in flat and "massalia user add NAME" in flat, out
        assert "no user 'operator:" not in flat
    # Any other 'operator:…' name is no account either, whoever asks.
    code, out = run(home, "token", "create", "--user", "operator:someone")
    assert code == 1 and "not an account" in out


def test_the_operator_makes_a_token_for_a_user(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert run(home, "user", "add", "rita", "--role", "researcher", "--no-password")[0] == 0
    code, out = run(home, "token", "create", "--user", "rita")
    assert code == 0 and out.strip().splitlines()[0].startswith("msl_"), out
