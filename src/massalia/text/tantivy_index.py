"""The Tantivy backend of the text index: an embedded index in a folder of the platform's home.

Layout: ``<root>/<name>/current`` is a symbolic link to the generation in use (``gen-<n>``); a full
(re)build writes a new generation beside it and swaps the link with :func:`os.replace`, which is atomic:
readers see the old index or the new, never half of one, and a failed build leaves the old one readable.
Incremental updates (:meth:`TantivyIndex.add`, :meth:`TantivyIndex.delete`) go to the current
generation; each :meth:`~TantivyIndex.commit` is atomic in Tantivy itself.

Examples
--------
>>> index = TantivyIndex.create(tmp / "text", "notes", schema)  # doctest: +SKIP
>>> index.add([{"note_id": 1, "note_text": "Pas de métastase.", ...}]); index.commit()  # doctest: +SKIP
>>> index.search(SearchRequest('"métastase"')).total  # doctest: +SKIP
1
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import json
import os
import re
import shutil
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import tantivy

from massalia.text.analysis import FRENCH, KEYWORD, analyzed_positions, french_analyzer, word_forms
from massalia.text.model import (
    MAX_FACET_VALUES,
    Hit,
    IndexSchema,
    SearchRequest,
    SearchResult,
    Snippet,
    TextIndexError,
)
from massalia.text.query import And, Node, Not, Phrase, QuerySyntaxError, Word, parse_query, positive_words

INDEX_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
SCHEMA_FILE = "massalia-schema.json"
WRITER_HEAP = 128_000_000
"""Bytes of the writer's in-memory buffer (Tantivy's default): larger segments, fewer merges."""
SNIPPET_CHARS = 240
ID_SET_CACHE = 8
"""Id-set filters kept built (the last ones used): a handful of cohorts searched in turn."""
ID_SET_CACHED_MAX = 200_000
"""Larger id sets are built for each search (the cache stays within ~100 MB)."""
SCAN_MIN_IDS = 1_000
"""From this many ids in the id-set filters, a page is read from the unfiltered hits (:meth:`TantivyIndex._scanned`)."""
SCAN_FIRST = 256
"""Unfiltered hits read at least, on the first try."""
SCAN_MAX_HITS = 5_000
"""Most unfiltered hits read for one page (about 2 ms); beyond, the filtered query's own page is read instead
(one more pass of the id set: a small cohort among many hits, or a deep page)."""
TOTAL = "_total_"
"""The aggregation that counts the hits (a field name never starts with "_", so no facet is called that)."""
MAX_DISTINCT = 1_000_000


def _tantivy_schema(schema: IndexSchema) -> tantivy.Schema:
    builder = tantivy.SchemaBuilder()
    builder.add_integer_field(schema.id_field, stored=True, indexed=True, fast=True)
    for name in schema.text_fields:
        builder.add_text_field(name, stored=True, tokenizer_name=FRENCH, index_option="position")
    for name in schema.keyword_fields:
        builder.add_text_field(name, stored=True, fast=True, tokenizer_name=KEYWORD, index_option="basic")
    for name in schema.date_fields:
        builder.add_date_field(name, stored=True, indexed=True, fast=True)
    for name in schema.integer_fields:
        builder.add_integer_field(name, stored=True, indexed=True, fast=True)
    return builder.build()


def _as_datetime(value: object, field: str) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC)
    raise TextIndexError(f"field {field}: a date is expected, got {type(value).__name__}")


class TantivyIndex:
    """One named index under ``root`` (e.g. ``<home>/text``), with the schema its owner declared."""

    def __init__(self, path: Path, schema: IndexSchema) -> None:
        self.path = path
        self.schema = schema
        self._tantivy_schema = _tantivy_schema(schema)
        self._index = tantivy.Index(self._tantivy_schema, str(path), reuse=True)
        self._index.register_tokenizer(FRENCH, french_analyzer())
        self._writer: tantivy.IndexWriter | None = None

    # -- opening and building ------------------------------------------------------------------------
    @staticmethod
    def folder(root: Path, name: str) -> Path:
        """The folder of index ``name`` under ``root`` (the name checked: no path can be smuggled in)."""
        if not INDEX_NAME.match(name):
            raise TextIndexError(f"an index name is a lowercase identifier, got {name!r}")
        return Path(root) / name

    @classmethod
    def exists(cls, root: Path, name: str) -> bool:
        """Whether index ``name`` has a current generation under ``root``."""
        return (cls.folder(root, name) / "current").is_dir()

    @classmethod
    def open(cls, root: Path, name: str, schema: IndexSchema) -> TantivyIndex:
        """The current generation of index ``name``, checked to have ``schema``.

        Raises
        ------
        TextIndexError
            The index was never built, or was built with another schema (rebuild it).
        """
        current = cls.folder(root, name) / "current"
        if not current.is_dir():
            raise TextIndexError(f"no text index {name!r} yet under {root}: build it first (massalia text index)")
        target = current.resolve()
        stored = json.loads((target / SCHEMA_FILE).read_text(encoding="utf-8"))
        if stored != schema.as_dict():
            raise TextIndexError(f"text index {name!r} was built with another schema: rebuild it")
        return cls(target, schema)

    @classmethod
    @contextlib.contextmanager
    def build(cls, root: Path, name: str, schema: IndexSchema) -> Iterator[TantivyIndex]:
        """A fresh generation of index ``name`` to fill; it becomes current only if the block ends normally.

        On any error the new generation is removed and the previous one (if any) stays current.
        """
        folder = cls.folder(root, name)
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        numbers = [int(p.name[4:]) for p in folder.glob("gen-*") if p.name[4:].isdigit()]
        generation = folder / f"gen-{max(numbers, default=0) + 1}"
        generation.mkdir(mode=0o700)
        index: TantivyIndex | None = None
        try:
            (generation / SCHEMA_FILE).write_text(json.dumps(schema.as_dict()), encoding="utf-8")
            index = cls(generation, schema)
            yield index
            index.commit()
        except BaseException:
            if index is not None:
                index.close()  # the writer's threads stop before its files go
            shutil.rmtree(generation, ignore_errors=True)
            raise
        finally:
            del index
        link = folder / f".current-{generation.name}"
        link.unlink(missing_ok=True)
        link.symlink_to(generation.name, target_is_directory=True)
        previous = (folder / "current").resolve() if (folder / "current").exists() else None
        os.replace(link, folder / "current")  # atomic: readers see the old generation or the new one
        if previous is not None and previous != generation.resolve():
            shutil.rmtree(previous, ignore_errors=True)

    # -- writing ---------------------------------------------------------------------------------------
    def _writer_(self) -> tantivy.IndexWriter:
        if self._writer is None:
            try:
                self._writer = self._index.writer(WRITER_HEAP, 0)
            except ValueError as error:
                raise TextIndexError(f"text index {self.path.parent.name!r} is being written: {error}") from None
        return self._writer

    def _document(self, row: Mapping[str, Any]) -> tantivy.Document:
        schema = self.schema
        identifier = row.get(schema.id_field)
        if isinstance(identifier, bool) or not isinstance(identifier, int):
            raise TextIndexError(f"field {schema.id_field}: an integer id is required, got {identifier!r}")
        document = tantivy.Document()
        document.add_integer(schema.id_field, identifier)
        for name in schema.text_fields:
            value = row.get(name)
            if value is not None:
                document.add_text(name, str(value))
        for name in schema.keyword_fields:
            value = row.get(name)
            if value is not None:
                document.add_text(name, str(value))
        for name in schema.date_fields:
            value = row.get(name)
            if value is not None:
                document.add_date(name, _as_datetime(value, name))
        for name in schema.integer_fields:
            value = row.get(name)
            if value is not None:
                document.add_integer(name, int(value))
        return document

    def add(self, rows: Iterable[Mapping[str, Any]]) -> int:
        """Add (or replace, by id) documents given as mappings of field to value; visible after :meth:`commit`."""
        writer = self._writer_()
        count = 0
        for row in rows:
            document = self._document(row)
            writer.delete_documents_by_term(self.schema.id_field, int(row[self.schema.id_field]))
            writer.add_document(document)
            count += 1
        return count

    def add_new(self, rows: Iterable[Mapping[str, Any]]) -> int:
        """Add documents known to be new (a fresh build): no delete per id, which is much faster."""
        writer = self._writer_()
        count = 0
        for row in rows:
            writer.add_document(self._document(row))
            count += 1
        return count

    def delete(self, ids: Iterable[int]) -> None:
        """Remove the documents of ``ids``; visible after :meth:`commit`."""
        writer = self._writer_()
        for identifier in ids:
            writer.delete_documents_by_term(self.schema.id_field, int(identifier))

    def commit(self) -> None:
        """Make every change since the last commit visible, atomically."""
        if self._writer is not None:
            self._writer.commit()
            self._writer.wait_merging_threads()
            self._writer = None
        self._index.reload()

    def close(self) -> None:
        """Drop pending changes (not committed) and the writer's lock."""
        if self._writer is not None:
            self._writer.rollback()
            self._writer = None

    @property
    def num_docs(self) -> int:
        """Documents visible to searches."""
        return int(self._index.searcher().num_docs)

    def max_id(self) -> int:
        """The highest document id in the index (the smallest integer when it is empty)."""
        searcher = self._index.searcher()
        found = searcher.search(tantivy.Query.all_query(), 1, count=False, order_by_field=self.schema.id_field,
                                order=tantivy.Order.Desc)  # fmt: skip
        if not found.hits:
            return -(2**63)
        return int(searcher.doc(found.hits[0][1]).to_dict()[self.schema.id_field][0])

    def version(self) -> str:
        """What identifies the data searched: the generation, the documents and the highest id."""
        return f"{self.path.name}:{self.num_docs}:{self.max_id()}"

    # -- searching -------------------------------------------------------------------------------------
    def _word(self, text: str, position: int) -> tantivy.Query | None:
        positions = analyzed_positions(text)
        if not positions:
            return None
        if len(positions) > 1:  # "l'hôpital", "HER2-positif": the word's pieces, in order
            return self._phrase(text, 0, position)
        forms = sorted(word_forms(text)) or [positions[0][1]]
        # Term queries (not one term-set query): scored by BM25, so the best matches come first.
        per_field = [
            (tantivy.Occur.Should, tantivy.Query.term_query(self._tantivy_schema, name, form))
            for name in self.schema.text_fields
            for form in forms
        ]
        return per_field[0][1] if len(per_field) == 1 else tantivy.Query.boolean_query(per_field)

    def _phrase(self, text: str, slop: int, position: int) -> tantivy.Query | None:
        positions = analyzed_positions(text)
        if not positions:
            return None
        words = text.split()
        if len(positions) == 1 and len(words) == 1:
            return self._word(text, position)
        alternatives: list[tuple[int, list[str]]] = []
        for at, stem in positions:
            forms = {stem}
            for word in words:  # the word this stem came from, for its plural/singular forms
                if stem in word_forms(word):
                    forms |= word_forms(word)
            alternatives.append((at, sorted(forms)))
        per_field = []
        for name in self.schema.text_fields:
            if all(len(forms) == 1 for _, forms in alternatives):
                query = tantivy.Query.phrase_query(self._tantivy_schema, name,
                                                   [(at, forms[0]) for at, forms in alternatives], slop)  # fmt: skip
            else:
                regexes: list[str | tuple[int, str]] = [
                    (at, "|".join(re.escape(form) for form in forms)) for at, forms in alternatives
                ]
                query = tantivy.Query.regex_phrase_query(self._tantivy_schema, name, regexes, slop)
            per_field.append((tantivy.Occur.Should, query))
        return tantivy.Query.boolean_query(per_field)

    def _compile(self, node: Node) -> tantivy.Query | None:
        if isinstance(node, Word):
            return self._word(node.text, node.position)
        if isinstance(node, Phrase):
            return self._phrase(node.text, node.slop, node.position)
        if isinstance(node, Not):
            inner = self._compile(node.item)
            if inner is None:
                return None
            return tantivy.Query.boolean_query([(tantivy.Occur.Must, tantivy.Query.all_query()),
                                                (tantivy.Occur.MustNot, inner)])  # fmt: skip
        compiled = [query for query in (self._compile(item) for item in node.items) if query is not None]
        if not compiled:
            return None
        occur = tantivy.Occur.Must if isinstance(node, And) else tantivy.Occur.Should
        return compiled[0] if len(compiled) == 1 else tantivy.Query.boolean_query([(occur, q) for q in compiled])

    def _filters(self, request: SearchRequest) -> list[tantivy.Query]:
        """The request's keyword and date filters as queries that add nothing to a score (so its id sets too).

        A hit's score is then its text's alone: a search with an id filter and the same search without it
        give each hit the same score, which lets :meth:`_scanned` take a page from the unfiltered hits.
        """
        schema = self._tantivy_schema
        filters: list[tantivy.Query] = []
        for name, values in request.keywords.items():
            filters.append(_no_score(tantivy.Query.term_set_query(schema, name, [str(v) for v in values])))
        for name, (low, high) in request.dates.items():
            if low is None and high is None:
                continue
            lower = _as_datetime(low, name) if low is not None else tantivy.MIN_DATETIME
            upper = _as_datetime(high, name) if high is not None else tantivy.MAX_DATETIME
            filters.append(_no_score(tantivy.Query.range_query(schema, name, tantivy.FieldType.Date, lower, upper)))
        return filters

    def _id_filters(self, request: SearchRequest) -> list[tantivy.Query]:
        """The request's id-set filters (a cohort's persons), scoring nothing either."""
        schema = self._tantivy_schema
        filters: list[tantivy.Query] = []
        for name, id_list in request.ids.items():
            id_values = tuple(id_list)
            if len(id_values) <= ID_SET_CACHED_MAX:
                filters.append(_id_set_query(self.schema, name, id_values))
            else:
                filters.append(_no_score(tantivy.Query.term_set_query(schema, name, [int(v) for v in id_values])))
        return filters

    def _compiled(self, request: SearchRequest) -> tuple[tantivy.Query, Node]:
        request.check(self.schema)
        tree = parse_query(request.query)
        compiled = self._compile(tree)
        if compiled is None:
            raise QuerySyntaxError("the query has no searchable word (only stop words)", 0)
        return compiled, tree

    @staticmethod
    def _filtered(compiled: tantivy.Query, filters: list[tantivy.Query]) -> tantivy.Query:
        """``compiled`` restricted by ``filters`` (from :meth:`_filters`: they add nothing to the score)."""
        if not filters:
            return compiled
        return tantivy.Query.boolean_query([(tantivy.Occur.Must, q) for q in (compiled, *filters)])

    def _queries(self, request: SearchRequest) -> tuple[tantivy.Query, tantivy.Query, Node]:
        """The request's query with all its filters, the same without its id sets, and its parsed tree."""
        compiled, tree = self._compiled(request)
        plain = self._filters(request)
        return self._filtered(compiled, plain + self._id_filters(request)), self._filtered(compiled, plain), tree

    def _query(self, request: SearchRequest) -> tuple[tantivy.Query, Node]:
        query, _, tree = self._queries(request)
        return query, tree

    def _highlighter(self, tree: Node, field: str) -> tantivy.Query | None:
        forms = sorted({form for word in positive_words(tree) for piece in word.split("'") for form in
                        (word_forms(piece) or {stem for _, stem in analyzed_positions(piece)})})  # fmt: skip
        if not forms:
            return None
        terms = [(tantivy.Occur.Should, tantivy.Query.term_query(self._tantivy_schema, field, form)) for form in forms]
        return tantivy.Query.boolean_query(terms)

    def search(self, request: SearchRequest) -> SearchResult:
        """The page of hits (best first), the total and the facet counts of ``request``.

        Raises
        ------
        QuerySyntaxError
            The query is malformed (what and where).
        InvalidRequest
            A filter or facet names a field this index does not have as that kind.
        """
        query, unfiltered, tree = self._queries(request)
        searcher = self._index.searcher()
        scanned = self._scanned(searcher, request, query, unfiltered)
        page: list[tuple[Any, tantivy.DocAddress]]
        if scanned is None:
            found = searcher.search(query, request.page_size, count=True, offset=request.offset)
            total, page = _count(found), found.hits
            facets = self._facets(searcher, query, request.facets)
        else:
            total, kept, facets = scanned
            # None: the scan would be long, so the filtered query's own top hits.
            page = kept if kept is not None else searcher.search(query, request.page_size, count=False,
                                                                 offset=request.offset).hits  # fmt: skip
        generators = {}
        if request.snippets:
            for name in self.schema.text_fields:
                highlighter = self._highlighter(tree, name)
                if highlighter is not None:
                    generator = tantivy.SnippetGenerator.create(searcher, highlighter, self._tantivy_schema, name)
                    generator.set_max_num_chars(SNIPPET_CHARS)
                    generators[name] = generator
        hits = []
        for score, address in page:
            document = searcher.doc(address)
            stored = document.to_dict()
            fields = {key: _plain(values[0]) for key, values in stored.items()
                      if values and key not in self.schema.text_fields}  # fmt: skip
            snippets = {}
            for name, generator in generators.items():
                snippet = generator.snippet_from_doc(document)
                fragment = snippet.fragment()
                if fragment:
                    snippets[name] = Snippet(fragment, _char_ranges(fragment, snippet.highlighted()))
            hits.append(Hit(int(stored[self.schema.id_field][0]), float(score), fields, snippets))
        return SearchResult(total, hits, facets, request.page, request.page_size)

    def _scanned(
        self, searcher: tantivy.Searcher, request: SearchRequest, query: tantivy.Query, unfiltered: tantivy.Query
    ) -> tuple[int, list[tuple[Any, tantivy.DocAddress]] | None, dict[str, dict[str, int]]] | None:
        """Total, page and facets of a search with a large id-set filter (a cohort), with one pass of the filter.

        Tantivy matches an id set by reading one posting list per id in every segment: for a cohort of
        10,000-15,000 persons that is most of the search's time, and a plain search pays it twice (the page
        with its count, then the facets). Here the filtered query runs once, as an aggregation giving the
        total and the facets; the page is read from the hits *without* the id filter, best first, keeping
        those whose ids (read from the fast fields) are in the sets, until the page is full. Filters add
        nothing to a score (:meth:`_filtered`), so the hits kept come in the filtered query's own order
        (score, then address): the page is the one the filtered query gives (tests/text/test_tantivy_cohort.py).
        ``unfiltered`` is ``query`` without its id sets.

        ``None`` when the id sets are small (the plain search is cheap); a ``None`` page when too many
        unfiltered hits would have to be read to fill it (the caller then reads the filtered query's page).
        """
        if sum(len(ids) for ids in request.ids.values()) < SCAN_MIN_IDS:
            return None
        names = list(dict.fromkeys(request.facets))
        aggregation: dict[str, Any] = {name: {"terms": {"field": name, "size": MAX_FACET_VALUES}} for name in names}
        aggregation[TOTAL] = {"value_count": {"field": self.schema.id_field}}
        result = searcher.aggregate(query, aggregation)
        total = int(result[TOTAL]["value"] or 0)
        facets = {name: {str(b["key"]): int(b["doc_count"]) for b in result[name]["buckets"]} for name in names}
        wanted = request.offset + request.page_size
        if total == 0:
            return 0, [], facets
        everything = _count(searcher.search(unfiltered, 1, count=True))
        limit = min(everything, max(SCAN_FIRST, 2 * wanted * everything // total))
        members = [(name, _id_members(tuple(ids))) for name, ids in request.ids.items()]
        while True:
            if limit > SCAN_MAX_HITS:
                return total, None, facets
            candidates = searcher.search(unfiltered, limit, count=False).hits
            addresses = [address for _, address in candidates]
            keep = [True] * len(candidates)
            for name, allowed in members:
                for at, value in enumerate(searcher.fast_field_values(name, addresses)):
                    if value not in allowed:
                        keep[at] = False
            kept = [hit for hit, ok in zip(candidates, keep, strict=True) if ok]
            if len(kept) >= wanted or limit >= everything:
                return total, kept[request.offset : wanted], facets
            limit = min(everything, limit * 4)

    def _facets(
        self, searcher: tantivy.Searcher, query: tantivy.Query, names: Iterable[str]
    ) -> dict[str, dict[str, int]]:
        wanted = list(dict.fromkeys(names))
        if not wanted:
            return {}
        aggregation = {name: {"terms": {"field": name, "size": MAX_FACET_VALUES}} for name in wanted}
        result = searcher.aggregate(query, aggregation)
        return {name: {str(b["key"]): int(b["doc_count"]) for b in result[name]["buckets"]} for name in wanted}

    def count(self, request: SearchRequest) -> int:
        """How many documents match (no hit read)."""
        query, _ = self._query(request)
        return _count(self._index.searcher().search(query, 1, count=True))

    def distinct(self, request: SearchRequest, field: str) -> int:
        """How many distinct values of integer ``field`` the matching documents have (exact; e.g. persons)."""
        if field not in self.schema.integer_fields:
            raise TextIndexError(f"no integer field {field} in this index")
        query, _ = self._query(request)
        result = self._index.searcher().aggregate(query, {"d": {"terms": {"field": field, "size": MAX_DISTINCT}}})
        if int(result["d"].get("sum_other_doc_count", 0)):
            raise TextIndexError(f"more than {MAX_DISTINCT} distinct {field}: narrow the query")
        return len(result["d"]["buckets"])


@functools.lru_cache(maxsize=ID_SET_CACHE)
def _id_members(ids: tuple[int, ...]) -> frozenset[int]:
    """The ids of an id-set filter as a set (kept for the next searches of the same cohort)."""
    return frozenset(int(v) for v in ids)


@functools.lru_cache(maxsize=ID_SET_CACHE)
def _id_set_query(schema: IndexSchema, name: str, ids: tuple[int, ...]) -> tantivy.Query:
    """The filter "``name`` is one of ``ids``", built once per id set (kept for the next searches of it).

    A cohort's persons come back with every search of a project: building the term set of 10,000 ids
    costs about 5 ms (their conversion and the sorted term map), as much as a fifth of the whole search.
    A Tantivy query is immutable and holds no reader, so one built query serves any index of ``schema``
    and any generation of it (it is matched against the segments of each search).
    """
    return _no_score(tantivy.Query.term_set_query(_tantivy_schema(schema), name, [int(v) for v in ids]))


def _no_score(query: tantivy.Query) -> tantivy.Query:
    """``query`` as a filter: it matches the same documents and adds 0 to their score."""
    return tantivy.Query.const_score_query(query, 0.0)


def _char_ranges(fragment: str, ranges: Iterable[tantivy.Range]) -> tuple[tuple[int, int], ...]:
    """Tantivy's highlight ranges are UTF-8 byte offsets: as character offsets into ``fragment``."""
    raw = fragment.encode("utf-8")
    return tuple(
        (len(raw[: r.start].decode("utf-8", "ignore")), len(raw[: r.end].decode("utf-8", "ignore"))) for r in ranges
    )


def _count(found: tantivy.SearchResult) -> int:
    """The total hit count of a search made with ``count=True`` (the bindings' stub omits the attribute)."""
    total: int | None = found.count  # type: ignore[attr-defined]
    return int(total or 0)


def _plain(value: object) -> object:
    """A stored value as the caller gave it: dates back to :class:`datetime.date`."""
    if isinstance(value, dt.datetime):
        return value.date() if value.time() == dt.time(0) else value
    return value
