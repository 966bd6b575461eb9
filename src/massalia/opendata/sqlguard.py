"""``datastore_search_sql``'s gate: one read-only SELECT over datastore tables, nothing else.

The SQL is parsed with SQLGlot and only the parsed tree is ever run (re-rendered), never the text sent.
Refused: more than one statement; anything but a query (DDL, DML, ``COPY``, ``ATTACH``, ``PRAGMA``, ``SET``,
``INSTALL``/``LOAD``...); a table that is not a datastore resource (named by its resource id, as in CKAN:
``SELECT * FROM "<resource id>"``) or a CTE of the query itself — so governance, OMOP or any other
warehouse table is out of reach; a table function or a path in ``FROM`` (``read_csv('/etc/passwd')``,
``'/etc/passwd'``, ``glob(...)``); and a function SQLGlot does not know (``getenv``, ``read_text``,
``current_setting``...) or one that reads files, settings or the environment. The result is capped in rows
by wrapping (``LIMIT``) and in time by the engine's time limit, by the caller of :func:`guarded_query`.

Examples
--------
>>> guarded_query('SELECT count(*) AS n FROM "r1"', {"r1": "ods_r1"}, max_rows=10).sql("duckdb")
'SELECT * FROM (SELECT COUNT(*) AS n FROM ods_r1 AS "r1") AS q LIMIT 11'
>>> guarded_query("SELECT * FROM read_csv('/etc/passwd')", {"r1": "ods_r1"}, max_rows=10)
Traceback (most recent call last):
...
massalia.opendata.sqlguard.UnsafeSql: not a datastore table (name one by its resource id): READ_CSV('/etc/passwd')
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError

from massalia.opendata.models import ValidationFailed

MAX_SQL_CHARS = 20_000
CTE_PREFIX = "odsq_cte_"
"""A query's own CTEs are renamed with this prefix, which no warehouse table has."""
_RISKY_FUNCTION = re.compile(
    r"read|file|glob|env|setting|secret|extension|pragma|system|query|scan|copy|attach|"
    r"export|import|install|load|sql|table|duckdb|pg_|version|user",
    re.IGNORECASE,
)
_QUERY_TYPES = (exp.Select, exp.Union, exp.Intersect, exp.Except, exp.Subquery)


class UnsafeSql(ValidationFailed):
    """The SQL is not a single read-only SELECT over datastore tables; the message says what was refused."""

    def __init__(self, message: str) -> None:
        super().__init__({"sql": [message]})
        self.args = (message,)

    def __str__(self) -> str:
        return str(self.args[0])


def _check_function(node: exp.Func) -> None:
    if isinstance(node, exp.Anonymous):
        raise UnsafeSql(f"function {node.name}() is not allowed here")
    name = node.sql_name() if hasattr(node, "sql_name") else type(node).__name__
    if _RISKY_FUNCTION.search(type(node).__name__) or _RISKY_FUNCTION.search(name):
        raise UnsafeSql(f"function {name}() is not allowed here")


def guarded_query(sql: str, tables: Mapping[str, str], *, max_rows: int) -> exp.Query:
    """The parsed, checked query with datastore resource ids replaced by their warehouse tables, row-capped.

    Parameters
    ----------
    sql
        The caller's SQL (DuckDB's dialect, like the house's).
    tables
        Resource id → warehouse table name, for every datastore table the caller may read.
    max_rows
        The wrapped query returns at most ``max_rows + 1`` rows (one more tells the caller it was cut).

    Raises
    ------
    UnsafeSql
        Anything but a single SELECT over those tables, with the reason.
    """
    if not isinstance(sql, str) or not sql.strip() or len(sql) > MAX_SQL_CHARS:
        raise UnsafeSql(f"sql must be 1 to {MAX_SQL_CHARS} characters")
    try:
        statements = [s for s in sqlglot.parse(sql, read="duckdb") if s is not None]
    except (ParseError, sqlglot.errors.TokenError) as error:
        raise UnsafeSql(f"the SQL cannot be parsed: {str(error).splitlines()[0][:300]}") from None
    if len(statements) != 1:
        raise UnsafeSql(f"exactly one statement is allowed, got {len(statements)}")
    tree = statements[0]
    if not isinstance(tree, _QUERY_TYPES):
        raise UnsafeSql(f"only SELECT is allowed, not {tree.key.upper()}")
    ctes = {cte.alias_or_name for cte in tree.find_all(exp.CTE)}
    for cte in tree.find_all(exp.CTE):
        # Renamed, with every reference: a reference outside the CTE's scope then names no real table.
        cte.set("alias", exp.TableAlias(this=exp.to_identifier(CTE_PREFIX + cte.alias_or_name)))
    for node in list(tree.walk()):
        if isinstance(node, exp.Func):
            _check_function(node)
        elif isinstance(node, (exp.Command, exp.DDL, exp.DML, exp.Pragma, exp.Set, exp.Into, exp.Copy)):
            raise UnsafeSql(f"only SELECT is allowed, not {node.key.upper()}")
        elif isinstance(node, exp.Table):
            _replace_table(node, tables, ctes)
    capped = exp.select("*").from_(tree.subquery("q")).limit(max_rows + 1)
    return capped


def _replace_table(node: exp.Table, tables: Mapping[str, str], ctes: set[str]) -> None:
    target = node.this
    if not isinstance(target, exp.Identifier) or node.args.get("db") or node.args.get("catalog"):
        raise UnsafeSql(f"not a datastore table (name one by its resource id): {node.sql('duckdb')}")
    name = target.name
    if name in ctes and not target.quoted:
        node.set("this", exp.to_identifier(CTE_PREFIX + name))
        node.set("alias", exp.TableAlias(this=exp.to_identifier(node.alias or name, quoted=True)))
        return
    if name not in tables:
        raise UnsafeSql(f"{name!r} is not a datastore table (name a resource id that has a datastore table)")
    alias = node.alias or name
    node.set("this", exp.to_identifier(tables[name]))
    node.set("alias", exp.TableAlias(this=exp.to_identifier(alias, quoted=True)))
