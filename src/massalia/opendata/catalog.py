"""The open-data catalog's guarded services: organizations, groups, datasets, resources and their versions.

Every function takes the :class:`~massalia.governance.Caller` first and checks it before touching anything:
``opendata.catalog.read`` (everyone, the anonymous ``public`` role included), ``opendata.dataset.publish``
(signed-in producers, then the organization check below), ``opendata.organization.create`` (platform admins),
``opendata.organization.manage`` (an organization's admins, or platform admins). Writes are audited.

**Producers publish in their organization only**: a dataset's organization must count the caller as an
``editor`` or ``admin`` (:class:`~massalia.opendata.tables.MemberRow`), unless the caller is a platform admin
(role ``admin``), who moderates every organization. A refusal is written to the audit trail too.

**Every publication is a version**: each write to a dataset or its resources stores the whole package
document as a new :class:`~massalia.opendata.tables.VersionRow` with its SHA-256 (:func:`document_hash`);
earlier versions stay readable (``package_show`` with ``version``), and uploaded files are kept by content
hash so the files an earlier version names stay downloadable. :func:`publication_record` is the canonical
statement of a publication (dataset, version, document hash, each resource's hash, producer, time), the bytes
a later round appends to the core ledger to certify it.

Examples
--------
>>> catalog = Catalog(home.metadata_url, home.root / "opendata" / "files")  # doctest: +SKIP
>>> catalog.package_create(caller, {"name": "bornes-irve", "owner_org": "region-sud"})["version"]  # doctest: +SKIP
1
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, NoReturn

from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from massalia.governance import AccessDenied, Caller, NotFound, Principal, Role
from massalia.ledger import LedgerError
from massalia.opendata.models import (
    LICENSES,
    DatasetInput,
    ResourceInput,
    ValidationFailed,
    dataset_input,
    organization_input,
    resource_input,
)
from massalia.opendata.schemas import check_resource
from massalia.opendata.tables import (
    MIGRATIONS,
    DatasetRow,
    GroupRow,
    MemberRow,
    OrganizationRow,
    ResourceRow,
    VersionRow,
)

READ = "opendata.catalog.read"
PUBLISH = "opendata.dataset.publish"
CREATE_ORGANIZATION = "opendata.organization.create"
MANAGE_ORGANIZATION = "opendata.organization.manage"
CAPACITIES: tuple[str, ...] = ("admin", "editor", "member")
PUBLISHING_CAPACITIES = frozenset({"admin", "editor"})
MAX_UPLOAD_BYTES = 4 * 1024**3
"""An upload through the services is refused past this size (the API's own body limit is lower)."""
DOWNLOAD_PATH = "/api/v1/opendata/dataset/{dataset}/resource/{resource}/download/{filename}"
"""Where an uploaded resource is served (relative to the site; the API makes it absolute)."""


logger = logging.getLogger(__name__)

_MIGRATED: set[str] = set()
"""Metadata databases whose open-data tables this process has brought to the newest migration."""


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _iso(value: dt.datetime) -> str:
    value = value if value.tzinfo else value.replace(tzinfo=dt.UTC)  # SQLite gives naive UTC back
    return value.astimezone(dt.UTC).replace(tzinfo=None).isoformat(timespec="microseconds")


def canonical_json(value: Any) -> bytes:
    r"""The canonical bytes of a JSON value: sorted keys, no spaces, UTF-8 (what hashes are taken over).

    Examples
    --------
    >>> canonical_json({"b": 1, "a": "é"})
    b'{"a":"\xc3\xa9","b":1}'
    """
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def document_hash(document: dict[str, Any]) -> str:
    """SHA-256 (hex) of a package document's canonical JSON: the hash of one published version."""
    return hashlib.sha256(canonical_json(document)).hexdigest()


def publication_record(document: dict[str, Any]) -> bytes:
    """The canonical statement of one publication, the entry a transparency log certifies.

    It names the dataset (id, name), the version, the hash of the whole document, each resource's id, URL and
    content hash (``None`` for a link), who published and when. A third party recomputes it from the
    published document alone.

    Examples
    --------
    >>> doc = {"id": "d", "name": "n", "massalia_version": 2, "massalia_published_by": "ann",
    ...        "massalia_published_at": "2026-12-07T00:00:00", "resources": [{"id": "r", "url": "u", "hash": ""}]}
    >>> json.loads(publication_record(doc))["resources"]
    [{'id': 'r', 'sha256': None, 'url': 'u'}]
    """
    record = {
        "type": "massalia.opendata.publication/1",
        "dataset_id": document["id"],
        "name": document["name"],
        "version": document["massalia_version"],
        "document_sha256": document_hash(document),
        "resources": [
            {
                "id": res["id"],
                "url": res.get("url", ""),
                "sha256": (res.get("hash") or "").removeprefix("sha256:") or None,
            }
            for res in document.get("resources", [])
        ],
        "published_by": document["massalia_published_by"],
        "published_at": document["massalia_published_at"],
    }
    return canonical_json(record)


@dataclass(frozen=True)
class Upload:
    """A file sent with a resource: its name as sent and a binary stream of its bytes."""

    filename: str
    stream: IO[bytes]


def _refuse(caller: Caller, action: str, reason: str, **detail: Any) -> NoReturn:
    """Audit the refusal of ``action`` with its reason, then raise it (an organization's right, not the role's)."""
    caller.governance.audit(
        caller.principal, action, decision="denied", denied_because=reason, **_audit_detail(caller, **detail)
    )
    raise AccessDenied(action, reason)


def _audit_detail(caller: Caller, **resource: Any) -> dict[str, Any]:
    return {"resource": resource, **({"channel": caller.channel} if caller.channel else {})}


class Catalog:
    """The catalog over one metadata database and one folder of uploaded files.

    Parameters
    ----------
    metadata_url
        SQLAlchemy URL of the platform metadata database (open data's tables are migrated on first use).
    files
        Where uploaded files are kept, by SHA-256 (``<files>/<ab>/<sha256>``).
    """

    def __init__(self, metadata_url: str, files: Path, ledger: Path | None = None) -> None:
        self.metadata_url = metadata_url
        self.files = Path(files)
        self.ledger = ledger
        """The certification log's directory (:mod:`massalia.opendata.certify`); ``None``: nothing is certified."""

    @classmethod
    def for_home(cls, home: Any) -> Catalog:
        """The catalog of a ``MASSALIA_HOME`` (its metadata database; files under ``opendata/files``)."""
        return cls(home.metadata_url, Path(home.root) / "opendata" / "files", Path(home.root) / "opendata" / "ledger")

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A transaction on the metadata database, open data's tables brought to their newest migration first."""
        engine = create_engine(self.metadata_url)
        published: set[str] = set()
        try:
            if self.metadata_url not in _MIGRATED:  # once per database and process: Alembic's check is not free
                MIGRATIONS.upgrade(engine)
                _MIGRATED.add(self.metadata_url)
            with Session(engine, expire_on_commit=False) as session, session.begin():
                session.info["published"] = published
                yield session
        finally:
            engine.dispose()
        if published and self.ledger is not None:  # reached only once the transaction has committed
            self._certify(published)

    def _certify(self, dataset_ids: set[str]) -> None:
        """Append the files these datasets just published to the certification log.

        The publication has committed: a log that cannot be written now (locked too long, a full disk) does not
        undo it; its files are certified by the next publication of the dataset, the next proof asked for them,
        or ``massalia opendata certify``.
        """
        from massalia.opendata.certify import Certifier  # certify reads the catalog: imported when first used

        if self.ledger is None:
            return
        try:
            Certifier(self, self.ledger).certify_datasets(dataset_ids)
        except (OSError, LedgerError) as error:
            logger.error("certifying datasets %s failed, to be caught up later: %s", sorted(dataset_ids), error)

    # -- lookups ------------------------------------------------------------------------------------------
    @staticmethod
    def _organization(session: Session, ref: str, field: str = "id") -> OrganizationRow:
        if not isinstance(ref, str) or not ref or len(ref) > 100:
            raise ValidationFailed({field: ["missing value"]})
        row = session.get(OrganizationRow, ref) or session.scalar(
            select(OrganizationRow).where(OrganizationRow.name == ref)
        )
        if row is None or row.state != "active":
            raise NotFound(f"Organization not found: {ref}")
        return row

    @staticmethod
    def _group(session: Session, ref: str) -> GroupRow:
        if not isinstance(ref, str) or not ref or len(ref) > 100:
            raise ValidationFailed({"id": ["missing value"]})
        row = session.get(GroupRow, ref) or session.scalar(select(GroupRow).where(GroupRow.name == ref))
        if row is None:
            raise NotFound(f"Group not found: {ref}")
        return row

    def _dataset(self, session: Session, principal: Principal, ref: Any) -> DatasetRow:
        """The dataset by id or name; a deleted one only for who may publish in its organization."""
        if not isinstance(ref, str) or not ref or len(ref) > 100:
            raise ValidationFailed({"id": ["missing value"]})
        row = session.get(DatasetRow, ref) or session.scalar(select(DatasetRow).where(DatasetRow.name == ref))
        if row is None or (row.state != "active" and not self._may_publish(session, principal, row.organization_id)):
            raise NotFound(f"Dataset not found: {ref}")
        return row

    @staticmethod
    def _may_publish(session: Session, principal: Principal, organization_id: str) -> bool:
        if principal.has_role(Role.ADMIN):
            return True
        if principal.user_id is None:
            return False
        member = session.get(MemberRow, (organization_id, principal.subject))
        return member is not None and member.capacity in PUBLISHING_CAPACITIES

    def _require_publisher(
        self,
        session: Session,
        caller: Caller,
        organization: OrganizationRow,
        *,
        action: str = PUBLISH,
        **detail: Any,
    ) -> None:
        """Refuse (audited under ``action``) a producer who is not an editor or admin of ``organization``."""
        if not self._may_publish(session, caller.principal, organization.id):
            reason = f"not an editor or admin of the organization {organization.name!r}"
            _refuse(caller, action, reason, organization=organization.name, **detail)

    # -- documents ----------------------------------------------------------------------------------------
    def _resource_dict(self, row: ResourceRow, dataset_id: str) -> dict[str, Any]:
        fields = json.loads(row.fields)
        url = fields.get("url", "")
        if row.url_type == "upload" and row.filename:
            url = DOWNLOAD_PATH.format(dataset=dataset_id, resource=row.id, filename=row.filename)
        return {
            **fields,
            "id": row.id,
            "package_id": dataset_id,
            "position": row.position,
            "url": url,
            "url_type": row.url_type,
            "hash": f"sha256:{row.sha256}" if row.sha256 else "",
            "size": row.size,
            "datastore_active": row.datastore_active,
            "created": _iso(row.created),
            "last_modified": _iso(row.modified),
        }

    def _document(self, session: Session, row: DatasetRow) -> dict[str, Any]:
        """The CKAN package dict of a dataset as it stands (its resources in order)."""
        fields = json.loads(row.fields)
        organization = session.get(OrganizationRow, row.organization_id)
        resources = session.scalars(
            select(ResourceRow).where(ResourceRow.dataset_id == row.id).order_by(ResourceRow.position)
        ).all()
        groups = [session.scalar(select(GroupRow).where(GroupRow.name == name)) for name in fields.pop("groups", [])]
        licence = next((lic for lic in LICENSES if lic["id"] == fields.get("license_id")), None)
        return {
            **fields,
            "id": row.id,
            "name": row.name,
            "type": "dataset",
            "state": row.state,
            "private": False,
            "owner_org": row.organization_id,
            "organization": {
                "id": organization.id,
                "name": organization.name,
                "title": organization.title,
                "description": organization.description,
            }
            if organization
            else None,
            "license_title": licence["title"] if licence else "",
            "license_url": licence["url"] if licence else "",
            "tags": [{"name": tag, "display_name": tag} for tag in fields.get("tags", [])],
            "num_tags": len(fields.get("tags", [])),
            "groups": [{"id": g.id, "name": g.name, "title": g.title} for g in groups if g is not None],
            "resources": [self._resource_dict(res, row.id) for res in resources],
            "num_resources": len(resources),
            "creator_user_id": row.creator,
            "metadata_created": _iso(row.created),
            "metadata_modified": _iso(row.modified),
            "massalia_version": row.version,
        }

    def _publish(self, session: Session, row: DatasetRow, principal: Principal, operation: str) -> dict[str, Any]:
        """Store the dataset as it now stands as its next version; return the published document."""
        now = _now()
        row.version, row.modified = row.version + 1, now
        self._validate_resources(session, row)
        session.flush()
        document = self._document(session, row)
        document["massalia_published_by"] = principal.subject
        document["massalia_published_at"] = _iso(now)
        digest = document_hash(document)
        session.add(
            VersionRow(
                dataset_id=row.id,
                version=row.version,
                document=canonical_json(document).decode(),
                sha256=digest,
                published_by=principal.subject,
                published_at=now,
                operation=operation,
            )
        )
        if any(res["url_type"] == "upload" and res["hash"] for res in document["resources"]):
            session.info.setdefault("published", set()).add(row.id)  # its files certified once this commits
        return {**document, "massalia_version_sha256": digest}

    def _validate_resources(self, session: Session, row: DatasetRow, *, rerun: str | None = None) -> None:
        """Validate the dataset's uploaded files against their declared schemas before it is published.

        Reports are re-used for unchanged bytes and schema (:mod:`massalia.opendata.schemas`); a ``strict``
        resource whose file does not validate raises, and the whole write rolls back. ``rerun`` names a
        resource to validate again even if a report is stored.
        """
        for res in session.scalars(select(ResourceRow).where(ResourceRow.dataset_id == row.id)):
            fields = json.loads(res.fields)
            path = self.file_path(res.sha256) if res.url_type == "upload" and res.sha256 else None
            try:
                outcome = check_resource(self.files, path, fields, res.sha256, rerun=rerun == res.id)
            except ValidationFailed as error:
                name = fields.get("name") or res.filename or res.id
                raise ValidationFailed(
                    {k: [f"resource {name}: {m}" for m in v] for k, v in error.errors.items()}
                ) from None
            if any(fields.get(k) != v for k, v in outcome.items()):
                res.fields = json.dumps({**fields, **outcome})

    def require_publisher(self, caller: Caller, organization: str, action: str, **detail: Any) -> dict[str, Any]:
        """Refuse (audited under ``action``) a caller who may not publish in ``organization``; return it."""
        with self.session() as session:
            org = self._organization(session, organization, "owner_org")
            self._require_publisher(session, caller, org, action=action, **detail)
            return {"id": org.id, "name": org.name, "title": org.title}

    def resource_validate(self, caller: Caller, ref: str) -> dict[str, Any]:
        """Validate a resource's file again against its schema; a new version records the outcome."""
        caller.authorize(PUBLISH, detail=_audit_detail(caller, operation="resource_validate", resource=str(ref)[:100]))
        with self.session() as session:
            row = _resource_row(session, ref)
            dataset = self._dataset(session, caller.principal, row.dataset_id)
            self._require_publisher(
                session,
                caller,
                session.get(OrganizationRow, dataset.organization_id) or _missing_org(dataset),
                operation="resource_validate",
                resource=row.id,
            )
            self._validate_resources(session, dataset, rerun=row.id)
            document = self._publish(session, dataset, caller.principal, "resource_validate")
            return next(r for r in document["resources"] if r["id"] == row.id)

    def _check_groups(self, session: Session, names: list[str]) -> None:
        missing = [name for name in names if session.scalar(select(GroupRow).where(GroupRow.name == name)) is None]
        if missing:
            raise ValidationFailed({"groups": [f"unknown group(s): {', '.join(missing)}"]})

    def _store_file(self, upload: Upload) -> tuple[str, int]:
        """Copy an upload into the content-addressed store, bounded; return its SHA-256 and size."""
        self.files.mkdir(parents=True, exist_ok=True)
        digest, size = hashlib.sha256(), 0
        with tempfile.NamedTemporaryFile(dir=self.files, delete=False, prefix=".upload-") as out:
            try:
                while chunk := upload.stream.read(1024 * 1024):
                    size += len(chunk)
                    if size > MAX_UPLOAD_BYTES:
                        raise ValidationFailed({"upload": [f"larger than {MAX_UPLOAD_BYTES} bytes"]})
                    digest.update(chunk)
                    out.write(chunk)
            except BaseException:
                Path(out.name).unlink(missing_ok=True)
                raise
        sha = digest.hexdigest()
        target = self.files / sha[:2] / sha
        target.parent.mkdir(exist_ok=True)
        if target.exists():
            Path(out.name).unlink()
        else:
            shutil.move(out.name, target)
        return sha, size

    def file_path(self, sha256: str) -> Path:
        """Where the file with this SHA-256 is kept."""
        return self.files / sha256[:2] / sha256

    def _set_resources(self, session: Session, row: DatasetRow, resources: list[ResourceInput]) -> None:
        """Replace the dataset's resources by ``resources`` (same ids kept, in the order given)."""
        existing = {res.id: res for res in session.scalars(select(ResourceRow).where(ResourceRow.dataset_id == row.id))}
        kept: set[str] = set()
        for position, res in enumerate(resources):
            old = existing.get(res.id or "")
            if old is not None:
                kept.add(old.id)
                self._apply_resource(old, res, position)
            else:
                session.add(self._new_resource(session, row.id, res, position))
        for res_id, old in existing.items():
            if res_id not in kept:
                session.delete(old)
        session.flush()

    @staticmethod
    def _resource_fields(res: ResourceInput) -> str:
        fields = res.model_dump(exclude={"id"}, mode="json", by_alias=False)
        return json.dumps(fields)

    def _new_resource(self, session: Session, dataset_id: str, res: ResourceInput, position: int) -> ResourceRow:
        now = _now()
        # A given id (a dump loaded into another site keeps its ids) only if no resource has it, whichever its
        # dataset: another organization's resource id must neither be taken over nor crash the write.
        free = res.id and _is_uuid(res.id) and session.get(ResourceRow, res.id) is None
        ident = res.id if free and res.id else str(uuid.uuid4())
        return ResourceRow(
            id=ident,
            dataset_id=dataset_id,
            position=position,
            fields=self._resource_fields(res),
            url_type=None,
            datastore_active=False,
            created=now,
            modified=now,
        )

    def _apply_resource(self, row: ResourceRow, res: ResourceInput, position: int) -> None:
        row.fields, row.position, row.modified = self._resource_fields(res), position, _now()
        if row.url_type == "upload" and res.url and not res.url.startswith("/"):
            row.url_type, row.sha256, row.size, row.filename = None, None, None, None  # now a link elsewhere

    # -- organizations and groups -------------------------------------------------------------------------
    def organization_create(self, caller: Caller, data: dict[str, Any]) -> dict[str, Any]:
        """Create an organization (platform admins); ``users: [{"name", "capacity"}]`` adds its first members."""
        caller.authorize(CREATE_ORGANIZATION, detail=_audit_detail(caller, operation="create", name=_name_of(data)))
        org = organization_input(data)
        users = data.get("users") or []
        if not isinstance(users, list) or len(users) > 100:
            raise ValidationFailed({"users": ["a list of at most 100 {name, capacity}"]})
        with self.session() as session:
            if session.scalar(select(OrganizationRow).where(OrganizationRow.name == org.name)) is not None:
                raise ValidationFailed({"name": ["Group name already exists in database"]})
            row = OrganizationRow(
                id=_given_id(data),
                name=org.name,
                title=org.title or org.name,
                description=org.description,
                state="active",
                created=_now(),
            )
            session.add(row)
            session.flush()
            for user in users:
                name, capacity = _member(user)
                session.merge(MemberRow(organization_id=row.id, username=name, capacity=capacity))
            return self._organization_dict(session, row, include_datasets=False)

    def organization_member_create(self, caller: Caller, org_ref: Any, username: Any, capacity: Any) -> dict[str, Any]:
        """Make ``username`` a member of an organization with ``capacity`` (its admins, or platform admins)."""
        caller.authorize(
            MANAGE_ORGANIZATION,
            detail=_audit_detail(
                caller,
                operation="member",
                organization=str(org_ref)[:100],
                username=str(username)[:128],
                capacity=str(capacity)[:16],
            ),
        )
        name, capacity = _member({"name": username, "capacity": capacity})
        with self.session() as session:
            org = self._organization(session, org_ref)
            mine = session.get(MemberRow, (org.id, caller.principal.subject))
            if not caller.principal.has_role(Role.ADMIN) and (
                caller.principal.user_id is None or mine is None or mine.capacity != "admin"
            ):
                reason = f"not an admin of the organization {org.name!r}"
                _refuse(caller, MANAGE_ORGANIZATION, reason, organization=org.name, username=name)
            session.merge(MemberRow(organization_id=org.id, username=name, capacity=capacity))
            return {"group_id": org.id, "username": name, "capacity": capacity}

    def _organization_dict(
        self, session: Session, row: OrganizationRow, *, include_datasets: bool, include_users: bool = False
    ) -> dict[str, Any]:
        datasets = session.scalars(
            select(DatasetRow)
            .where(DatasetRow.organization_id == row.id, DatasetRow.state == "active")
            .order_by(DatasetRow.name)
        ).all()
        result: dict[str, Any] = {
            "id": row.id,
            "name": row.name,
            "title": row.title,
            "display_name": row.title,
            "description": row.description,
            "state": row.state,
            "type": "organization",
            "is_organization": True,
            "created": _iso(row.created),
            "package_count": len(datasets),
            "image_url": "",
        }
        if include_datasets:
            result["packages"] = [self._document(session, ds) for ds in datasets[:1000]]
        if include_users:
            members = session.scalars(select(MemberRow).where(MemberRow.organization_id == row.id)).all()
            result["users"] = [{"name": m.username, "capacity": m.capacity} for m in members]
        return result

    def organization_list(
        self, caller: Caller, *, all_fields: bool = False, limit: int = 1000, offset: int = 0
    ) -> list[Any]:
        """The active organizations, by name (their names, or whole dicts with ``all_fields``)."""
        caller.authorize(READ)
        limit, offset = _page(limit, offset)
        with self.session() as session:
            rows = session.scalars(
                select(OrganizationRow)
                .where(OrganizationRow.state == "active")
                .order_by(OrganizationRow.name)
                .offset(offset)
                .limit(limit)
            ).all()
            if not all_fields:
                return [row.name for row in rows]
            return [self._organization_dict(session, row, include_datasets=False) for row in rows]

    def organization_show(self, caller: Caller, ref: str, *, include_datasets: bool = False) -> dict[str, Any]:
        """One organization by id or name; its members are listed only to its admins and platform admins."""
        caller.authorize(READ)
        with self.session() as session:
            row = self._organization(session, ref)
            mine = session.get(MemberRow, (row.id, caller.principal.subject)) if caller.principal.user_id else None
            users = caller.principal.has_role(Role.ADMIN) or (mine is not None and mine.capacity == "admin")
            return self._organization_dict(session, row, include_datasets=include_datasets, include_users=users)

    def group_create(self, caller: Caller, data: dict[str, Any]) -> dict[str, Any]:
        """Create a group (a theme; platform admins)."""
        caller.authorize(CREATE_ORGANIZATION, detail=_audit_detail(caller, operation="group", name=_name_of(data)))
        group = organization_input(data)
        with self.session() as session:
            if session.scalar(select(GroupRow).where(GroupRow.name == group.name)) is not None:
                raise ValidationFailed({"name": ["Group name already exists in database"]})
            row = GroupRow(
                id=_given_id(data),
                name=group.name,
                title=group.title or group.name,
                description=group.description,
                created=_now(),
            )
            session.add(row)
            session.flush()
            return self._group_dict(session, row)

    def _group_dict(self, session: Session, row: GroupRow, *, include_datasets: bool = False) -> dict[str, Any]:
        members = [
            ds
            for ds in session.scalars(select(DatasetRow).where(DatasetRow.state == "active"))
            if row.name in json.loads(ds.fields).get("groups", [])
        ]
        result: dict[str, Any] = {
            "id": row.id,
            "name": row.name,
            "title": row.title,
            "display_name": row.title,
            "description": row.description,
            "type": "group",
            "is_organization": False,
            "state": "active",
            "created": _iso(row.created),
            "package_count": len(members),
            "image_url": "",
        }
        if include_datasets:
            result["packages"] = [self._document(session, ds) for ds in members[:1000]]
        return result

    def group_list(self, caller: Caller, *, all_fields: bool = False, limit: int = 1000, offset: int = 0) -> list[Any]:
        """The groups (themes), by name."""
        caller.authorize(READ)
        limit, offset = _page(limit, offset)
        with self.session() as session:
            rows = session.scalars(select(GroupRow).order_by(GroupRow.name).offset(offset).limit(limit)).all()
            return [self._group_dict(session, row) if all_fields else row.name for row in rows]

    def group_show(self, caller: Caller, ref: str, *, include_datasets: bool = False) -> dict[str, Any]:
        """One group by id or name."""
        caller.authorize(READ)
        with self.session() as session:
            return self._group_dict(session, self._group(session, ref), include_datasets=include_datasets)

    def license_list(self, caller: Caller) -> list[dict[str, Any]]:
        """The licences a dataset may declare."""
        caller.authorize(READ)
        return [dict(licence) for licence in LICENSES]

    # -- datasets -----------------------------------------------------------------------------------------
    def package_create(self, caller: Caller, data: dict[str, Any]) -> dict[str, Any]:
        """Create a dataset in an organization the caller publishes in; version 1 is published at once."""
        caller.authorize(PUBLISH, detail=_audit_detail(caller, operation="package_create", name=_name_of(data)))
        dataset = dataset_input(data)
        with self.session() as session:
            org = self._owner(session, dataset, data)
            self._require_publisher(session, caller, org, operation="package_create", name=dataset.name)
            if session.scalar(select(DatasetRow).where(DatasetRow.name == dataset.name)) is not None:
                raise ValidationFailed({"name": ["That URL is already in use."]})
            metadata = dataset.metadata()
            self._check_groups(session, metadata["groups"])
            now = _now()
            ident = (
                dataset.id
                if dataset.id and _is_uuid(dataset.id) and session.get(DatasetRow, dataset.id) is None
                else str(uuid.uuid4())
            )
            row = DatasetRow(
                id=ident,
                name=dataset.name,
                organization_id=org.id,
                state="active",
                fields=json.dumps(metadata),
                version=0,
                creator=caller.principal.subject,
                created=now,
                modified=now,
            )
            session.add(row)
            session.flush()
            self._set_resources(session, row, dataset.resources or [])
            return self._publish(session, row, caller.principal, "package_create")

    def _owner(self, session: Session, dataset: DatasetInput, data: dict[str, Any]) -> OrganizationRow:
        """The dataset's organization by id or name; a dump from another site names it in ``organization``."""
        try:
            return self._organization(session, dataset.owner_org, "owner_org")
        except NotFound:
            named = data.get("organization")
            if isinstance(named, dict) and isinstance(named.get("name"), str):
                return self._organization(session, named["name"], "owner_org")
            raise ValidationFailed({"owner_org": [f"Organization does not exist: {dataset.owner_org}"]}) from None

    def package_update(self, caller: Caller, data: dict[str, Any], *, patch: bool = False) -> dict[str, Any]:
        """Replace a dataset's metadata (or, with ``patch``, only the fields given); a new version is published.

        ``resources`` given replaces the resource list (ids kept match existing resources); omitted, they stay.
        """
        operation = "package_patch" if patch else "package_update"
        ref = data.get("id") or data.get("name")
        caller.authorize(PUBLISH, detail=_audit_detail(caller, operation=operation, dataset=str(ref)[:100]))
        with self.session() as session:
            row = self._dataset(session, caller.principal, ref)
            self._require_publisher(
                session,
                caller,
                session.get(OrganizationRow, row.organization_id) or _missing_org(row),
                operation=operation,
                dataset=row.name,
            )
            if patch:
                current = self._document(session, row)
                current.pop("resources")
                current["owner_org"] = row.organization_id
                data = {**current, **data}
            dataset = dataset_input({**data, "name": data.get("name", row.name)})
            if dataset.name != row.name and session.scalar(select(DatasetRow).where(DatasetRow.name == dataset.name)):
                raise ValidationFailed({"name": ["That URL is already in use."]})
            org = self._owner(session, dataset, data)
            if org.id != row.organization_id:
                self._require_publisher(session, caller, org, operation=operation, dataset=row.name)
            metadata = dataset.metadata()
            self._check_groups(session, metadata["groups"])
            row.name, row.organization_id, row.fields = dataset.name, org.id, json.dumps(metadata)
            if dataset.resources is not None:
                self._set_resources(session, row, dataset.resources)
            return self._publish(session, row, caller.principal, operation)

    def package_delete(self, caller: Caller, ref: str) -> None:
        """Mark a dataset deleted (a new version records it); it leaves the public catalog, its versions stay."""
        caller.authorize(PUBLISH, detail=_audit_detail(caller, operation="package_delete", dataset=str(ref)[:100]))
        with self.session() as session:
            row = self._dataset(session, caller.principal, ref)
            self._require_publisher(
                session,
                caller,
                session.get(OrganizationRow, row.organization_id) or _missing_org(row),
                operation="package_delete",
                dataset=row.name,
            )
            row.state = "deleted"
            self._publish(session, row, caller.principal, "package_delete")

    def package_show(self, caller: Caller, ref: str, *, version: int | None = None) -> dict[str, Any]:
        """A dataset by id or name as it stands, or as published in ``version`` (every version stays readable)."""
        caller.authorize(READ)
        with self.session() as session:
            row = self._dataset(session, caller.principal, ref)
            if version is None:
                return self._document(session, row)
            if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version <= row.version:
                raise ValidationFailed({"version": [f"must be a version of this dataset, 1 to {row.version}"]})
            stored = session.get(VersionRow, (row.id, version))
            if stored is None:
                raise NotFound(f"Version {version} of dataset {row.name} not found")
            return {**json.loads(stored.document), "massalia_version_sha256": stored.sha256}

    def package_versions(self, caller: Caller, ref: str) -> list[dict[str, Any]]:
        """Every published version of a dataset, oldest first: number, hash, producer, time, operation."""
        caller.authorize(READ)
        with self.session() as session:
            row = self._dataset(session, caller.principal, ref)
            rows = session.scalars(
                select(VersionRow).where(VersionRow.dataset_id == row.id).order_by(VersionRow.version)
            ).all()
            return [
                {
                    "version": v.version,
                    "sha256": v.sha256,
                    "published_by": v.published_by,
                    "published_at": _iso(v.published_at),
                    "operation": v.operation,
                }
                for v in rows
            ]

    def package_list(self, caller: Caller, *, limit: int = 1000, offset: int = 0) -> list[str]:
        """The names of the active datasets, in name order."""
        caller.authorize(READ)
        limit, offset = _page(limit, offset)
        with self.session() as session:
            return list(
                session.scalars(
                    select(DatasetRow.name)
                    .where(DatasetRow.state == "active")
                    .order_by(DatasetRow.name)
                    .offset(offset)
                    .limit(limit)
                )
            )

    def active_documents(self, caller: Caller) -> list[dict[str, Any]]:
        """Every active dataset's document (what ``package_search`` and ``tag_list`` look through)."""
        caller.authorize(READ)
        with self.session() as session:
            rows = session.scalars(select(DatasetRow).where(DatasetRow.state == "active")).all()
            return [self._document(session, row) for row in rows]

    # -- resources ----------------------------------------------------------------------------------------
    def resource_create(self, caller: Caller, data: dict[str, Any], upload: Upload | None = None) -> dict[str, Any]:
        """Add a resource (a link, or an uploaded file kept by hash) to a dataset; a new version is published."""
        ref = data.get("package_id")
        caller.authorize(PUBLISH, detail=_audit_detail(caller, operation="resource_create", dataset=str(ref)[:100]))
        res = resource_input(data)
        if upload is None and not res.url:
            raise ValidationFailed({"url": ["a resource needs a url or an upload"]})
        with self.session() as session:
            row = self._dataset(session, caller.principal, ref)
            self._require_publisher(
                session,
                caller,
                session.get(OrganizationRow, row.organization_id) or _missing_org(row),
                operation="resource_create",
                dataset=row.name,
            )
            count = len(session.scalars(select(ResourceRow.id).where(ResourceRow.dataset_id == row.id)).all())
            new = self._new_resource(session, row.id, res, count)
            if upload is not None:
                self._attach(new, res, upload)
            session.add(new)
            document = self._publish(session, row, caller.principal, "resource_create")
            return next(r for r in document["resources"] if r["id"] == new.id)

    def _attach(self, row: ResourceRow, res: ResourceInput, upload: Upload) -> None:
        filename = _safe_filename(upload.filename)
        sha, size = self._store_file(upload)
        row.url_type, row.sha256, row.size, row.filename = "upload", sha, size, filename
        fields = json.loads(row.fields)
        fields["name"] = fields.get("name") or filename
        fields["format"] = fields.get("format") or Path(filename).suffix.lstrip(".").upper()
        row.fields = json.dumps(fields)

    def resource_update(
        self, caller: Caller, data: dict[str, Any], upload: Upload | None = None, *, patch: bool = False
    ) -> dict[str, Any]:
        """Change a resource's metadata or file; a new version is published (the old file stays in the store)."""
        ref = data.get("id")
        operation = "resource_patch" if patch else "resource_update"
        caller.authorize(PUBLISH, detail=_audit_detail(caller, operation=operation, resource=str(ref)[:100]))
        with self.session() as session:
            row = _resource_row(session, ref)
            dataset = self._dataset(session, caller.principal, row.dataset_id)
            self._require_publisher(
                session,
                caller,
                session.get(OrganizationRow, dataset.organization_id) or _missing_org(dataset),
                operation=operation,
                resource=row.id,
            )
            merged = {**json.loads(row.fields), **data} if patch else data
            if row.url_type == "upload" and upload is None and merged.get("url", "").startswith("/"):
                merged = {**merged, "url": ""}  # our own download link, sent back: the upload stays
            res = resource_input(merged)
            self._apply_resource(row, res, row.position)
            if upload is not None:
                self._attach(row, res, upload)
            document = self._publish(session, dataset, caller.principal, operation)
            return next(r for r in document["resources"] if r["id"] == row.id)

    def resource_show(self, caller: Caller, ref: str) -> dict[str, Any]:
        """One resource of an active dataset, by id."""
        caller.authorize(READ)
        with self.session() as session:
            row, _dataset = self._visible_resource(session, caller.principal, ref)
            return self._resource_dict(row, row.dataset_id)

    def resource_file(self, caller: Caller, dataset_ref: str, resource_id: str, filename: str) -> tuple[Path, str]:
        """The stored file of an uploaded resource and its name, for download (``opendata.catalog.read``).

        The name must be the resource's current name, or one it had in an earlier version.
        """
        caller.authorize(READ)
        with self.session() as session:
            dataset = self._dataset(session, caller.principal, dataset_ref)
            row = session.get(ResourceRow, resource_id) if len(resource_id) <= 36 else None
            if (
                row is not None
                and row.dataset_id == dataset.id
                and row.url_type == "upload"
                and row.filename == filename
                and row.sha256
            ):
                return self.file_path(row.sha256), filename
            for version in session.scalars(
                select(VersionRow).where(VersionRow.dataset_id == dataset.id).order_by(VersionRow.version.desc())
            ):
                for res in json.loads(version.document).get("resources", []):
                    if (
                        res["id"] == resource_id
                        and res.get("url_type") == "upload"
                        and res["url"].endswith("/" + filename)
                        and res.get("hash")
                    ):
                        return self.file_path(res["hash"].removeprefix("sha256:")), filename
        raise NotFound(f"No file {filename} for resource {resource_id}")

    def resource_for_datastore(self, caller: Caller, ref: str, action: str) -> tuple[ResourceRow, DatasetRow]:
        """A resource and its dataset after the publisher check for ``action`` (used by the datastore)."""
        with self.session() as session:
            row, dataset = self._visible_resource(session, caller.principal, ref)
            org = session.get(OrganizationRow, dataset.organization_id) or _missing_org(dataset)
            self._require_publisher(session, caller, org, action=action, resource=row.id)
            return row, dataset

    def readable_resource(self, caller: Caller, ref: str) -> ResourceRow:
        """A resource of an active dataset (or one the caller publishes), for reading its datastore rows."""
        with self.session() as session:
            row, _dataset = self._visible_resource(session, caller.principal, ref)
            return row

    def _visible_resource(self, session: Session, principal: Principal, ref: Any) -> tuple[ResourceRow, DatasetRow]:
        """A resource and its dataset, or the very error of an id that never existed.

        A resource of a deleted dataset is, for whoever may not see that dataset, exactly like an unknown id: the
        same message (naming only the id asked for), so neither its existence nor its dataset's id leaks.
        """
        row = _resource_row(session, ref)
        try:
            return row, self._dataset(session, principal, row.dataset_id)
        except NotFound:
            raise NotFound(f"Resource not found: {ref}") from None


def _resource_row(session: Session, ref: Any) -> ResourceRow:
    if not isinstance(ref, str) or not ref or len(ref) > 36:
        raise ValidationFailed({"id": ["Missing value"]})
    row = session.get(ResourceRow, ref)
    if row is None:
        raise NotFound(f"Resource not found: {ref}")
    return row


def _is_uuid(value: str) -> bool:
    try:
        return str(uuid.UUID(value)) == value
    except ValueError:
        return False


def _given_id(data: dict[str, Any]) -> str:
    given = data.get("id")
    return given if isinstance(given, str) and _is_uuid(given) else str(uuid.uuid4())


def _name_of(data: Any) -> str:
    return str(data.get("name", ""))[:100] if isinstance(data, dict) else ""


def _member(user: Any) -> tuple[str, str]:
    if not isinstance(user, dict):
        raise ValidationFailed({"users": ["each member is {name, capacity}"]})
    name, capacity = user.get("name") or user.get("username"), user.get("capacity", "member")
    if not isinstance(name, str) or not 1 <= len(name) <= 128 or not name.isprintable():
        raise ValidationFailed({"username": ["a username of 1 to 128 printable characters"]})
    if capacity not in CAPACITIES:
        raise ValidationFailed({"capacity": [f"must be one of {', '.join(CAPACITIES)}"]})
    return name, capacity


def _missing_org(row: DatasetRow) -> OrganizationRow:
    raise NotFound(f"The organization of dataset {row.name} no longer exists")


def _page(limit: Any, offset: Any) -> tuple[int, int]:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 1000:
        raise ValidationFailed({"limit": ["must be an integer from 1 to 1000"]})
    if isinstance(offset, bool) or not isinstance(offset, int) or not 0 <= offset <= 10**6:
        raise ValidationFailed({"offset": ["must be an integer from 0 to 1000000"]})
    return limit, offset


def _safe_filename(name: str) -> str:
    """The last path part of an uploaded file's name, in safe characters (it becomes part of a URL).

    Examples
    --------
    >>> _safe_filename("../../etc/pass wd.csv")
    'pass_wd.csv'
    """
    base = Path(str(name or "upload").replace("\\", "/")).name[:200]
    cleaned = "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in base).lstrip(".")
    return cleaned or "upload"
