"""Treatment-line and disease-progression EPISODE rows, derived from the mapped events.

OMOP's oncology extension describes a cancer as *disease episodes* (the first occurrence, written
by the site mappings with concept 32528) and *treatment episodes* (regimens / lines of therapy,
32531 "Treatment Regimen"), linked to the events they abstract by EPISODE_EVENT rows. This module
derives, for every person a run touches, from that person's DRUG_EXPOSURE and CONDITION_OCCURRENCE
rows (old and new):

- one **treatment episode** per line of therapy or per unnumbered regimen (hormone therapy or
  maintenance outside a line): ``episode_number`` = the line (NULL outside a line),
  ``episode_parent_id`` = the disease episode, ``episode_object_concept_id`` = 4273629
  "Chemotherapy" when the regimen holds a cytotoxic drug, else 4181511 "Administration of
  antineoplastic agent"; ``episode_source_value`` = the modalities (``chemotherapy``,
  ``hormone``, ``immunotherapy``, ``targeted``, sorted, joined by ``+``); one EPISODE_EVENT
  per administration (field 1147094 ``drug_exposure.drug_exposure_id``);
- one **disease-progression episode** (32677) per relapse/progression: a secondary malignant
  neoplasm (a descendant of 432851) diagnosed more than :data:`PROGRESSION_AFTER_DAYS` days after
  the person's first cancer diagnosis; diagnoses less than :data:`PROGRESSION_MERGE_DAYS` days
  apart are one progression. EPISODE_EVENT rows link its diagnoses (field 1147127).

Where a site records the line of each administration (``treatment_lines.line`` in its mapping) the
line is the source's; elsewhere lines are derived by the rule in ``MAPPINGS.md``. The whole set is
recomputed for the persons a run touches, so incremental deliveries keep it consistent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from massalia.engine import Column
from massalia.health.etl.mapping import SiteMapping
from massalia.pipelines.compiler import sql_text
from massalia.pipelines.publish import TableChange
from massalia.pipelines.runner import FILE_NO, RunContext
from massalia.sources import SOURCE_LINE

DISEASE_FIRST_OCCURRENCE = 32528
TREATMENT_REGIMEN = 32531
DISEASE_PROGRESSION = 32677
DRUG_EXPOSURE_FIELD = 1147094
"""``drug_exposure.drug_exposure_id``: EPISODE_EVENT rows pointing at drug exposures."""
CONDITION_FIELD = 1147127
"""``condition_occurrence.condition_occurrence_id``."""
CHEMOTHERAPY = 4273629
ANTINEOPLASTIC_ADMINISTRATION = 4181511
SECONDARY_MALIGNANCY = 432851
"""SNOMED "Secondary malignant neoplastic disease": its descendants mark a progression or relapse."""
EHR = 32817

REGIMEN_GAP_DAYS = 120
"""Derived lines: a pause longer than this between two cancer-drug administrations starts a new regimen."""
PROGRESSION_AFTER_DAYS = 30
"""A secondary neoplasm diagnosed within this many days of the first diagnosis is initial staging."""
PROGRESSION_MERGE_DAYS = 90
"""Secondary-neoplasm diagnoses closer than this belong to the same progression episode."""

LINE_TAGS = "etl_drug_line"
"""ETL bookkeeping: the line (and cycle) the source gave each administration, by drug_exposure_id."""
LINE_TAG_COLUMNS = (
    Column("drug_exposure_id", "BIGINT", False),
    Column("line", "INTEGER"),
    Column("cycle", "INTEGER"),
)

MODALITY_SQL = (
    "CASE WHEN atc LIKE 'L02%' THEN 'hormone' "
    "WHEN atc LIKE 'L01FF%' OR atc LIKE 'L01FX%' THEN 'immunotherapy' "
    "WHEN atc LIKE 'L01E%' OR atc LIKE 'L01F%' OR atc LIKE 'L01XK%' OR atc LIKE 'L01XC%' "
    "OR atc LIKE 'L01XE%' THEN 'targeted' "
    "WHEN atc LIKE 'L01%' THEN 'chemotherapy' END"
)
"""Modality of an administration from the ATC class of its drug (L01 antineoplastic, L02 endocrine)."""


@dataclass
class EpisodeInputs:
    """New rows of this run that the episodes are derived from (staged tables and their columns)."""

    drugs: list[tuple[str, set[str]]]
    conditions: list[tuple[str, set[str]]]
    episodes: list[tuple[str, set[str]]]
    tags: list[str]


def stage_line_tags(context: RunContext, site: SiteMapping, valid: str, source: str) -> str | None:
    """Keep the source's line/cycle of each new administration of ``site`` (before its source rows go).

    ``valid`` holds the drug mapping's valid rows (with their source file and line), ``source``
    the staged drug file. Returns the staged tag table, or ``None`` when the site has no line column.
    """
    lines = site.treatment_lines
    if lines is None or lines.line is None:
        return None
    cycle = f"TRY_CAST(s.{lines.cycle} AS INTEGER)" if lines.cycle else "CAST(NULL AS INTEGER)"
    tags = context.table(f"line_tags_{site.site}")
    context.create_as(
        tags,
        f"SELECT v._row_id AS drug_exposure_id, TRY_CAST(s.{lines.line} AS INTEGER) AS line, "
        f"{cycle} AS cycle FROM {valid} AS v JOIN {source} AS s ON s.{FILE_NO} = v.{FILE_NO} "
        f"AND s.{SOURCE_LINE} = v.{SOURCE_LINE} WHERE TRY_CAST(s.{lines.line} AS INTEGER) > 0",
    )
    return tags


def _id(columns: set[str], key: str) -> str:
    """The id of a staged row: its declared key column, else the stable row id."""
    return key if key in columns else "_row_id"


def _col(columns: set[str], name: str, fallback: str = "NULL") -> str:
    return name if name in columns else fallback


def episode_changes(
    context: RunContext, inputs: EpisodeInputs, derived_sites: Sequence[str], crosswalk: str | None
) -> list[TableChange]:
    """Treatment-line and progression episodes (and their events) of every person this run touched.

    Parameters
    ----------
    context
        The run.
    inputs
        The run's new drug, condition and episode rows, and the staged line tags.
    derived_sites
        Sites whose lines are derived (no line column): their persons' lines are numbered by rule.
    crosswalk
        The staged crosswalk table (ATC codes of ingredients the vocabulary lacks), if any.
    """
    create = context.create_as
    parts = [f"SELECT person_id FROM {name}" for name, _ in inputs.drugs + inputs.conditions + inputs.episodes]
    if not parts:
        return []
    touched = context.table("ep_touched")
    create(touched, f"SELECT DISTINCT person_id FROM ({' UNION ALL '.join(parts)}) AS p")
    among = f"person_id IN (SELECT person_id FROM {touched})"

    drugs = context.table("ep_drugs")
    drug_parts = [
        f"SELECT drug_exposure_id, person_id, drug_concept_id, drug_exposure_start_date AS d0, "
        f"coalesce(drug_exposure_end_date, drug_exposure_start_date) AS d1, drug_source_value "
        f"FROM drug_exposure WHERE {among}"
    ]
    for name, columns in inputs.drugs:
        end = _col(columns, "drug_exposure_end_date", "drug_exposure_start_date")
        drug_parts.append(
            f"SELECT {_id(columns, 'drug_exposure_id')}, person_id, "
            f"{_col(columns, 'drug_concept_id', '0')}, drug_exposure_start_date, "
            f"coalesce({end}, drug_exposure_start_date), {_col(columns, 'drug_source_value')} "
            f"FROM {name}"
        )
    create(
        drugs,
        "SELECT CAST(drug_exposure_id AS BIGINT) AS drug_exposure_id, CAST(person_id AS BIGINT) AS "
        "person_id, CAST(drug_concept_id AS BIGINT) AS drug_concept_id, CAST(d0 AS DATE) AS d0, "
        "CAST(d1 AS DATE) AS d1, CAST(drug_source_value AS VARCHAR) AS drug_source_value FROM ("
        + " UNION ALL ".join(drug_parts)
        + ") AS d",
    )

    atc = context.table("ep_atc")
    atc_parts = [
        "SELECT target_concept_id AS concept_id, source_code AS atc FROM source_to_concept_map "
        "WHERE source_vocabulary_id = 'ATC' AND target_concept_id <> 0",
        "SELECT a.descendant_concept_id, c.concept_code FROM concept AS c JOIN concept_ancestor AS a "
        "ON a.ancestor_concept_id = c.concept_id WHERE c.vocabulary_id = 'ATC' AND c.concept_code LIKE 'L0%'",
    ]
    if crosswalk:
        atc_parts.append(
            f"SELECT target_concept_id, source_code FROM {crosswalk} "
            "WHERE source_vocabulary_id = 'ATC' AND target_concept_id <> 0"
        )
    create(
        atc, "SELECT concept_id, max(atc) AS atc FROM (" + " UNION ALL ".join(atc_parts) + ") AS a GROUP BY concept_id"
    )

    tags = context.table("ep_tags")
    tag_parts = [f"SELECT drug_exposure_id, line FROM {LINE_TAGS}"]
    tag_parts += [f"SELECT drug_exposure_id, line FROM {name}" for name in inputs.tags]
    create(
        tags,
        "SELECT drug_exposure_id, max(line) AS line FROM ("
        + " UNION ALL ".join(tag_parts)
        + ") AS t GROUP BY drug_exposure_id",
    )

    sites = context.table("ep_person_site")
    create(
        sites,
        f"SELECT id AS person_id, min(site) AS site FROM (SELECT id, site FROM etl_id_map WHERE kind = "
        f"'person' UNION ALL SELECT id, site FROM {context.table('new_ids')} WHERE kind = 'person') AS i "
        f"WHERE id IN (SELECT person_id FROM {touched}) GROUP BY id",
    )

    cancer_drugs = context.table("ep_cancer_drugs")
    create(
        cancer_drugs,
        f"SELECT c.*, {MODALITY_SQL} AS modality FROM ("
        "SELECT d.drug_exposure_id, d.person_id, d.d0, d.d1, t.line, "
        "coalesce(CAST(nullif(d.drug_concept_id, 0) AS VARCHAR), d.drug_source_value) AS ingredient, "
        "coalesce(CASE WHEN regexp_matches(d.drug_source_value, '^L0[12][A-Z]{0,2}[0-9]{0,2}$') "
        f"THEN d.drug_source_value END, x.atc) AS atc FROM {drugs} AS d "
        f"LEFT JOIN {tags} AS t ON t.drug_exposure_id = d.drug_exposure_id "
        f"LEFT JOIN {atc} AS x ON x.concept_id = d.drug_concept_id) AS c "
        f"WHERE c.line IS NOT NULL OR ({MODALITY_SQL}) IS NOT NULL",
    )

    disease = context.table("ep_disease")
    disease_parts = [
        f"SELECT episode_id, person_id, episode_start_date, episode_object_concept_id FROM episode "
        f"WHERE episode_concept_id = {DISEASE_FIRST_OCCURRENCE} AND {among}"
    ]
    for name, columns in inputs.episodes:
        if "episode_concept_id" in columns:
            disease_parts.append(
                f"SELECT {_id(columns, 'episode_id')}, person_id, episode_start_date, "
                f"{_col(columns, 'episode_object_concept_id', '0')} FROM {name} "
                f"WHERE episode_concept_id = {DISEASE_FIRST_OCCURRENCE}"
            )
    create(
        disease,
        "SELECT CAST(episode_id AS BIGINT) AS episode_id, CAST(person_id AS BIGINT) AS person_id, "
        "CAST(episode_start_date AS DATE) AS start_date, CAST(episode_object_concept_id AS BIGINT) AS object_id "
        "FROM (" + " UNION ALL ".join(disease_parts) + ") AS e",
    )

    progressions = _progressions(context, inputs, among, disease)
    regimens = _regimens(context, cancer_drugs, progressions, sites, derived_sites)

    episodes = context.table("ep_new")
    create(
        episodes,
        "SELECT r.episode_id, r.person_id, r.concept_id, r.start_date, r.end_date, r.number, "
        "r.object_id, r.source_value, p.episode_id AS parent_id, p.object_id AS parent_object FROM ("
        f"SELECT episode_id, person_id, {TREATMENT_REGIMEN} AS concept_id, start_date, end_date, line AS number, "
        f"CASE WHEN modalities LIKE '%chemotherapy%' THEN {CHEMOTHERAPY} ELSE {ANTINEOPLASTIC_ADMINISTRATION} END "
        f"AS object_id, modalities AS source_value FROM {regimens} UNION ALL "
        f"SELECT episode_id, person_id, {DISEASE_PROGRESSION}, start_date, NULL, number, NULL, "
        f"'progression: secondary malignant neoplasm' FROM {progressions}) AS r "
        f"LEFT JOIN (SELECT r2.episode_id AS child, e.episode_id, e.object_id, row_number() OVER ("
        "PARTITION BY r2.episode_id ORDER BY CASE WHEN e.start_date <= r2.start_date THEN 0 ELSE 1 END, "
        "CASE WHEN e.start_date <= r2.start_date THEN e.start_date END DESC, e.start_date, e.episode_id) AS rank "
        f"FROM (SELECT episode_id, person_id, start_date FROM {regimens} UNION ALL "
        f"SELECT episode_id, person_id, start_date FROM {progressions}) AS r2 "
        f"JOIN {disease} AS e ON e.person_id = r2.person_id) AS p ON p.child = r.episode_id AND p.rank = 1",
    )
    events = context.table("ep_events")
    create(
        events,
        f"SELECT d.episode_id, d.drug_exposure_id AS event_id, {DRUG_EXPOSURE_FIELD} AS field_id "
        f"FROM {context.table('ep_regimen_drugs')} AS d UNION ALL SELECT m.episode_id, m.condition_occurrence_id, "
        f"{CONDITION_FIELD} FROM {context.table('ep_progression_events')} AS m",
    )

    kinds = f"episode_concept_id IN ({TREATMENT_REGIMEN}, {DISEASE_PROGRESSION})"
    return [
        # Events first: their delete finds the episodes being replaced while they are still there.
        TableChange(
            "episode_event",
            f"SELECT CAST(episode_id AS BIGINT), CAST(event_id AS BIGINT), CAST(field_id AS INTEGER) FROM {events}",
            delete_where=f"episode_id IN (SELECT episode_id FROM episode WHERE {kinds} AND {among})",
        ),
        TableChange(
            "episode",
            "SELECT CAST(episode_id AS BIGINT), CAST(person_id AS BIGINT), "
            "CAST(concept_id AS INTEGER), start_date, CAST(NULL AS TIMESTAMP), end_date, "
            "CAST(NULL AS TIMESTAMP), CAST(parent_id AS BIGINT), CAST(number AS INTEGER), "
            f"CAST(coalesce(object_id, parent_object, 0) AS INTEGER), {EHR}, "
            f"CAST(source_value AS VARCHAR), 0 FROM {episodes}",
            delete_where=f"{kinds} AND {among}",
        ),
    ]


def _progressions(context: RunContext, inputs: EpisodeInputs, among: str, disease: str) -> str:
    """Stage the progression episodes (``episode_id, person_id, start_date, number``) and their events."""
    create = context.create_as
    secondary = (
        f"(SELECT descendant_concept_id FROM concept_ancestor WHERE ancestor_concept_id = "
        f"{SECONDARY_MALIGNANCY} UNION SELECT {SECONDARY_MALIGNANCY})"
    )
    parts = [
        f"SELECT condition_occurrence_id, person_id, condition_start_date FROM condition_occurrence "
        f"WHERE {among} AND condition_concept_id IN {secondary}"
    ]
    for name, columns in inputs.conditions:
        if "condition_concept_id" in columns:
            parts.append(
                f"SELECT {_id(columns, 'condition_occurrence_id')}, person_id, condition_start_date "
                f"FROM {name} WHERE condition_concept_id IN {secondary}"
            )
    mets = context.table("ep_mets")
    create(
        mets,
        "SELECT CAST(m.condition_occurrence_id AS BIGINT) AS condition_occurrence_id, "
        "CAST(m.person_id AS BIGINT) AS person_id, CAST(m.condition_start_date AS DATE) AS d FROM ("
        + " UNION ALL ".join(parts)
        + f") AS m JOIN (SELECT person_id, min(start_date) AS first_dx FROM {disease} "
        "GROUP BY person_id) AS f ON f.person_id = m.person_id "
        f"WHERE date_diff('day', f.first_dx, CAST(m.condition_start_date AS DATE)) > {PROGRESSION_AFTER_DAYS}",
    )
    grouped = context.table("ep_mets_grouped")
    create(
        grouped,
        "SELECT condition_occurrence_id, person_id, d, sum(fresh) OVER (PARTITION BY person_id "
        "ORDER BY d, condition_occurrence_id ROWS UNBOUNDED PRECEDING) AS grp FROM (SELECT *, CASE WHEN "
        "lag(d) OVER (PARTITION BY person_id ORDER BY d, condition_occurrence_id) IS NULL OR date_diff('day', "
        f"lag(d) OVER (PARTITION BY person_id ORDER BY d, condition_occurrence_id), d) > {PROGRESSION_MERGE_DAYS} "
        f"THEN 1 ELSE 0 END AS fresh FROM {mets}) AS m",
    )
    progressions = context.table("ep_progressions")
    create(
        progressions,
        "SELECT min(condition_occurrence_id) AS episode_id, person_id, min(d) AS start_date, grp "
        f"AS number FROM {grouped} GROUP BY person_id, grp",
    )
    create(
        context.table("ep_progression_events"),
        f"SELECT p.episode_id, g.condition_occurrence_id FROM {grouped} "
        f"AS g JOIN {progressions} AS p ON p.person_id = g.person_id AND p.number = g.grp",
    )
    return progressions


def _regimens(
    context: RunContext, cancer_drugs: str, progressions: str, sites: str, derived_sites: Sequence[str]
) -> str:
    """Stage the treatment episodes (one per source line, or per derived regimen) and their administrations.

    Returns the table ``episode_id, person_id, start_date, end_date, line, modalities``.
    """
    create = context.create_as
    # 1. Administrations without a source line: a new regimen starts on a day that follows a pause of
    #    more than REGIMEN_GAP_DAYS, brings an ingredient not given in the previous REGIMEN_GAP_DAYS days,
    #    or comes after a progression diagnosed since the previous administration day.
    days = context.table("ep_days")
    create(
        days,
        "SELECT person_id, d0 AS day, lag(d0) OVER (PARTITION BY person_id ORDER BY d0) AS prev_day "
        f"FROM (SELECT DISTINCT person_id, d0 FROM {cancer_drugs} WHERE line IS NULL) AS d",
    )
    # Days bringing an ingredient not given in the previous REGIMEN_GAP_DAYS days, in a table of their
    # own: one level of correlation only (Spark resolves no column of a query two levels up).
    new_ingredient = context.table("ep_new_ingredient_days")
    create(
        new_ingredient,
        f"SELECT DISTINCT x.person_id, x.d0 AS day FROM {cancer_drugs} AS x WHERE x.line IS NULL "
        f"AND NOT EXISTS (SELECT 1 FROM {cancer_drugs} AS y WHERE y.person_id = x.person_id AND y.line IS NULL "
        f"AND y.d0 < x.d0 AND date_diff('day', y.d0, x.d0) <= {REGIMEN_GAP_DAYS} AND y.ingredient = x.ingredient)",
    )
    starts = context.table("ep_day_groups")
    create(
        starts,
        "SELECT person_id, day, sum(fresh) OVER (PARTITION BY person_id ORDER BY day ROWS UNBOUNDED "
        "PRECEDING) AS grp FROM (SELECT p.person_id, p.day, CASE WHEN p.prev_day IS NULL "
        f"OR date_diff('day', p.prev_day, p.day) > {REGIMEN_GAP_DAYS} "
        f"OR EXISTS (SELECT 1 FROM {new_ingredient} AS n WHERE n.person_id = p.person_id AND n.day = p.day) "
        f"OR EXISTS (SELECT 1 FROM {progressions} AS g WHERE g.person_id = p.person_id "
        "AND g.start_date > p.prev_day AND g.start_date <= p.day) THEN 1 ELSE 0 END AS fresh "
        f"FROM {days} AS p) AS f",
    )
    members = context.table("ep_regimen_members")
    create(
        members,
        "SELECT c.drug_exposure_id, c.person_id, c.d0, c.d1, c.modality, c.line, "
        "CASE WHEN c.line IS NOT NULL THEN 'line ' || CAST(c.line AS VARCHAR) "
        "ELSE 'regimen ' || CAST(g.grp AS VARCHAR) END AS regimen_key "
        f"FROM {cancer_drugs} AS c LEFT JOIN {starts} AS g ON c.line IS NULL AND g.person_id = c.person_id "
        "AND g.day = c.d0",
    )
    grouped = context.table("ep_regimen_groups")
    # Progressions are counted against the grouped row (an aggregate inside a correlated subquery is
    # refused by Spark).
    create(
        grouped,
        f"SELECT a.*, (SELECT count(*) FROM {progressions} AS g WHERE g.person_id = a.person_id "
        "AND g.start_date <= a.start_date) AS after_progressions FROM ("
        "SELECT min(drug_exposure_id) AS episode_id, person_id, regimen_key, min(d0) AS start_date, "
        "max(d1) AS end_date, max(line) AS source_line, "
        "string_agg(DISTINCT modality, '+' ORDER BY modality) AS modalities, "
        "bool_and(coalesce(modality, '') = 'hormone') AS hormone_only "
        f"FROM {members} AS m GROUP BY person_id, regimen_key) AS a",
    )
    listed = ", ".join(sql_text(s) for s in derived_sites) or "NULL"
    # 2. Line numbers: the source's; for persons of sites without a line column, by rule: the first
    #    regimen that is not hormone therapy alone opens line 1, and the first regimen after each
    #    progression opens the next line; other regimens (hormone therapy, maintenance) are unnumbered.
    numbered = context.table("ep_regimens")
    create(
        numbered,
        "SELECT episode_id, person_id, start_date, end_date, modalities, CASE WHEN derived THEN "
        "CASE WHEN opens THEN sum(CASE WHEN opens THEN 1 ELSE 0 END) OVER (PARTITION BY person_id ORDER BY "
        "start_date, episode_id ROWS UNBOUNDED PRECEDING) END ELSE source_line END AS line FROM ("
        "SELECT r.*, s.site IN (" + listed + ") AS derived, candidate AND row_number() OVER (PARTITION BY "
        "r.person_id, r.after_progressions, candidate ORDER BY r.start_date, r.episode_id) = 1 AS opens FROM ("
        f"SELECT *, (after_progressions > 0 OR NOT hormone_only) AS candidate FROM {grouped}) AS r "
        f"LEFT JOIN {sites} AS s ON s.person_id = r.person_id) AS n",
    )
    create(
        context.table("ep_regimen_drugs"),
        f"SELECT g.episode_id, m.drug_exposure_id FROM {members} AS m "
        f"JOIN {grouped} AS g ON g.person_id = m.person_id AND g.regimen_key = m.regimen_key",
    )
    return numbered
