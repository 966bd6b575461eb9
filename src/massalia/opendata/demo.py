"""A generated regional open-data catalog for demonstrations (``massalia opendata demo``).

Organizations of Provence-Alpes-Côte d'Azur, themes, a few hundred datasets with tags, licences, frequencies
and temporal coverage, each with a link resource; one generated IRVE-like CSV (charging points) uploaded and
loaded into the datastore; a generated GTFS feed (a zip) and SCDL-shaped local-authority datasets (subsidies and
council decisions, with the national schemas' field names); with ``reference``, the official IRVE example and the
GTFS sample feed of the shared reference folder too. Every uploaded file is certified in the certification log
(:mod:`massalia.opendata.certify`), as any publication is. Everything goes through the guarded services as the
caller (a platform admin), so the demo is published, versioned and audited like real data. Running it again adds
nothing already there.
"""

from __future__ import annotations

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


def irve_sample(rows: int, seed: int = 7) -> bytes:
    """A small IRVE-like CSV (``;``-separated, as many producers publish it) of ``rows`` charging points.

    Examples
    --------
    >>> irve_sample(2).decode().splitlines()[0]
    'id_pdc_itinerance;nom_station;commune;code_insee_commune;puissance_nominale;gratuit;date_mise_en_service'
    """
    rng = random.Random(seed)  # noqa: S311 (demo data, reproducible by seed: no secret)
    lines = ["id_pdc_itinerance;nom_station;commune;code_insee_commune;puissance_nominale;gratuit;date_mise_en_service"]
    for index in range(rows):
        commune = rng.choice(COMMUNES)
        day = dt.date(2016, 1, 1) + dt.timedelta(days=rng.randrange(3000))
        lines.append(
            f"FRS13P{index:06d};Station {commune} {index};{commune};13{rng.randrange(1000):03d};"
            f"{rng.choice((7.4, 22, 50, 150))};{str(rng.random() < 0.1).lower()};{day.isoformat()}"
        )
    return ("\n".join(lines) + "\n").encode("utf-8")


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
    """Subsidies granted by the region, in the SCDL ``subventions`` schema's columns (``;``-separated)."""
    rng = random.Random(seed)  # noqa: S311 (demo data, reproducible by seed: no secret)
    head = ("nomAttribuant;idAttribuant;dateConvention;referenceDecision;nomBeneficiaire;idBeneficiaire;"
            "rnaBeneficiaire;objet;montant;nature;conditionsVersement;datesPeriodeVersement;idRAE;notificationUE;"
            "pourcentageSubvention;dispositifAide")  # fmt: skip
    lines = [head]
    for i in range(rows):
        day = dt.date(2025, 1, 1) + dt.timedelta(days=rng.randrange(330))
        lines.append(
            f"Région Provence-Alpes-Côte d'Azur;23130002100012;{day.isoformat()};DEL-{2025}-{i:04d};"
            f"Association {rng.choice(COMMUNES)} {i};{rng.randrange(10**13, 10**14)};W13{rng.randrange(10**6):06d};"
            f"Soutien à un projet {rng.choice(('culturel', 'sportif', 'environnemental', 'social'))};"
            f"{rng.randrange(500, 50_000)};aide en numéraire;unique;{day.isoformat()};;false;1;"
        )
    return ("\n".join(lines) + "\n").encode("utf-8")


def scdl_decisions(rows: int, seed: int = 7) -> bytes:
    """Council decisions of a town, in the SCDL ``deliberations`` schema's columns (``;``-separated)."""
    rng = random.Random(seed)  # noqa: S311 (demo data, reproducible by seed: no secret)
    head = ("COLL_NOM;COLL_SIRET;DELIB_ID;DELIB_DATE;DELIB_MATIERE_CODE;DELIB_MATIERE_NOM;DELIB_OBJET;BUDGET_ANNEE;"
            "BUDGET_NOM;PREF_ID;PREF_DATE;VOTE_EFFECTIF;VOTE_REEL;VOTE_POUR;VOTE_CONTRE;VOTE_ABSTENTION;"
            "DELIB_URL")  # fmt: skip
    lines = [head]
    for i in range(rows):
        day = dt.date(2025, 1, 15) + dt.timedelta(days=30 * (i % 11))
        present = rng.randrange(40, 56)
        against = rng.randrange(0, 8)
        lines.append(
            f"Ville d'Avignon;21840007600017;{day.year}-{i:03d};{day.isoformat()};7.1;Décisions budgétaires;"
            f"Délibération n°{i} du conseil municipal;{day.year};Budget principal;084-218400076-{i:04d};"
            f"{(day + dt.timedelta(days=3)).isoformat()};55;{present};{present - against - 1};{against};1;"
        )
    return ("\n".join(lines) + "\n").encode("utf-8")


def _publish_files(
    caller: Caller, catalog: Catalog, document: dict[str, Any], files: list[tuple[str, str, bytes]]
) -> list[dict[str, Any]]:
    """Create a dataset and upload its files, unless a dataset of that name exists (the demo runs again)."""
    try:
        catalog.package_show(caller, str(document["name"]))
        return []
    except NotFound:
        catalog.package_create(caller, document)
    return [
        catalog.resource_create(
            caller,
            {"package_id": document["name"], "name": title, "format": name.rsplit(".", 1)[-1].upper()},
            Upload(name, io.BytesIO(content)),
        )
        for name, title, content in files
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
            {"package_id": "bornes-irve-region", "format": "CSV", "name": "IRVE statique"},
            Upload("irve.csv", io.BytesIO(irve_sample(500, seed))),
        )
        rows = datastore.load_file(caller, catalog, engine, resource["id"]).rows
        added += 1
    files = 0 if rows == 0 else 1
    gtfs = [("reseau-bus-demo.gtfs.zip", "Réseau de bus (GTFS)", gtfs_sample(seed))]
    irve = []
    if reference is not None and (reference / "opendata").is_dir():
        sample = reference / "opendata" / "gtfs" / "sample-feed-1.zip"
        example = reference / "opendata" / "schema-irve" / "statique" / "exemple-valide-statique.csv"
        gtfs += (
            [("sample-feed-1.zip", "Exemple de flux GTFS (référence)", sample.read_bytes())] if sample.is_file() else []
        )
        irve += (
            [(example.name, "IRVE statique, exemple du schéma national", example.read_bytes())]
            if example.is_file()
            else []
        )
    for document, uploads in (
        ({"name": "transports-en-commun-gtfs", "title": "Horaires théoriques du réseau de bus (GTFS)",
          "owner_org": "ampmetropole", "license_id": "odc-odbl", "frequency": "weekly",
          "tags": [{"name": "GTFS"}, {"name": "bus"}], "groups": [{"name": "transports"}]}, gtfs),
        ({"name": "subventions-region-sud", "title": "Subventions accordées par la Région (SCDL)",
          "owner_org": "region-sud", "license_id": "etalab-2.0", "frequency": "annual",
          "tags": [{"name": "subventions"}, {"name": "SCDL"}], "groups": [{"name": "citoyennete"}]},
         [("subventions-2025.csv", "Subventions 2025", scdl_subsidies(120, seed))]),
        ({"name": "deliberations-avignon", "title": "Délibérations du conseil municipal d'Avignon (SCDL)",
          "owner_org": "ville-d-avignon", "license_id": "etalab-2.0", "frequency": "monthly",
          "tags": [{"name": "délibérations"}, {"name": "SCDL"}], "groups": [{"name": "citoyennete"}]},
         [("deliberations-2025.csv", "Délibérations 2025", scdl_decisions(60, seed))]),
        ({"name": "bornes-irve-exemple-national", "title": "IRVE : exemple valide du schéma national",
          "owner_org": "region-sud", "license_id": "etalab-2.0", "frequency": "irregular",
          "tags": [{"name": "IRVE"}], "groups": [{"name": "mobilite"}]}, irve),
    ):  # fmt: skip
        if uploads:
            made = _publish_files(caller, catalog, document, uploads)
            added += bool(made)
            files += len(made)
    return DemoReport(len(new_orgs), len(new_groups), added, rows, files)
