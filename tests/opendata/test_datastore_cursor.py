"""Cursor paging of ``datastore_search``: the opaque ``_links.next`` resumes after the page's last row (keyset on
the sort keys and the unique ``_id``), never skipping nor repeating a row; attacks: a cursor for another resource,
another query or an earlier load of the table, tampered or oversized, mixed with an offset."""

from __future__ import annotations

import base64
import datetime as dt
import json
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opendata_world import OpenDataWorld

from massalia.engine import Engine
from massalia.engine.duckdb import DuckDBEngine
from massalia.governance import Caller
from massalia.opendata import datastore
from massalia.opendata.models import ValidationFailed

DATASET = {"name": "pages", "title": "Pages", "owner_org": "region-sud"}
# Few distinct values and many nulls: ties on every sort key, so only the _id tiebreaker makes the order total.
COLUMNS: dict[str, tuple[str, st.SearchStrategy[Any]]] = {
    "n": ("int", st.none() | st.integers(-2, 2)),
    "x": ("float", st.none() | st.sampled_from([-1.5, 0.0, 1e-5, 0.1, 2.0])),
    "s": ("text", st.none() | st.sampled_from(["", "a", "B", "é", "a b", "a'b"])),
    "d": ("date", st.none() | st.sampled_from([dt.date(2024, 1, 1), dt.date(2024, 1, 2), dt.date(1999, 12, 31)])),
    "b": ("bool", st.none() | st.booleans()),
}
ROWS = st.lists(st.fixed_dictionaries({name: values for name, (_, values) in COLUMNS.items()}), max_size=30)
SORTS = st.lists(
    st.tuples(st.sampled_from([*COLUMNS, "_id"]), st.sampled_from(["asc", "desc"])),
    max_size=3,
    unique_by=lambda k: k[0],
).map(lambda keys: ", ".join(f"{name} {direction}" for name, direction in keys))
FILTERS = st.sampled_from([None, {"b": "true"}, {"n": [0, 1]}])


def _resource(world: OpenDataWorld, name: str = "table") -> str:
    alice = world.caller("alice")
    if "pages" not in world.catalog.package_list(alice):
        world.catalog.package_create(alice, DATASET)
    return str(
        world.catalog.resource_create(alice, {"package_id": "pages", "name": name, "url": "https://e.org"})["id"]
    )


def _load(world: OpenDataWorld, engine: Engine, resource: str, rows: list[dict[str, Any]]) -> None:
    fields = [{"id": name, "type": kind} for name, (kind, _) in COLUMNS.items()]
    datastore.create_from_records(world.caller("alice"), world.catalog, engine, resource, fields=fields, records=rows)


def _cursor(page: dict[str, Any]) -> str:
    """The cursor of a page's ``_links.next`` (which also carries the query, as a client follows it)."""
    return parse_qs(urlsplit(page["_links"]["next"]).query)["cursor"][0]


def _page_through(
    reader: Caller, world: OpenDataWorld, engine: Engine, resource: str, limit: int, **query: Any
) -> list[int]:
    ids: list[int] = []
    page = datastore.search(reader, world.catalog, engine, resource, limit=limit, **query)
    for _ in range(100):
        ids += [record["_id"] for record in page["records"]]
        if not page["records"]:
            return ids
        page = datastore.search(reader, world.catalog, engine, resource, limit=limit, cursor=_cursor(page), **query)
    raise AssertionError("paging did not end")


def test_cursor_paging_never_skips_nor_repeats_a_row(world: OpenDataWorld, engine: DuckDBEngine) -> None:
    resource, anonymous = _resource(world), world.caller("anonymous")

    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(rows=ROWS, sort=SORTS, filters=FILTERS, limit=st.integers(1, 7))
    def pages_match_one_read(rows: list[dict[str, Any]], sort: str, filters: Any, limit: int) -> None:
        _load(world, engine, resource, rows)
        query = {"sort": sort or None, "filters": filters}
        whole = datastore.search(anonymous, world.catalog, engine, resource, limit=1000, **query)
        expected = [record["_id"] for record in whole["records"]]
        paged = _page_through(anonymous, world, engine, resource, limit, **query)
        assert paged == expected  # same rows, same order: nothing skipped, nothing repeated
        assert len(set(paged)) == len(paged) == whole["total"]

    pages_match_one_read()


def test_rows_added_while_paging_never_make_a_page_repeat_or_skip_a_row(
    world: OpenDataWorld, engine: DuckDBEngine
) -> None:
    """With offsets, a row inserted before the reader's position shifts every later row by one (a repeat); a
    cursor resumes after the last row it saw."""
    alice, anonymous = world.caller("alice"), world.caller("anonymous")
    resource = _resource(world)
    _load(world, engine, resource, [{"n": i % 3, "s": f"r{i:02d}"} for i in range(20)])
    first = datastore.search(anonymous, world.catalog, engine, resource, sort="n, s", limit=5)
    seen = [record["s"] for record in first["records"]]
    datastore.upsert(alice, world.catalog, engine, resource, [{"n": -1, "s": "new"}], method="insert")
    page = first
    while True:
        page = datastore.search(anonymous, world.catalog, engine, resource, sort="n, s", limit=5, cursor=_cursor(page))
        if not page["records"]:
            break
        seen += [record["s"] for record in page["records"]]
    assert sorted(seen) == sorted(f"r{i:02d}" for i in range(20))  # every original row once; "new" sorts before


def test_next_link_carries_the_query_and_the_end_is_an_empty_page(world: OpenDataWorld, engine: DuckDBEngine) -> None:
    resource, anonymous = _resource(world), world.caller("anonymous")
    _load(world, engine, resource, [{"n": i, "s": "é"} for i in range(3)])
    page = datastore.search(
        anonymous, world.catalog, engine, resource, filters={"s": "é"}, sort="n desc", fields=["n"], limit=2
    )
    link = parse_qs(urlsplit(page["_links"]["next"]).query)
    assert json.loads(link["filters"][0]) == {"s": "é"} and link["sort"] == ["n desc"] and link["limit"] == ["2"]
    assert page["records"] == [{"n": 2}, {"n": 1}]
    page = datastore.search(
        anonymous, world.catalog, engine, resource, filters={"s": "é"}, sort="n desc", fields=["n"], limit=2,
        cursor=_cursor(page),
    )  # fmt: skip
    assert page["records"] == [{"n": 0}]
    end = datastore.search(
        anonymous, world.catalog, engine, resource, filters={"s": "é"}, sort="n desc", fields=["n"], limit=2,
        cursor=_cursor(page),
    )  # fmt: skip
    assert end["records"] == [] and _cursor(end) == _cursor(page)  # still at the end, not back to the start


def test_attack_a_cursor_is_refused_for_another_resource_query_or_load(
    world: OpenDataWorld, engine: DuckDBEngine
) -> None:
    anonymous = world.caller("anonymous")
    resource, other = _resource(world, "one"), _resource(world, "two")
    rows = [{"n": i % 2, "s": str(i)} for i in range(6)]
    _load(world, engine, resource, rows)
    _load(world, engine, other, rows)
    cursor = _cursor(datastore.search(anonymous, world.catalog, engine, resource, sort="n", limit=2))
    refused = "another resource, query"
    with pytest.raises(ValidationFailed, match=refused):
        datastore.search(anonymous, world.catalog, engine, other, sort="n", limit=2, cursor=cursor)
    for query in ({"sort": "n desc"}, {"sort": "s"}, {"sort": "n", "filters": {"n": 1}}, {"sort": "n", "q": "1"}):
        with pytest.raises(ValidationFailed, match=refused):
            datastore.search(anonymous, world.catalog, engine, resource, limit=2, cursor=cursor, **query)
    with pytest.raises(ValidationFailed, match="not both"):
        datastore.search(anonymous, world.catalog, engine, resource, sort="n", limit=2, offset=2, cursor=cursor)
    # The table is loaded again: its _ids are new, so an old cursor could skip or repeat rows; it is refused.
    _load(world, engine, resource, rows)
    with pytest.raises(ValidationFailed, match=refused):
        datastore.search(anonymous, world.catalog, engine, resource, sort="n", limit=2, cursor=cursor)


def test_attack_a_tampered_or_oversized_cursor_is_a_clear_refusal(world: OpenDataWorld, engine: DuckDBEngine) -> None:
    anonymous = world.caller("anonymous")
    resource = _resource(world)
    _load(world, engine, resource, [{"n": i, "s": "a"} for i in range(4)])
    cursor = _cursor(datastore.search(anonymous, world.catalog, engine, resource, sort="n", limit=1))
    data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))

    def encode(value: Any) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

    for forged, message in (
        ("x" * (datastore.MAX_CURSOR_CHARS + 1), "characters"),
        ("!!not base64!!", "not a cursor"),
        (encode([1, 2]), "not a cursor"),
        (encode({**data, "k": data["k"][:1]}), "do not match"),
        (encode({**data, "k": [{"$ne": 1}, "1"]}), "do not match"),
        (encode({**data, "k": ["1 OR 1=1", "1"]}), "not a int value"),  # would be SQL if it were pasted
        (encode({**data, "k": ["0", "1); DROP TABLE x; --"]}), "not a int value"),
    ):
        with pytest.raises(ValidationFailed, match=message):
            datastore.search(anonymous, world.catalog, engine, resource, sort="n", limit=1, cursor=forged)
    # A text key is a literal, never SQL: a quote in it only positions the page.
    text = _cursor(datastore.search(anonymous, world.catalog, engine, resource, sort="s", limit=1))
    payload = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    quoted = encode({**payload, "k": ["a' OR '1'='1", "0"]})
    page = datastore.search(anonymous, world.catalog, engine, resource, sort="s", limit=10, cursor=quoted)
    assert page["records"] == []  # every "a" sorts before "a' OR …"


@pytest.mark.postgres
def test_cursor_paging_on_postgresql(world: OpenDataWorld, pg_dsn: str) -> None:
    """The same keyset SQL on PostgreSQL, whose default puts nulls first in a descending sort (the cursor's order
    says nulls last explicitly) and whose double type is spelt differently."""
    from massalia.engine.postgres import PostgresEngine

    resource, anonymous = _resource(world), world.caller("anonymous")
    engine = PostgresEngine(pg_dsn, schema=f"t_cursor_{resource.replace('-', '')[:12]}")
    try:
        rows = [
            {"n": (None, 1, 2)[i % 3], "x": (None, 0.1, 1e-5)[i % 2], "s": (None, "a", "é")[i % 3],
             "d": dt.date(2024, 1, 1 + i % 2), "b": (None, True, False)[i % 3]}
            for i in range(17)
        ]  # fmt: skip
        _load(world, engine, resource, rows)
        for sort in ("n desc, x", "s, d desc", "x desc, b", "b desc, _id desc", ""):
            whole = datastore.search(anonymous, world.catalog, engine, resource, sort=sort or None, limit=100)
            paged = _page_through(anonymous, world, engine, resource, 4, sort=sort or None)
            assert paged == [record["_id"] for record in whole["records"]] and len(set(paged)) == 17, sort
    finally:
        engine.drop_schema()
        engine.close()
