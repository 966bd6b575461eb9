"""The CKAN-compatible Action API: ``<site>/api/3/action/<name>`` (and ``/api/action/<name>``), GET or POST.

The CKAN site root is ``/api/v1/opendata``: a CKAN client is pointed at ``http://host/api/v1/opendata`` and
calls ``…/api/3/action/package_search`` as it would on any CKAN site (ckanapi's ``RemoteCKAN``, the
``ckanapi`` command line with ``dump``/``load``). Each action is its own route declaring its governance
action, so the OpenAPI document lists every action with its parameters and rights
(``GET /api/v1/opendata/api/3/openapi.json`` gives the Action API's part alone — CKAN has none, ckan#5160).

Parameters come as a query string (GET), a JSON object or a multipart form with an ``upload`` file (POST),
as CKAN accepts them. Answers use CKAN's envelope, ``{"help", "success": true, "result"}``, and its errors
``{"help", "success": false, "error": {"__type": "Validation Error" | "Not Found Error" |
"Authorization Error", ...}}`` with CKAN's HTTP codes (409, 404, 403). API tokens are the platform's
(``massalia token create``), sent as CKAN clients send them: the bare token as ``Authorization``.

The routes only parse and answer: every decision is taken by the guarded services
(:mod:`massalia.opendata.catalog`, :mod:`massalia.opendata.datastore`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, JSONResponse
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from massalia import __version__
from massalia.api.deps import Caller, Context, Warehouse, action
from massalia.engine import Engine
from massalia.engine.base import QueryTimeoutError
from massalia.governance import AccessDenied, InvalidRequest, NotFound
from massalia.governance import Caller as ServiceCaller
from massalia.opendata import datastore, schemas
from massalia.opendata.catalog import Catalog, Upload
from massalia.opendata.models import ValidationFailed
from massalia.opendata.search import search_documents, tag_names

router = APIRouter(prefix="/opendata", tags=["opendata"])

SITE_PATH = "/api/v1/opendata"
"""The CKAN site root, under the API prefix."""
MAX_PARAMS = 200
LOADABLE = frozenset({"csv", "tsv", "json", "ndjson", "jsonl", "xlsx"})


@dataclass(frozen=True)
class Call:
    """One action call: the caller, the catalog, the engine (datastore actions), the parameters, an upload."""

    caller: ServiceCaller
    catalog: Catalog
    engine: Engine | None
    params: dict[str, Any]
    upload: Upload | None


def _int(params: dict[str, Any], name: str, default: int) -> int:
    value = params.get(name, default)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit() and len(value) < 12:
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise ValidationFailed({name: ["must be an integer"]})


def _bool(params: dict[str, Any], name: str, default: bool = False) -> bool:
    value = params.get(name, default)
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes", "on")
    return bool(value)


def _json(params: dict[str, Any], name: str) -> Any:
    value = params.get(name)
    if isinstance(value, str) and value.strip()[:1] in ("{", "["):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            raise ValidationFailed({name: ["is not valid JSON"]}) from None
    return value


def _given(params: dict[str, Any], name: str) -> Any:
    """A parameter as sent: the guarded service checks the caller first, then validates it."""
    return params.get(name)


# -- the actions ---------------------------------------------------------------------------------------------
def package_search(call: Call) -> Any:
    """Search datasets: ``q``, ``fq``, ``facet.field`` (JSON list), ``facet.limit``, ``sort``, ``rows``, ``start``."""
    p = call.params
    facets = _json(p, "facet.field") or []
    if not isinstance(facets, list):
        raise ValidationFailed({"facet.field": ["a JSON list of field names"]})
    documents = call.catalog.active_documents(call.caller)
    return search_documents(
        documents,
        q=str(p.get("q") or ""),
        fq=str(p.get("fq") or ""),
        facet_fields=facets,
        facet_limit=_int(p, "facet.limit", 50),
        sort=str(p.get("sort") or "score desc, metadata_modified desc"),
        rows=_int(p, "rows", 10),
        start=_int(p, "start", 0),
    )


def package_show(call: Call) -> Any:
    """A dataset by ``id`` (id or name); ``version`` (extension) gives an earlier publication."""
    version = _int(call.params, "version", 0) if "version" in call.params else None
    return call.catalog.package_show(call.caller, _given(call.params, "id"), version=version)


def package_versions(call: Call) -> Any:
    """Every publication of a dataset (``id``): version, SHA-256 of the document, producer, time (extension)."""
    return call.catalog.package_versions(call.caller, _given(call.params, "id"))


def package_list(call: Call) -> Any:
    """The names of the active datasets (``limit``, ``offset``)."""
    return call.catalog.package_list(
        call.caller, limit=_int(call.params, "limit", 1000), offset=_int(call.params, "offset", 0)
    )


def _dataset_params(call: Call) -> dict[str, Any]:
    data = dict(call.params)
    for key in ("tags", "groups", "resources", "extras"):
        data[key] = _json(data, key) if key in data else data.get(key)
        if data[key] is None:
            data.pop(key)
    return data


def package_create(call: Call) -> Any:
    """Create a dataset (``name``, ``owner_org``, ``title``, ``notes``, ``tags``, ``resources``...)."""
    return call.catalog.package_create(call.caller, _dataset_params(call))


def package_update(call: Call) -> Any:
    """Replace a dataset's metadata (``id`` or ``name``); a new version is published."""
    return call.catalog.package_update(call.caller, _dataset_params(call))


def package_patch(call: Call) -> Any:
    """Change only the given fields of a dataset (``id``); a new version is published."""
    return call.catalog.package_update(call.caller, _dataset_params(call), patch=True)


def package_delete(call: Call) -> Any:
    """Delete a dataset (``id``): it leaves the public catalog; its versions stay for its producers."""
    call.catalog.package_delete(call.caller, _given(call.params, "id"))
    return None


def organization_list(call: Call) -> Any:
    """The organizations (names; whole objects with ``all_fields``)."""
    return call.catalog.organization_list(
        call.caller,
        all_fields=_bool(call.params, "all_fields"),
        limit=_int(call.params, "limit", 1000),
        offset=_int(call.params, "offset", 0),
    )


def organization_show(call: Call) -> Any:
    """One organization (``id``), with its datasets when ``include_datasets``."""
    return call.catalog.organization_show(
        call.caller, _given(call.params, "id"), include_datasets=_bool(call.params, "include_datasets")
    )


def organization_create(call: Call) -> Any:
    """Create an organization (platform admins): ``name``, ``title``, ``description``, ``users``."""
    data = dict(call.params)
    if "users" in data:
        data["users"] = _json(data, "users")
    return call.catalog.organization_create(call.caller, data)


def organization_member_create(call: Call) -> Any:
    """Make ``username`` a member of organization ``id`` with ``role`` (admin, editor, member)."""
    return call.catalog.organization_member_create(
        call.caller, _given(call.params, "id"), _given(call.params, "username"), str(call.params.get("role", "member"))
    )


def group_list(call: Call) -> Any:
    """The groups (themes)."""
    return call.catalog.group_list(
        call.caller,
        all_fields=_bool(call.params, "all_fields"),
        limit=_int(call.params, "limit", 1000),
        offset=_int(call.params, "offset", 0),
    )


def group_show(call: Call) -> Any:
    """One group (``id``)."""
    return call.catalog.group_show(
        call.caller, _given(call.params, "id"), include_datasets=_bool(call.params, "include_datasets")
    )


def group_create(call: Call) -> Any:
    """Create a group (platform admins): ``name``, ``title``, ``description``."""
    return call.catalog.group_create(call.caller, dict(call.params))


def tag_list(call: Call) -> Any:
    """The tags of the active datasets (``query``: only those containing it)."""
    query = call.params.get("query")
    return tag_names(call.catalog.active_documents(call.caller), str(query) if query else None)


def license_list(call: Call) -> Any:
    """The licences a dataset may declare."""
    return call.catalog.license_list(call.caller)


def status_show(call: Call) -> Any:
    """The site's status (CKAN's fields, and Massalia's version)."""
    call.catalog.license_list(call.caller)  # the read right, like every other action
    return {
        "ckan_version": "2.10.0",
        "site_title": "Massalia open data",
        "site_description": "",
        "site_url": "",
        "locale_default": "fr",
        "extensions": ["datastore", "massalia"],
        "massalia_version": __version__,
    }


def _auto_load(call: Call, resource: dict[str, Any]) -> dict[str, Any]:
    """Load an uploaded CSV, JSON or Excel file into the datastore at once (CKAN's XLoader, synchronously)."""
    if call.upload is None or call.engine is None or str(resource.get("format", "")).lower() not in LOADABLE:
        return resource
    try:
        report = datastore.load_file(call.caller, call.catalog, call.engine, resource["id"])
    except ValidationFailed as error:
        return {**resource, "datastore_active": False, "datastore_error": str(error)}
    return {**resource, "datastore_active": True, "datastore_rows": report.rows}


def resource_create(call: Call) -> Any:
    """Add a resource to dataset ``package_id``: a ``url``, or a file sent as ``upload`` (multipart)."""
    return _auto_load(call, call.catalog.resource_create(call.caller, dict(call.params), call.upload))


def resource_update(call: Call) -> Any:
    """Replace a resource's metadata (``id``), or its file (``upload``); a new version is published."""
    return _auto_load(call, call.catalog.resource_update(call.caller, dict(call.params), call.upload))


def resource_patch(call: Call) -> Any:
    """Change only the given fields of a resource (``id``), or its file (``upload``)."""
    return _auto_load(call, call.catalog.resource_update(call.caller, dict(call.params), call.upload, patch=True))


def resource_show(call: Call) -> Any:
    """One resource (``id``)."""
    return call.catalog.resource_show(call.caller, _given(call.params, "id"))


def resource_validation_show(call: Call) -> Any:
    """The schema validation report of a resource (``resource_id`` or ``id``; ``version`` for an earlier one)."""
    p = call.params
    version = _int(p, "version", 0) if "version" in p else None
    return schemas.validation_show(call.caller, call.catalog, p.get("resource_id") or _given(p, "id"), version=version)


def resource_validation_run(call: Call) -> Any:
    """Validate a resource's file (``resource_id`` or ``id``) again against its schema; a new version records it."""
    p = call.params
    resource = call.catalog.resource_validate(call.caller, p.get("resource_id") or _given(p, "id"))
    return schemas.validation_show(call.caller, call.catalog, resource["id"])


def schema_list(call: Call) -> Any:
    """The Table Schemas shipped with the site, by ``id@version`` (what a resource's ``schema`` may name)."""
    return schemas.schema_list(call.caller)


def schema_show(call: Call) -> Any:
    """One shipped Table Schema (``id``: ``id@version``) and its descriptor."""
    return schemas.schema_show(call.caller, _given(call.params, "id"))


def _engine(call: Call) -> Engine:
    if call.engine is None:
        raise InvalidRequest("no warehouse engine for the datastore")
    return call.engine


def datastore_create(call: Call) -> Any:
    """Create a resource's table from ``fields`` and ``records``, or from its uploaded file.

    Without ``records``, the resource's uploaded file is loaded and ``fields`` (``[{"id", "type"}]``) override
    the inferred types.
    """
    p = call.params
    fields, records = _json(p, "fields"), _json(p, "records")
    resource_id = _given(p, "resource_id")
    if records is None and (fields is None or p.get("load")):
        types = {f["id"]: f["type"] for f in fields or [] if isinstance(f, dict) and "id" in f and "type" in f}
        report = datastore.load_file(call.caller, call.catalog, _engine(call), resource_id, types=types)
    else:
        report = datastore.create_from_records(
            call.caller,
            call.catalog,
            _engine(call),
            resource_id,
            fields=fields,
            records=records,
            primary_key=_keys(p.get("primary_key")),
        )
    return {"resource_id": report.resource_id, "fields": report.fields, "rows": report.rows, "method": "insert"}


def _keys(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    raise ValidationFailed({"primary_key": ["a field name or a list of them"]})


def datastore_upsert(call: Call) -> Any:
    """Add or replace rows (``records``; ``method`` insert, upsert or update) of a resource's table."""
    records = _json(call.params, "records")
    method = str(call.params.get("method", "upsert"))
    count = datastore.upsert(
        call.caller, call.catalog, _engine(call), _given(call.params, "resource_id"), records, method=method
    )
    return {"resource_id": call.params["resource_id"], "method": method, "records": count}


def datastore_delete(call: Call) -> Any:
    """Delete the rows matching ``filters`` of a resource's table, or the whole table."""
    filters = _json(call.params, "filters")
    datastore.delete(call.caller, call.catalog, _engine(call), _given(call.params, "resource_id"), filters)
    return {"resource_id": call.params["resource_id"], "filters": filters or {}}


def datastore_search(call: Call) -> Any:
    """Search a resource's rows.

    Parameters: ``filters``, ``q``, ``fields``, ``sort``, ``limit``, ``offset``, ``include_total``,
    ``records_format`` (objects, lists, csv), ``cursor`` (the opaque value of ``_links.next``: keyset paging).
    """
    p = call.params
    fields = _json(p, "fields")
    if isinstance(fields, str):
        fields = [part.strip() for part in fields.split(",") if part.strip()]
    return datastore.search(
        call.caller,
        call.catalog,
        _engine(call),
        _given(p, "resource_id"),
        filters=_json(p, "filters"),
        q=_json(p, "q"),
        fields=fields,
        sort=p.get("sort"),
        limit=_int(p, "limit", 100),
        offset=_int(p, "offset", 0),
        include_total=_bool(p, "include_total", True),
        records_format=str(p.get("records_format", "objects")),
        cursor=None if p.get("cursor") in (None, "") else str(p.get("cursor")),
    )


def datastore_search_sql(call: Call) -> Any:
    """One read-only ``sql`` SELECT over datastore tables (named by resource id), bounded in rows and time."""
    return datastore.search_sql(call.caller, call.catalog, _engine(call), _given(call.params, "sql"))


@dataclass(frozen=True)
class ActionSpec:
    """An action of the API: its handler, the governance action it is checked against, whether it uses the engine."""

    handler: Callable[[Call], Any]
    right: str
    engine: bool = False


READ, PUBLISH = "opendata.catalog.read", "opendata.dataset.publish"
ORG_CREATE, ORG_MANAGE = "opendata.organization.create", "opendata.organization.manage"
DS_READ, DS_WRITE = "opendata.datastore.read", "opendata.datastore.write"

ACTIONS: dict[str, ActionSpec] = {
    "package_search": ActionSpec(package_search, READ),
    "package_show": ActionSpec(package_show, READ),
    "package_list": ActionSpec(package_list, READ),
    "package_versions": ActionSpec(package_versions, READ),
    "package_create": ActionSpec(package_create, PUBLISH),
    "package_update": ActionSpec(package_update, PUBLISH),
    "package_patch": ActionSpec(package_patch, PUBLISH),
    "package_delete": ActionSpec(package_delete, PUBLISH),
    "organization_list": ActionSpec(organization_list, READ),
    "organization_show": ActionSpec(organization_show, READ),
    "organization_create": ActionSpec(organization_create, ORG_CREATE),
    "organization_member_create": ActionSpec(organization_member_create, ORG_MANAGE),
    "group_list": ActionSpec(group_list, READ),
    "group_show": ActionSpec(group_show, READ),
    "group_create": ActionSpec(group_create, ORG_CREATE),
    "tag_list": ActionSpec(tag_list, READ),
    "license_list": ActionSpec(license_list, READ),
    "status_show": ActionSpec(status_show, READ),
    "resource_create": ActionSpec(resource_create, PUBLISH, engine=True),
    "resource_update": ActionSpec(resource_update, PUBLISH, engine=True),
    "resource_patch": ActionSpec(resource_patch, PUBLISH, engine=True),
    "resource_show": ActionSpec(resource_show, READ),
    "resource_validation_show": ActionSpec(resource_validation_show, READ),
    "resource_validation_run": ActionSpec(resource_validation_run, PUBLISH),
    "schema_list": ActionSpec(schema_list, READ),
    "schema_show": ActionSpec(schema_show, READ),
    "datastore_create": ActionSpec(datastore_create, DS_WRITE, engine=True),
    "datastore_upsert": ActionSpec(datastore_upsert, DS_WRITE, engine=True),
    "datastore_delete": ActionSpec(datastore_delete, DS_WRITE, engine=True),
    "datastore_search": ActionSpec(datastore_search, DS_READ, engine=True),
    "datastore_search_sql": ActionSpec(datastore_search_sql, DS_READ, engine=True),
}
"""Every action of the API, by CKAN name (``package_versions``, ``schema_list`` and ``schema_show`` are Massalia's
own; ``resource_validation_show`` and ``resource_validation_run`` are ckanext-validation's)."""


# -- the HTTP layer ------------------------------------------------------------------------------------------
def _site(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def _absolute(value: Any, site: str) -> Any:
    """Our own download links made absolute, in any result (resources carry ``url_type: "upload"``)."""
    if isinstance(value, list):
        return [_absolute(item, site) for item in value]
    if isinstance(value, dict):
        out = {key: _absolute(item, site) for key, item in value.items()}
        if out.get("url_type") == "upload" and str(out.get("url", "")).startswith(SITE_PATH):
            out["url"] = site + out["url"]
        return out
    return value


def _relative(value: Any, site: str) -> Any:
    """Our own absolute download links sent back (a client updating what it read) made relative again."""
    if isinstance(value, list):
        return [_relative(item, site) for item in value]
    if isinstance(value, dict):
        return {key: _relative(item, site) for key, item in value.items()}
    if isinstance(value, str) and value.startswith(site + SITE_PATH + "/"):
        return value[len(site) :]
    return value


def _envelope(name: str, site: str, status: int, **body: Any) -> JSONResponse:
    return JSONResponse({"help": f"{site}{SITE_PATH}/api/3/action/help_show?name={name}", **body}, status_code=status)


async def _params(request: Request) -> tuple[dict[str, Any], Upload | None]:
    if request.method == "GET":
        return dict(request.query_params), None
    kind = request.headers.get("content-type", "")
    if kind.startswith("multipart/form-data") or kind.startswith("application/x-www-form-urlencoded"):
        form = await request.form(max_files=1, max_fields=MAX_PARAMS)
        params: dict[str, Any] = {}
        upload = None
        for key, value in form.multi_items():
            if isinstance(value, UploadFile):
                upload = Upload(value.filename or "upload", value.file)
            else:
                params[key] = value
        return params, upload
    raw = await request.body()
    if not raw.strip():
        return dict(request.query_params), None
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ValidationFailed({"__root__": ["the body is not valid JSON"]}) from None
    if not isinstance(data, dict) or len(data) > MAX_PARAMS:
        raise ValidationFailed({"__root__": [f"the body is a JSON object of at most {MAX_PARAMS} keys"]})
    return data, None


def _failure(name: str, site: str, error: Exception) -> JSONResponse:
    if isinstance(error, ValidationFailed):
        return _envelope(name, site, 409, success=False, error={"__type": "Validation Error", **error.errors})
    if isinstance(error, NotFound):
        return _envelope(
            name, site, 404, success=False, error={"__type": "Not Found Error", "message": f"Not found: {error}"}
        )
    if isinstance(error, AccessDenied):
        return _envelope(
            name,
            site,
            403,
            success=False,
            error={"__type": "Authorization Error", "message": f"Access denied: {error.reason}"},
        )
    if isinstance(error, QueryTimeoutError):
        return _envelope(name, site, 409, success=False, error={"__type": "Validation Error", "query": [str(error)]})
    return _envelope(name, site, 409, success=False, error={"__type": "Validation Error", "message": str(error)})


def _endpoint(name: str, spec: ActionSpec) -> Callable[..., Any]:
    async def run(request: Request, context: Context, caller: Caller, engine: Engine | None) -> JSONResponse:
        site = _site(request)
        upload: Upload | None = None
        try:
            params, upload = await _params(request)
            call = Call(caller, Catalog.for_home(context.home), engine, _relative(params, site), upload)
            result = await run_in_threadpool(spec.handler, call)
        except (InvalidRequest, NotFound, AccessDenied, QueryTimeoutError) as error:
            return _failure(name, site, error)
        finally:
            if upload is not None:
                upload.stream.close()
        return _envelope(name, site, 200, success=True, result=_absolute(result, site))

    endpoint: Callable[..., Any]
    if spec.engine:

        async def with_engine(request: Request, context: Context, caller: Caller, engine: Warehouse) -> JSONResponse:
            return await run(request, context, caller, engine)

        endpoint = with_engine
    else:

        async def without_engine(request: Request, context: Context, caller: Caller) -> JSONResponse:
            return await run(request, context, caller, None)

        endpoint = without_engine
    endpoint.__name__ = f"ckan_{name}"
    endpoint.__doc__ = spec.handler.__doc__
    return endpoint


class CkanSuccess(BaseModel):
    """CKAN's answer to a successful action: its help link, ``success: true`` and the action's result."""

    help: str
    success: bool
    result: Any = None


class CkanError(BaseModel):
    """CKAN's error answer: ``success: false`` and ``error`` with its ``__type`` and the fields at fault."""

    help: str
    success: bool
    error: dict[str, Any]


CKAN_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"model": CkanSuccess, "description": "The action's result in CKAN's envelope."},
    403: {"model": CkanError, "description": "Authorization Error: the caller may not do this."},
    404: {"model": CkanError, "description": "Not Found Error: no such dataset, resource or organization."},
    409: {"model": CkanError, "description": "Validation Error: each wrong field and what is wrong with it."},
}
"""The Action API's answers as the OpenAPI document describes them (CKAN's envelope, not the house's)."""
REQUEST_BODY = {
    "description": "The action's parameters: a JSON object, or a multipart form (with an `upload` file).",
    "content": {
        "application/json": {"schema": {"type": "object", "additionalProperties": True}},
        "multipart/form-data": {"schema": {"type": "object", "additionalProperties": True}},
    },
}


def _openapi(right: str, method: str) -> dict[str, Any]:
    extra = action(right)
    if method == "POST":
        extra["openapi_extra"] = {**extra["openapi_extra"], "requestBody": REQUEST_BODY}
    return extra


for _name, _spec in ACTIONS.items():
    _endpoint_function = _endpoint(_name, _spec)
    # Writes are POST only: a GET is never checked for CSRF, so a link or an <img> in another site must not
    # be able to publish or delete with a signed-in visitor's cookie session. Reads answer GET as in CKAN.
    for _method in ("GET", "POST") if _spec.right in (READ, DS_READ) else ("POST",):
        router.add_api_route(
            f"/api/3/action/{_name}",
            _endpoint_function,
            methods=[_method],
            name=f"ckan_{_name}",
            operation_id=f"{_name}_{_method.lower()}",
            summary=_name,
            response_class=JSONResponse,
            responses=CKAN_RESPONSES,
            **_openapi(_spec.right, _method),
        )
    # The unversioned path ckanapi and older clients call; the same action, kept out of the document.
    router.add_api_route(
        f"/api/action/{_name}",
        _endpoint_function,
        methods=["POST"],
        name=f"ckan_{_name}_unversioned",
        operation_id=f"{_name}_unversioned",
        summary=_name,
        include_in_schema=False,
        **action(_spec.right),
    )


@router.get("/api/3/openapi.json", **action(READ))
def action_api_document(request: Request) -> dict[str, Any]:
    """The OpenAPI document of the Action API alone (the app's document, restricted to ``/api/3/action/``)."""
    full = request.app.openapi()
    prefix = f"{SITE_PATH}/api/3/action/"
    paths = {path: item for path, item in full.get("paths", {}).items() if path.startswith(prefix)}
    return {
        **full,
        "info": {**full["info"], "title": "Massalia open data — CKAN-compatible Action API"},
        "paths": paths,
        "servers": [{"url": "/"}],
    }


@router.get(
    "/dataset/{dataset_id}/resource/{resource_id}/download/{filename}", response_class=FileResponse, **action(READ)
)
def download(dataset_id: str, resource_id: str, filename: str, context: Context, caller: Caller) -> FileResponse:
    """An uploaded resource's file, as published (earlier versions' files too)."""
    path, name = Catalog.for_home(context.home).resource_file(caller, dataset_id, resource_id, filename)
    return FileResponse(path, filename=name, media_type="application/octet-stream")
