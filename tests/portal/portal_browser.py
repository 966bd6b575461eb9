"""Helpers of the portal's browser tests (the fixtures are in this folder's conftest.py): one served home and one
headless Chromium per run, a fresh context per test.

The home is a copy of the suite's demo warehouse (600 generated patients, DuckDB) with the research mart
built, the demo accounts and their approved project made by the demo's own code, served by uvicorn on a
free 127.0.0.1 port in a thread. Every test's page is watched: a console error, an uncaught exception,
a failed request or an HTTP error status fails the test unless that test declared it expected. Each
screenshot goes to ``$MASSALIA_ARTIFACTS`` (default ``.ci/tmp/artifacts/portal``).
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import pytest

from massalia.config import Home
from massalia.governance import Caller, Governance, operator_principal
from massalia.health.documents.search import NOTES_INDEX, NOTES_SCHEMA, index_notes
from massalia.text import TantivyIndex

ROOT = Path(__file__).resolve().parents[2]
AXE = Path(__file__).parent / "axe" / "node_modules" / "axe-core" / "axe.min.js"
CHROMIUM_FLAGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-default-apps",
    "--disable-extensions",
]  # fmt: skip


def unavailable(config: pytest.Config, reason: str) -> NoReturn:
    """The suite's ``unavailable`` (skip locally, fail in CI), from the root conftest (found among the plugins)."""
    root = config.pluginmanager.get_plugin(str(ROOT / "tests" / "conftest.py"))
    if root is None:
        raise RuntimeError("tests/conftest.py is not loaded: run pytest from the repository")
    root.unavailable(reason)
    raise AssertionError("unreachable")


def chromium_path() -> str | None:
    """Debian's Chromium (``apt-get install chromium``; scripts/install-system adds it)."""
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None


def artifacts_dir() -> Path:
    """Where screenshots and timings go (CI keeps them): ``$MASSALIA_ARTIFACTS`` or ``.ci/tmp/artifacts/portal``."""
    configured = os.environ.get("MASSALIA_ARTIFACTS")
    folder = Path(configured) / "portal" if configured else ROOT / ".ci" / "tmp" / "artifacts" / "portal"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@dataclass
class Site:
    """The served home: its address, its accounts (username and password by role) and the demo project."""

    url: str
    home: Home
    accounts: dict[str, tuple[str, str]]
    project_id: int | None
    app: Any


@dataclass
class Watch:
    """What went wrong in a page: console errors, uncaught exceptions, failed requests, HTTP errors."""

    problems: list[str] = field(default_factory=list)
    expected: list[re.Pattern[str]] = field(default_factory=list)

    def expect(self, pattern: str) -> None:
        """Declare a problem this test provokes on purpose (a regular expression over its description)."""
        self.expected.append(re.compile(pattern))

    def add(self, problem: str) -> None:
        self.problems.append(problem)

    def unexpected(self) -> list[str]:
        return [p for p in self.problems if not any(pattern.search(p) for pattern in self.expected)]

    def attach(self, page: Any) -> None:
        page.on("console", lambda m: self.add(f"console {m.type}: {m.text}") if m.type == "error" else None)
        page.on("pageerror", lambda error: self.add(f"page error: {error}"))
        # A fetch the page aborts itself (a count superseded by a newer one) is a cancellation, not a failure.
        page.on(
            "requestfailed",
            lambda r: None if r.failure == "net::ERR_ABORTED" else self.add(f"request failed: {r.url} {r.failure}"),
        )
        page.on("response", lambda r: self.add(f"HTTP {r.status}: {r.request.method} {r.url}") if r.status >= 400
                else None)  # fmt: skip


@dataclass
class Browsing:
    """A test's page, its watch, and the site."""

    page: Any
    watch: Watch
    site: Site

    def sign_in(self, role: str, *, landing: str = "/") -> None:
        """Sign in through the sign-in form as the demo account of ``role``."""
        username, password = self.site.accounts[role]
        self.page.goto("/portal/signin")
        self.page.fill("input[name=username]", username)
        self.page.fill("input[name=password]", password)
        self.page.click("#signin-submit")
        self.page.wait_for_url(f"**{landing}")
        self.page.wait_for_selector("#current-user")


def wait_until(page: Any, predicate: str, arg: Any = None, *, timeout: float = 15.0) -> Any:
    """Poll ``predicate`` (a JS function of ``arg``) until truthy; its value.

    Playwright's ``wait_for_function`` evaluates its predicate with ``eval``, which the portal's content security
    policy refuses (no 'unsafe-eval'); ``page.evaluate`` goes through DevTools and is not affected.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = page.evaluate(predicate, arg)
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for: {predicate}")
        time.sleep(0.02)


HOSTILE_NOTE = 9_000_000_001
"""A note added to the portal's search index only: its text is an XSS attempt the search page must show as text."""
HOSTILE_TEXT = 'Zygomycose <img src=x onerror="document.body.dataset.pwned=1"> <b>gras</b> &amp; sein.'


def index_search_notes(engine: Any, home: Any) -> None:
    """The notes index of the portal's home, plus one hostile chu_nord note (index only, not the warehouse)."""
    with Governance.from_home(home) as gov:
        index_notes(Caller(operator_principal(), gov, "test"), engine, home.indexes)
    index = TantivyIndex.open(home.indexes, NOTES_INDEX, NOTES_SCHEMA)
    person = int(engine.query_native(
        "SELECT min(p.person_id) FROM person p JOIN care_site cs ON cs.care_site_id = p.care_site_id "
        "WHERE cs.care_site_source_value = 'chu_nord'").column(0)[0].as_py())  # fmt: skip
    index.add([{"note_id": HOSTILE_NOTE, "person_id": person, "note_title": "CR_TEST", "note_type": "CR_TEST",
                "note_text": HOSTILE_TEXT, "site": "chu_nord", "note_date": dt.date(2024, 1, 2)}])  # fmt: skip
    index.commit()
