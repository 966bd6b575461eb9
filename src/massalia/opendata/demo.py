"""A generated regional open-data catalog for demonstrations (``massalia opendata demo``).

Organizations of Provence-Alpes-Côte d'Azur, themes, a few hundred datasets with tags, licences, frequencies
and temporal coverage, each with a link resource; and one generated IRVE-like CSV (charging points) uploaded and
loaded into the datastore. Everything goes through the guarded services as the caller (a platform admin), so the
demo is published, versioned and audited like real data. Running it again adds nothing already there.
"""

from __future__ import annotations

import datetime as dt
import io
import random
from dataclasses import dataclass

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


def build_demo(caller: Caller, catalog: Catalog, engine: Engine, *, datasets: int = 200, seed: int = 7) -> DemoReport:
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
    return DemoReport(len(new_orgs), len(new_groups), added, rows)
