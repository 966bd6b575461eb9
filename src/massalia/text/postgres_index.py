"""The PostgreSQL full-text backend of the text index, for server deployments.

The same schema, request, query language and result as :class:`~massalia.text.tantivy_index.TantivyIndex`,
in one table of the engine.

The table ``text_<name>`` holds the declared fields and a ``tsv`` column: ``to_tsvector('french', …)`` of
the text fields with accents folded first (as the Tantivy analyzer does, so ``metastase`` finds
``métastase``; PostgreSQL's ``unaccent`` is an extension a server may lack). A query is compiled from the
same parsed tree into a ``tsquery`` of the same stems (:func:`massalia.text.analysis.word_forms`), phrases
into ``<N>`` (followed-by) operators with the gaps stop words leave. Snippets come from ``ts_headline``.

Known differences from the Tantivy backend (said, not hidden): a proximity ``"a b c"~N`` of more than two
words is its words anywhere in the document (``tsquery`` has no "within N"); scores are ``ts_rank_cd``;
the stop word lists of the two French analyzers differ slightly. A full build writes a staging table
and swaps it in atomically (:meth:`massalia.engine.Engine.swap`).

All SQL goes through :class:`massalia.engine.Engine` (only the engine knows the driver); the engine must
have the ``french_full_text`` capability.
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
from collections.abc import Iterable, Mapping
from typing import Any

import pyarrow as pa
from sqlglot import exp

from massalia.engine import Engine
from massalia.engine.base import UnsupportedOperation
from massalia.text.analysis import analyzed_positions, fold, word_forms
from massalia.text.model import MAX_FACET_VALUES, Hit, IndexSchema, SearchRequest, SearchResult, Snippet
from massalia.text.query import And, Node, Not, Phrase, QuerySyntaxError, Word, parse_query, positive_words
from massalia.text.tantivy_index import INDEX_NAME, TextIndexError

FOLDED = "_folded_"
START, STOP = "\x02", "\x03"
"""Highlight markers asked of ``ts_headline`` (control characters: never in a note, never markup)."""
HEADLINE = f"StartSel={START}, StopSel={STOP}, MaxWords=35, MinWords=15, MaxFragments=1"


def _literal(value: str) -> str:
    return exp.Literal.string(value).sql("postgres")


def _lexemes(forms: Iterable[str]) -> str:
    # Stems are lowercase ASCII letters and digits (folded, tokenized on non-alphanumerics): quoted anyway.
    parts = [f"'{form}'" for form in sorted(forms) if re.fullmatch(r"[a-z0-9]+", form)]
    return parts[0] if len(parts) == 1 else "(" + " | ".join(parts) + ")"


def _word(text: str) -> str | None:
    positions = analyzed_positions(text)
    if not positions:
        return None
    if len(positions) > 1:
        return _phrase(text, 0)
    return _lexemes(word_forms(text) or {positions[0][1]})


def _phrase(text: str, slop: int) -> str | None:
    positions = analyzed_positions(text)
    if not positions:
        return None
    words = text.split()
    steps: list[tuple[int, str]] = []
    for at, stem in positions:
        forms = {stem}
        for word in words:
            if stem in word_forms(word):
                forms |= word_forms(word)
        steps.append((at, _lexemes(forms)))
    if len(steps) == 1:
        return steps[0][1]
    if slop and len(steps) > 2:  # no "within N" in tsquery: every word, anywhere
        return "(" + " & ".join(lexemes for _, lexemes in steps) + ")"
    if slop:
        (first, a), (second, b) = steps
        gap = second - first
        return "(" + " | ".join(f"{a} <{gap + extra}> {b}" for extra in range(slop + 1)) + ")"
    out = steps[0][1]
    for (previous, _), (at, lexemes) in itertools.pairwise(steps):
        out = f"{out} <{at - previous}> {lexemes}"
    return f"({out})"


def compile_tsquery(node: Node) -> str | None:
    """The ``tsquery`` text of a parsed query (``None``: only stop words).

    Examples
    --------
    >>> compile_tsquery(parse_query('"cancer du sein" -récidive'))
    "((('canc' | 'cancer') <2> 'sein') & !'recid')"
    """
    if isinstance(node, Word):
        return _word(node.text)
    if isinstance(node, Phrase):
        return _phrase(node.text, node.slop)
    if isinstance(node, Not):
        inner = compile_tsquery(node.item)
        return None if inner is None else f"!{inner}"
    parts = [part for part in (compile_tsquery(item) for item in node.items) if part is not None]
    if not parts:
        return None
    joiner = " & " if isinstance(node, And) else " | "
    return parts[0] if len(parts) == 1 else "(" + joiner.join(parts) + ")"


def _headline_query(tree: Node) -> str | None:
    words = {re.sub(r"[^\w]", "", piece) for word in positive_words(tree) for piece in re.split(r"[\W_]+", word)}
    words.discard("")
    return " | ".join(sorted(words)) or None


def _snippet(headline: str | None) -> Snippet | None:
    if not headline:
        return None
    fragment, ranges, at, start = [], [], 0, 0
    for char in headline:
        if char == START:
            start = at
        elif char == STOP:
            ranges.append((start, at))
        else:
            fragment.append(char)
            at += 1
    return Snippet("".join(fragment), tuple(ranges)) if ranges else None


class PostgresTextIndex:
    """One named index as a table of a PostgreSQL engine, with the schema its owner declared."""

    def __init__(self, engine: Engine, name: str, schema: IndexSchema) -> None:
        if not engine.capabilities.french_full_text:
            raise UnsupportedOperation(f"the {engine.name} engine has no French full-text search (use PostgreSQL)")
        if not INDEX_NAME.match(name) or "-" in name:
            raise TextIndexError(f"an index name is a lowercase identifier, got {name!r}")
        self.engine = engine
        self.schema = schema
        self.table = f"text_{name}"

    # -- building ----------------------------------------------------------------------------------------
    def _arrow(self, rows: Iterable[Mapping[str, Any]]) -> pa.Table:
        schema = self.schema
        fields = [pa.field(schema.id_field, pa.int64())]
        fields += [pa.field(n, pa.string()) for n in (*schema.text_fields, *schema.keyword_fields)]
        fields += [pa.field(n, pa.date32()) for n in schema.date_fields]
        fields += [pa.field(n, pa.int64()) for n in schema.integer_fields]
        fields.append(pa.field(FOLDED, pa.string()))
        columns: dict[str, list[Any]] = {f.name: [] for f in fields}
        for row in rows:
            for f in fields[:-1]:
                value = row.get(f.name)
                if isinstance(value, dt.datetime):
                    value = value.date()
                columns[f.name].append(value)
            folded = " . ".join(fold(str(row[n])) for n in schema.text_fields if row.get(n) is not None)
            columns[FOLDED].append(folded)
        return pa.table(columns, schema=pa.schema(fields))

    def build(self, batches: Iterable[Iterable[Mapping[str, Any]]]) -> int:
        """Replace the index by the documents of ``batches`` (a staging table swapped in atomically)."""
        engine, staging = self.engine, Engine.staging_name(self.table)
        count = 0
        created = False
        try:
            for rows in batches:
                table = self._arrow(rows)
                count += table.num_rows
                if created:
                    engine.insert(staging, table)
                else:
                    engine.create_table(staging, table)
                    created = True
            if not created:
                engine.create_table(staging, self._arrow([]))
            self._finish(staging)
            engine.swap({staging: self.table})
        except BaseException:
            engine.drop_table(staging)
            raise
        return count

    def exists(self) -> bool:
        """Whether the index table was built."""
        return self.engine.table_exists(self.table)

    def add(self, rows: Iterable[Mapping[str, Any]]) -> int:
        """Add documents to a built index (incremental indexing; a staging table copied in one statement)."""
        if not self.exists():
            raise TextIndexError(f"the text index {self.table} was never built")
        table = self._arrow(rows)
        if table.num_rows == 0:
            return 0
        engine, staging = self.engine, Engine.staging_name(self.table)
        names = [n for n in table.column_names if n != FOLDED]
        try:
            engine.create_table(staging, table)
            engine.execute_native(
                f"INSERT INTO {self.table} ({', '.join(names)}, tsv) SELECT {', '.join(names)}, "
                f"to_tsvector('french', coalesce({FOLDED}, '')) FROM {staging}"
            )
        finally:
            engine.drop_table(staging)
        return table.num_rows

    @property
    def num_docs(self) -> int:
        """Documents in the index."""
        return int(self.engine.query_native(f"SELECT count(*) AS n FROM {self.table}").column(0)[0].as_py())

    def max_id(self) -> int:
        """The highest document id in the index (the smallest integer when it is empty)."""
        found = self.engine.query_native(f"SELECT max({self.schema.id_field}) AS m FROM {self.table}")
        value = found.column(0)[0].as_py()
        return -(2**63) if value is None else int(value)

    def version(self) -> str:
        """What identifies the data searched: the table, the documents and the highest id."""
        return f"{self.table}:{self.num_docs}:{self.max_id()}"

    def _finish(self, staging: str) -> None:
        engine = self.engine
        engine.execute_native(f"ALTER TABLE {staging} ADD COLUMN tsv tsvector")
        engine.execute_native(f"UPDATE {staging} SET tsv = to_tsvector('french', coalesce({FOLDED}, ''))")
        engine.execute_native(f"ALTER TABLE {staging} DROP COLUMN {FOLDED}")
        engine.execute_native(f"ALTER TABLE {staging} ADD PRIMARY KEY ({self.schema.id_field})")
        engine.execute_native(f"CREATE INDEX ON {staging} USING gin (tsv)")
        for name in (*self.schema.keyword_fields, *self.schema.date_fields, *self.schema.integer_fields):
            engine.execute_native(f"CREATE INDEX ON {staging} ({name})")
        engine.execute_native(f"ANALYZE {staging}")

    # -- searching ---------------------------------------------------------------------------------------
    def _where(self, request: SearchRequest) -> tuple[str, Node]:
        request.check(self.schema)
        tree = parse_query(request.query)
        tsquery = compile_tsquery(tree)
        if tsquery is None:
            raise QuerySyntaxError("the query has no searchable word (only stop words)", 0)
        parts = [f"tsv @@ {_literal(tsquery)}::tsquery"]
        for name, values in request.keywords.items():
            listed = ", ".join(_literal(str(v)) for v in values)
            parts.append(f"{name} IN ({listed})" if values else "FALSE")
        for name, (low, high) in request.dates.items():
            if low is not None:
                parts.append(f"{name} >= DATE {_literal(low.isoformat())}")
            if high is not None:
                parts.append(f"{name} <= DATE {_literal(high.isoformat())}")
        for name, ids in request.ids.items():
            array = "{" + ",".join(str(int(v)) for v in ids) + "}"
            parts.append(f"{name} = ANY({_literal(array)}::bigint[])")
        return " AND ".join(parts), tree

    def search(self, request: SearchRequest) -> SearchResult:
        """The page of hits (best first), the total and the facet counts of ``request`` (as the Tantivy backend).

        One statement, one pass over the matching rows: they are matched once (GIN index, then the heap's
        recheck), scored once, and the page, the total and every facet are read from that set; the stored
        fields and the ``ts_headline`` snippets are computed for the rows of the page only (joined back by id).
        """
        where, tree = self._where(request)
        schema, table, key = self.schema, self.table, self.schema.id_field
        stored = [key, *schema.keyword_fields, *schema.date_fields, *schema.integer_fields]
        facets = list(dict.fromkeys(request.facets))
        headline_words = _headline_query(tree) if request.snippets else None
        headlines = [
            f"ts_headline('french', t.{name}, to_tsquery('french', {_literal(headline_words)}), "
            f"{_literal(HEADLINE)}) AS _hl_{name}"
            for name in schema.text_fields
        ] if headline_words else []  # fmt: skip
        columns = [f"t.{name}" for name in stored] + headlines
        nulls = ", ".join("NULL" for _ in columns)
        score = f"ts_rank_cd(tsv, {_literal(compile_tsquery(tree) or '')}::tsquery)"
        # Internal names start with "_": a declared field name never does (IndexSchema), so none can clash.
        sql = (
            # The leading comment keeps the engine from preparing the statement before running it through
            # COPY (its path for large results): a page is a few rows, and planning twice costs the cohort's
            # id array (10,000 ids: ~15 ms) twice.
            "/* massalia text search page */ "
            f"WITH _matched_ AS MATERIALIZED (SELECT {', '.join([key, *facets])}, {score} AS _score_"
            f" FROM {table} WHERE {where}),"
            f" _page_ AS (SELECT {key}, _score_ FROM _matched_ ORDER BY _score_ DESC, {key}"
            f" LIMIT {request.page_size} OFFSET {request.offset})"
            f" SELECT 'hit' AS _row_, NULL::text AS _facet_, NULL::text AS _value_, NULL::bigint AS _n_,"
            f" _page_._score_, {', '.join(columns)} FROM _page_ JOIN {table} AS t ON t.{key} = _page_.{key}"
            f" UNION ALL SELECT 'total', NULL, NULL, count(*), NULL, {nulls} FROM _matched_"
        )
        for name in facets:
            sql += (
                f" UNION ALL (SELECT 'facet', {_literal(name)}, {name}, count(*), NULL, {nulls} FROM _matched_"
                f" WHERE {name} IS NOT NULL GROUP BY {name} ORDER BY count(*) DESC, {name} LIMIT {MAX_FACET_VALUES})"
            )
        total, hits = 0, []
        counts: dict[str, dict[str, int]] = {name: {} for name in facets}
        for row in self.engine.query_native(sql).to_pylist():
            if row["_row_"] == "total":
                total = int(row["_n_"])
            elif row["_row_"] == "facet":
                counts[row["_facet_"]][str(row["_value_"])] = int(row["_n_"])
            else:
                fields = {name: row[name] for name in stored if row.get(name) is not None}
                snippets = {n: s for n in schema.text_fields if (s := _snippet(row.get(f"_hl_{n}"))) is not None}
                hits.append(Hit(int(row[key]), float(row["_score_"]), fields, snippets))
        hits.sort(key=lambda hit: (-hit.score, hit.id))  # the page's order (a union keeps none)
        ordered = {name: dict(sorted(values.items(), key=lambda item: (-item[1], item[0])))
                   for name, values in counts.items()}  # fmt: skip
        return SearchResult(total, hits, ordered, request.page, request.page_size)

    def count(self, request: SearchRequest) -> int:
        """How many documents match."""
        where, _ = self._where(request)
        return int(
            self.engine.query_native(f"SELECT count(*) AS n FROM {self.table} WHERE {where}").column(0)[0].as_py()
        )

    def distinct(self, request: SearchRequest, field: str) -> int:
        """How many distinct values of integer ``field`` the matching documents have."""
        if field not in self.schema.integer_fields:
            raise TextIndexError(f"no integer field {field} in this index")
        where, _ = self._where(request)
        sql = f"SELECT count(DISTINCT {field}) AS n FROM {self.table} WHERE {where}"
        return int(self.engine.query_native(sql).column(0)[0].as_py())
