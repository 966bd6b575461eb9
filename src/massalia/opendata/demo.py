"""A generated regional open-data catalog for demonstrations (``massalia opendata demo``).

Organizations of Provence-Alpes-Côte d'Azur, themes, a few hundred datasets with tags, licences, frequencies
and temporal coverage, each with a link resource; one generated IRVE CSV (charging points) uploaded and loaded
into the datastore; a generated GTFS feed (a zip) and SCDL local-authority datasets (subsidies and council
decisions); with ``reference``, the official IRVE example and the GTFS sample feed of the shared reference folder
too. The IRVE and SCDL files follow their national schemas exactly and declare them
(``etalab/schema-irve-statique@2.3.0``, ``scdl/subventions@2.1.1``, ``scdl/deliberations@2.1.5``), so they are
validated on upload and badged *valid*; one raw subsidies export is deliberately invalid, and badged so. Every
uploaded file is certified in the certification log (:mod:`massalia.opendata.certify`), as any publication is.
Everything goes through the guarded services as the caller (a platform admin), so the demo is published,
versioned and audited like real data. Running it again adds nothing already there.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import random
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from massalia.engine import Engine
from massalia.governance import Caller, NotFound
from massalia.opendata import datastore
from massalia.opendata.catalog import CREATE_ORGANIZATION, Catalog, Upload
from massalia.opendata.models import FREQUENCIES, LICENSES
from massalia.opendata.schemas import resolve

ORGANIZATIONS: tuple[tuple[str, str], ...] = (
    ("region-sud", "Région Provence-Alpes-Côte d'Azur"),
    ("ampmetropole", "Métropole Aix-Marseille-Provence"),
    ("nice-cote-azur", "Métropole Nice Côte d'Azur"),
    ("toulon-provence-mediterranee", "Métropole Toulon Provence Méditerranée"),
    ("departement-13", "Département des Bouches-du-Rhône"),
    ("ville-d-avignon", "Ville d'Avignon"),
    ("atmosud", "AtmoSud"),
)
THEMES: dict[str, tuple[str, tuple[str, ...]]] = {
    "mobilite": ("Mobilité", ("IRVE", "vélo", "parkings", "covoiturage", "trafic")),
    "transports": ("Transports", ("GTFS", "bus", "tramway", "horaires", "arrêts")),
    "environnement": ("Environnement", ("qualité de l'air", "déchets", "espaces verts", "eau", "bruit")),
    "energie": ("Énergie", ("consommation", "photovoltaïque", "réseaux", "bâtiments")),
    "economie": ("Économie", ("entreprises", "emploi", "tourisme", "marchés publics")),
    "culture": ("Culture", ("musées", "bibliothèques", "festivals", "patrimoine")),
    "urbanisme": ("Urbanisme", ("cadastre", "PLU", "permis de construire", "adresses")),
    "citoyennete": ("Citoyenneté", ("budget", "délibérations", "élections", "subventions")),
}
COMMUNES = ("Marseille", "Nice", "Toulon", "Aix-en-Provence", "Avignon", "Antibes", "Cannes", "Arles", "Gap", "Digne")


@dataclass(frozen=True)
class DemoReport:
    """What the demo added: organizations, groups, datasets, and the rows of the IRVE sample in the datastore."""

    organizations: int
    groups: int
    datasets: int
    datastore_rows: int
    files: int = 0
    """Files uploaded (each certified)."""


DemoFile = tuple[str, str, bytes, str | None]
"""A demo upload: file name, title, bytes and the schema it declares (or none)."""
IRVE_SCHEMA = "etalab/schema-irve-statique@2.3.0"
"""The schema the demo's IRVE resource declares (and follows: every field, format and enumeration)."""
SUBSIDIES_SCHEMA, DECISIONS_SCHEMA = "scdl/subventions@2.1.1", "scdl/deliberations@2.1.5"
IRVE_TEXT_FIELDS = {"siren_amenageur": "text", "telephone_operateur": "text", "code_insee_commune": "text",
                    "num_pdl": "text"}  # fmt: skip
"""Codes kept as text in the datastore (a leading zero, as in 06088 for Nice, is part of the code)."""
# Commune, its INSEE code (the real one: the schema checks the pattern, a search by code must find it) and a point.
COMMUNE_POINTS: dict[str, tuple[str, float, float]] = {
    "Marseille": ("13055", 5.3698, 43.2965), "Nice": ("06088", 7.2620, 43.7102),
    "Toulon": ("83137", 5.9280, 43.1242), "Aix-en-Provence": ("13001", 5.4474, 43.5297),
    "Avignon": ("84007", 4.8055, 43.9493), "Antibes": ("06004", 7.1251, 43.5808),
    "Cannes": ("06029", 7.0174, 43.5528), "Arles": ("13004", 4.6278, 43.6766),
    "Gap": ("05061", 6.0794, 44.5594), "Digne": ("04070", 6.2356, 44.0925),
}  # fmt: skip


def _csv_text(rows: list[list[str]], delimiter: str = ",") -> bytes:
    """Rows as CSV (quoted where a value holds the delimiter, a quote or a line break), UTF-8."""
    buffer = io.StringIO()
    csv.writer(buffer, delimiter=delimiter, lineterminator="\n").writerows(rows)
    return buffer.getvalue().encode("utf-8")


def irve_sample(rows: int, seed: int = 7) -> bytes:
    """``rows`` charging points in the IRVE statique 2.3.0 schema: its 40 fields, in order, with its formats.

    Points are grouped in stations of 1 to 4 (``nbre_pdc`` counts them); identifiers follow the AFIREV pattern
    (``FRS13P…`` for a station, ``FRS13E…`` for a point), coordinates are ``[longitude,latitude]`` near the
    commune, booleans ``true``/``false``, dates ISO 8601.

    Examples
    --------
    >>> irve_sample(2).decode().splitlines()[0].split(",")[:3]
    ['nom_amenageur', 'siren_amenageur', 'contact_amenageur']
    """
    rng = random.Random(seed)  # noqa: S311 (demo data, reproducible by seed: no secret)
    fields = [f["name"] for f in resolve(IRVE_SCHEMA).descriptor()["fields"]]
    out: list[list[str]] = [fields]
    station = 0
    while len(out) - 1 < rows:
        station += 1
        commune = rng.choice(COMMUNES)
        insee, lon, lat = COMMUNE_POINTS[commune]
        points = min(rng.randint(1, 4), rows - (len(out) - 1))
        power = rng.choice(("7.4", "22", "50", "150"))
        fast = float(power) >= 50
        day = dt.date(2016, 1, 1) + dt.timedelta(days=rng.randrange(3000))
        free = rng.random() < 0.1
        station_id = f"FRS13P{station:06d}"
        for point in range(1, points + 1):
            value = {
                "nom_amenageur": "Région Provence-Alpes-Côte d'Azur", "siren_amenageur": "231300021",
                "contact_amenageur": "irve@region-sud.example.org", "nom_operateur": "Opérateur Sud Recharge",
                "contact_operateur": "support@sud-recharge.example.org", "telephone_operateur": "0491000000",
                "nom_enseigne": "Réseau de recharge Sud", "id_station_itinerance": station_id,
                "id_station_local": "", "nom_station": f"Station {commune} {station}",
                "implantation_station": "Station dédiée à la recharge rapide" if fast else
                rng.choice(("Voirie", "Parking public", "Parking privé à usage public")),
                "adresse_station": f"{rng.randint(1, 200)} avenue de la République {insee} {commune}",
                "code_insee_commune": insee,
                "coordonneesXY": f"[{lon + rng.uniform(-0.03, 0.03):.6f},{lat + rng.uniform(-0.03, 0.03):.6f}]",
                "nbre_pdc": str(points), "id_pdc_itinerance": f"FRS13E{station:06d}{point}", "id_pdc_local": "",
                "puissance_nominale": power, "prise_type_ef": _bool(not fast and rng.random() < 0.5),
                "prise_type_2": _bool(not fast), "prise_type_combo_ccs": _bool(fast),
                "prise_type_chademo": _bool(fast and rng.random() < 0.3), "prise_type_autre": "false",
                "gratuit": _bool(free), "paiement_acte": _bool(not free), "paiement_cb": _bool(fast),
                "paiement_autre": "false", "tarification": "" if free else "0,35 € / kWh",
                "condition_acces": "Accès libre", "reservation": "false",
                "horaires": "24/7" if rng.random() < 0.7 else "Mo-Sa 07:00-21:00",
                "accessibilite_pmr": rng.choice(("Accessible mais non réservé PMR", "Accessibilité inconnue")),
                "restriction_gabarit": "Hauteur maximale 2,10 m", "station_deux_roues": "false",
                "raccordement": rng.choice(("Direct", "Indirect")), "num_pdl": f"{rng.randrange(10**13, 10**14)}",
                "date_mise_en_service": day.isoformat(), "observations": "",
                "date_maj": "2026-11-30", "cable_t2_attache": _bool(not fast and rng.random() < 0.2),
            }  # fmt: skip
            out.append([value[name] for name in fields])
    return _csv_text(out)


def _bool(value: bool) -> str:
    return "true" if value else "false"


def gtfs_sample(seed: int = 7) -> bytes:
    """A small GTFS feed (zip) of a bus network in Marseille: agency, stops, routes, trips, stop times, calendar.

    Examples
    --------
    >>> sorted(zipfile.ZipFile(io.BytesIO(gtfs_sample())).namelist())[:2]
    ['agency.txt', 'calendar.txt']
    """
    rng = random.Random(seed)  # noqa: S311 (demo data, reproducible by seed: no secret)
    stops = [(f"S{i:02d}", f"Arrêt {name}", 43.26 + rng.random() * 0.08, 5.35 + rng.random() * 0.1)
             for i, name in enumerate(("Vieux-Port", "Castellane", "Joliette", "Prado", "Saint-Charles", "Canebière",
                                       "Baille", "Timone", "Chartreux", "Estaque"))]  # fmt: skip
    files = {
        "agency.txt": "agency_id,agency_name,agency_url,agency_timezone,agency_lang\n"
        "RTM,Régie des transports (démo),https://example.org,Europe/Paris,fr\n",
        "calendar.txt": "service_id,monday,tuesday,wednesday,thursday,friday,saturday,sunday,start_date,end_date\n"
        "SEM,1,1,1,1,1,0,0,20260101,20261231\n",
        "stops.txt": "stop_id,stop_name,stop_lat,stop_lon\n"
        + "".join(f"{sid},{name},{lat:.5f},{lon:.5f}\n" for sid, name, lat, lon in stops),
        "routes.txt": "route_id,agency_id,route_short_name,route_long_name,route_type\n"
        "B1,RTM,1,Vieux-Port – Estaque,3\nB2,RTM,2,Castellane – Chartreux,3\n",
    }
    trips, times = ["route_id,service_id,trip_id"], ["trip_id,arrival_time,departure_time,stop_id,stop_sequence"]
    for route, path in (("B1", stops[:5] + stops[-1:]), ("B2", stops[1:2] + stops[5:9])):
        for n in range(4):
            trip = f"{route}-{n}"
            trips.append(f"{route},SEM,{trip}")
            for seq, stop in enumerate(path):
                minute = 6 * 60 + n * 30 + seq * 4
                clock = f"{minute // 60:02d}:{minute % 60:02d}:00"
                times.append(f"{trip},{clock},{clock},{stop[0]},{seq + 1}")
    files["trips.txt"] = "\n".join(trips) + "\n"
    files["stop_times.txt"] = "\n".join(times) + "\n"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, text in sorted(files.items()):
            archive.writestr(zipfile.ZipInfo(name, (2026, 1, 1, 0, 0, 0)), text)  # fixed dates: same bytes each run
    return buffer.getvalue()


def scdl_subsidies(rows: int, seed: int = 7) -> bytes:
    """Subsidies granted by the region, in the SCDL ``subventions`` 2.1.1 schema (``;``-separated, quoted)."""
    rng = random.Random(seed)  # noqa: S311 (demo data, reproducible by seed: no secret)
    fields = [f["name"] for f in resolve(SUBSIDIES_SCHEMA).descriptor()["fields"]]
    out: list[list[str]] = [fields]
    for i in range(rows):
        day = dt.date(2025, 1, 1) + dt.timedelta(days=rng.randrange(330))
        staged = rng.random() < 0.3
        value = {
            "nomAttribuant": "Région Provence-Alpes-Côte d'Azur", "idAttribuant": "23130002100012",
            "dateConvention": day.isoformat(), "referenceDecision": f"DEL-2025-{i:04d}",
            "nomBeneficiaire": f"Association {rng.choice(COMMUNES)} {i}",
            "idBeneficiaire": f"{rng.randrange(10**13, 10**14)}", "rnaBeneficiaire": f"W13{rng.randrange(10**7):07d}",
            "objet": f"Soutien à un projet {rng.choice(('culturel', 'sportif', 'environnemental', 'social'))}",
            "montant": f"{rng.randrange(500, 50_000)}.00",
            "nature": rng.choice(("aide en numéraire", "aide en numéraire;aide en nature")),
            "conditionsVersement": "échelonné" if staged else "unique",
            "datesPeriodeVersement": f"{day.isoformat()}/{(day + dt.timedelta(days=365)).isoformat()}"
            if staged else day.isoformat(),
            "idRAE": "", "notificationUE": "non", "pourcentageSubvention": rng.choice(("1", "0.5", "0.8")),
            "dispositifAide": "",
        }  # fmt: skip
        out.append([value[name] for name in fields])
    return _csv_text(out, ";")


def scdl_subsidies_raw_export(rows: int, seed: int = 8) -> bytes:
    """The same subsidies as a spreadsheet exports them before anyone checks the schema: deliberately invalid.

    Two classic mistakes per row, so the demo shows an honest *invalid* badge: the amount has a French decimal
    comma (``1250,50``, not a number for the schema) and ``notificationUE`` says ``false`` where the schema's
    booleans are ``oui``/``non``.
    """
    text = scdl_subsidies(rows, seed).decode("utf-8")
    out = list(csv.reader(io.StringIO(text), delimiter=";"))
    amount, notified = out[0].index("montant"), out[0].index("notificationUE")
    for row in out[1:]:
        row[amount] = row[amount].replace(".", ",")
        row[notified] = "false"
    return _csv_text(out, ";")


def scdl_decisions(rows: int, seed: int = 7) -> bytes:
    """Council decisions of a town, in the SCDL ``deliberations`` 2.1.5 schema (``;``-separated, quoted)."""
    rng = random.Random(seed)  # noqa: S311 (demo data, reproducible by seed: no secret)
    fields = [f["name"] for f in resolve(DECISIONS_SCHEMA).descriptor()["fields"]]
    out: list[list[str]] = [fields]
    for i in range(rows):
        day = dt.date(2025, 1, 15) + dt.timedelta(days=30 * (i % 11))
        present = rng.randrange(40, 56)
        against = rng.randrange(0, 8)
        value = {
            "COLL_NOM": "Ville d'Avignon", "COLL_SIRET": "21840007600017", "DELIB_ID": f"{day.year}-{i:03d}",
            "DELIB_DATE": day.isoformat(), "DELIB_MATIERE_CODE": "7.1", "DELIB_MATIERE_NOM": "Décisions budgétaires",
            "DELIB_OBJET": f"Délibération n°{i} du conseil municipal", "BUDGET_ANNEE": str(day.year),
            "BUDGET_NOM": "Budget principal", "PREF_ID": f"084-218400076-{i:04d}",
            "PREF_DATE": (day + dt.timedelta(days=3)).isoformat(), "VOTE_EFFECTIF": "55",
            "VOTE_REEL": str(present), "VOTE_POUR": str(present - against - 1), "VOTE_CONTRE": str(against),
            "VOTE_ABSTENTION": "1", "DELIB_URL": f"https://deliberations.avignon.example.org/{day.year}/{i:03d}.pdf",
        }  # fmt: skip
        out.append([value[name] for name in fields])
    return _csv_text(out, ";")


def _publish_files(
    caller: Caller, catalog: Catalog, document: dict[str, Any], files: list[DemoFile]
) -> list[dict[str, Any]]:
    """Create a dataset and upload its files, unless a dataset of that name exists (the demo runs again).

    A file with a schema declares it, so it is validated on upload and badged.
    """
    try:
        catalog.package_show(caller, str(document["name"]))
        return []
    except NotFound:
        catalog.package_create(caller, document)
    return [
        catalog.resource_create(
            caller,
            {
                "package_id": document["name"],
                "name": title,
                "format": name.rsplit(".", 1)[-1].upper(),
                **({"schema": schema} if schema else {}),
            },
            Upload(name, io.BytesIO(content)),
        )
        for name, title, content, schema in files
    ]


def build_demo(
    caller: Caller,
    catalog: Catalog,
    engine: Engine,
    *,
    datasets: int = 200,
    seed: int = 7,
    reference: Path | None = None,
) -> DemoReport:
    """Publish the demo catalog through the guarded services (organizations and groups need a platform admin)."""
    rng = random.Random(seed)  # noqa: S311 (demo data, reproducible by seed: no secret)
    # The demo creates organizations: a platform admin's act, checked first even when nothing is left to add.
    caller.authorize(
        CREATE_ORGANIZATION,
        detail={
            "resource": {"operation": "demo", "datasets": datasets},
            **({"channel": caller.channel} if caller.channel else {}),
        },
    )
    known = set(catalog.organization_list(caller))
    new_orgs = [(name, title) for name, title in ORGANIZATIONS if name not in known]
    for name, title in new_orgs:
        catalog.organization_create(caller, {"name": name, "title": title})
    groups = set(catalog.group_list(caller))
    new_groups = [name for name in THEMES if name not in groups]
    for name in new_groups:
        catalog.group_create(caller, {"name": name, "title": THEMES[name][0]})
    existing = set(catalog.package_list(caller, limit=1000))
    added = 0
    for index in range(datasets):
        theme = rng.choice(list(THEMES))
        label, tags = THEMES[theme]
        organization = rng.choice(ORGANIZATIONS)
        name = f"{theme}-{index:04d}"
        start = dt.date(2015 + rng.randrange(8), 1, 1)
        document = {
            "name": name,
            "title": f"{label} — {rng.choice(tags)} ({organization[1]})",
            "owner_org": organization[0],
            "notes": f"Jeu de données de démonstration ({label.lower()}), généré pour la plateforme régionale.",
            "tags": [{"name": tag} for tag in rng.sample(tags, 2)],
            "groups": [{"name": theme}],
            "license_id": rng.choice([lic["id"] for lic in LICENSES[:5]]),
            "frequency": rng.choice(FREQUENCIES),
            "temporal_start": start.isoformat(),
            "temporal_end": (start + dt.timedelta(days=365 * 3)).isoformat(),
            "spatial": "Provence-Alpes-Côte d'Azur",
            "resources": [{"url": f"https://data.example.org/{name}.csv", "format": "CSV", "name": "Données"}],
        }
        if name not in existing:  # every random draw is made first: a second run draws the same names
            catalog.package_create(caller, document)
            added += 1
    rows = 0
    try:
        catalog.package_show(caller, "bornes-irve-region")
    except NotFound:
        catalog.package_create(
            caller,
            {
                "name": "bornes-irve-region",
                "title": "Bornes de recharge pour véhicules électriques (IRVE)",
                "owner_org": "region-sud",
                "license_id": "etalab-2.0",
                "frequency": "monthly",
                "tags": [{"name": "IRVE"}, {"name": "mobilité électrique"}],
                "groups": [{"name": "mobilite"}],
                "notes": "Points de recharge de la région, au format du schéma national IRVE (échantillon généré).",
            },
        )
        resource = catalog.resource_create(
            caller,
            {"package_id": "bornes-irve-region", "format": "CSV", "name": "IRVE statique", "schema": IRVE_SCHEMA},
            Upload("irve.csv", io.BytesIO(irve_sample(500, seed))),
        )
        rows = datastore.load_file(caller, catalog, engine, resource["id"], types=IRVE_TEXT_FIELDS).rows
        added += 1
    files = 0 if rows == 0 else 1
    gtfs: list[DemoFile] = [("reseau-bus-demo.gtfs.zip", "Réseau de bus (GTFS)", gtfs_sample(seed), None)]
    irve: list[DemoFile] = []
    if reference is not None and (reference / "opendata").is_dir():
        sample = reference / "opendata" / "gtfs" / "sample-feed-1.zip"
        example = reference / "opendata" / "schema-irve" / "statique" / "exemple-valide-statique.csv"
        gtfs += (
            [("sample-feed-1.zip", "Exemple de flux GTFS (référence)", sample.read_bytes(), None)]
            if sample.is_file()
            else []
        )
        irve += (
            [(example.name, "IRVE statique, exemple du schéma national", example.read_bytes(), IRVE_SCHEMA)]
            if example.is_file()
            else []
        )
    published: list[tuple[dict[str, Any], list[DemoFile]]] = [
        ({"name": "transports-en-commun-gtfs", "title": "Horaires théoriques du réseau de bus (GTFS)",
          "owner_org": "ampmetropole", "license_id": "odc-odbl", "frequency": "weekly",
          "tags": [{"name": "GTFS"}, {"name": "bus"}], "groups": [{"name": "transports"}]}, gtfs),
        ({"name": "subventions-region-sud", "title": "Subventions accordées par la Région (SCDL)",
          "owner_org": "region-sud", "license_id": "etalab-2.0", "frequency": "annual",
          "tags": [{"name": "subventions"}, {"name": "SCDL"}], "groups": [{"name": "citoyennete"}]},
         [("subventions-2025.csv", "Subventions 2025", scdl_subsidies(120, seed), SUBSIDIES_SCHEMA),
          # Deliberately invalid (see scdl_subsidies_raw_export): the demo shows a failure honestly.
          ("subventions-2024-export-brut.csv", "Subventions 2024 (export brut, non conforme)",
           scdl_subsidies_raw_export(40, seed + 1), SUBSIDIES_SCHEMA)]),
        ({"name": "deliberations-avignon", "title": "Délibérations du conseil municipal d'Avignon (SCDL)",
          "owner_org": "ville-d-avignon", "license_id": "etalab-2.0", "frequency": "monthly",
          "tags": [{"name": "délibérations"}, {"name": "SCDL"}], "groups": [{"name": "citoyennete"}]},
         [("deliberations-2025.csv", "Délibérations 2025", scdl_decisions(60, seed), DECISIONS_SCHEMA)]),
        ({"name": "bornes-irve-exemple-national", "title": "IRVE : exemple valide du schéma national",
          "owner_org": "region-sud", "license_id": "etalab-2.0", "frequency": "irregular",
          "tags": [{"name": "IRVE"}], "groups": [{"name": "mobilite"}]}, irve),
    ]  # fmt: skip
    for document, uploads in published:
        if uploads:
            made = _publish_files(caller, catalog, document, uploads)
            added += bool(made)
            files += len(made)
    return DemoReport(len(new_orgs), len(new_groups), added, rows, files)
