"""The OMOP pipeline: site extracts → OMOP CDM v5.4, driven by the per-site mapping files.

For each site with new files, in dependency order of its mappings (a mapping that defines persons
runs before those that refer to persons...), the compiled SQL maps, checks and splits the staged
rows; keyed records (persons, visits, tumours, locations) get stable ids kept in ``etl_id_map``;
derived tables (observation_period, care_site, location of the site, cdm_source,
source_to_concept_map) follow. Everything becomes :class:`TableChange` objects published at once
by the generic runner.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from massalia.engine import Column, Engine
from massalia.health.etl.compiler import OmopMappingCompiler
from massalia.health.etl.derived import (
    LOCAL_CONCEPTS,
    care_site_changes,
    cdm_source_change,
    crosswalk_change,
    local_code_changes,
    local_concept_changes,
    observation_period_change,
    stage_crosswalks,
    stage_local_codes,
    stage_site_concepts,
    start_local_concepts,
)
from massalia.health.etl.episodes import LINE_TAG_COLUMNS, LINE_TAGS, EpisodeInputs, episode_changes, stage_line_tags
from massalia.health.etl.mapping import CODE_PATTERNS, SiteMapping, TableMapping
from massalia.health.omop.schema import cdm_table, create_cdm_schema
from massalia.health.omop.vocabulary import load_demo_vocabulary
from massalia.pipelines.compiler import CompiledMapping, Lookup, column_ref, parse_datetime, parse_number, sql_text
from massalia.pipelines.publish import TableChange
from massalia.pipelines.rules import Rule
from massalia.pipelines.runner import FILE_NO, InputFile, Pipeline, RunContext
from massalia.sources import SOURCE_LINE, SourceOptions

ID_MAP = "etl_id_map"
ID_MAP_COLUMNS = (
    Column("site", "VARCHAR", False),
    Column("kind", "VARCHAR", False),
    Column("source_value", "VARCHAR", False),
    Column("id", "BIGINT", False),
    Column("run_id", "VARCHAR", False),
)
SEQUENTIAL_KINDS = ("person",)
"""Kinds numbered 1, 2, 3... (readable ids); other kinds reuse their stable row id."""


@dataclass
class SiteRun:
    """What one site contributed to a run."""

    site: str
    valid: dict[str, list[tuple[str, set[str]]]] = field(default_factory=dict)
    """Target table → staged tables of valid rows (with ``person_id``) and their columns."""
    line_tags: list[str] = field(default_factory=list)
    """Staged tables of the source's line/cycle of each new drug administration."""


def _order(mappings: Sequence[TableMapping]) -> list[TableMapping]:
    """Mappings sorted so that each runs after those defining the kinds it refers to or requires."""
    defines = {m.defines: m.name for m in mappings if m.defines}
    needs: dict[str, set[str]] = {}
    for m in mappings:
        deps = {defines[c.id] for c in m.columns.values() if c.transform == "id" and c.id in defines}
        deps |= set(m.requires)
        deps.discard(m.name)
        needs[m.name] = deps
    ordered: list[TableMapping] = []
    done: set[str] = set()
    pending = list(mappings)
    while pending:
        ready = [m for m in pending if needs[m.name] <= done]
        if not ready:
            raise ValueError(f"mappings refer to each other in a cycle: {', '.join(m.name for m in pending)}")
        for m in ready:
            ordered.append(m)
            done.add(m.name)
            pending.remove(m)
    return ordered


def _checks_file_inline(mapping: TableMapping, readers: Sequence[TableMapping]) -> bool:
    """Whether ``mapping`` may check its file's contract itself: it alone reads the file, every row of it.

    A filter (``where``), an unpivot or a dependency (``requires``) would check some rows never or
    several times, so those mappings leave the contract to its own pass.
    """
    return len(readers) == 1 and not mapping.where and not mapping.unpivot and not mapping.requires


RANK_BASE = 10_000_000_000
"""Above any OMOP concept id (they stay under 2^31): ``rank * RANK_BASE + concept_id`` orders by rank, then id."""


class OmopPipeline(Pipeline):
    """Load the site folders of ``sources_dir`` into OMOP with the given site mappings."""

    name = "omop"

    def __init__(self, sources_dir: Path, mappings: Sequence[SiteMapping]) -> None:
        self.sources_dir = sources_dir
        self.mappings = list(mappings)
        self.warnings: list[str] = []
        self.crosswalk: str | None = None
        self._id_lookups: set[str] = set()

    # -- inputs ----------------------------------------------------------------------------
    def inputs(self) -> list[InputFile]:
        """Every file of every site matching its mapping's patterns, in a stable order."""
        files = []
        for site in self.mappings:
            folder = self.sources_dir / site.site
            for kind, spec in site.files.items():
                fmt = site.file_format(kind)
                options = SourceOptions(
                    format=fmt.format,
                    separator=fmt.separator,
                    quote=fmt.quote,
                    encoding=fmt.encoding,
                    columns=tuple(spec.columns),
                )
                for path in sorted(folder.glob(spec.pattern)):
                    files.append(InputFile(f"{site.site}.{kind}", path, options))
        return files

    def prepare(self, engine: Engine) -> None:
        """Create the CDM tables, the vocabulary (demo one when empty) and the id map if absent.

        On DuckDB the tables the ETL creates have no PRIMARY KEY constraint: DuckDB keeps such
        indexes in memory (tens of GB at a million patients) and maintaining them doubles the load
        time, while the ETL's ids are unique by construction (and the quality checks verify it).
        Tables that already exist are used as they are.
        """
        create_cdm_schema(engine, primary_keys=not engine.capabilities.memory_resident_keys)
        if engine.row_count("concept") == 0:
            load_demo_vocabulary(engine)
        tables = engine.list_tables()
        if ID_MAP not in tables:
            engine.create_empty_table(ID_MAP, ID_MAP_COLUMNS)
        if LINE_TAGS not in tables:
            engine.create_empty_table(LINE_TAGS, LINE_TAG_COLUMNS)

    # -- transform -------------------------------------------------------------------------
    def transform(self, context: RunContext) -> list[TableChange]:
        """Map every site with new files; then derived tables."""
        engine = context.engine
        self._id_lookups = set()
        known = set(engine.query("SELECT concept_id FROM concept").column(0).to_pylist())
        new_ids = context.table("new_ids")
        engine.create_empty_table(new_ids, ID_MAP_COLUMNS)
        changes: list[TableChange] = []
        runs: list[SiteRun] = []
        active = [s for s in self.mappings if any(d.startswith(f"{s.site}.") for d in context.new_datasets())]
        start_local_concepts(context)
        for site in active:
            stage_site_concepts(context, site)
        self.crosswalk = stage_crosswalks(context, active)
        if self.crosswalk:
            changes.append(crosswalk_change(context, self.crosswalk))
        for site in active:
            runs.append(self._site(context, site, known, new_ids, changes))
        changes += local_concept_changes(context, active)
        changes += self._episodes(context, runs)
        changes.append(TableChange(ID_MAP, f"SELECT * FROM {new_ids}"))
        changes += care_site_changes(context, [s for s in self.mappings if any(r.site == s.site for r in runs)])
        change = observation_period_change(context, [r.valid for r in runs])
        if change is not None:
            changes.append(change)
        changes.append(cdm_source_change(context, self.mappings))
        return changes

    def _site(
        self, context: RunContext, site: SiteMapping, known: set[int], new_ids: str, changes: list[TableChange]
    ) -> SiteRun:
        run = SiteRun(site.site)
        lookups: dict[Lookup, str] = {}
        local_table = None
        if site.local_codes is not None:
            local_table = stage_local_codes(context, site, self.crosswalk)
            changes.extend(local_code_changes(context, site, local_table))

        def lookup_table(lookup: Lookup) -> str:
            if lookup not in lookups:
                lookups[lookup] = self._build_lookup(context, site, lookup, local_table)
            return lookups[lookup]

        def staged_table(kind: str) -> str:
            return context.stage(f"{site.site}.{kind}")

        compiler = OmopMappingCompiler(site, lookup_table, staged_table, known_concepts=known)
        new = context.new_datasets()
        ordered = [m for m in _order(site.tables) if f"{site.site}.{m.source}" in new]
        # Each file kind is staged when its first mapping runs and freed after its last one, so
        # memory holds one kind's raw rows at a time rather than the whole site's delivery.
        last_use = {m.source: i for i, m in enumerate(ordered)}
        bad_lines: dict[str, str | None] = {}

        def checked(kind: str) -> str | None:
            if kind not in bad_lines:
                bad_lines[kind] = self._check_file(context, site, kind)
            return bad_lines[kind]

        readers: dict[str, list[TableMapping]] = {}
        for mapping in ordered:
            readers.setdefault(mapping.source, []).append(mapping)
        valid_by_mapping: dict[str, str] = {}
        for index, mapping in enumerate(ordered):
            if _checks_file_inline(mapping, readers[mapping.source]):
                # The only mapping of its file, on every row: the file's contract is checked in the
                # mapping's own pass (one scan of the rows instead of two, no anti-join).
                bad_lines[mapping.source] = None
                self._map(
                    context,
                    site,
                    mapping,
                    compiler,
                    None,
                    valid_by_mapping,
                    new_ids,
                    changes,
                    run,
                    contract=self._file_rules(site, mapping.source),
                )
            elif all(r in valid_by_mapping for r in mapping.requires):
                self._map(
                    context, site, mapping, compiler, checked(mapping.source), valid_by_mapping, new_ids, changes, run
                )
            if last_use[mapping.source] == index:
                self._release(context, site, mapping.source)
        for kind in site.files:
            if f"{site.site}.{kind}" in new and kind not in bad_lines:
                checked(kind)  # a kind no mapping reads still has its contract checked
                self._release(context, site, kind)
        for warning in compiler.warnings:
            self._warn(warning)
        return run

    def _warn(self, warning: str) -> None:
        """Record a compiler warning once per run: the same gap at several sites is one line naming them."""
        site, _, text = warning.partition(": ")
        for index, known in enumerate(self.warnings):
            sites, _, known_text = known.partition(": ")
            if known_text == text and text:
                if site not in sites.split(", "):
                    self.warnings[index] = f"{', '.join(sorted([*sites.split(', '), site]))}: {text}"
                return
        self.warnings.append(warning)

    def _map(
        self,
        context: RunContext,
        site: SiteMapping,
        mapping: TableMapping,
        compiler: OmopMappingCompiler,
        bad: str | None,
        valid_by_mapping: dict[str, str],
        new_ids: str,
        changes: list[TableChange],
        run: SiteRun,
        *,
        contract: Sequence[Rule] = (),
    ) -> None:
        """Map, check and split one table mapping; queue its rows for the publish.

        ``bad`` lists the source rows the file's contract refused (left out); ``contract`` instead
        checks that contract in the same pass (see :meth:`RunContext.validate`).
        """
        where = []
        if bad:
            # Rows the file-level checks refused feed no table (their reject rows already say why).
            where.append(
                f"NOT EXISTS (SELECT 1 FROM {bad} AS b WHERE b.{FILE_NO} = s.{FILE_NO} "
                f"AND b.{SOURCE_LINE} = s.{SOURCE_LINE})"
            )
        for required in mapping.requires:
            # The row another mapping made from the same source row must exist (e.g. an episode's event).
            where.append(
                f"EXISTS (SELECT 1 FROM {valid_by_mapping[required]} AS r "
                f"WHERE r.{FILE_NO} = s.{FILE_NO} AND r.{SOURCE_LINE} = s.{SOURCE_LINE})"
            )
        compiled = compiler.compile(mapping, where=where)
        valid = context.table(f"v_{site.site}_{mapping.name}")
        context.validate(
            source_sql=compiled.source_sql,
            columns=compiled.columns,
            rules=compiled.rules,
            target=mapping.target,
            site=site.site,
            into=valid,
            contract=contract,
            contract_target=f"file:{mapping.source}",
        )
        lines = site.treatment_lines
        if lines is not None and lines.mapping == mapping.name:
            # The line of each administration is read now, while its source row is at hand.
            tags = stage_line_tags(context, site, valid, context.stage(f"{site.site}.{mapping.source}"))
            if tags is not None:
                run.line_tags.append(tags)
                changes.append(TableChange(LINE_TAGS, f"SELECT drug_exposure_id, line, cycle FROM {tags}"))
        published = valid
        if mapping.defines:
            published = self._define(context, site, mapping, valid, new_ids)
            context.engine.drop_table(valid)  # the published copy (with ids) replaces it
        elif not any(mapping.name in m.requires for m in site.tables):
            # No later step looks these rows up by source line: the row id alone carries provenance.
            context.drop_columns(valid, [FILE_NO, SOURCE_LINE])
        valid_by_mapping[mapping.name] = published
        changes.append(TableChange(mapping.target, self._final_select(compiled, published)))
        if "person_id" in {f.name for f in cdm_table(mapping.target).fields}:
            run.valid.setdefault(mapping.target, []).append((published, set(mapping.columns)))

    def _episodes(self, context: RunContext, runs: Sequence[SiteRun]) -> list[TableChange]:
        """Treatment-line and progression episodes of the persons this run touched (see ``episodes.py``)."""
        inputs = EpisodeInputs(
            drugs=[v for r in runs for v in r.valid.get("drug_exposure", [])],
            conditions=[v for r in runs for v in r.valid.get("condition_occurrence", [])],
            episodes=[v for r in runs for v in r.valid.get("episode", [])],
            tags=[t for r in runs for t in r.line_tags],
        )
        derived = [s.site for s in self.mappings if s.treatment_lines is None or s.treatment_lines.line is None]
        return episode_changes(context, inputs, derived, self.crosswalk)

    @staticmethod
    def _release(context: RunContext, site: SiteMapping, kind: str) -> None:
        """Free the staged raw rows of one file kind (all its mappings have run)."""
        staged = context.staged.pop(f"{site.site}.{kind}", None)
        if staged:
            context.engine.drop_table(staged)

    def _check_file(self, context: RunContext, site: SiteMapping, kind: str) -> str | None:
        """Apply the file's own contract (required columns, dates, numbers, code shapes) once per row."""
        rules = self._file_rules(site, kind)
        if not rules:
            return None
        bad = context.table(f"bad_{site.site}_{kind}")
        context.check(
            source_sql=f"{context.stage(f'{site.site}.{kind}')} AS s",
            rules=rules,
            target=f"file:{kind}",
            site=site.site,
            into=bad,
        )
        return bad

    @staticmethod
    def _file_rules(site: SiteMapping, kind: str) -> list[Rule]:
        """The rules of a file kind's contract (required columns, dates, numbers, code shapes)."""
        spec = site.files[kind]
        fmt = site.file_format(kind)
        rules: list[Rule] = []
        for column in spec.required:
            rules.append(Rule("required", column, value=column_ref(column), source_field=column))
        for columns, pattern in ((spec.dates, fmt.date), (spec.datetimes, fmt.datetime)):
            for column in columns:
                rules.append(
                    Rule(
                        "invalid_date",
                        column,
                        value=column_ref(column),
                        source_field=column,
                        result=parse_datetime(column_ref(column), pattern),
                        detail=f"(expected {pattern})",
                    )
                )
        for column in spec.numbers:
            rules.append(
                Rule(
                    "invalid_number",
                    column,
                    value=column_ref(column),
                    source_field=column,
                    result=parse_number(column_ref(column), fmt.decimal),
                )
            )
        for column, pattern in spec.codes.items():
            regex = CODE_PATTERNS.get(pattern, pattern)
            rules.append(Rule("invalid_code", column, value=column_ref(column), source_field=column, limit=regex))
        return rules

    def _define(self, context: RunContext, site: SiteMapping, mapping: TableMapping, valid: str, new_ids: str) -> str:
        """Give ids to the new records a defining mapping created; return the rows to publish."""
        engine = context.engine
        kind = mapping.defines or ""
        ids = self._id_lookup_name(context, site, kind)
        self._ensure_id_lookup(context, site, kind, ids)
        first = context.table(f"first_{site.site}_{mapping.name}")
        # First occurrence of each key not already known: later copies are duplicates.
        context.create_as(
            first,
            f"SELECT _key, min(_row_id) AS _first FROM {valid} AS v "
            f"WHERE NOT EXISTS (SELECT 1 FROM {ids} AS i WHERE i.code = v._key) GROUP BY _key",
        )
        own = next((name for name, spec in mapping.columns.items() if spec.transform == "id" and spec.id == kind), None)
        if mapping.duplicates == "reject":
            engine.execute(
                f"INSERT INTO {context.reject_table} SELECT {sql_text(context.run_id)}, {sql_text(site.site)}, "
                f"{context.path_of(f'v.{FILE_NO}')}, v.{SOURCE_LINE}, {sql_text(mapping.target)}, "
                f"{sql_text(mapping.key)}, {sql_text(own or mapping.key)}, v._key, 'duplicate_key', 'reject', "
                f"'the same key appears earlier in this delivery' "
                f"FROM {valid} AS v JOIN {first} AS f ON f._key = v._key WHERE v._row_id <> f._first"
            )
        if kind in SEQUENTIAL_KINDS:
            start = (
                f"(SELECT coalesce(max(id), 0) FROM (SELECT id FROM {ID_MAP} WHERE kind = {sql_text(kind)} "
                f"UNION ALL SELECT id FROM {new_ids} WHERE kind = {sql_text(kind)}) AS known_ids)"
            )
            id_sql = f"{start} + row_number() OVER (ORDER BY _key)"
        else:
            id_sql = "_first"
        numbered = context.table(f"ids_{site.site}_{mapping.name}")
        context.create_as(numbered, f"SELECT _key, _first, {id_sql} AS id FROM {first}")
        engine.execute(
            f"INSERT INTO {new_ids} SELECT {sql_text(site.site)}, {sql_text(kind)}, _key, id, "
            f"{sql_text(context.run_id)} FROM {numbered}"
        )
        engine.execute(f"INSERT INTO {ids} SELECT _key, id FROM {numbered}")
        published = context.table(f"p_{site.site}_{mapping.name}")
        # The columns spelled out (not DuckDB's ``v.* REPLACE (…)``): the same SQL runs on every engine.
        names = engine.query(f"SELECT * FROM {valid} LIMIT 0").schema.names
        selected = ", ".join(f"n.id AS {name}" if name == own else f"v.{name}" for name in names)
        context.create_as(
            published,
            f"SELECT {selected} FROM {valid} AS v JOIN {numbered} AS n ON n._key = v._key AND n._first = v._row_id",
        )
        return published

    @staticmethod
    def _id_lookup_name(context: RunContext, site: SiteMapping, kind: str) -> str:
        return context.table(f"lkp_id_{site.site}_{kind}")

    def _ensure_id_lookup(self, context: RunContext, site: SiteMapping, kind: str, table: str) -> None:
        if table not in self._id_lookups:
            self._id_lookups.add(table)
            context.create_as(
                table,
                f"SELECT source_value AS code, id FROM {ID_MAP} "
                f"WHERE site = {sql_text(site.site)} AND kind = {sql_text(kind)}",
            )

    def _build_lookup(self, context: RunContext, site: SiteMapping, lookup: Lookup, local_table: str | None) -> str:
        if lookup.kind == "id":
            table = self._id_lookup_name(context, site, lookup.id_kind)
            self._ensure_id_lookup(context, site, lookup.id_kind, table)
            return table
        if lookup.kind == "local_attribute":
            if local_table is None:
                raise ValueError(f"site {site.site}: local attributes need local_codes:")
            return local_table
        table = context.table(f"lkp_{site.site}_{len(context.temporary)}")
        if lookup.kind == "local":
            stcm = context.table(f"stcm_{site.site}")
            context.create_as(
                table,
                f"SELECT source_code AS code, min(source_concept_id) AS source_concept_id, "
                f"min(nullif(target_concept_id, 0)) AS concept_id FROM {stcm} GROUP BY source_code",
            )
            return table
        vocabularies = ", ".join(sql_text(v) for v in lookup.vocabularies)
        ranks = " ".join(f"WHEN {sql_text(v)} THEN {i}" for i, v in enumerate(lookup.vocabularies))
        if lookup.relationship.startswith("ancestor:"):
            concept_class = lookup.relationship.split(":", 1)[1]
            target = (
                f"(SELECT min(a.descendant_concept_id) FROM concept_ancestor AS a JOIN concept AS d "
                f"ON d.concept_id = a.descendant_concept_id WHERE a.ancestor_concept_id = c.concept_id "
                f"AND d.concept_class_id = {sql_text(concept_class)} AND d.standard_concept = 'S')"
            )
        else:
            target = (
                f"(SELECT min(r.concept_id_2) FROM concept_relationship AS r WHERE r.concept_id_1 = "
                f"c.concept_id AND r.relationship_id = {sql_text(lookup.relationship)} "
                f"AND r.invalid_reason IS NULL)"
            )
        crosswalk = ""
        if self.crosswalk:
            # Codes the vocabulary lacks (or cannot map) fall back on the data team's crosswalk.
            crosswalk = (
                f" UNION ALL SELECT x.source_code, x.source_concept_id, nullif(x.target_concept_id, 0), 1000, 1 "
                f"FROM {self.crosswalk} AS x WHERE x.source_vocabulary_id IN ({vocabularies})"
            )
        # The run's local concepts (a site's own, staged before they are published) are codes of their vocabulary.
        local = (
            f" UNION ALL SELECT l.code, l.concept_id, CASE WHEN l.standard THEN l.concept_id END, "
            f"CASE l.vocabulary_id {ranks} END, 0 FROM {context.table(LOCAL_CONCEPTS)} AS l "
            f"WHERE l.vocabulary_id IN ({vocabularies})"
        )
        context.create_as(
            table,
            # The vocabulary's own source concept first; a crosswalk's local one only for codes it lacks.
            f"SELECT code, coalesce(max(CASE WHEN origin = 0 THEN source_concept_id END), "
            f"max(nullif(source_concept_id, 0)), 0) AS source_concept_id, "
            # The concept of the best-ranked vocabulary, the smallest id among equals: min() over
            # (rank, id) packed in one BIGINT, as DuckDB's arg_min is not on every engine.
            f"CAST(min(CASE WHEN concept_id IS NOT NULL THEN CAST(priority AS BIGINT) * {RANK_BASE} + concept_id END) "
            f"% {RANK_BASE} AS BIGINT) AS concept_id FROM ("
            f"SELECT c.concept_code AS code, c.concept_id AS source_concept_id, "
            f"coalesce({target}, CASE WHEN c.standard_concept = 'S' THEN c.concept_id END) AS concept_id, "
            f"CASE c.vocabulary_id {ranks} END AS priority, 0 AS origin "
            f"FROM concept AS c WHERE c.vocabulary_id IN ({vocabularies}) AND c.invalid_reason IS NULL"
            f"{crosswalk}{local}"
            f") AS candidates GROUP BY code",
        )
        return table

    @staticmethod
    def _final_select(compiled: CompiledMapping, published: str) -> str:
        """Rows of the target table, columns in CDM order, types of the CDM."""
        declared = {name for name, _ in compiled.columns}
        items = []
        for target_field in compiled.target.fields:
            name = target_field.name
            kind = target_field.sql_type
            if name in declared and name in compiled.mapping.columns:
                items.append(f"CAST({name} AS {kind})")
            elif name in compiled.target.primary_key:
                items.append("_row_id")
            elif name.endswith("concept_id") and target_field.required:
                items.append("0")
            else:
                items.append(f"CAST(NULL AS {kind})")
        return f"SELECT {', '.join(items)} FROM {published}"
