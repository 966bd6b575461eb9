"""Schema-first publishing: shipped schemas, Frictionless validation of uploads, reports per version, badges.

Attacks: a producer of another organization setting a schema, a client forging a validation status, and an
anonymous visitor reading the report (cell values) of a deleted dataset.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from opendata_world import OpenDataWorld

from massalia.governance import AccessDenied, NotFound
from massalia.ledger import TransparencyLog
from massalia.opendata import schemas
from massalia.opendata.catalog import Upload
from massalia.opendata.models import ValidationFailed

IRVE = "etalab/schema-irve-statique@2.3.0"


@pytest.fixture(scope="module")
def irve_rows() -> list[list[str]]:
    """The header and first valid row of the IRVE example shipped with schema-irve (made here from the schema)."""
    descriptor = schemas.resolve(IRVE).descriptor()
    header = [f["name"] for f in descriptor["fields"]]
    example = {f["name"]: str(f.get("example", "")) for f in descriptor["fields"]}
    return [header, [example[name] for name in header]]


def _csv(rows: list[list[str]]) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue().encode("utf-8")


def _bad_rows(rows: list[list[str]], count: int) -> list[list[str]]:
    header, good = rows
    bad = [header]
    nbre, implantation = header.index("nbre_pdc"), header.index("implantation_station")
    for i in range(count):
        row = list(good)
        if i % 2 == 0:
            row[nbre] = "beaucoup"  # an integer field
        else:
            row[implantation] = "Sur la lune"  # outside the enum
        bad.append(row)
    return bad


def _audited(world: OpenDataWorld) -> list[dict[str, object]]:
    with TransparencyLog(world.home.ledger, readonly=True) as log:
        return [log.get(index).entry for index in range(log.size)]


def _dataset(world: OpenDataWorld, name: str = "bornes") -> dict:
    return world.catalog.package_create(world.caller("alice"), {"name": name, "owner_org": "region-sud"})


def _upload(world: OpenDataWorld, dataset: dict, content: bytes, **fields: str) -> dict:
    return world.catalog.resource_create(
        world.caller("alice"),
        {"package_id": dataset["id"], "format": "CSV", **fields},
        Upload("irve.csv", io.BytesIO(content)),
    )


def test_the_example_rows_validate(irve_rows: list[list[str]], tmp_path: Path) -> None:
    # The fixture's good row must really be valid, or every "valid" assertion below would prove nothing.
    path = tmp_path / "ok.csv"
    path.write_bytes(_csv(irve_rows))
    report = schemas.validate_file(path, IRVE, "csv")
    assert (report.status, report.error_count, report.rows) == ("success", 0, 1), report.summary()


def test_the_shipped_schemas_resolve_by_pinned_id_and_unknown_ones_are_clear_errors() -> None:
    refs = set(schemas.shipped())
    assert {IRVE, "etalab/schema-irve-dynamique@2.3.0", "scdl/budget@0.8.3", "scdl/subventions@2.1.1"} <= refs
    assert (schemas.SCHEMA_DIR / "NOTICE.txt").is_file()
    with pytest.raises(ValidationFailed, match=r"has no version 2\.3\.9 \(shipped: 2\.3\.0\)"):
        schemas.resolve("etalab/schema-irve-statique@2.3.9")
    with pytest.raises(ValidationFailed, match="unknown schema 'etalab/nope'"):
        schemas.resolve("etalab/nope@1.0.0")
    for unpinned in ("etalab/schema-irve-statique", "https://example.org/schema.json@1.0"):
        with pytest.raises(ValidationFailed, match="not id@version"):
            schemas.resolve(unpinned)


def test_a_valid_upload_is_published_valid_with_its_badge(world: OpenDataWorld, irve_rows: list[list[str]]) -> None:
    dataset = _dataset(world)
    resource = _upload(world, dataset, _csv(irve_rows), schema=IRVE)
    assert resource["schema_id"] == IRVE
    assert (resource["validation_status"], resource["validation_errors"]) == ("success", 0)
    shown = schemas.validation_show(world.caller("anonymous"), world.catalog, resource["id"])
    assert shown["badge"] == "valid" and shown["report"]["rows"] == 1
    svg = schemas.badge(world.caller("anonymous"), world.catalog, resource["id"], lang="fr")
    assert "schéma: valide" in svg and svg.startswith("<svg")


def test_a_mismatching_upload_is_published_with_row_and_field_errors(
    world: OpenDataWorld, irve_rows: list[list[str]]
) -> None:
    dataset = _dataset(world)
    resource = _upload(world, dataset, _csv(_bad_rows(irve_rows, 2)), schema=IRVE)
    assert (resource["validation_status"], resource["validation_errors"]) == ("failure", 2)
    report = schemas.validation_show(world.caller("anonymous"), world.catalog, resource["id"])["report"]
    assert [(e["row"], e["field"], e["type"]) for e in report["errors"]] == [
        (2, "nbre_pdc", "type-error"),
        (3, "implantation_station", "constraint-error"),
    ]
    assert "beaucoup" in report["errors"][0]["message"]
    assert "invalid (2 errors)" in schemas.badge(world.caller("anonymous"), world.catalog, resource["id"], lang="en")
    assert "invalide (2 erreurs)" in schemas.badge(world.caller("anonymous"), world.catalog, resource["id"])


def test_wrong_headers_are_reported_by_field(world: OpenDataWorld, irve_rows: list[list[str]]) -> None:
    header, row = irve_rows
    dataset = _dataset(world)
    resource = _upload(world, dataset, _csv([["nom", *header[1:]], row]), schema=IRVE)
    report = schemas.validation_show(world.caller("alice"), world.catalog, resource["id"])["report"]
    assert resource["validation_status"] == "failure"
    # The field is the schema's (where the header is wrong); the message quotes the label found.
    assert [(e["field"], e["type"]) for e in report["errors"]] == [("nom_amenageur", "incorrect-label")]
    assert '"nom"' in report["errors"][0]["message"]
    missing = _upload(world, dataset, _csv([header[:-1], row[:-1]]), schema=IRVE)
    report = schemas.validation_show(world.caller("alice"), world.catalog, missing["id"])["report"]
    assert (report["errors"][0]["field"], report["errors"][0]["type"]) == (header[-1], "missing-label")


def test_strict_validation_refuses_an_invalid_upload_and_publishes_nothing(
    world: OpenDataWorld, irve_rows: list[list[str]]
) -> None:
    dataset = _dataset(world)
    with pytest.raises(ValidationFailed, match=r"strict validation refused.*row 2, field nbre_pdc: type-error"):
        _upload(world, dataset, _csv(_bad_rows(irve_rows, 1)), schema=IRVE, validation="strict")
    after = world.catalog.package_show(world.caller("alice"), dataset["id"])
    assert after["resources"] == [] and after["massalia_version"] == dataset["massalia_version"]
    assert len(world.catalog.package_versions(world.caller("alice"), dataset["id"])) == 1
    accepted = _upload(world, dataset, _csv(irve_rows), schema=IRVE, validation="strict")
    assert accepted["validation_status"] == "success"


def test_an_unknown_schema_is_refused_and_nothing_is_published(
    world: OpenDataWorld, irve_rows: list[list[str]]
) -> None:
    dataset = _dataset(world)
    with pytest.raises(ValidationFailed, match=r"has no version 1\.0\.0"):
        _upload(world, dataset, _csv(irve_rows), schema="etalab/schema-irve-statique@1.0.0")
    assert world.catalog.package_show(world.caller("alice"), dataset["id"])["resources"] == []


def test_each_version_keeps_its_own_status_and_report(world: OpenDataWorld, irve_rows: list[list[str]]) -> None:
    dataset = _dataset(world)
    bad = _upload(world, dataset, _csv(_bad_rows(irve_rows, 3)), schema=IRVE)
    bad_version = world.catalog.package_show(world.caller("alice"), dataset["id"])["massalia_version"]
    good = world.catalog.resource_update(
        world.caller("alice"),
        {"id": bad["id"], "format": "CSV", "schema": IRVE},
        Upload("irve.csv", io.BytesIO(_csv(irve_rows))),
    )
    assert good["validation_status"] == "success"
    anonymous = world.caller("anonymous")
    old = schemas.validation_show(anonymous, world.catalog, bad["id"], version=bad_version)
    assert (old["status"], old["error_count"], old["report"]["error_count"]) == ("failure", 3, 3)
    assert schemas.validation_show(anonymous, world.catalog, bad["id"])["status"] == "success"
    assert "invalide (3 erreurs)" in schemas.badge(anonymous, world.catalog, bad["id"], version=bad_version)
    # A metadata-only change keeps the file: its status is carried over (the report is re-used, not lost).
    patched = world.catalog.resource_update(
        world.caller("alice"), {"id": bad["id"], "description": "bornes"}, patch=True
    )
    assert patched["validation_status"] == "success"
    rerun = world.catalog.resource_validate(world.caller("alice"), bad["id"])
    assert rerun["validation_status"] == "success"


def test_no_schema_and_link_resources_have_honest_badges(world: OpenDataWorld) -> None:
    dataset = _dataset(world)
    plain = world.catalog.resource_create(
        world.caller("alice"), {"package_id": dataset["id"], "url": "https://example.org/a.csv"}
    )
    link = world.catalog.resource_create(
        world.caller("alice"), {"package_id": dataset["id"], "url": "https://example.org/b.csv", "schema": IRVE}
    )
    pdf = world.catalog.resource_create(
        world.caller("alice"),
        {"package_id": dataset["id"], "schema": IRVE, "format": "PDF"},
        Upload("a.pdf", io.BytesIO(b"%PDF-1.4")),
    )
    anonymous = world.caller("anonymous")
    assert "no schema" in schemas.badge(anonymous, world.catalog, plain["id"], lang="en")
    assert "non validé" in schemas.badge(anonymous, world.catalog, link["id"])
    assert pdf["validation_status"] == "error"
    assert "cannot be validated" in schemas.validation_show(anonymous, world.catalog, pdf["id"])["report"]["note"]
    assert "not validated" in schemas.badge(anonymous, world.catalog, pdf["id"], lang="en")


def test_the_report_is_capped_but_counts_every_error(irve_rows: list[list[str]], tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(_csv(_bad_rows(irve_rows, 40)))
    report = schemas.validate_file(path, IRVE, "csv", max_errors=5)
    assert (report.error_count, len(report.errors), report.truncated) == (40, 5, True)
    bounded = schemas.validate_file(path, IRVE, "csv", max_rows=10)
    assert (bounded.rows, bounded.complete, bounded.error_count) == (10, False, 10)
    assert "row bound" in bounded.note
    timed = schemas.validate_file(path, IRVE, "csv", max_seconds=0.0)
    assert (timed.rows, timed.complete, timed.status) == (1, False, "failure") and "time bound" in timed.note


def test_the_time_bound_setting_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MASSALIA_OPENDATA_VALIDATION_SECONDS", "30")
    assert schemas.validation_seconds() == 30.0
    for bad in ("soon", "0", "86400"):
        monkeypatch.setenv("MASSALIA_OPENDATA_VALIDATION_SECONDS", bad)
        with pytest.raises(ValueError, match="MASSALIA_OPENDATA_VALIDATION_SECONDS"):
            schemas.validation_seconds()
    monkeypatch.delenv("MASSALIA_OPENDATA_VALIDATION_SECONDS")
    assert schemas.validation_seconds() == schemas.MAX_VALIDATION_SECONDS


def test_attack_a_report_key_never_names_another_file(world: OpenDataWorld) -> None:
    store = schemas.ReportStore(world.catalog.files)
    (world.catalog.files / "secret.json").parent.mkdir(parents=True, exist_ok=True)
    (world.catalog.files / "secret.json").write_text('{"schema": "x"}')
    for key in ("../secret", "a" * 64 + "/../../secret", "", "a" * 64 + ".x/../../secret"):
        assert store.get(key) is None


def test_attack_a_client_cannot_forge_a_validation_status(world: OpenDataWorld, irve_rows: list[list[str]]) -> None:
    dataset = _dataset(world)
    resource = _upload(
        world,
        dataset,
        _csv(_bad_rows(irve_rows, 1)),
        schema=IRVE,
        validation_status="success",
        validation_errors="0",
        validation_report="../secret",
    )
    assert (resource["validation_status"], resource["validation_errors"]) == ("failure", 1)
    assert resource["validation_report"].startswith(resource["hash"].removeprefix("sha256:"))


def test_attack_a_producer_of_another_organization_cannot_set_a_schema(
    world: OpenDataWorld, irve_rows: list[list[str]]
) -> None:
    dataset = _dataset(world)
    resource = _upload(world, dataset, _csv(_bad_rows(irve_rows, 1)), schema=IRVE)
    bob = world.caller("bob")  # an admin of ville-nice, nothing in region-sud
    with pytest.raises(AccessDenied):
        world.catalog.resource_update(bob, {"id": resource["id"], "schema": "scdl/budget@0.8.3"}, patch=True)
    with pytest.raises(AccessDenied):
        world.catalog.resource_validate(bob, resource["id"])
    assert world.catalog.resource_show(world.caller("anonymous"), resource["id"])["schema_id"] == IRVE
    denied = [e for e in _audited(world) if e.get("decision") == "denied" and "od-bob" in json.dumps(e)]
    assert len(denied) == 2, denied
    assert '"resource_patch"' in json.dumps(denied[0]) and '"resource_validate"' in json.dumps(denied[1])


def test_attack_an_anonymous_visitor_never_reads_the_report_of_a_deleted_dataset(
    world: OpenDataWorld, irve_rows: list[list[str]]
) -> None:
    dataset = _dataset(world)
    resource = _upload(world, dataset, _csv(_bad_rows(irve_rows, 1)), schema=IRVE)
    world.catalog.package_delete(world.caller("alice"), dataset["id"])
    for caller in ("anonymous", "carol", "bob"):
        with pytest.raises(NotFound):
            schemas.validation_show(world.caller(caller), world.catalog, resource["id"])
        with pytest.raises(NotFound):
            schemas.badge(world.caller(caller), world.catalog, resource["id"])
        with pytest.raises(NotFound):
            schemas.validation_show(world.caller(caller), world.catalog, resource["id"], version=2)
    # Its producer still reads it (the cell value is in the message).
    report = schemas.validation_show(world.caller("alice"), world.catalog, resource["id"])["report"]
    assert "beaucoup" in report["errors"][0]["message"]
