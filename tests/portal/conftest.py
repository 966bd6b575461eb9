"""The portal's browser fixtures (helpers in ``portal_browser.py``, importable by the test modules)."""

from __future__ import annotations

import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from portal_browser import (
    AXE,
    CHROMIUM_FLAGS,
    ROOT,
    Browsing,
    Site,
    Watch,
    artifacts_dir,
    chromium_path,
    index_search_notes,
    unavailable,
)

from massalia.api import ApiSettings, create_app
from massalia.config import Home


@pytest.fixture(scope="session")
def portal_site(tmp_path_factory: pytest.TempPathFactory, demo_warehouse: Path) -> Iterator[Site]:
    import uvicorn

    from massalia.cli.demo_portal import demo_accounts, demo_project
    from massalia.engine.duckdb import DuckDBEngine
    from massalia.governance import operator_principal
    from massalia.health.marts.builder import build_mart

    home = Home(tmp_path_factory.mktemp("portal-home")).ensure()
    shutil.copy(demo_warehouse, home.warehouse)
    with DuckDBEngine(home.warehouse) as engine:
        build_mart(engine)
        index_search_notes(engine, home)
    app = create_app(home, settings=ApiSettings())
    gov = app.state.massalia.governance
    made = demo_accounts(gov, operator_principal(), home.root)
    project_id = demo_project(gov, made)
    accounts = {a.role: (a.username, a.password or "") for a in made}
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on", server_header=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True, name="portal-uvicorn")
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the portal's test server did not start")
        time.sleep(0.05)
    try:
        yield Site(f"http://127.0.0.1:{port}", home, accounts, project_id, app)
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()


@pytest.fixture(scope="session")
def browser(pytestconfig: pytest.Config) -> Iterator[Any]:
    """One headless Chromium for the run (the system's, never a downloaded one)."""
    executable = chromium_path()
    if executable is None:
        unavailable(pytestconfig, "chromium is not installed (apt-get install chromium; bash scripts/install-system)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable(pytestconfig, "the playwright package is not installed (pip install -e '.[test]')")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def browsing(browser: Any, portal_site: Site) -> Iterator[Browsing]:
    """A fresh browser context (no cookies, no storage) on the served site, watched for problems."""
    context = browser.new_context(base_url=portal_site.url, viewport={"width": 1280, "height": 900}, locale="fr-FR")
    context.set_default_timeout(15_000)
    page = context.new_page()
    watch = Watch()
    watch.attach(page)
    try:
        yield Browsing(page, watch, portal_site)
        page.wait_for_timeout(50)  # let late console messages and responses arrive
        unexpected = watch.unexpected()
        assert not unexpected, "problems in the page:\n" + "\n".join(unexpected)
    finally:
        context.close()


@pytest.fixture(scope="session")
def screenshot() -> Callable[[Any, str], Path]:
    """Save a full-page screenshot of ``page`` as ``<name>.png`` in the artifacts folder."""
    folder = artifacts_dir()

    def take(page: Any, name: str) -> Path:
        path = folder / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take


@pytest.fixture(scope="session")
def axe_source(pytestconfig: pytest.Config) -> str:
    """axe-core's script (npm, installed by scripts/test: npm ci --prefix tests/portal/axe)."""
    if not AXE.is_file():
        unavailable(pytestconfig, f"axe-core is not installed: npm ci --prefix {AXE.parents[2].relative_to(ROOT)}")
    return AXE.read_text(encoding="utf-8")
