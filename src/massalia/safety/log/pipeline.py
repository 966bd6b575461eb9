"""The incident-log pipeline: three source layouts into one log, with rejects, versions and cross-source dedup.

It runs on the core's pipeline runner (:mod:`massalia.pipelines`): files are hashed (a file already loaded
is skipped), staged through the core's connectors with their provenance, mapped and validated in set-based
SQL (a bad row becomes a reject naming its file, line and field, never an exception), and every table
change of the run is published at once. One connector mapping per layout:

- ``mc`` (municipal police log book, ``;`` CSV, ``dd/mm/yyyy HH:MM``, postal addresses geocoded with the
  street gazetteer);
- ``csu`` (urban supervision centre, NDJSON, ISO timestamps with offset, Lambert-93 or WGS84 coordinates,
  checked against the city outline);
- ``dtp`` (public tranquillity department, ``,`` CSV, ISO date and ``HHhMM`` time, arrondissement).

Then: exact repeats of a record (a feed sent twice) are set aside as ``duplicate_row`` flags; a known
record with a changed content becomes its next version (history appends, never overwrites); new records
are matched across sources by :mod:`massalia.safety.log.dedup`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from massalia.engine import Engine
from massalia.pipelines import FILE_NO, InputFile, Pipeline, Rule, RunContext, TableChange, register_rule_kind
from massalia.pipelines.rules import RuleKind
from massalia.safety.catalogue import load_catalogue
from massalia.safety.geo import _A, _E, _F, _LON0, _N, _RHO0, _X0, _Y0, district_of, in_city
from massalia.safety.log import dedup
from massalia.safety.log.tables import INCIDENTS, LINKS, REPORTS, STREETS, ensure_tables, street_key
from massalia.sources import SOURCE_LINE, SourceOptions

PIPELINE_NAME = "safety.incidents"
SOURCES = ("mc", "csu", "dtp")
CITY_BOX = (880_000.0, 6_230_000.0, 910_000.0, 6_260_000.0)
"""A box around the city in Lambert-93: coordinates outside it are impossible, inside it the outline decides."""

OUTSIDE_AREA = RuleKind(
    "outside_area",
    "impossible_coordinates",
    "coordinates outside the city",
    lambda r: f"{r.value} IS NOT NULL AND {r.result} IS NULL",
)

REPORT_FIELDS = (
    "source",
    "source_id",
    "occurred_at",
    "zone",
    "x_l93",
    "y_l93",
    "address",
    "street_key",
    "local_code",
    "type_code",
    "narrative",
    "parties",
    "status",
    "attachments",
    "content_hash",
)


def _text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def lambert93_sql(lon: str, lat: str) -> tuple[str, str]:
    """SQL expressions projecting WGS84 columns to Lambert-93 (the formulas of :mod:`massalia.safety.geo`)."""
    phi = f"radians(CAST({lat} AS DOUBLE))"
    t = f"(tan(pi() / 4 - {phi} / 2) / pow((1 - {_E!r} * sin({phi})) / (1 + {_E!r} * sin({phi})), {_E / 2!r}))"
    rho = f"({_A * _F!r} * pow({t}, {_N!r}))"
    theta = f"({_N!r} * (radians(CAST({lon} AS DOUBLE)) - {_LON0!r}))"
    return f"({_X0!r} + {rho} * sin({theta}))", f"({_Y0 + _RHO0!r} - {rho} * cos({theta}))"


def _in_box(x: str, y: str) -> str:
    x0, y0, x1, y1 = CITY_BOX
    return f"({x} BETWEEN {x0} AND {x1} AND {y} BETWEEN {y0} AND {y1})"


@dataclass
class IncidentPipeline(Pipeline):
    """Load a delivery folder (``mc/``, ``csu/``, ``dtp/``, ``reference/voies.csv``) into the incident log."""

    root: Path
    name: str = PIPELINE_NAME

    def inputs(self) -> list[InputFile]:
        """The delivery's files, in name order within each source (a correction file after its log)."""
        if not self.root.is_dir():
            raise FileNotFoundError(f"no delivery folder at {self.root}")
        files = [InputFile("voies", path, SourceOptions()) for path in sorted(self.root.glob("reference/voies*.csv"))]
        files += [InputFile("mc", p, SourceOptions(separator=";")) for p in sorted(self.root.glob("mc/*.csv"))]
        files += [InputFile("csu", p, SourceOptions(format="ndjson")) for p in sorted(self.root.glob("csu/*.ndjson"))]
        files += [InputFile("dtp", p, SourceOptions()) for p in sorted(self.root.glob("dtp/*.csv"))]
        if not files:
            raise FileNotFoundError(f"no source file under {self.root} (expected mc/*.csv, csu/*.ndjson, dtp/*.csv)")
        return files

    def prepare(self, engine: Engine) -> None:
        """Create the log's tables; register the coordinates rule kind (idempotent)."""
        register_rule_kind(OUTSIDE_AREA)
        ensure_tables(engine)

    def published_tables(self) -> list[str]:
        """The tables whose counts a run reports."""
        return [REPORTS, INCIDENTS, LINKS]

    def transform(self, context: RunContext) -> list[TableChange]:
        """Map each source, drop repeats, number versions, match across sources, and return the changes."""
        engine = context.engine
        catalogue = load_catalogue()
        codes = context.table("codes")
        engine.write_new_table(
            codes,
            pa.table(
                {
                    "source": [c.source for c in catalogue.local_codes],
                    "local_code": [c.code.upper() for c in catalogue.local_codes],
                    "type_code": [c.type_code for c in catalogue.local_codes],
                }
            ),
        )
        changes: list[TableChange] = []
        new = context.new_datasets()
        streets = STREETS
        if "voies" in new:
            staged = context.stage("voies")
            streets = context.table("streets")
            context.create_as(
                streets,
                f"SELECT code_postal AS postcode, min(nom_voie) AS street, {street_key('nom_voie')} AS street_key, "
                "min(CAST(x_debut AS DOUBLE)) AS x_start, min(CAST(y_debut AS DOUBLE)) AS y_start, "
                "min(CAST(x_fin AS DOUBLE)) AS x_end, min(CAST(y_fin AS DOUBLE)) AS y_end, "
                f"min(CAST(numero_max AS INTEGER)) AS number_max FROM {staged} "
                f"GROUP BY code_postal, {street_key('nom_voie')}",
            )
            changes.append(TableChange(STREETS, f"SELECT * FROM {streets}", delete_where="true"))
        mapped = [self._map(context, source, codes, streets) for source in SOURCES if source in new]
        if not mapped:
            return changes
        union = context.table("mapped")
        columns = ", ".join([*REPORT_FIELDS, FILE_NO, SOURCE_LINE])
        context.create_as(union, " UNION ALL ".join(f"SELECT {columns} FROM {m}" for m in mapped))
        changes += self._versions_and_incidents(context, union)
        return changes

    def _map(self, context: RunContext, source: str, codes: str, streets: str) -> str:
        staged = context.stage(source)
        into = context.table(f"valid_{source}")
        columns, rules, source_sql = getattr(self, f"_columns_{source}")(staged, codes, streets)
        context.validate(source_sql=source_sql, columns=columns, rules=rules, target=REPORTS, site=source, into=into)
        if source == "csu":
            self._check_outline(context, into)
        return into

    @staticmethod
    def _geocoded(number: str, postcode: str, street: str, streets: str) -> tuple[str, list[tuple[str, str]]]:
        """A join on the gazetteer and the point it gives (a number's share of the street, its middle without one)."""
        join = f"LEFT JOIN {streets} AS g ON g.postcode = {postcode} AND g.street_key = {street_key(street)}"
        share = f"coalesce(least(CAST({number} AS DOUBLE), g.number_max) / g.number_max, 0.5)"
        return join, [
            ("x_l93", f"g.x_start + {share} * (g.x_end - g.x_start)"),
            ("y_l93", f"g.y_start + {share} * (g.y_end - g.y_start)"),
            ("street_key", street_key(street)),
        ]

    def _columns_mc(self, staged: str, codes: str, streets: str) -> tuple[list[tuple[str, str]], list[Rule], str]:
        postcode = 's."code_postal"'
        number = "TRY_CAST(regexp_extract(s.\"adresse\", '^([0-9]+)', 1) AS INTEGER)"
        street = "regexp_replace(s.\"adresse\", '^[0-9]+ *', '')"
        join, point = self._geocoded(number, postcode, street, streets)
        when = "TRY_STRPTIME(s.\"date_heure\", '%d/%m/%Y %H:%M')"
        zone = f"CASE WHEN regexp_full_match({postcode}, '130(0[1-9]|1[0-6])') THEN 'D' || substr({postcode}, 4, 2) END"
        raw = ", ".join(f's."{c}"' for c in ("num_mc", "date_heure", "code_local", "adresse", "code_postal"))
        columns = [
            ("source", "'mc'"),
            ("source_id", 's."num_mc"'),
            ("occurred_at", when),
            ("zone", zone),
            *point[:2],
            ("address", 's."adresse"'),
            point[2],
            ("local_code", 'upper(trim(s."code_local"))'),
            ("type_code", "c.type_code"),
            ("narrative", 's."recit"'),
            ("parties", 's."personnes"'),
            ("status", 's."suite"'),
            ("attachments", 's."pj"'),
            ("content_hash", f'md5(concat_ws(\'|\', {raw}, s."personnes", s."recit", s."suite", s."pj"))'),
        ]
        rules = self._common_rules('s."num_mc"', 's."date_heure"', when, 's."code_local"', "code_local")
        rules.append(Rule("unknown_value", "zone", value=postcode, result=zone, source_field="code_postal"))
        code = 'upper(trim(s."code_local"))'
        source_sql = f"{staged} AS s LEFT JOIN {codes} AS c ON c.source = 'mc' AND c.local_code = {code} {join}"
        return columns, rules, source_sql

    def _columns_csu(self, staged: str, codes: str, streets: str) -> tuple[list[tuple[str, str]], list[Rule], str]:
        lx, ly = lambert93_sql("s.lon", "s.lat")
        x = f"coalesce(TRY_CAST(s.x_l93 AS DOUBLE), {lx})"
        y = f"coalesce(TRY_CAST(s.y_l93 AS DOUBLE), {ly})"
        pattern = "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}[+-][0-9]{2}:[0-9]{2}"
        when = (
            f"CASE WHEN regexp_full_match(s.horodatage, '{pattern}') "
            "THEN TRY_STRPTIME(substr(s.horodatage, 1, 19), '%Y-%m-%dT%H:%M:%S') END"
        )
        raw_point = "coalesce(s.x_l93 || ' ' || s.y_l93, s.lat || ' ' || s.lon)"
        columns = [
            ("source", "'csu'"),
            ("source_id", "s.evt_id"),
            ("occurred_at", when),
            ("zone", "CAST(NULL AS VARCHAR)"),  # from the outline, after validation (_check_outline)
            ("x_l93", x),
            ("y_l93", y),
            ("address", "CAST(NULL AS VARCHAR)"),
            ("street_key", "CAST(NULL AS VARCHAR)"),
            ("local_code", "upper(trim(s.code))"),
            ("type_code", "c.type_code"),
            ("narrative", "s.observation"),
            ("parties", "CAST(NULL AS VARCHAR)"),
            ("status", "s.statut"),
            ("attachments", "CAST(NULL AS VARCHAR)"),
            (
                "content_hash",
                "md5(concat_ws('|', s.evt_id, s.horodatage, s.code, s.x_l93, s.y_l93, s.lat, s.lon, s.observation, "
                "s.statut))",
            ),
        ]
        rules = self._common_rules("s.evt_id", "s.horodatage", when, "s.code", "code")
        rules += [
            Rule("required", "x_l93", value=raw_point, source_field="x_l93/lat"),
            Rule("outside_area", "x_l93", value=raw_point, result=f"CASE WHEN {_in_box(x, y)} THEN {x} END"),
        ]
        source_sql = f"{staged} AS s LEFT JOIN {codes} AS c ON c.source = 'csu' AND c.local_code = upper(trim(s.code))"
        return columns, rules, source_sql

    def _columns_dtp(self, staged: str, codes: str, streets: str) -> tuple[list[tuple[str, str]], list[Rule], str]:
        valid = "regexp_full_match(s.arrondissement, '1er|[2-9]e|1[0-6]e')"
        digits = "lpad(regexp_extract(s.arrondissement, '^([0-9]+)', 1), 2, '0')"
        zone = f"CASE WHEN {valid} THEN 'D' || {digits} END"
        number = "TRY_CAST(regexp_extract(s.lieu, '^([0-9]+)', 1) AS INTEGER)"
        street = "regexp_replace(s.lieu, '^[0-9]+ *', '')"
        join, point = self._geocoded(number, f"'130' || {digits}", street, streets)
        raw_when = "s.date_signalement || ' ' || s.heure"
        when = f"TRY_STRPTIME({raw_when}, '%Y-%m-%d %Hh%M')"
        columns = [
            ("source", "'dtp'"),
            ("source_id", "s.dossier"),
            ("occurred_at", when),
            ("zone", zone),
            *point[:2],
            ("address", "s.lieu"),
            point[2],
            ("local_code", "upper(trim(s.categorie))"),
            ("type_code", "c.type_code"),
            ("narrative", "s.description"),
            ("parties", "s.demandeur"),
            ("status", "s.suite"),
            ("attachments", "CAST(NULL AS VARCHAR)"),
            (
                "content_hash",
                "md5(concat_ws('|', s.dossier, s.date_signalement, s.heure, s.arrondissement, s.lieu, s.categorie, "
                "s.description, s.demandeur, s.suite))",
            ),
        ]
        rules = self._common_rules("s.dossier", raw_when, when, "s.categorie", "categorie")
        rules.append(
            Rule("unknown_value", "zone", value="s.arrondissement", result=zone, source_field="arrondissement")
        )
        source_sql = (
            f"{staged} AS s LEFT JOIN {codes} AS c ON c.source = 'dtp' AND c.local_code = upper(trim(s.categorie)) "
            f"{join}"
        )
        return columns, rules, source_sql

    @staticmethod
    def _common_rules(source_id: str, raw_when: str, when: str, code: str, code_field: str) -> list[Rule]:
        return [
            Rule("required", "source_id", value=source_id),
            Rule("required", "occurred_at", value=raw_when),
            Rule("invalid_date", "occurred_at", value=raw_when, result=when),
            Rule("date_before", "occurred_at", value=raw_when, result=when, limit="2000-01-01"),
            Rule("date_in_future", "occurred_at", value=raw_when, result=when),
            Rule("required", "type_code", value=code, source_field=code_field),
            Rule("unmapped_code", "type_code", value=code, result="c.type_code", source_field=code_field),
        ]

    @staticmethod
    def _check_outline(context: RunContext, table: str) -> None:
        """Reject points inside the box but outside the city outline (the sea, a neighbouring commune); set zones."""
        engine = context.engine
        points = engine.query(f"SELECT {FILE_NO}, {SOURCE_LINE}, x_l93, y_l93 FROM {table}")
        x = np.asarray(points.column("x_l93").to_numpy(zero_copy_only=False), dtype=np.float64)
        y = np.asarray(points.column("y_l93").to_numpy(zero_copy_only=False), dtype=np.float64)
        zones = district_of(x, y) if len(x) else np.zeros(0, dtype=np.int64)
        outside = ~in_city(x, y) if len(x) else np.zeros(0, dtype=bool)
        verdicts = context.table("outline")
        engine.write_new_table(
            verdicts,
            pa.table(
                {
                    FILE_NO: points.column(FILE_NO),
                    SOURCE_LINE: points.column(SOURCE_LINE),
                    "zone_found": pa.array([f"D{z:02d}" if z else None for z in zones.tolist()], pa.string()),
                    "outside": pa.array(outside.tolist(), pa.bool_()),
                    "raw": pa.array([f"{a:.1f} {b:.1f}" for a, b in zip(x.tolist(), y.tolist(), strict=True)]),
                }
            ),
        )
        engine.execute(
            f"INSERT INTO {context.reject_table} SELECT {_text(context.run_id)}, 'csu', "
            f"{context.path_of('v.' + FILE_NO)}, "
            f"v.{SOURCE_LINE}, {_text(REPORTS)}, 'x_l93/lat', 'x_l93', v.raw, 'impossible_coordinates', 'reject', "
            f"'coordinates outside the city outline' FROM {verdicts} AS v WHERE v.outside"
        )
        fixed = context.table("valid_csu_zoned")
        names = ", ".join(f"t.{f}" if f != "zone" else "v.zone_found AS zone" for f in REPORT_FIELDS)
        context.create_as(
            fixed,
            f"SELECT {names}, t.{FILE_NO}, t.{SOURCE_LINE} FROM {table} AS t JOIN {verdicts} AS v "
            f"ON v.{FILE_NO} = t.{FILE_NO} AND v.{SOURCE_LINE} = t.{SOURCE_LINE} WHERE NOT v.outside",
        )
        engine.drop_table(table)
        engine.execute(f"ALTER TABLE {fixed} RENAME TO {table}")

    def _versions_and_incidents(self, context: RunContext, union: str) -> list[TableChange]:
        engine = context.engine
        catalogue = load_catalogue()
        run = _text(context.run_id)
        # A record repeated (in this delivery, or already loaded with the same content) is not a new version.
        ranked = context.table("ranked")
        context.create_as(
            ranked,
            f"SELECT u.*, row_number() OVER (PARTITION BY u.source, u.source_id, u.content_hash "
            f"ORDER BY u.{FILE_NO}, u.{SOURCE_LINE}) AS _copy, "
            f"EXISTS (SELECT 1 FROM {REPORTS} AS r WHERE r.source = u.source AND r.source_id = u.source_id "
            f"AND r.content_hash = u.content_hash) AS _known FROM {union} AS u",
        )
        engine.execute(
            f"INSERT INTO {context.reject_table} SELECT {run}, source, {context.path_of(FILE_NO)}, {SOURCE_LINE}, "
            f"{_text(REPORTS)}, 'source_id', 'source_id', source_id, 'duplicate_row', 'flag', "
            f"'the same record was already received; not loaded again' FROM {ranked} WHERE _copy > 1 OR _known"
        )
        first_id = engine.scalar_int(f"SELECT coalesce(max(report_id), 0) FROM {REPORTS}") + 1
        versioned = context.table("versioned")
        context.create_as(
            versioned,
            f"SELECT k.*, {first_id} - 1 + row_number() OVER (ORDER BY k.occurred_at, k.source, k.source_id, "
            f"k.{FILE_NO}, k.{SOURCE_LINE}) AS report_id, "
            f"coalesce((SELECT max(r.version) FROM {REPORTS} AS r WHERE r.source = k.source "
            f"AND r.source_id = k.source_id), 0) + row_number() OVER (PARTITION BY k.source, k.source_id "
            f"ORDER BY k.{FILE_NO}, k.{SOURCE_LINE}) AS version FROM {ranked} AS k WHERE k._copy = 1 AND NOT k._known",
        )
        families = {code: t.family for code, t in catalogue.types.items()}
        assignments = dedup.assign(engine, versioned, families, context.run_id)
        assigned = context.table("assigned")
        engine.write_new_table(assigned, assignments)
        report_select = (
            f"SELECT v.report_id, v.source, v.source_id, v.version, a.incident_id, v.occurred_at, v.zone, v.x_l93, "
            f"v.y_l93, v.address, v.local_code, v.type_code, v.narrative, v.parties, v.status, v.attachments, "
            f"v.content_hash, {context.path_of('v.' + FILE_NO)}, v.{SOURCE_LINE}, {run}, "
            f"{_text(catalogue.version)} FROM {versioned} AS v JOIN {assigned} AS a ON a.report_id = v.report_id"
        )
        family_case = "CASE " + " ".join(f"WHEN v.type_code = {_text(c)} THEN {_text(f)}" for c, f in families.items())
        incident_select = (
            f"SELECT a.incident_id, v.occurred_at, v.zone, v.x_l93, v.y_l93, v.type_code, {family_case} END, "
            f"v.source, {run} FROM {versioned} AS v JOIN {assigned} AS a ON a.report_id = v.report_id "
            # In time order: most reads filter on a period, and DuckDB skips row groups by their min/max.
            f"WHERE a.rule = 'new_incident' ORDER BY v.occurred_at"
        )
        link_select = (
            f"SELECT a.report_id, a.incident_id, a.matched_report_id, a.rule, a.minutes_apart, a.metres_apart, {run} "
            f"FROM {assigned} AS a"
        )
        return [
            TableChange(REPORTS, report_select),
            TableChange(INCIDENTS, incident_select),
            TableChange(LINKS, link_select),
        ]
