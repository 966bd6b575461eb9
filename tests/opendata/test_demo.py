"""The generated demo catalog: published through the guarded services, searchable, its IRVE sample queryable."""

from __future__ import annotations

import pytest
from opendata_world import OpenDataWorld

from massalia.engine.duckdb import DuckDBEngine
from massalia.governance import AccessDenied
from massalia.opendata import datastore
from massalia.opendata.demo import build_demo
from massalia.opendata.search import search_documents


def test_the_demo_catalog_is_published_searchable_and_idempotent(world: OpenDataWorld, engine: DuckDBEngine) -> None:
    admin, anonymous = world.caller("admin"), world.caller("anonymous")
    report = build_demo(admin, world.catalog, engine, datasets=12)
    assert report.organizations == 7 - 1 and report.groups == 8 - 1  # region-sud and mobilite were already there
    assert report.datasets == 13 and report.datastore_rows == 500
    found = search_documents(world.catalog.active_documents(anonymous), q="IRVE", facet_fields=["organization"])
    assert found["count"] >= 1 and "region-sud" in found["facets"]["organization"]
    irve = world.catalog.package_show(anonymous, "bornes-irve-region")["resources"][0]
    rows = datastore.search(anonymous, world.catalog, engine, irve["id"], filters={"commune": "Gap"}, limit=0)
    assert rows["total"] > 0
    again = build_demo(admin, world.catalog, engine, datasets=12)
    assert (again.organizations, again.groups, again.datasets, again.datastore_rows) == (0, 0, 0, 0)


def test_only_a_platform_admin_builds_the_demo(world: OpenDataWorld, engine: DuckDBEngine) -> None:
    with pytest.raises(AccessDenied):
        build_demo(world.caller("alice"), world.catalog, engine, datasets=1)
