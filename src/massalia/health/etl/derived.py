"""Tables the ETL derives rather than maps row by row.

Observation periods, the sites as care sites, the CDM_SOURCE row, each site's SOURCE_TO_CONCEPT_MAP built
from its local-code list, and the local source concepts of codes the loaded vocabulary lacks.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

import pyarrow as pa

from massalia.health.etl.mapping import SiteMapping
from massalia.health.omop.schema import CDM_VERSION, cdm_table
from massalia.pipelines.compiler import sql_text
from massalia.pipelines.publish import TableChange
from massalia.pipelines.runner import RunContext
from massalia.sources import SourceOptions, read_source

EHR = 32817
"""Type concept "EHR": every row comes from hospital records."""

CDM_54_CONCEPT = 756265
"""Concept id of "OMOP CDM Version 5.4.0" (cdm_source.cdm_version_concept_id)."""

OBSERVATION_DATES: dict[str, tuple[str, str | None]] = {
    "visit_occurrence": ("visit_start_date", "visit_end_date"),
    "condition_occurrence": ("condition_start_date", "condition_end_date"),
    "drug_exposure": ("drug_exposure_start_date", "drug_exposure_end_date"),
    "procedure_occurrence": ("procedure_date", "procedure_end_date"),
    "measurement": ("measurement_date", None),
    "observation": ("observation_date", None),
    "note": ("note_date", None),
    "death": ("death_date", None),
    "episode": ("episode_start_date", "episode_end_date"),
}
"""Dates that show a person was observed, per table (start, optional end)."""


LOCAL_CONCEPT_BASE = 2_000_000_000
"""OMOP reserves concept ids from 2,000,000,000 for an institution's own concepts (never issued by Athena)."""

LOCAL_CONCEPT_LIMIT = 2_100_000_000
"""Local ids are issued below this: Athena itself ships a few concepts near the top of the int range."""

LOCAL_CONCEPTS = "local_concepts"
"""Staged local source concepts of a run: one table for the crosswalks and every site's local codes."""


def crosswalk_vocabulary(source_vocabulary: str) -> str:
    """The local vocabulary holding crosswalked codes of ``source_vocabulary`` that the vocabulary lacks.

    Examples
    --------
    >>> crosswalk_vocabulary("ICD10")
    'ICD10-local'
    """
    return f"{source_vocabulary}-local"[:20]


def _select(table: str) -> str:
    """Column list of a CDM table, in order (for ``INSERT ... SELECT`` with explicit names)."""
    return ", ".join(f.name for f in cdm_table(table).fields)


def standard_target_sql(alias: str) -> str:
    """SQL giving the standard concept a concept row ``alias`` stands for.

    "Maps to" first, then the concept itself when standard, then (for drug classes such as ATC)
    its RxNorm ingredient descendant.
    """
    return (
        f"coalesce((SELECT min(r.concept_id_2) FROM concept_relationship AS r WHERE r.concept_id_1 = "
        f"{alias}.concept_id AND r.relationship_id = 'Maps to' AND r.invalid_reason IS NULL), "
        f"CASE WHEN {alias}.standard_concept = 'S' THEN {alias}.concept_id END, "
        f"(SELECT min(a.descendant_concept_id) FROM concept_ancestor AS a JOIN concept AS d ON "
        f"d.concept_id = a.descendant_concept_id WHERE a.ancestor_concept_id = {alias}.concept_id "
        f"AND d.concept_class_id = 'Ingredient' AND d.standard_concept = 'S'))"
    )


def resource_path(resource: str, origin: str) -> Path:
    """A ``package:file`` resource, or a path relative to the mapping file ``origin``."""
    if ":" in resource and not Path(resource).is_absolute():
        package, _, name = resource.partition(":")
        return Path(str(resources.files(package).joinpath(name)))
    return (Path(origin).parent / resource).resolve()


def stage_crosswalks(context: RunContext, sites: Sequence[SiteMapping]) -> str | None:
    """Stage every crosswalk the sites name, as SOURCE_TO_CONCEPT_MAP rows (target resolved)."""
    paths = sorted({resource_path(r, s.origin) for s in sites for r in s.crosswalks})
    if not paths:
        return None
    engine = context.engine
    columns = ("source_vocabulary_id", "source_code", "source_label", "target_vocabulary_id", "target_concept_code")
    tables = [
        pa.Table.from_batches(list(read_source(p, SourceOptions(columns=columns)))).select(list(columns)) for p in paths
    ]
    raw = context.table("xwalk_raw")
    engine.write_new_table(raw, pa.concat_tables(tables))
    resolved = context.table("xwalk_resolved")
    context.create_as(
        resolved,
        "SELECT DISTINCT ON (x.source_vocabulary_id, x.source_code) x.source_code, x.source_vocabulary_id, "
        f"substr(x.source_label, 1, 255) AS source_code_description, {standard_target_sql('c')} AS target_concept_id "
        f"FROM {raw} AS x LEFT JOIN concept AS c ON c.vocabulary_id = x.target_vocabulary_id "
        "AND c.concept_code = x.target_concept_code ORDER BY x.source_vocabulary_id, x.source_code",
    )
    # A crosswalked code the vocabulary lacks gets a local source concept, so that the records coded with it
    # keep their source code as a concept (``*_source_concept_id``), as OHDSI does for an institution's codes.
    local = stage_local_concepts(
        context,
        f"SELECT source_vocabulary_id || '-local' AS vocabulary_id, source_code AS code, "
        f"source_code_description AS name, target_concept_id, CAST(NULL AS VARCHAR) AS domain_id, "
        f"CAST(NULL AS BOOLEAN) AS standard FROM {resolved} AS x WHERE NOT EXISTS ("
        "SELECT 1 FROM concept AS v WHERE v.vocabulary_id = x.source_vocabulary_id "
        "AND v.concept_code = x.source_code AND v.invalid_reason IS NULL)",
    )
    staged = context.table("xwalk")
    context.create_as(
        staged,
        f"SELECT m.source_code, coalesce(l.concept_id, 0) AS source_concept_id, m.source_vocabulary_id, "
        "m.source_code_description, coalesce(m.target_concept_id, 0) AS target_concept_id, "
        "coalesce(t.vocabulary_id, 'None') AS target_vocabulary_id, DATE '1970-01-01' AS valid_start_date, "
        f"DATE '2099-12-31' AS valid_end_date, CAST(NULL AS VARCHAR) AS invalid_reason FROM {resolved} AS m "
        "LEFT JOIN concept AS t ON t.concept_id = m.target_concept_id "
        f"LEFT JOIN {local} AS l ON l.vocabulary_id = m.source_vocabulary_id || '-local' AND l.code = m.source_code",
    )
    return staged


def start_local_concepts(context: RunContext) -> None:
    """Create the run's empty table of local source concepts (see :func:`stage_local_concepts`)."""
    context.create_as(
        context.table(LOCAL_CONCEPTS),
        "SELECT CAST(NULL AS BIGINT) AS concept_id, CAST(NULL AS VARCHAR) AS vocabulary_id, "
        "CAST(NULL AS VARCHAR) AS code, CAST(NULL AS VARCHAR) AS name, CAST(NULL AS BIGINT) AS target_concept_id, "
        "CAST(NULL AS BOOLEAN) AS is_new, CAST(NULL AS VARCHAR) AS domain_id, CAST(NULL AS BOOLEAN) AS standard "
        "WHERE 1 = 0",
    )


def stage_local_concepts(context: RunContext, candidates_sql: str) -> str:
    """Give each candidate ``(vocabulary_id, code, name, target_concept_id[, domain_id, standard])`` its id.

    A code that already has a local concept (same vocabulary and code, from an earlier run) keeps its id,
    so records loaded earlier stay right; new codes get the next free ids from
    :data:`LOCAL_CONCEPT_BASE`, after those of the warehouse and of this run's earlier candidates. The
    staged table (:data:`LOCAL_CONCEPTS`, appended to) is published by :func:`local_concept_changes`.
    """
    engine = context.engine
    staged = context.table(LOCAL_CONCEPTS)
    columns = ["concept_id", "vocabulary_id", "code", "name", "target_concept_id", "is_new", "domain_id", "standard"]
    batch = context.table(f"local_concepts_{len(context.temporary)}")
    context.create_as(
        batch,
        "SELECT e.concept_id, k.vocabulary_id, k.code, k.name, k.target_concept_id, e.concept_id IS NULL AS is_new, "
        "k.domain_id, k.standard FROM (SELECT vocabulary_id, code, min(name) AS name, "
        "min(target_concept_id) AS target_concept_id, min(domain_id) AS domain_id, bool_or(standard) AS standard "
        f"FROM ({candidates_sql}) AS c GROUP BY vocabulary_id, code) AS k "
        f"LEFT JOIN concept AS e ON e.vocabulary_id = k.vocabulary_id AND e.concept_code = k.code "
        f"AND e.concept_id BETWEEN {LOCAL_CONCEPT_BASE} AND {LOCAL_CONCEPT_LIMIT} "
        f"WHERE NOT EXISTS (SELECT 1 FROM {staged} AS s WHERE s.vocabulary_id = k.vocabulary_id AND s.code = k.code)",
    )
    start = (
        "(SELECT greatest(coalesce((SELECT max(concept_id) FROM concept WHERE concept_id "
        f"BETWEEN {LOCAL_CONCEPT_BASE} AND {LOCAL_CONCEPT_LIMIT}), "
        f"{LOCAL_CONCEPT_BASE - 1}), coalesce((SELECT max(concept_id) FROM {staged}), {LOCAL_CONCEPT_BASE - 1})))"
    )
    engine.execute(
        f"INSERT INTO {staged} ({', '.join(columns)}) SELECT concept_id, vocabulary_id, code, name, target_concept_id, "
        f"FALSE, domain_id, standard FROM {batch} WHERE NOT is_new UNION ALL SELECT {start} + row_number() OVER ("
        f"ORDER BY vocabulary_id, code), vocabulary_id, code, name, target_concept_id, TRUE, domain_id, standard "
        f"FROM {batch} WHERE is_new"
    )
    return staged


def stage_site_concepts(context: RunContext, site: SiteMapping) -> None:
    """Stage the concepts the site declares (``local_concepts:``), so its mappings can use them this run."""
    if site.local_concepts is None:
        return
    vocabulary = sql_text(site.local_concepts.vocabulary_id)
    rows = " UNION ALL ".join(
        f"SELECT {vocabulary} AS vocabulary_id, {sql_text(c.code)} AS code, {sql_text(c.name)} AS name, "
        f"CAST(NULL AS BIGINT) AS target_concept_id, {sql_text(c.domain_id)} AS domain_id, "
        f"{'TRUE' if c.standard else 'FALSE'} AS standard"
        for c in site.local_concepts.concepts
    )
    stage_local_concepts(context, rows)


def local_concept_changes(context: RunContext, sites: Sequence[SiteMapping] = ()) -> list[TableChange]:
    """Publish the run's new local concepts, their "Maps to"/"Mapped from" rows, and the crosswalk vocabularies."""
    staged = context.table(LOCAL_CONCEPTS)
    vocabularies = (
        context.engine.query(f"SELECT DISTINCT vocabulary_id FROM {staged} WHERE vocabulary_id LIKE '%-local'")
        .column(0)
        .to_pylist()
    )
    changes = [
        TableChange(
            "concept",
            "SELECT CAST(l.concept_id AS INTEGER), substr(coalesce(l.name, l.code), 1, 255), "
            "coalesce(l.domain_id, t.domain_id, 'Metadata'), l.vocabulary_id, 'Undefined', "
            "CASE WHEN l.standard THEN 'S' END, l.code, "
            "DATE '1970-01-01', DATE '2099-12-31', CAST(NULL AS VARCHAR) "
            f"FROM {staged} AS l LEFT JOIN concept AS t ON t.concept_id = l.target_concept_id WHERE l.is_new",
        ),
        TableChange(
            "concept_relationship",
            f"SELECT CAST(concept_id AS INTEGER), CAST(target_concept_id AS INTEGER), 'Maps to', DATE '1970-01-01', "
            f"DATE '2099-12-31', CAST(NULL AS VARCHAR) FROM {staged} WHERE is_new AND target_concept_id > 0 "
            "UNION ALL SELECT CAST(target_concept_id AS INTEGER), CAST(concept_id AS INTEGER), 'Mapped from', "
            f"DATE '1970-01-01', DATE '2099-12-31', CAST(NULL AS VARCHAR) FROM {staged} "
            "WHERE is_new AND target_concept_id > 0",
        ),
    ]
    names = {v: f"Crosswalked {v.removesuffix('-local')} codes" for v in vocabularies}
    for site in sites:
        if site.local_concepts is not None and site.local_concepts.vocabulary_id not in names:
            names[site.local_concepts.vocabulary_id] = f"{site.site} local concepts"
    vocabularies = list(names)
    if vocabularies:
        changes.append(
            TableChange(
                "vocabulary",
                " UNION ALL ".join(
                    f"SELECT {sql_text(v)}, {sql_text(names[v])}, 'site mapping (Massalia ETL)', "
                    "CAST(NULL AS VARCHAR), 0"
                    for v in vocabularies
                ),
                delete_where=f"vocabulary_id IN ({', '.join(sql_text(v) for v in vocabularies)})",
            )
        )
    return changes


def crosswalk_change(context: RunContext, staged: str) -> TableChange:
    """Publish the crosswalks into SOURCE_TO_CONCEPT_MAP (replacing earlier rows of the same vocabularies)."""
    vocabularies = context.engine.query(f"SELECT DISTINCT source_vocabulary_id FROM {staged}").column(0).to_pylist()
    listed = ", ".join(sql_text(v) for v in vocabularies)
    return TableChange(
        "source_to_concept_map",
        f"SELECT {_select('source_to_concept_map')} FROM {staged}",
        delete_where=f"source_vocabulary_id IN ({listed})",
    )


def local_codes_path(site: SiteMapping) -> Path:
    """Where the site's local-code list lives (package resource or a path next to the mapping)."""
    if site.local_codes is None:
        raise ValueError(f"site {site.site} has no local_codes")
    return resource_path(site.local_codes.resource, site.origin)


def stage_local_codes(context: RunContext, site: SiteMapping, crosswalk: str | None = None) -> str:
    """Stage the local-code list (``code`` = local code, plus its attributes) and the site's STCM rows."""
    engine = context.engine
    path = local_codes_path(site)
    batches = list(
        read_source(path, SourceOptions(columns=("local_code", "target_vocabulary_id", "target_concept_code")))
    )
    table = context.table(f"local_{site.site}")
    data = pa.Table.from_batches(batches)
    data = data.drop_columns([c for c in data.column_names if c.startswith("_")])
    engine.write_new_table(table, data.append_column("code", data.column("local_code")))
    vocabulary = sql_text(site.local_codes.vocabulary_id if site.local_codes else "")
    # The site's own codes are its local vocabulary's concepts (ids from 2,000,000,000, kept across runs).
    local = stage_local_concepts(
        context,
        f"SELECT {vocabulary} AS vocabulary_id, local_code AS code, substr(local_label, 1, 255) AS name, "
        "CAST(NULL AS BIGINT) AS target_concept_id, CAST(NULL AS VARCHAR) AS domain_id, "
        f"CAST(NULL AS BOOLEAN) AS standard FROM {table}",
    )
    stcm = context.table(f"stcm_{site.site}")
    via_crosswalk = (
        (
            f"(SELECT min(nullif(x.target_concept_id, 0)) FROM {crosswalk} AS x WHERE x.source_vocabulary_id "
            "= l.target_vocabulary_id AND x.source_code = l.target_concept_code)"
        )
        if crosswalk
        else "NULL"
    )
    context.create_as(
        stcm,
        f"SELECT source_code, source_concept_id, source_vocabulary_id, "
        "m.source_code_description, m.target_concept_id, coalesce(t.vocabulary_id, 'None') AS target_vocabulary_id, "
        "m.valid_start_date, m.valid_end_date, m.invalid_reason FROM ("
        f"SELECT l.local_code AS source_code, coalesce(k.concept_id, 0) AS source_concept_id, "
        f"{vocabulary} AS source_vocabulary_id, "
        "substr(l.local_label, 1, 255) AS source_code_description, "
        f"coalesce({standard_target_sql('c')}, {via_crosswalk}, 0) "
        "AS target_concept_id, DATE '1970-01-01' AS valid_start_date, DATE '2099-12-31' AS valid_end_date, "
        f"CAST(NULL AS VARCHAR) AS invalid_reason FROM {table} AS l LEFT JOIN concept AS c "
        "ON c.vocabulary_id = l.target_vocabulary_id AND c.concept_code = l.target_concept_code "
        f"LEFT JOIN {local} AS k ON k.vocabulary_id = {vocabulary} AND k.code = l.local_code"
        ") AS m LEFT JOIN concept AS t ON t.concept_id = m.target_concept_id",
    )
    return table


def local_code_changes(context: RunContext, site: SiteMapping, local_table: str) -> list[TableChange]:
    """Replace the site's rows of SOURCE_TO_CONCEPT_MAP, and declare its local vocabulary."""
    del local_table
    vocabulary = site.local_codes.vocabulary_id if site.local_codes else ""
    stcm = context.table(f"stcm_{site.site}")
    return [
        TableChange(
            "source_to_concept_map",
            f"SELECT {_select('source_to_concept_map')} FROM {stcm}",
            delete_where=f"source_vocabulary_id = {sql_text(vocabulary)}",
        ),
        TableChange(
            "vocabulary",
            f"SELECT {sql_text(vocabulary)}, {sql_text(f'{site.site} local codes')}, "
            f"{sql_text(site.description or site.site)}, NULL, 0",
            delete_where=f"vocabulary_id = {sql_text(vocabulary)}",
        ),
    ]


def care_site_changes(context: RunContext, sites: Sequence[SiteMapping]) -> list[TableChange]:
    """Each site as a CARE_SITE with its LOCATION (replaced on every run that touches the site)."""
    del context
    changes = []
    for site in sites:
        care = site.care_site
        changes.append(
            TableChange(
                "location",
                f"SELECT {care.care_site_id}, NULL, NULL, {sql_text(care.city)}, NULL, {sql_text(care.zip)}, NULL, "
                f"{sql_text(f'care_site:{site.site}')}, NULL, {sql_text(care.country)}, NULL, NULL",
                delete_where=f"location_id = {care.care_site_id}",
            )
        )
        changes.append(
            TableChange(
                "care_site",
                f"SELECT {care.care_site_id}, {sql_text(care.name)}, {care.place_of_service_concept_id}, "
                f"{care.care_site_id}, {sql_text(site.site)}, NULL",
                delete_where=f"care_site_id = {care.care_site_id}",
            )
        )
    return changes


def observation_period_change(
    context: RunContext, valid: Sequence[dict[str, list[tuple[str, set[str]]]]]
) -> TableChange | None:
    """Recompute the observation period of every person this run touched (old and new events)."""
    persons: list[str] = []
    new_dates: list[str] = []
    for tables in valid:
        for target, names in tables.items():
            for name, columns in names:
                persons.append(f"SELECT person_id FROM {name}")
                if target in OBSERVATION_DATES:
                    start, end = OBSERVATION_DATES[target]
                    if start in columns:
                        last = f"coalesce({end}, {start})" if end and end in columns else start
                        new_dates.append(f"SELECT person_id, {start} AS d0, {last} AS d1 FROM {name}")
    if not persons:
        return None
    touched = context.table("touched_persons")
    context.create_as(touched, f"SELECT DISTINCT person_id FROM ({' UNION ALL '.join(persons)}) AS p")
    old_dates = []
    for target, (start, end) in OBSERVATION_DATES.items():
        last = f"coalesce({end}, {start})" if end else start
        old_dates.append(
            f"SELECT person_id, {start} AS d0, {last} AS d1 FROM {target} "
            f"WHERE person_id IN (SELECT person_id FROM {touched})"
        )
    periods = context.table("observation_periods")
    context.create_as(
        periods,
        f"SELECT person_id AS observation_period_id, person_id, "
        "CAST(min(d0) AS DATE) AS observation_period_start_date, CAST(max(d1) AS DATE) AS "
        f"observation_period_end_date, {EHR} AS period_type_concept_id FROM ("
        + " UNION ALL ".join(new_dates + old_dates)
        + ") AS dates WHERE d0 IS NOT NULL GROUP BY person_id",
    )
    return TableChange(
        "observation_period", f"SELECT * FROM {periods}", delete_where=f"person_id IN (SELECT person_id FROM {touched})"
    )


def cdm_source_change(context: RunContext, sites: Sequence[SiteMapping]) -> TableChange:
    """The single CDM_SOURCE row, with the vocabulary version found in the warehouse."""
    engine = context.engine
    version = engine.query("SELECT vocabulary_version FROM vocabulary WHERE vocabulary_id = 'None'")
    vocabulary_version = version.column(0)[0].as_py() if version.num_rows else None
    today = dt.date.today().isoformat()
    names = ", ".join(s.site for s in sites)
    return TableChange(
        "cdm_source",
        f"SELECT 'Massalia oncology warehouse', 'massalia', 'Massalia', "
        f"{sql_text(f'Synthetic or hospital extracts from: {names}')}, NULL, NULL, DATE '{today}', "
        f"DATE '{today}', {sql_text(CDM_VERSION)}, {CDM_54_CONCEPT}, "
        f"{sql_text(vocabulary_version or 'unknown')}",
        delete_where="TRUE",
    )
