"""``massalia text index|search``: the operator builds the notes index; a clinician sees their own site's hits."""

from __future__ import annotations

import json
from pathlib import Path

from cli_testing import run


def test_index_then_search_with_rights(home: Path) -> None:
    code, out = run(home, "text", "index")
    assert code == 0, out
    assert "notes index rebuilt" in out and (home / "indexes" / "notes" / "current").is_dir()
    code, out = run(home, "text", "index")
    assert code == 0 and "notes index updated: 0 note(s) added" in out, out

    assert run(home, "user", "add", "cleo", "--role", "clinician", "--site", "chu_nord", "--no-password")[0] == 0
    cleo = run(home, "token", "create", "--user", "cleo")[1].strip().splitlines()[0]
    code, out = run(home, "text", "search", '"tumeur maligne" sein', "--json", token=cleo)
    assert code == 0, out
    found = json.loads(out)
    assert found["mode"] == "identified" and found["total"] > 0 and set(found["facets"]["site"]) == {"chu_nord"}
    assert all(hit["site"] == "chu_nord" for hit in found["hits"])
    code, out = run(home, "text", "search", "sein", "--site", "clcc_sud", "--from", "2010-01-01", token=cleo)
    assert code == 0 and out.startswith("0 note(s)"), out
    code, out = run(home, "text", "search", "sein", "--page-size", "3", token=cleo)
    assert code == 0 and "chu_nord" in out and "identified" in out, out

    assert run(home, "user", "add", "rita", "--role", "researcher", "--no-password")[0] == 0
    rita = run(home, "token", "create", "--user", "rita")[1].strip().splitlines()[0]
    code, out = run(home, "text", "search", "sein", "--json", token=rita)
    assert code == 0 and json.loads(out)["mode"] == "count" and json.loads(out)["hits"] == [], out
    code, out = run(home, "text", "index", token=rita)
    assert code == 3 and "health.document.index" in out
    code, out = run(home, "text", "search", '"sein', token=cleo)
    assert code == 1 and "unclosed quote at character 1" in out
