"""A seeded year of public-safety incidents for a city of ~870,000, written as three source logs with ground truth.

The generator first draws the *true* events (the ground truth): a district weighted by population and
deprivation, a street of that district (a few hot-spot streets weigh ten times more), a day shaped by the
season, the weekday and the city's events (football matches at the stadium, the 21st of June, the 14th of
July, New Year's Eve), an hour from the type family's daily profile, and a type from the catalogue. Then each
source *observes* an event with a probability that depends on the source, the family and the district:
cameras of the urban supervision centre are dense downtown and sparse in the north, the municipal police
patrols less where deprivation is high, and noise complaints come more from well-off districts. Reporting is
therefore uneven across districts on purpose (the fairness question of issue 16); events seen by no source
stay in the ground truth only (the "dark figure").

Three logs are written, each in its own layout:

- ``mc/main_courante_<year>.csv`` (municipal police log book): ``;``-separated, dates ``dd/mm/yyyy HH:MM``,
  local codes ``PMnnn``, postal addresses, parties, narrative; plus ``mc/main_courante_<year>_corrections.csv``,
  later versions of some entries (status changes, narrative additions);
- ``csu/csu_<year>.ndjson`` (urban supervision centre): ISO timestamps with offset, codes ``FAMnn``,
  Lambert-93 coordinates (older cameras give WGS84 ``lat``/``lon`` instead), observation text;
- ``dtp/signalements_<year>.csv`` (public tranquillity department: noise, public space): ``,``-separated,
  ISO dates and ``HHhMM`` times, arrondissement (``13e``), a place in free text, the caller.

Plus ``reference/voies.csv`` (the street gazetteer the loader geocodes addresses with),
``reference/districts.geojson``, and ``truth/events.csv`` / ``truth/observations.csv``. About 1% of rows are
dirty on purpose (impossible dates, impossible coordinates, unknown codes), some rows are repeated (a feed
sent twice), and an event seen by several sources is a cross-source duplicate the loader should merge.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from massalia.safety.catalogue import load_catalogue
from massalia.safety.geo import District, districts, districts_geojson, in_city, to_wgs84
from massalia.safety.synth import attachments, texts

FAMILY_WEIGHTS: dict[str, float] = {
    "VOL": 0.16, "CIR": 0.14, "BRU": 0.13, "ESP": 0.10, "DEG": 0.09, "ORD": 0.08, "ATP": 0.08, "VEH": 0.07,
    "CAM": 0.04, "STU": 0.04, "SEC": 0.03, "SUR": 0.02, "ANI": 0.01, "ECO": 0.01, "EVT": 0.005, "ENV": 0.005,
}  # fmt: skip
SEVERITY_WEIGHTS = {"critical": 0.02, "high": 0.3, "medium": 1.0, "low": 1.5, "informational": 1.0}
NIGHT_FAMILIES = {"BRU", "ORD", "DEG", "STU", "EVT"}
WEEKDAY = np.array([0.9, 0.9, 0.95, 1.0, 1.15, 1.25, 1.05])  # Monday first
# Cameras per district (share of the streets a camera sees): dense downtown, sparse in the north and east.
CAMERA_COVERAGE = {1: .9, 2: .8, 3: .5, 4: .4, 5: .5, 6: .9, 7: .6, 8: .35, 9: .15, 10: .25, 11: .15, 12: .2,
                   13: .2, 14: .2, 15: .2, 16: .15}  # fmt: skip
SOURCE_FAMILY = {
    "mc": {"BRU": 0.35, "ESP": 0.2, "ECO": 0.3, "SUR": 0.3},
    "csu": {"VOL": .25, "ATP": .3, "ORD": .35, "CIR": .3, "DEG": .3, "STU": .25, "SUR": .6, "SEC": .3, "VEH": .2,
            "EVT": .5},
    "dtp": {"BRU": .7, "ESP": .7, "ANI": .6, "ENV": .6},
}  # fmt: skip
SOURCE_DEFAULT = {"mc": 0.55, "csu": 0.0, "dtp": 0.4}
STADIUM = (5.3958, 43.2698)


@dataclass(frozen=True)
class GeneratorConfig:
    """How much to generate, and how dirty.

    Parameters
    ----------
    events
        True events in the year (every source together logs about 0.8 rows per event).
    seed
        Seed of every random draw: the same seed gives the same files, byte for byte.
    year
        The year generated.
    dirty_rate
        Share of each log's rows made invalid on purpose (bad date, impossible coordinates, unknown code).
    repeat_rate
        Share of rows written twice (a feed sent again).
    correction_rate
        Share of police log entries that get a later version (the corrections file).
    max_documents
        Attachments written as files under ``mc/pj/`` (PDF, DOCX, ODT, e-mail in turn); the police log names
        about one entry in ten, and those beyond this number stay undelivered.
    """

    events: int = 3000
    seed: int = 16
    year: int = 2025
    dirty_rate: float = 0.01
    repeat_rate: float = 0.005
    correction_rate: float = 0.02
    max_documents: int = 400


@dataclass
class GeneratedLogs:
    """What was written: the files by source and the counts the tests compare with."""

    root: Path
    files: dict[str, list[Path]] = field(default_factory=dict)
    events: int = 0
    rows: dict[str, int] = field(default_factory=dict)
    dirty: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Street:
    """A generated street: district, name, start and end (Lambert-93), hot spot or not."""

    district: int
    name: str
    start: tuple[float, float]
    end: tuple[float, float]
    hot: bool


def _streets(rng: np.random.Generator, district: District, count: int) -> list[Street]:
    names = {f"{kind} {name}" for kind in texts.STREET_KINDS for name in texts.STREET_NAMES}
    chosen = rng.choice(sorted(names), size=count, replace=False)
    ring = district.outline
    xmin, ymin = ring.min(axis=0)
    xmax, ymax = ring.max(axis=0)
    from massalia.safety.geo import contains  # a local name: contains is tiny, the import is cached

    points: list[tuple[float, float]] = []
    while len(points) < count:
        x = rng.uniform(xmin, xmax, 256)
        y = rng.uniform(ymin, ymax, 256)
        keep = contains(ring, x, y) & in_city(x, y)
        points.extend(zip(x[keep].tolist(), y[keep].tolist(), strict=True))
    # A street stays in the city: of 20 candidate directions (the last ten shorter), the first whose end is
    # inside is kept; every candidate is tested in one vectorised pass.
    tries = 20
    start = np.repeat(np.array(points[:count]), tries, axis=0)
    angle = rng.uniform(0, 2 * np.pi, count * tries)
    length = rng.uniform(120, 600, count * tries) / (1 + (np.tile(np.arange(tries), count) // 10))
    ends = start + np.column_stack([length * np.cos(angle), length * np.sin(angle)])
    inside = in_city(ends[:, 0], ends[:, 1]).reshape(count, tries)
    first = np.where(inside.any(axis=1), inside.argmax(axis=1), -1)
    streets = []
    for i in range(count):
        sx, sy = points[i]
        ex, ey = (
            (sx, sy) if first[i] < 0 else (float(ends[i * tries + first[i], 0]), float(ends[i * tries + first[i], 1]))
        )
        streets.append(Street(district.number, str(chosen[i]), (sx, sy), (ex, ey), hot=i < 3))
    return streets


def _match_days(year: int) -> list[dt.date]:
    """Home matches at the stadium: every other weekend from mid-August to May (Sundays, 21:00)."""
    days = []
    day = dt.date(year, 1, 5)
    while day.year == year:
        if day.month not in (6, 7) and not (day.month == 8 and day.day < 10):
            days.append(day)
        day += dt.timedelta(days=14)
    return days


def _day_weights(year: int) -> tuple[np.ndarray, list[dt.date], set[dt.date]]:
    start = dt.date(year, 1, 1)
    n = (dt.date(year + 1, 1, 1) - start).days
    dates = [start + dt.timedelta(days=i) for i in range(n)]
    doy = np.arange(n)
    weights = 1 + 0.2 * np.cos(2 * np.pi * (doy - 200) / n)  # a summer peak
    weights *= WEEKDAY[[d.weekday() for d in dates]]
    special = {dt.date(year, 6, 21): 1.8, dt.date(year, 7, 14): 1.6, dt.date(year, 12, 31): 2.0}
    matches = set(_match_days(year))
    for i, day in enumerate(dates):
        weights[i] *= special.get(day, 1.0) * (1.3 if day in matches else 1.0)
    return weights / weights.sum(), dates, matches


def _hour_weights(night: bool) -> np.ndarray:
    hours = np.arange(24)
    peak = 23 if night else 15
    distance = np.minimum(abs(hours - peak), 24 - abs(hours - peak))
    weights = 0.15 + np.exp(-(distance**2) / (2 * (3.5 if night else 4.0) ** 2))
    return weights / weights.sum()


def _person(rng: np.random.Generator, role: str) -> str:
    first = texts.FIRST_NAMES[int(rng.integers(len(texts.FIRST_NAMES)))]
    last = texts.LAST_NAMES[int(rng.integers(len(texts.LAST_NAMES)))]
    return f"{last.upper()} {first} ({role}, né(e) en {int(rng.integers(1940, 2008))})"


def _narrative(rng: np.random.Generator, family: str, label: str, where: str) -> str:
    caller = texts.CALLERS[int(rng.integers(len(texts.CALLERS)))]
    detail = texts.DETAILS[family][int(rng.integers(3))].replace(
        "{objet}", texts.OBJECTS[int(rng.integers(len(texts.OBJECTS)))]
    )
    outcome = texts.OUTCOMES[int(rng.integers(len(texts.OUTCOMES)))]
    return f"{caller} qui {texts.INTRO[family]} ({label.lower()}) {where}. {detail} {outcome}"


def generate(root: Path, config: GeneratorConfig | None = None) -> GeneratedLogs:  # noqa: PLR0915 (one recipe, read top to bottom in commented steps)
    """Write the three source logs, the gazetteer, the districts and the ground truth under ``root``.

    Examples
    --------
    >>> import tempfile
    >>> logs = generate(Path(tempfile.mkdtemp()), GeneratorConfig(events=200))
    >>> sorted(logs.files)
    ['csu', 'dtp', 'mc']
    >>> logs.events
    200
    """
    config = config or GeneratorConfig()
    if config.events < 1 or config.events > 5_000_000:
        raise ValueError(f"events must be between 1 and 5,000,000, got {config.events}")
    rng = np.random.default_rng(config.seed)
    catalogue = load_catalogue()
    city = districts()
    root.mkdir(parents=True, exist_ok=True)
    for folder in ("mc", "csu", "dtp", "reference", "truth"):
        (root / folder).mkdir(exist_ok=True)

    # Streets (the gazetteer) and where events happen.
    streets: list[Street] = []
    for district in city:
        streets.extend(_streets(rng, district, 30))
    n = config.events
    district_weight = np.array([d.population * (0.7 + 0.6 * d.deprivation) for d in city])
    district_index = rng.choice(len(city), size=n, p=district_weight / district_weight.sum())
    street_of = np.empty(n, dtype=np.int64)
    for i in range(len(city)):
        members = np.flatnonzero(district_index == i)
        weights = np.array([10.0 if s.hot else 1.0 for s in streets[i * 30 : (i + 1) * 30]])
        street_of[members] = i * 30 + rng.choice(30, size=len(members), p=weights / weights.sum())
    numbers = rng.integers(1, 121, size=n)
    start = np.array([s.start for s in streets])[street_of]
    end = np.array([s.end for s in streets])[street_of]
    frac = (numbers / 121.0)[:, None]
    points = start + frac * (end - start) + rng.normal(0, 8, size=(n, 2))

    # Types: family by weight shaped by deprivation, type by severity within the family.
    family_names = list(FAMILY_WEIGHTS)
    deprivation = np.array([d.deprivation for d in city])[district_index]
    base = np.array([FAMILY_WEIGHTS[f] for f in family_names])
    shape = np.ones((n, len(family_names)))
    shape[:, family_names.index("STU")] = 0.3 + 2 * deprivation
    shape[:, family_names.index("DEG")] = 0.6 + deprivation
    shape[:, family_names.index("CAM")] = 1.4 - deprivation
    probabilities = base * shape
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    cumulative = probabilities.cumsum(axis=1)
    family_index = np.minimum((rng.random(n)[:, None] > cumulative).sum(axis=1), len(family_names) - 1)
    by_family = {f: [t for t in catalogue.types.values() if t.family == f] for f in family_names}
    type_codes = np.empty(n, dtype=object)
    for k, family in enumerate(family_names):
        members = np.flatnonzero(family_index == k)
        options = by_family[family]
        weights = np.array([SEVERITY_WEIGHTS[t.severity] for t in options])
        picks = rng.choice(len(options), size=len(members), p=weights / weights.sum())
        type_codes[members] = [options[p].code for p in picks]

    # Times: day (season, weekday, events), hour (the family's profile), minute.
    day_weights, dates, matches = _day_weights(config.year)
    day_index = rng.choice(len(dates), size=n, p=day_weights)
    night = np.array([family_names[k] in NIGHT_FAMILIES for k in family_index])
    hours = np.where(
        night, rng.choice(24, size=n, p=_hour_weights(True)), rng.choice(24, size=n, p=_hour_weights(False))
    )
    minutes = rng.integers(0, 60, size=n)
    seconds = rng.integers(0, 60, size=n)
    epoch = dt.datetime(config.year, 1, 1)
    occurred = [
        epoch + dt.timedelta(days=int(d), hours=int(h), minutes=int(m), seconds=int(s))
        for d, h, m, s in zip(day_index, hours, minutes, seconds, strict=True)
    ]
    # Match nights: crowd events around the stadium (a spike the statistics should show).
    match_mask = np.array([dates[d] in matches for d in day_index]) & (rng.random(n) < 0.08)
    if match_mask.any():
        from massalia.safety.geo import to_lambert93

        sx, sy = to_lambert93(np.array([STADIUM[0]]), np.array([STADIUM[1]]))
        points[match_mask] = np.column_stack([sx, sy]) + rng.normal(0, 150, size=(int(match_mask.sum()), 2))
        type_codes[match_mask] = rng.choice(["EVT.MATCH", "ORD.ATTROUPEMENT", "ATP.RIXE", "DEG.DEGRADATION_PUBLIC"],
                                            size=int(match_mask.sum()))  # fmt: skip
        for i in np.flatnonzero(match_mask).tolist():
            occurred[i] = dt.datetime.combine(dates[day_index[i]], dt.time(19)) + dt.timedelta(
                minutes=int(rng.integers(0, 300))
            )
        # The stadium's street: the nearest generated street start (its address is what the log book gives).
        starts = np.array([s.start for s in streets])
        nearest = int(np.argmin(np.hypot(starts[:, 0] - sx[0], starts[:, 1] - sy[0])))
        district_index[match_mask] = streets[nearest].district - 1
        street_of[match_mask] = nearest
        numbers[match_mask] = 1
        points[match_mask] = starts[nearest] + rng.normal(0, 40, size=(int(match_mask.sum()), 2))

    # Which source observes which event.
    local = {src: {c.type_code: c.code for c in catalogue.codes_of(src) if not c.code.endswith(("900", "901", "99"))}
             for src in ("mc", "csu", "dtp")}  # fmt: skip
    numbers_of = np.array([d.number for d in city])[district_index]
    seen: dict[str, np.ndarray] = {}
    for source in ("mc", "csu", "dtp"):
        family_p = np.array([SOURCE_FAMILY[source].get(family_names[k], SOURCE_DEFAULT[source]) for k in family_index])
        has_code = np.array([code in local[source] for code in type_codes])
        if source == "mc":
            coverage = 1 - 0.45 * deprivation
        elif source == "csu":
            coverage = 2 * np.array([CAMERA_COVERAGE[int(d)] for d in numbers_of])
        else:
            coverage = 1 - 0.5 * deprivation
        seen[source] = has_code & (rng.random(n) < family_p * coverage * 1.3)

    with (root / "truth" / "events.csv").open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["event_id", "occurred_at", "x_l93", "y_l93", "zone", "type_code", "mc", "csu", "dtp"])
        for i in range(n):
            writer.writerow([
                f"E{i + 1:07d}", occurred[i].isoformat(), round(points[i, 0], 1), round(points[i, 1], 1),
                city[district_index[i]].zone, type_codes[i], int(seen["mc"][i]), int(seen["csu"][i]),
                int(seen["dtp"][i]),
            ])  # fmt: skip

    result = GeneratedLogs(root=root, events=n)
    truth_rows: list[tuple[str, str, str, str]] = []
    year_code = str(config.year)[2:]
    labels = {t.code: t.label_fr for t in catalogue.types.values()}
    families = {t.code: t.family for t in catalogue.types.values()}

    def dirty_kind(kinds: tuple[str, ...]) -> str:
        return kinds[int(rng.integers(len(kinds)))] if rng.random() < config.dirty_rate else ""

    # The municipal police log book.
    mc_path = root / "mc" / f"main_courante_{config.year}.csv"
    mc_rows: list[list[str]] = []
    documents: list[attachments.Attachment] = []
    header = ["num_mc", "date_heure", "code_local", "libelle", "adresse", "code_postal", "agents", "personnes",
              "recit", "suite", "pj"]  # fmt: skip
    for seq, i in enumerate(np.flatnonzero(seen["mc"]).tolist(), start=1):
        street = streets[street_of[i]]
        when = occurred[i] + dt.timedelta(minutes=int(rng.integers(0, 26)))
        address = f"{numbers[i]} {street.name}"
        postcode = city[district_index[i]].postcode
        code = local["mc"][type_codes[i]]
        kind = dirty_kind(("date", "code", "postcode"))
        stamp = when.strftime("%d/%m/%Y %H:%M")
        if kind == "date":
            stamp = ("31/02/" + str(config.year) + " 10:00", "2025-13-45 10:00", "32/01/2025 25:61")[seq % 3]
        elif kind == "code":
            code = ("PM999", "XX", "DIVERS")[seq % 3]
        elif kind == "postcode":
            postcode = "13099"
        parties = "; ".join(_person(rng, role) for role in ("victime", "témoin")[: int(rng.integers(0, 3))])
        narrative = _narrative(rng, families[type_codes[i]], labels[type_codes[i]], f"au {address}")
        # The kind follows the sequence (no draw), so the random stream, hence every other value, is unchanged.
        kind_of_file = attachments.KINDS[seq % len(attachments.KINDS)]
        attachment = f"PV-{year_code}-{seq:06d}.{kind_of_file}" if rng.random() < 0.1 else ""
        status = texts.STATUSES_MC[int(rng.integers(len(texts.STATUSES_MC)))]
        source_id = f"MC{year_code}-{seq:06d}"
        agents = f"PM{int(rng.integers(100, 400))}/PM{int(rng.integers(100, 400))}"
        mc_rows.append([source_id, stamp, code, labels[type_codes[i]].upper(), address, postcode, agents, parties,
                        narrative, status, attachment])  # fmt: skip
        if attachment:
            documents.append(attachments.Attachment(attachment, source_id, labels[type_codes[i]], narrative, parties))
        truth_rows.append(("mc", source_id, f"E{i + 1:07d}", kind))
        if rng.random() < config.repeat_rate:
            mc_rows.append(list(mc_rows[-1]))  # the same entry exported twice
    with mc_path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, delimiter=";")
        writer.writerow(header)
        writer.writerows(mc_rows)
    attachments.write_attachments(root / "mc" / "pj", documents, config.max_documents)
    corrections_path = root / "mc" / f"main_courante_{config.year}_corrections.csv"
    with corrections_path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, delimiter=";")
        writer.writerow(header)
        for row in mc_rows:
            if rng.random() < config.correction_rate and len(row[1]) == 16 and row[1][2] == "/":
                writer.writerow([*row[:8], row[8] + " Complément : auteur interpellé.", "Clos", row[10]])
    result.files["mc"] = [mc_path, corrections_path]
    result.rows["mc"] = len(mc_rows)

    # The urban supervision centre.
    csu_path = root / "csu" / f"csu_{config.year}.ndjson"
    csu_lines = []
    for seq, i in enumerate(np.flatnonzero(seen["csu"]).tolist(), start=1):
        when = occurred[i] + dt.timedelta(seconds=int(rng.integers(-120, 300)))
        offset = "+02:00" if _summer_time(when) else "+01:00"
        x, y = points[i] + rng.normal(0, 15, size=2)
        record: dict[str, object] = {
            "evt_id": f"CSU{year_code}-{seq:06d}",
            "horodatage": when.strftime("%Y-%m-%dT%H:%M:%S") + offset,
            "code": local["csu"][type_codes[i]],
            "camera": f"CAM-{int(rng.integers(1, 600)):04d}",
            "operateur": f"op{int(rng.integers(1, 40)):02d}",
            "observation": _narrative(rng, families[type_codes[i]], labels[type_codes[i]], "dans le champ caméra"),
            "statut": texts.STATUSES_CSU[int(rng.integers(len(texts.STATUSES_CSU)))],
        }
        # Every key on every line (null when absent): the flat connector reads the first block's columns.
        record.update({"x_l93": None, "y_l93": None, "lat": None, "lon": None})
        if rng.random() < 0.3:  # older cameras are registered in WGS84
            lon, lat = to_wgs84(np.array([x]), np.array([y]))
            record["lat"], record["lon"] = round(float(lat[0]), 6), round(float(lon[0]), 6)
        else:
            record["x_l93"], record["y_l93"] = round(float(x), 1), round(float(y), 1)
        kind = dirty_kind(("coordinates", "date", "code"))
        if kind == "coordinates":
            record["lat"], record["lon"] = None, None
            record["x_l93"], record["y_l93"] = (0.0, 0.0) if seq % 2 else (1_250_000.0, 7_300_000.0)
        elif kind == "date":
            record["horodatage"] = f"{config.year}-02-30T12:00:00+01:00"
        elif kind == "code":
            record["code"] = "ZZZ"
        csu_lines.append(json.dumps(record, ensure_ascii=False))
        truth_rows.append(("csu", str(record["evt_id"]), f"E{i + 1:07d}", kind))
        if rng.random() < config.repeat_rate:
            csu_lines.append(csu_lines[-1])
    csu_path.write_text("\n".join(csu_lines) + "\n", encoding="utf-8")
    result.files["csu"] = [csu_path]
    result.rows["csu"] = len(csu_lines)

    # The public tranquillity department.
    dtp_path = root / "dtp" / f"signalements_{config.year}.csv"
    with dtp_path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["dossier", "date_signalement", "heure", "arrondissement", "lieu", "categorie", "description",
                         "demandeur", "suite"])  # fmt: skip
        count = 0
        for seq, i in enumerate(np.flatnonzero(seen["dtp"]).tolist(), start=1):
            street = streets[street_of[i]]
            when = occurred[i] + dt.timedelta(minutes=int(rng.integers(0, 181)))
            number = city[district_index[i]].number
            arrondissement = "1er" if number == 1 else f"{number}e"
            place = f"{numbers[i]} {street.name}" if rng.random() < 0.7 else street.name
            code = local["dtp"][type_codes[i]]
            day, hour = when.strftime("%Y-%m-%d"), when.strftime("%Hh%M")
            kind = dirty_kind(("date", "code", "zone"))
            if kind == "date":
                day = f"{config.year}-04-31"
            elif kind == "code":
                code = "NUI-999"
            elif kind == "zone":
                arrondissement = "17e"
            caller = _person(rng, "requérant") + f", tél. 06{int(rng.integers(10_000_000, 99_999_999))}"
            description = _narrative(rng, families[type_codes[i]], labels[type_codes[i]], f"à l'adresse {place}")
            status = texts.STATUSES_DTP[int(rng.integers(len(texts.STATUSES_DTP)))]
            row = [f"DTP-{year_code}-{seq:05d}", day, hour, arrondissement, place, code, description, caller, status]
            writer.writerow(row)
            count += 1
            truth_rows.append(("dtp", row[0], f"E{i + 1:07d}", kind))
            if rng.random() < config.repeat_rate:
                writer.writerow(row)
                count += 1
    result.files["dtp"] = [dtp_path]
    result.rows["dtp"] = count

    with (root / "truth" / "observations.csv").open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["source", "source_id", "event_id", "dirty"])
        writer.writerows(truth_rows)
    for source in ("mc", "csu", "dtp"):
        result.dirty[source] = sum(1 for row in truth_rows if row[0] == source and row[3])
    with (root / "reference" / "voies.csv").open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["code_postal", "nom_voie", "x_debut", "y_debut", "x_fin", "y_fin", "numero_max"])
        for street in streets:
            x0, y0, x1, y1 = (round(v, 1) for v in (*street.start, *street.end))
            writer.writerow([f"130{street.district:02d}", street.name, x0, y0, x1, y1, 121])
    (root / "reference" / "districts.geojson").write_text(json.dumps(districts_geojson()) + "\n", encoding="utf-8")
    return result


def _summer_time(when: dt.datetime) -> bool:
    """Whether a Paris wall-clock time falls in summer time (last Sunday of March to last Sunday of October)."""

    def last_sunday(month: int) -> dt.datetime:
        day = dt.date(when.year, month, 31)
        return dt.datetime.combine(day - dt.timedelta(days=(day.weekday() + 1) % 7), dt.time(2))

    return last_sunday(3) <= when < last_sunday(10)
