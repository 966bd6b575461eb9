"""The portal's structure without a browser: page registration, the asset index, the shell, the routes."""

from __future__ import annotations

import gzip
import json
import re
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from massalia.api import create_app
from massalia.config import Home
from massalia.governance.rights import load_rights
from massalia.health.plugin import PORTAL_PAGES as HEALTH_PAGES
from massalia.opendata.plugin import PORTAL_PAGES as OPENDATA_PAGES
from massalia.plugins import Contributions, PortalPage, RegistryError, load_domains
from massalia.portal import CORE_PAGES, collect_pages
from massalia.portal.assets import STATIC_DIR, AssetIndex
from massalia.portal.shell import render_shell
from massalia.safety.plugin import PORTAL_PAGES as SAFETY_PAGES


class TinyDomain:
    """The smallest domain with a portal page: one asset folder, one page (no router, no rights of its own)."""

    name = "tiny"

    def __init__(self, folder: Path, *pages: PortalPage) -> None:
        self.folder = folder
        self.pages = pages or (PortalPage("tiny.things", "/portal/tiny/things", "Choses", "Things", "things.js"),)

    def contribute(self, contributions: Contributions) -> None:
        contributions.add_portal_assets(self.folder)
        for page in self.pages:
            contributions.add_portal_page(page)


@pytest.fixture
def tiny_assets(tmp_path: Path) -> Path:
    folder = tmp_path / "tiny-portal"
    folder.mkdir()
    (folder / "things.js").write_text("export async function render(main) { main.textContent = 'things'; }\n")
    (folder / "notes.md").write_text("not served: no known type\n")
    return folder


def contributions_with(*domains: Any) -> Contributions:
    contributions = load_domains()
    for domain in domains:
        contributions.accept(domain)
    return contributions


def test_core_and_health_pages_are_collected_in_order() -> None:
    pages = collect_pages(load_domains(), load_rights(domains=load_domains()))
    domain_pages = [p.name for p in HEALTH_PAGES] + [p.name for p in OPENDATA_PAGES] + [p.name for p in SAFETY_PAGES]
    assert [e.page.name for e in pages] == [p.name for p in CORE_PAGES] + domain_pages
    public = {e.page.name for e in pages if e.as_json()["public"]}
    assert public == {"portal.signin", "opendata.catalog", "opendata.dataset"}  # open data's catalog is anonymous
    feasibility = pages[len(CORE_PAGES)]
    assert feasibility.module_url == "/static/domains/health/feasibility.js"
    assert feasibility.roles is not None and "researcher" in feasibility.roles and "public" not in feasibility.roles


def test_a_tiny_domain_contributes_a_page_served_by_the_app(
    tmp_path: Path, tiny_assets: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = types.ModuleType("tiny_portal_domain")
    module.DOMAIN = TinyDomain(tiny_assets)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "tiny_portal_domain", module)
    app = create_app(Home(tmp_path / "home"), domains=["tiny_portal_domain"])
    try:
        client = TestClient(app)
        page = client.get("/portal/tiny/things")
        assert page.status_code == 200 and '"tiny.things"' in page.text
        versioned = f"/static/v/{app.state.portal.assets.version}/domains/tiny/things.js"
        assert f'"module": "{versioned}"' in page.text
        assert client.get(versioned).headers["cache-control"] == "public, max-age=31536000, immutable"
        script = client.get("/static/domains/tiny/things.js")
        assert script.status_code == 200 and script.headers["content-type"].startswith("text/javascript")
        assert client.get("/static/domains/tiny/notes.md").status_code == 404
    finally:
        app.state.massalia.governance.close()


@pytest.mark.parametrize(
    ("page", "message"),
    [
        (PortalPage("tiny.home", "/", "Accueil", "Home", "things.js"), "must start with /portal/tiny/"),
        (PortalPage("other.things", "/portal/tiny/x", "X", "X", "things.js"), "must be named 'tiny.<page>'"),
    ],
)
def test_a_domain_page_stays_in_its_own_name_and_address(tiny_assets: Path, page: PortalPage, message: str) -> None:
    with pytest.raises(RegistryError, match=message):
        contributions_with(TinyDomain(tiny_assets, page))


def test_duplicate_pages_are_refused(tiny_assets: Path) -> None:
    twice = PortalPage("tiny.things", "/portal/tiny/again", "Encore", "Again", "things.js")
    with pytest.raises(RegistryError, match=r"duplicate portal page 'tiny\.things'"):
        contributions_with(TinyDomain(tiny_assets, TinyDomain(tiny_assets).pages[0], twice))
    same_place = (
        PortalPage("tiny.a", "/portal/tiny/same", "A", "A", "things.js"),
        PortalPage("tiny.b", "/portal/tiny/same", "B", "B", "things.js"),
    )
    contributions = contributions_with(TinyDomain(tiny_assets, *same_place))
    with pytest.raises(RegistryError, match="duplicate portal page address '/portal/tiny/same'"):
        collect_pages(contributions, load_rights(domains=contributions))


def test_a_page_needs_a_known_right_and_an_existing_module(tmp_path: Path, tiny_assets: Path) -> None:
    unknown = PortalPage("tiny.secret", "/portal/tiny/secret", "S", "S", "things.js", right="tiny.secret.read")
    contributions = contributions_with(TinyDomain(tiny_assets, unknown))
    with pytest.raises(RegistryError, match="is not an action of the rights"):
        collect_pages(contributions, load_rights(domains=contributions))
    missing = PortalPage("tiny.gone", "/portal/tiny/gone", "G", "G", "gone.js")
    module = types.ModuleType("tiny_missing_module")
    module.DOMAIN = TinyDomain(tiny_assets, missing)  # type: ignore[attr-defined]
    sys.modules["tiny_missing_module"] = module
    try:
        with pytest.raises(RegistryError, match=r"its module /static/domains/tiny/gone\.js is not an asset"):
            create_app(Home(tmp_path / "home"), domains=["tiny_missing_module"])
    finally:
        del sys.modules["tiny_missing_module"]


@pytest.mark.parametrize(
    "fields",
    [
        {"name": "Tiny.Page"},
        {"path": "/portal/tiny/../etc"},
        {"path": "/elsewhere"},
        {"module": "../../secret.js"},
        {"module": "https://cdn.example/x.js"},
        {"label_fr": " "},
        {"right": "not an action"},
    ],
)
def test_malformed_pages_are_refused(fields: dict[str, str]) -> None:
    values = {"name": "tiny.page", "path": "/portal/tiny/page", "label_fr": "P", "label_en": "P", "module": "p.js"}
    with pytest.raises(RegistryError):
        PortalPage(**{**values, **fields})  # type: ignore[arg-type]


def test_the_asset_index_serves_only_known_files(tmp_path: Path) -> None:
    outside = tmp_path / "secret.js"
    outside.write_text("secret")
    folder = tmp_path / "assets"
    folder.mkdir()
    (folder / "link.js").symlink_to(outside)
    (folder / "page.js").write_text("x" * 5000)
    index = AssetIndex.build(STATIC_DIR, {"tiny": folder})
    assert "domains/tiny/page.js" in index and "domains/tiny/link.js" not in index
    assert index.get("../pyproject.toml") is None and index.get("/etc/passwd") is None
    page = index.get("domains/tiny/page.js")
    assert page is not None and page.gzipped is not None and gzip.decompress(page.gzipped) == page.body
    for vendored in ("vendor/echarts/echarts.min.js", "vendor/echarts/LICENSE", "vendor/echarts/NOTICE"):
        assert (STATIC_DIR / vendored).is_file(), vendored


def test_the_shell_has_no_inline_script_or_style_and_escapes_its_configuration() -> None:
    document = render_shell({"page": "</script><script>alert(1)</script>"}, title="<Massalia>")
    assert "<script>alert" not in document and "&lt;Massalia&gt;" in document
    assert " style=" not in document and "<style" not in document
    scripts = [line for line in document.splitlines() if "<script" in line]
    assert all('type="application/json"' in line or 'src="/static/' in line for line in scripts), scripts


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    app = create_app(Home(tmp_path_factory.mktemp("portal-routes")))
    try:
        yield TestClient(app)
    finally:
        app.state.massalia.governance.close()


def test_static_assets_are_revalidated_and_compressed(client: TestClient) -> None:
    first = client.get("/static/vendor/echarts/echarts.min.js", headers={"Accept-Encoding": "gzip"})
    assert first.status_code == 200 and first.headers["content-encoding"] == "gzip"
    assert first.headers["cache-control"] == "no-cache" and first.headers["x-content-type-options"] == "nosniff"
    again = client.get("/static/vendor/echarts/echarts.min.js", headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    missing = client.get("/static/../pyproject.toml")
    assert missing.status_code == 404


def test_pages_answer_with_the_shell_and_unknown_ones_404(client: TestClient) -> None:
    for path in ("/", "/portal/signin", "/portal/account", "/portal/health/feasibility"):
        response = client.get(path)
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/html"), path
        assert response.headers["cache-control"] == "no-store"
    assert client.get("/portal/nowhere").status_code == 404
    paths = client.get("/api/v1/openapi.json").json()["paths"]
    assert not [p for p in paths if not p.startswith("/api/v1/")], "the portal is not part of the JSON API"


def test_message_catalogues_have_the_same_keys() -> None:
    import json

    from massalia.health.plugin import PORTAL_ASSETS
    from massalia.opendata.plugin import PORTAL_ASSETS as OPENDATA_ASSETS

    for folder in (STATIC_DIR / "i18n", PORTAL_ASSETS / "i18n", OPENDATA_ASSETS / "i18n"):
        french = json.loads((folder / "fr.json").read_text(encoding="utf-8"))
        english = json.loads((folder / "en.json").read_text(encoding="utf-8"))
        assert set(french) == set(english), sorted(set(french) ^ set(english))


# -- versioned assets (issue 12: no revalidation round trip per import level) -------------------------------------
IMMUTABLE = "public, max-age=31536000, immutable"


def test_the_build_hash_follows_every_asset(tmp_path: Path) -> None:
    folder = tmp_path / "assets"
    folder.mkdir()
    (folder / "page.js").write_text("export const a = 1;\n")
    first = AssetIndex.build(STATIC_DIR, {"tiny": folder})
    assert first.version == AssetIndex.build(STATIC_DIR, {"tiny": folder}).version, "the same files, the same hash"
    (folder / "page.js").write_text("export const a = 2;\n")
    changed = AssetIndex.build(STATIC_DIR, {"tiny": folder})
    (folder / "other.js").write_text("export const a = 2;\n")
    added = AssetIndex.build(STATIC_DIR, {"tiny": folder})
    assert len({first.version, changed.version, added.version}) == 3, "a changed or added asset gives a new hash"
    reserved = tmp_path / "core"
    (reserved / "v").mkdir(parents=True)
    (reserved / "v" / "x.js").write_text("1")
    with pytest.raises(ValueError, match="reserved"):
        AssetIndex.build(reserved, {})


def test_versioned_assets_are_immutable_and_only_under_the_running_hash(client: TestClient) -> None:
    version = client.app.state.portal.assets.version  # type: ignore[attr-defined]
    good = client.get(f"/static/v/{version}/js/app.js", headers={"Accept-Encoding": "gzip"})
    assert good.status_code == 200 and good.headers["cache-control"] == IMMUTABLE
    assert (
        good.headers["content-type"].startswith("text/javascript")
        and good.content == client.get("/static/js/app.js").content
    )
    again = client.get(f"/static/v/{version}/js/app.js", headers={"If-None-Match": good.headers["etag"]})
    assert again.status_code == 304 and again.headers["cache-control"] == IMMUTABLE
    # Attack: a stale or guessed hash must not be cached for good under a name that could later mean other bytes.
    other = ("0" * 16, version[:-1] + ("0" if version[-1] != "0" else "1"), version + "0", version.upper(), "x" * 16)
    for wrong in (candidate for candidate in other if candidate != version):
        refused = client.get(f"/static/v/{wrong}/js/app.js")
        assert refused.status_code == 404 and "immutable" not in refused.headers.get("cache-control", ""), wrong
    # Attack: path traversal under the versioned prefix (raw and encoded) reaches no file outside the index.
    for sneaky in ("../../pyproject.toml", "..%2F..%2Fpyproject.toml", "%2e%2e/%2e%2e/pyproject.toml", "js/../../x"):
        refused = client.get(f"/static/v/{version}/{sneaky}")
        assert refused.status_code == 404 and "immutable" not in refused.headers.get("cache-control", ""), sneaky
        assert b"[project]" not in refused.content
    assert client.get(f"/static/v/{version}/").status_code == 404
    assert client.get("/static/js/app.js").headers["cache-control"] == "no-cache", "the plain address revalidates"


def test_the_shell_links_every_asset_under_the_running_hash(client: TestClient) -> None:
    version = client.app.state.portal.assets.version  # type: ignore[attr-defined]
    prefix = f"/static/v/{version}/"
    document = client.get("/portal/health/feasibility").text
    links = re.findall(r'(?:href|src)="(/static/[^"]*)"', document)
    assert links and all(link.startswith(prefix) for link in links), links
    preloads = re.findall(r'<link rel="modulepreload" href="([^"]+)"', document)
    graph = ("js/api.js", "js/ui.js", "domains/health/feasibility.js", "domains/health/filters.js", "js/charts.js")
    assert all(prefix + name in preloads for name in graph), preloads
    for link in links:
        assert client.get(link).status_code == 200, link
    config = json.loads(re.search(r'id="massalia-portal">(.*?)</script>', document).group(1))  # type: ignore[union-attr]
    assert config["static"] == prefix
    assert all(entry["module"].startswith(prefix) for entry in config["pages"]), "page modules under the hash"


def test_no_module_imports_an_absolute_static_address(client: TestClient) -> None:
    """An absolute ``/static/js/...`` import would load a second copy of a core module (its own state) and
    revalidate it: every module reaches the others relatively, so under the shell's versioned prefix."""
    index = client.app.state.portal.assets  # type: ignore[attr-defined]
    absolute = re.compile(r"""(?:\bfrom\s*|\bimport\s*\(?\s*)["'`]/""")
    found = [
        name
        for name, asset in index.files.items()
        if name.endswith(".js") and not name.startswith("vendor/") and absolute.search(asset.body.decode("utf-8"))
    ]
    assert not found, f"modules importing an absolute address: {found}"
    assert absolute.search('import { h } from "/static/js/dom.js";'), "the check finds such an import"


def test_the_preloaded_import_graph_stays_in_the_index(tmp_path: Path) -> None:
    folder = tmp_path / "assets"
    folder.mkdir()
    (folder / "page.js").write_text(
        'import { h } from "../../js/dom.js";\nimport {\n  a,\n  b,\n} from "./kit.js";\n'
        'import "../../../../etc/passwd.js";\nimport x from "/static/js/api.js";\nconst later = import("./lazy.js");\n'
    )
    (folder / "kit.js").write_text('export { t } from "../../js/i18n.js";\nexport const a = 1, b = 2;\n')
    (folder / "lazy.js").write_text("export const lazy = 1;\n")
    index = AssetIndex.build(STATIC_DIR, {"tiny": folder})
    found = index.static_imports("domains/tiny/page.js")
    assert found == ("js/dom.js", "domains/tiny/kit.js", "js/i18n.js"), found
    assert index.static_imports("domains/tiny/missing.js") == () and index.static_imports("portal.css") == ()
