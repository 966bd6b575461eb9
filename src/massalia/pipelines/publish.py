"""Atomic publish: every change of a run becomes visible at once, or none does.

On engines with transactions (DuckDB, PostgreSQL) all deletes and inserts run in one transaction.
On engines without (Spark), each changed table is rebuilt under a staging name (kept rows + new
rows) and all staging tables are swapped in at the end, so a failure before the swap leaves every
table as it was.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from massalia.engine import Engine, check_identifier


@dataclass(frozen=True)
class TableChange:
    """Rows to add to ``target`` (and, first, rows to remove from it).

    Parameters
    ----------
    target
        Published table.
    select_sql
        Query (house dialect) returning the rows to add, columns in the target's order. It must read
        staged data only, never ``target`` itself (the swap path rebuilds ``target``).
    delete_where
        Optional predicate (house dialect, columns of ``target`` unqualified) of rows to remove first.
    """

    target: str
    select_sql: str
    delete_where: str | None = None


def publish(engine: Engine, changes: Sequence[TableChange]) -> None:
    """Apply ``changes`` atomically (see the module docstring for how, per engine).

    Examples
    --------
    >>> from massalia.engine import connect
    >>> engine = connect("duckdb")
    >>> engine.execute("CREATE TABLE t (x INTEGER)")
    >>> publish(engine, [TableChange("t", "SELECT 1"), TableChange("t", "SELECT 2")])
    >>> engine.query("SELECT x FROM t ORDER BY x").column(0).to_pylist()
    [1, 2]
    """
    for change in changes:
        check_identifier(change.target)
    if engine.capabilities.transactions:
        with engine.transaction():
            for change in changes:
                if change.delete_where:
                    engine.execute(f"DELETE FROM {change.target} WHERE {change.delete_where}")
                engine.execute(f"INSERT INTO {change.target} {change.select_sql}")
        return
    grouped: dict[str, list[TableChange]] = {}
    for change in changes:
        grouped.setdefault(change.target, []).append(change)
    staged: dict[str, str] = {}
    try:
        for target, table_changes in grouped.items():
            described = engine.describe(target)
            columns = ", ".join(c.name for c in described)
            kept = f"SELECT {columns} FROM {target}"
            removals = [c.delete_where for c in table_changes if c.delete_where]
            if removals:
                kept += " WHERE NOT (" + " OR ".join(f"coalesce({r}, false)" for r in removals) + ")"
            parts = [kept] + [f"SELECT * FROM ({c.select_sql}) AS added" for c in table_changes]
            staging = engine.staging_name(target)
            # Same columns and NOT NULL constraints as the target, so the rebuilt table checks rows alike.
            engine.create_empty_table(staging, described)
            staged[staging] = target
            engine.execute(f"INSERT INTO {staging} " + " UNION ALL ".join(parts))
        engine.swap(staged)
    except BaseException:
        for staging in staged:
            engine.drop_table(staging)
        raise
