"""The prediction model store: fitted models under the home, each bound to the project that trained it.

A model is a folder ``<home>/models/<model_id>/`` holding ``model.joblib`` (the fitted learner), ``card.json``
(its model card: target, outcome, TAR, features, data version, training cohort hash, split, metrics) and
``seal`` — an HMAC-SHA256 of both files under the training project's secret key
(:meth:`massalia.governance.Governance.project_key`). Loading checks the seal **before** unpickling:

* a model trained under project A does not open under project B (B's key gives another seal, and the card
  names A) — the store cannot be used to carry a model, or what it memorized, across projects;
* a file replaced or edited on disk (a pickle runs code when loaded) is refused, not loaded.

The store holds no patient row; the service alone (:mod:`~massalia.health.analytics.prediction_service`)
reads and writes it, after the rights check.

Examples
--------
>>> ModelStore(Path("/tmp/home/models")).path("0123456789abcdef").name
'0123456789abcdef'
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib

from massalia.config import Home
from massalia.governance import InvalidRequest, NotFound

MODEL_ID = re.compile(r"^[0-9a-f]{16}$")
"""A model id: 16 lower-case hex digits (never a path)."""

MODEL_FILE, CARD_FILE, SEAL_FILE = "model.joblib", "card.json", "seal"

MODELS_FOLDER = "models"
"""The store's folder under the home."""


class ModelSealError(Exception):
    """A stored model's seal does not match its files under the requesting project's key."""


def _seal(key: bytes, model: bytes, card: bytes) -> str:
    mac = hmac.new(key, b"massalia-prediction-model\x00", hashlib.sha256)
    for part in (model, card):
        mac.update(len(part).to_bytes(8, "big"))
        mac.update(part)
    return mac.hexdigest()


@dataclass(frozen=True)
class StoredModel:
    """A model read back from the store: its card and the fitted object."""

    model_id: str
    card: dict[str, Any]
    model: Any


class ModelStore:
    """Models under one folder (``<home>/models``), sealed per project."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    @classmethod
    def of_home(cls, home: Home) -> ModelStore:
        """The store of a home (``<home>/models``)."""
        return cls(home.root / MODELS_FOLDER)

    def path(self, model_id: str) -> Path:
        """The folder of ``model_id``; an id that is not 16 hex digits is refused (no path from a request)."""
        if not isinstance(model_id, str) or not MODEL_ID.fullmatch(model_id):
            raise InvalidRequest(f"a model id is 16 lower-case hexadecimal digits, got {model_id!r}")
        return self.root / model_id

    def save(self, model: Any, card: dict[str, Any], key: bytes) -> str:
        """Store ``model`` with ``card`` sealed under ``key``; the new model id (also written in the card)."""
        model_id = secrets.token_hex(8)
        card = {**card, "model_id": model_id}
        buffer = io.BytesIO()
        joblib.dump(model, buffer, compress=3)
        model_bytes = buffer.getvalue()
        card_bytes = json.dumps(card, sort_keys=True, indent=2, default=str).encode()
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        staging = self.root / f".{model_id}.tmp"
        staging.mkdir(mode=0o700)
        for name, data in ((MODEL_FILE, model_bytes), (CARD_FILE, card_bytes),
                           (SEAL_FILE, _seal(key, model_bytes, card_bytes).encode())):  # fmt: skip
            (staging / name).write_bytes(data)
            os.chmod(staging / name, 0o600)
        staging.rename(self.path(model_id))  # atomic: a model is listed complete or not at all
        return model_id

    def cards(self, key: bytes, project_id: int) -> list[dict[str, Any]]:
        """The cards of the models sealed under ``key`` that name ``project_id``.

        Another project's model, or one whose files were changed, is not listed.
        """
        if not self.root.is_dir():
            return []
        found = []
        for folder in sorted(self.root.iterdir()):
            if not MODEL_ID.fullmatch(folder.name):
                continue
            try:
                model_bytes = (folder / MODEL_FILE).read_bytes()
                card_bytes = (folder / CARD_FILE).read_bytes()
                seal = (folder / SEAL_FILE).read_text(encoding="ascii").strip()
                if not hmac.compare_digest(seal, _seal(key, model_bytes, card_bytes)):
                    continue
                card = json.loads(card_bytes)
            except (OSError, ValueError):
                continue  # an unreadable model is no model to list
            if card.get("project_id") == project_id:
                found.append(card)
        return found

    def load(self, model_id: str, key: bytes, project_id: int) -> StoredModel:
        """The model ``model_id`` if its seal matches under ``key`` and its card names ``project_id``.

        Raises
        ------
        NotFound
            No such model.
        ModelSealError
            The seal does not match (another project's model, or files changed on disk): nothing is unpickled.
        """
        folder = self.path(model_id)
        try:
            model_bytes = (folder / MODEL_FILE).read_bytes()
            card_bytes = (folder / CARD_FILE).read_bytes()
            seal = (folder / SEAL_FILE).read_text(encoding="ascii").strip()
        except (FileNotFoundError, NotADirectoryError):
            raise NotFound(f"no prediction model {model_id}") from None
        if not hmac.compare_digest(seal, _seal(key, model_bytes, card_bytes)):
            raise ModelSealError(
                f"model {model_id} was not trained under project {project_id} (or its files were changed): "
                "a model is used only under the project that trained it"
            )
        card = json.loads(card_bytes)
        if card.get("project_id") != project_id:
            raise ModelSealError(f"model {model_id} belongs to another project")
        # The seal proves the bytes are the ones this project's service wrote: unpickling them is safe.
        model = joblib.load(io.BytesIO(model_bytes))
        return StoredModel(model_id, card, model)
