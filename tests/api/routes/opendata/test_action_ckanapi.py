"""The Action API driven by the real CKAN client, ``ckanapi``, against ``massalia serve`` on 127.0.0.1.

Two servers run (two homes): the Python client publishes, uploads, searches and queries the datastore on the
first; the ``ckanapi`` command line dumps its datasets, loads them (with their uploaded files) into the second
and dumps them back, and the two dumps must agree.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from ckanapi import NotAuthorized, NotFound, RemoteCKAN, ValidationError

from massalia.config import Home
from massalia.governance import Governance, load_rights, operator_principal
from massalia.plugins import load_domains

BIN = Path(sys.executable).parent


@dataclass
class Site:
    """A running server: its CKAN site URL, an admin's and a producer's tokens."""

    url: str
    admin: str
    producer: str
    process: subprocess.Popen[bytes]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _launch(root: Path) -> Site:
    """Make a home with an admin and a producer, and start its server (without waiting for it)."""
    home = Home(root).ensure()
    home.mark_initialized("duckdb")
    rights = load_rights(domains=load_domains(builtins=("massalia.opendata.plugin",)))
    operator = operator_principal()
    with Governance(home.metadata_url, home.ledger, key_path=root / "keys" / "master.key", rights=rights) as gov:
        gov.create_user("ck-admin", None, ["admin"], actor=operator)
        gov.create_user("ck-producer", None, ["researcher"], actor=operator)
        admin = gov.create_token("ck-admin", None, dt.timedelta(days=1), actor=operator)
        producer = gov.create_token("ck-producer", None, dt.timedelta(days=1), actor=operator)
    port = _free_port()
    env = {**os.environ, "MASSALIA_HOME": str(root)}
    env.pop("MASSALIA_API_CORS_ORIGINS", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "massalia", "serve", "--port", str(port), "--log-level", "warning"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    return Site(f"http://127.0.0.1:{port}/api/v1/opendata", admin, producer, process)


def _wait(site: Site) -> None:
    deadline = time.monotonic() + 120
    while True:
        try:
            httpx.get(site.url.replace("/opendata", "/health"), timeout=2)
            return
        except httpx.TransportError:
            if site.process.poll() is not None or time.monotonic() > deadline:
                output = site.process.stdout.read().decode() if site.process.stdout else ""
                site.process.kill()
                raise AssertionError(f"massalia serve did not start: {output}") from None
            time.sleep(0.2)


@pytest.fixture(scope="module")
def sites(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Site, Site]]:
    root = tmp_path_factory.mktemp("ckan-sites")
    first, second = _launch(root / "a"), _launch(root / "b")  # both start at once
    try:
        _wait(first)
        _wait(second)
        for site in (first, second):
            admin = RemoteCKAN(site.url, apikey=site.admin)
            admin.action.organization_create(name="region-sud", title="Région Sud",
                                             users=[{"name": "ck-producer", "capacity": "editor"}])  # fmt: skip
            admin.action.group_create(name="mobilite", title="Mobilité")
        yield first, second
    finally:
        for site in (first, second):
            site.process.terminate()
            site.process.wait(timeout=30)


CSV = "code_insee;commune;puissance_kw\n13001;Marseille;22\n06088;Nice;50\n84007;Avignon;11\n"


def _publish(site: Site, tmp_path: Path) -> str:
    producer = RemoteCKAN(site.url, apikey=site.producer)
    for index, (name, tag) in enumerate((("bornes-irve", "IRVE"), ("parkings-relais", "parking"),
                                         ("budget-primitif", "finances"))):  # fmt: skip
        producer.action.package_create(
            name=name, title=f"Jeu {index}: {name.replace('-', ' ')}", owner_org="region-sud",
            notes="Données ouvertes de la région.", license_id="etalab-2.0", tags=[{"name": tag}],
            groups=[{"name": "mobilite"}] if tag != "finances" else [],
            resources=[{"url": f"https://example.org/{name}.json", "format": "JSON", "name": "API"}],
        )  # fmt: skip
    path = tmp_path / "bornes.csv"
    path.write_text(CSV, encoding="utf-8")
    with path.open("rb") as upload:
        resource = producer.action.resource_create(package_id="bornes-irve", format="CSV", name="Bornes",
                                                   upload=upload)  # fmt: skip
    assert resource["datastore_active"] is True and resource["url"].startswith(site.url)
    return str(resource["id"])


def test_the_python_client_publishes_searches_and_queries(sites: tuple[Site, Site], tmp_path: Path) -> None:
    site, _ = sites
    resource = _publish(site, tmp_path)
    anonymous = RemoteCKAN(site.url)
    assert anonymous.action.status_show()["ckan_version"].startswith("2.")
    assert anonymous.action.package_list() == ["bornes-irve", "budget-primitif", "parkings-relais"]
    found = anonymous.action.package_search(q="bornes", fq="tags:IRVE", **{"facet.field": ["groups", "tags"]})
    assert found["count"] == 1 and found["results"][0]["name"] == "bornes-irve"
    everything = anonymous.action.package_search(q="*:*", **{"facet.field": ["groups"]}, rows=2, sort="name asc")
    assert everything["count"] == 3 and [d["name"] for d in everything["results"]] == ["bornes-irve", "budget-primitif"]
    assert everything["facets"]["groups"] == {"mobilite": 2}
    assert anonymous.action.tag_list() == ["IRVE", "finances", "parking"]
    assert {lic["id"] for lic in anonymous.action.license_list()} >= {"etalab-2.0", "odc-odbl"}
    assert anonymous.action.organization_show(id="region-sud", include_datasets=True)["package_count"] == 3
    rows = anonymous.action.datastore_search(resource_id=resource, filters={"commune": "Nice"})
    assert rows["total"] == 1 and rows["records"][0]["puissance_kw"] == 50
    # Cursor paging over HTTP: _links.next (relative to the CKAN root, as CKAN's) is followed as given.
    first = anonymous.action.datastore_search(resource_id=resource, sort="commune desc", fields="commune", limit=2)
    following = httpx.get(site.url + first["_links"]["next"], timeout=10).json()["result"]
    assert [r["commune"] for r in first["records"] + following["records"]] == ["Nice", "Marseille", "Avignon"]
    sql = anonymous.action.datastore_search_sql(sql=f'SELECT sum(puissance_kw) AS kw FROM "{resource}"')
    assert sql["records"] == [{"kw": 83}]
    download = httpx.get(anonymous.action.resource_show(id=resource)["url"], timeout=10)
    assert download.status_code == 200 and download.text == CSV
    versions = anonymous.action.package_versions(id="bornes-irve")
    assert [v["operation"] for v in versions] == ["package_create", "resource_create"]


def test_ckan_errors_reach_the_client_as_ckan_errors(sites: tuple[Site, Site]) -> None:
    site, _ = sites
    with pytest.raises(NotAuthorized):
        RemoteCKAN(site.url).action.package_create(name="pirate", owner_org="region-sud")
    with pytest.raises(NotAuthorized):  # a producer may not create organizations
        RemoteCKAN(site.url, apikey=site.producer).action.organization_create(name="mine")
    with pytest.raises(ValidationError) as invalid:
        RemoteCKAN(site.url, apikey=site.producer).action.package_create(name="Bad Name!", owner_org="region-sud")
    assert "name" in invalid.value.error_dict
    with pytest.raises(NotFound):
        RemoteCKAN(site.url).action.package_show(id="no-such-dataset")
    with pytest.raises(ValidationError) as unsafe:
        RemoteCKAN(site.url).action.datastore_search_sql(sql="SELECT * FROM read_csv('/etc/passwd')")
    assert "sql" in unsafe.value.error_dict


def _ckanapi(*args: str) -> str:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}  # its workers run `ckanapi`
    result = subprocess.run([str(BIN / "ckanapi"), *args], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


def _comparable(dump: Path) -> list[dict[str, Any]]:
    datasets = [json.loads(line) for line in dump.read_text(encoding="utf-8").splitlines() if line.strip()]
    return sorted(
        ({"name": d["name"], "title": d["title"], "notes": d["notes"], "license_id": d["license_id"],
          "organization": d["organization"]["name"], "tags": sorted(t["name"] for t in d["tags"]),
          "groups": sorted(g["name"] for g in d["groups"]),
          "resources": [(r["name"], r["format"], r["hash"], r["url_type"]) for r in d["resources"]]}
         for d in datasets),
        key=lambda d: d["name"],
    )  # fmt: skip


def test_ckanapi_dump_and_load_round_trip(sites: tuple[Site, Site], tmp_path: Path) -> None:
    first, second = sites
    if not RemoteCKAN(first.url).action.package_list():
        _publish(first, tmp_path)
    dump_a, dump_b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    _ckanapi("dump", "datasets", "--all", "-O", str(dump_a), "-p", "1", "-r", first.url)
    log = _ckanapi("load", "datasets", "--upload-resources", "-I", str(dump_a), "-p", "1", "-r", second.url,
                   "-a", second.admin)  # fmt: skip
    assert "Error" not in log, log
    _ckanapi("dump", "datasets", "--all", "-O", str(dump_b), "-p", "1", "-r", second.url)
    original, copied = _comparable(dump_a), _comparable(dump_b)
    assert len(original) == 3 and copied == original
    # The uploaded file came across byte for byte (same SHA-256), and its rows are queryable on the second site.
    bornes = json.loads(next(line for line in dump_b.read_text().splitlines() if '"bornes-irve"' in line))
    upload = next(r for r in bornes["resources"] if r["url_type"] == "upload")
    assert httpx.get(upload["url"], timeout=10).text == CSV
