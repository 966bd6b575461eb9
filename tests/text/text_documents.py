"""A handful of French documents shared by the text index tests of both backends (expected hits beside the queries)."""

from __future__ import annotations

import datetime as dt

from massalia.text import IndexSchema

SCHEMA = IndexSchema("doc_id", ("title", "body"), ("site", "kind"), ("day",), ("person_id",))
DOCS = [
    {"doc_id": 1, "title": "CR anapath", "body": "Carcinome canalaire infiltrant du sein gauche. Pas de métastase.",
     "site": "nord", "kind": "anapath", "day": dt.date(2020, 1, 5), "person_id": 10},
    {"doc_id": 2, "title": "RCP", "body": "Cancers multiples. Métastases hépatiques et osseuses. Vu à l'hôpital.",
     "site": "sud", "kind": "rcp", "day": dt.date(2021, 3, 5), "person_id": 11},
    {"doc_id": 3, "title": "Lettre", "body": "Cancer du sein droit, récidive locale. Traitement d'entretien.",
     "site": "nord", "kind": "lettre", "day": dt.date(2022, 3, 5), "person_id": 10},
    {"doc_id": 4, "title": "Lettre", "body": "Le cancer de la prostate est stable; le sein controlatéral est normal.",
     "site": "est", "kind": "lettre", "day": dt.date(2023, 6, 1), "person_id": 12},
]  # fmt: skip
