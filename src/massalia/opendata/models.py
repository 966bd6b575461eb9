"""What a producer may send to the catalog, bounded and validated, and the error that names each wrong field.

The input shapes follow CKAN's (``name``, ``title``, ``notes``, ``owner_org``, ``tags: [{"name"}]``,
``groups: [{"name"}]``, ``license_id``, ``resources: [...]``), so that CKAN clients and dumps load unchanged;
fields CKAN computes (``metadata_created``, ``num_resources``, ``organization``...) are ignored on input. Open
data adds the coverage and frequency fields of DCAT-AP (``spatial``, ``temporal_start``, ``temporal_end``,
``frequency``).

Examples
--------
>>> dataset_input({"name": "bornes-irve", "title": "Bornes", "owner_org": "region"}).name
'bornes-irve'
>>> dataset_input({"name": "Bornes IRVE", "owner_org": "region"})
Traceback (most recent call last):
...
massalia.opendata.models.ValidationFailed: name: must be 2 to 100 characters: lowercase letters, digits, '-' and '_'
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from massalia.governance import InvalidRequest

SLUG = r"^[a-z0-9_-]{2,100}$"
TAG = r"^[\w .'-]{1,100}$"
MAX_TEXT = 20_000
MAX_TAGS = 100
MAX_RESOURCES = 200
FREQUENCIES: tuple[str, ...] = (
    "continuous",
    "daily",
    "weekly",
    "monthly",
    "quarterly",
    "semiannual",
    "annual",
    "irregular",
    "punctual",
    "unknown",
)
"""Update frequencies (DCAT-AP's frequency vocabulary, the common subset)."""

LICENSES: tuple[dict[str, Any], ...] = (
    {
        "id": "etalab-2.0",
        "title": "Licence Ouverte / Open Licence 2.0",
        "od_conformance": "approved",
        "url": "https://www.etalab.gouv.fr/licence-ouverte-open-licence/",
    },
    {
        "id": "odc-odbl",
        "title": "Open Data Commons Open Database License (ODbL)",
        "od_conformance": "approved",
        "url": "https://opendatacommons.org/licenses/odbl/1-0/",
    },
    {
        "id": "odc-by",
        "title": "Open Data Commons Attribution License",
        "od_conformance": "approved",
        "url": "https://opendatacommons.org/licenses/by/1-0/",
    },
    {
        "id": "odc-pddl",
        "title": "Open Data Commons Public Domain Dedication and License",
        "od_conformance": "approved",
        "url": "https://opendatacommons.org/licenses/pddl/1-0/",
    },
    {
        "id": "cc-by",
        "title": "Creative Commons Attribution 4.0",
        "od_conformance": "approved",
        "url": "https://creativecommons.org/licenses/by/4.0/",
    },
    {
        "id": "cc-by-sa",
        "title": "Creative Commons Attribution Share-Alike 4.0",
        "od_conformance": "approved",
        "url": "https://creativecommons.org/licenses/by-sa/4.0/",
    },
    {
        "id": "cc-zero",
        "title": "Creative Commons CCZero",
        "od_conformance": "approved",
        "url": "https://creativecommons.org/publicdomain/zero/1.0/",
    },
    {"id": "other-open", "title": "Other (Open)", "od_conformance": "approved", "url": ""},
    {"id": "other-closed", "title": "Other (Not Open)", "od_conformance": "not reviewed", "url": ""},
    {"id": "notspecified", "title": "License not specified", "od_conformance": "not reviewed", "url": ""},
)
"""The licences a dataset may declare (``license_list``)."""
LICENSE_IDS = frozenset(str(licence["id"]) for licence in LICENSES)


class ValidationFailed(InvalidRequest):
    """Input that does not validate; ``errors`` maps each wrong field to its messages (CKAN's error shape)."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{field}: {', '.join(messages)}" for field, messages in errors.items()))


def _failed(error: ValidationError, prefix: str = "") -> ValidationFailed:
    errors: dict[str, list[str]] = {}
    for item in error.errors():
        field = ".".join(str(part) for part in item.get("loc", ())) or "__root__"
        message = str(item.get("msg", "invalid"))
        errors.setdefault(prefix + field, []).append(message.removeprefix("Value error, "))
    return ValidationFailed(errors)


class _Input(BaseModel):
    # CKAN clients send back whole documents (ids, computed fields): unknown keys are ignored, not refused.
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)


class NamedRef(_Input):
    """A reference by name (``{"name": ...}``), as CKAN sends tags and groups."""

    name: str = Field(pattern=TAG)


class ResourceInput(_Input):
    """A resource's metadata: a URL (or an upload, sent apart), its name, format and description."""

    # ``schema`` as CKAN sends it, or ``schema_id`` as a resource is shown (a patch merges the stored fields).
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True, populate_by_name=True)

    id: str | None = Field(default=None, max_length=36)
    url: str = Field(default="", max_length=2000)
    name: str = Field(default="", max_length=500)
    description: str = Field(default="", max_length=MAX_TEXT)
    format: str = Field(default="", max_length=50)
    mimetype: str | None = Field(default=None, max_length=200)
    schema_id: str | None = Field(default=None, max_length=200, alias="schema")
    validation: Literal["publish", "strict"] | None = Field(
        default=None, description="strict: an upload that does not validate against its schema is refused"
    )

    @field_validator("url")
    @classmethod
    def _scheme(cls, value: str) -> str:
        # Other schemes (javascript:, file:) would be served back as links to whoever reads the catalog.
        if value and not value.lower().startswith(("http://", "https://", "/")):
            raise ValueError("must be an http(s) URL")
        return value


class DatasetInput(_Input):
    """A dataset's metadata as a producer sends it (``package_create``, ``package_update``)."""

    id: str | None = Field(default=None, max_length=36)
    name: str = Field(pattern=SLUG)
    title: str = Field(default="", max_length=500)
    notes: str = Field(default="", max_length=MAX_TEXT)
    owner_org: str = Field(min_length=1, max_length=100)
    license_id: str = Field(default="notspecified", max_length=50)
    tags: list[NamedRef] = Field(default_factory=list, max_length=MAX_TAGS)
    groups: list[NamedRef] = Field(default_factory=list, max_length=50)
    url: str = Field(default="", max_length=2000)
    version: str = Field(default="", max_length=100)
    author: str = Field(default="", max_length=500)
    author_email: str = Field(default="", max_length=500)
    maintainer: str = Field(default="", max_length=500)
    maintainer_email: str = Field(default="", max_length=500)
    spatial: str = Field(default="", max_length=MAX_TEXT)
    temporal_start: dt.date | None = None
    temporal_end: dt.date | None = None
    frequency: str = Field(default="unknown", max_length=20)
    resources: list[ResourceInput] | None = Field(default=None, max_length=MAX_RESOURCES)
    # A harvested dataset (opendata/harvest.py) names its source and its record's URI there; a local one leaves
    # them empty. Re-harvesting finds the dataset of a record by them.
    harvest_source: str | None = Field(default=None, max_length=2000)
    harvest_uri: str | None = Field(default=None, max_length=2000)

    @field_validator("license_id")
    @classmethod
    def _licence(cls, value: str) -> str:
        if value not in LICENSE_IDS:
            raise ValueError(f"unknown licence {value!r} (see license_list)")
        return value

    @field_validator("frequency")
    @classmethod
    def _frequency(cls, value: str) -> str:
        if value not in FREQUENCIES:
            raise ValueError(f"must be one of {', '.join(FREQUENCIES)}")
        return value

    def metadata(self) -> dict[str, Any]:
        """The fields kept in the dataset's row (everything but its name, organization and resources)."""
        if self.temporal_start and self.temporal_end and self.temporal_end < self.temporal_start:
            raise ValidationFailed({"temporal_end": ["must not be before temporal_start"]})
        data = self.model_dump(exclude={"id", "name", "owner_org", "resources"}, mode="json")
        data["tags"] = sorted({tag.name for tag in self.tags})
        data["groups"] = sorted({group.name for group in self.groups})
        return data


class OrganizationInput(_Input):
    """An organization or a group: its unique name, title and description."""

    name: str = Field(pattern=SLUG)
    title: str = Field(default="", max_length=500)
    description: str = Field(default="", max_length=MAX_TEXT)


def _named_error(error: ValidationError) -> ValidationFailed:
    failed = _failed(error)
    if "name" in failed.errors:
        failed = ValidationFailed(
            {**failed.errors, "name": ["must be 2 to 100 characters: lowercase letters, digits, '-' and '_'"]}
        )
    return failed


def dataset_input(data: Any) -> DatasetInput:
    """``data`` validated as a dataset; :class:`ValidationFailed` names every wrong field."""
    if not isinstance(data, dict):
        raise ValidationFailed({"__root__": ["a dataset is a JSON object"]})
    try:
        return DatasetInput.model_validate(data)
    except ValidationError as error:
        raise _named_error(error) from None


def resource_input(data: Any) -> ResourceInput:
    """``data`` validated as a resource."""
    if not isinstance(data, dict):
        raise ValidationFailed({"__root__": ["a resource is a JSON object"]})
    try:
        return ResourceInput.model_validate(data)
    except ValidationError as error:
        raise _failed(error) from None


def organization_input(data: Any) -> OrganizationInput:
    """``data`` validated as an organization or group."""
    if not isinstance(data, dict):
        raise ValidationFailed({"__root__": ["an organization is a JSON object"]})
    try:
        return OrganizationInput.model_validate(data)
    except ValidationError as error:
        raise _named_error(error) from None
