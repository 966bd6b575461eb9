"""The catalog's guarded services: public read, producers in their own organization, versions, validation."""

from __future__ import annotations

import hashlib
import io
import json

import pytest
from opendata_world import OpenDataWorld

from massalia.governance import AccessDenied, NotFound
from massalia.ledger import TransparencyLog
from massalia.opendata.catalog import Upload, document_hash, publication_record
from massalia.opendata.models import ValidationFailed

DATASET = {
    "name": "bornes-irve",
    "title": "Bornes de recharge des véhicules électriques",
    "notes": "Points de recharge de la région.",
    "owner_org": "region-sud",
    "license_id": "etalab-2.0",
    "tags": [{"name": "IRVE"}, {"name": "mobilité"}],
    "groups": [{"name": "mobilite"}],
    "temporal_start": "2024-01-01",
    "frequency": "monthly",
    "resources": [{"url": "https://example.org/irve.csv", "format": "CSV", "name": "IRVE"}],
}


def _audited(world: OpenDataWorld) -> list[dict[str, object]]:
    with TransparencyLog(world.home.ledger, readonly=True) as log:
        return [log.get(index).entry for index in range(log.size)]


def test_anyone_reads_the_public_catalog_without_signing_in(world: OpenDataWorld) -> None:
    world.catalog.package_create(world.caller("alice"), DATASET)
    anonymous = world.caller("anonymous")
    shown = world.catalog.package_show(anonymous, "bornes-irve")
    assert shown["organization"]["name"] == "region-sud" and shown["license_title"].startswith("Licence Ouverte")
    assert [tag["name"] for tag in shown["tags"]] == ["IRVE", "mobilité"]
    assert world.catalog.package_list(anonymous) == ["bornes-irve"]
    assert world.catalog.organization_list(anonymous) == ["region-sud", "ville-nice"]
    assert world.catalog.group_show(anonymous, "mobilite")["package_count"] == 1


def test_anonymous_callers_cannot_write_anything(world: OpenDataWorld) -> None:
    """Attack: an anonymous caller publishing, creating an organization or joining one."""
    anonymous = world.caller("anonymous")
    with pytest.raises(AccessDenied):
        world.catalog.package_create(anonymous, DATASET)
    with pytest.raises(AccessDenied):
        world.catalog.organization_create(anonymous, {"name": "pirates"})
    with pytest.raises(AccessDenied):
        world.catalog.organization_member_create(anonymous, "region-sud", "anonymous", "admin")
    assert world.catalog.package_list(anonymous) == []


def test_a_producer_publishes_in_its_own_organization_only_and_the_refusal_is_audited(world: OpenDataWorld) -> None:
    """Attack: Bob (admin of ville-nice) publishing into, editing or deleting region-sud's datasets."""
    bob = world.caller("bob")
    with pytest.raises(AccessDenied, match="region-sud"):
        world.catalog.package_create(bob, DATASET)
    world.catalog.package_create(world.caller("alice"), DATASET)
    with pytest.raises(AccessDenied):
        world.catalog.package_update(bob, {**DATASET, "title": "Pwned"})
    with pytest.raises(AccessDenied):
        world.catalog.package_update(bob, {"id": "bornes-irve", "title": "Pwned"}, patch=True)
    with pytest.raises(AccessDenied):
        world.catalog.package_delete(bob, "bornes-irve")
    with pytest.raises(AccessDenied):
        world.catalog.package_update(bob, {**DATASET, "owner_org": "ville-nice"})  # moving it away: still not his
    with pytest.raises(AccessDenied):
        world.catalog.resource_create(bob, {"package_id": "bornes-irve", "url": "https://evil.example/x.csv"})
    # Moving one's own dataset into another organization needs the right to publish there too.
    with pytest.raises(AccessDenied):
        world.catalog.package_update(world.caller("alice"), {**DATASET, "owner_org": "ville-nice"})
    assert world.catalog.package_show(world.caller("anonymous"), "bornes-irve")["title"] == DATASET["title"]
    denied = [
        e for e in _audited(world) if e.get("decision") == "denied" and e.get("action") == "opendata.dataset.publish"
    ]
    assert len(denied) >= 6 and all("od-bob" in json.dumps(e) or "od-alice" in json.dumps(e) for e in denied)
    # A researcher of no organization publishes nowhere; a platform admin moderates everywhere.
    with pytest.raises(AccessDenied):
        world.catalog.package_create(world.caller("carol"), {**DATASET, "name": "autre"})
    world.catalog.package_update(world.caller("admin"), {"id": "bornes-irve", "title": "Modéré"}, patch=True)


def test_only_an_organization_admin_adds_members(world: OpenDataWorld) -> None:
    """Attack: an editor promoting a friend (or itself) in its organization."""
    with pytest.raises(AccessDenied):
        world.catalog.organization_member_create(world.caller("alice"), "region-sud", "od-carol", "editor")
    world.catalog.organization_member_create(world.caller("bob"), "ville-nice", "od-carol", "editor")
    world.catalog.package_create(world.caller("carol"), {**DATASET, "name": "parkings", "owner_org": "ville-nice"})
    shown = world.catalog.organization_show(world.caller("bob"), "ville-nice")
    assert {"name": "od-carol", "capacity": "editor"} in shown["users"]
    assert "users" not in world.catalog.organization_show(world.caller("anonymous"), "ville-nice")


def test_every_publication_is_a_version_and_earlier_versions_stay_readable(world: OpenDataWorld) -> None:
    alice, anonymous = world.caller("alice"), world.caller("anonymous")
    first = world.catalog.package_create(alice, DATASET)
    world.catalog.package_update(alice, {"id": "bornes-irve", "title": "Bornes IRVE 2025"}, patch=True)
    upload = Upload("bornes.csv", io.BytesIO(b"id,nom\n1,Aix\n"))
    resource = world.catalog.resource_create(alice, {"package_id": "bornes-irve", "format": "CSV"}, upload)
    assert resource["hash"] == "sha256:" + hashlib.sha256(b"id,nom\n1,Aix\n").hexdigest()
    world.catalog.resource_update(
        alice, {"id": resource["id"], "format": "CSV"}, Upload("bornes.csv", io.BytesIO(b"id,nom\n1,Aix\n2,Nice\n"))
    )
    versions = world.catalog.package_versions(anonymous, "bornes-irve")
    assert [v["version"] for v in versions] == [1, 2, 3, 4]
    assert [v["operation"] for v in versions] == [
        "package_create",
        "package_patch",
        "resource_create",
        "resource_update",
    ]
    v1 = world.catalog.package_show(anonymous, "bornes-irve", version=1)
    assert v1["title"] == DATASET["title"] and len(v1["resources"]) == 1
    assert v1["massalia_version_sha256"] == first["massalia_version_sha256"] == versions[0]["sha256"]
    # The stored document hashes to its recorded hash: a third party can recompute it.
    stored = {k: v for k, v in v1.items() if k != "massalia_version_sha256"}
    assert document_hash(stored) == versions[0]["sha256"]
    record = json.loads(publication_record(stored))
    assert record["version"] == 1 and record["document_sha256"] == versions[0]["sha256"]
    # Version 3's file is still served after version 4 replaced it.
    v3 = world.catalog.package_show(anonymous, "bornes-irve", version=3)
    uploaded = next(r for r in v3["resources"] if r["url_type"] == "upload")
    path, _ = world.catalog.resource_file(anonymous, "bornes-irve", uploaded["id"], "bornes.csv")
    assert path.read_bytes() in (b"id,nom\n1,Aix\n", b"id,nom\n1,Aix\n2,Nice\n")
    old = world.catalog.file_path(uploaded["hash"].removeprefix("sha256:"))
    assert old.read_bytes() == b"id,nom\n1,Aix\n"
    with pytest.raises(ValidationFailed):
        world.catalog.package_show(anonymous, "bornes-irve", version=99)


def test_a_deleted_dataset_leaves_the_public_catalog_but_not_its_producers(world: OpenDataWorld) -> None:
    alice = world.caller("alice")
    world.catalog.package_create(alice, DATASET)
    world.catalog.package_delete(alice, "bornes-irve")
    with pytest.raises(NotFound):
        world.catalog.package_show(world.caller("anonymous"), "bornes-irve")
    with pytest.raises(NotFound):
        world.catalog.package_show(world.caller("bob"), "bornes-irve")
    assert world.catalog.package_show(alice, "bornes-irve")["state"] == "deleted"
    assert world.catalog.package_list(world.caller("anonymous")) == []


def test_bad_input_names_each_field_and_publishes_nothing(world: OpenDataWorld) -> None:
    alice = world.caller("alice")
    with pytest.raises(ValidationFailed) as failed:
        world.catalog.package_create(
            alice,
            {
                **DATASET,
                "name": "Bad Name",
                "license_id": "wtfpl",
                "frequency": "hourly",
                "temporal_start": "2024-13-01",
                "groups": [{"name": "mobilite"}],
            },
        )
    assert {"name", "license_id", "frequency", "temporal_start"} <= set(failed.value.errors)
    with pytest.raises(ValidationFailed, match="groups"):
        world.catalog.package_create(alice, {**DATASET, "groups": [{"name": "nope"}]})
    with pytest.raises(ValidationFailed, match="url"):
        world.catalog.package_create(alice, {**DATASET, "resources": [{"url": "javascript:alert(1)"}]})
    world.catalog.package_create(alice, DATASET)
    with pytest.raises(ValidationFailed, match="already in use"):
        world.catalog.package_create(alice, DATASET)
    with pytest.raises(ValidationFailed, match="owner_org"):
        world.catalog.package_create(alice, {**DATASET, "name": "x-y", "owner_org": "nowhere"})
    assert world.catalog.package_list(world.caller("anonymous")) == ["bornes-irve"]


def test_an_uploaded_file_name_cannot_escape_the_store(world: OpenDataWorld) -> None:
    """Attack: an upload named ``../../x`` writing or being served outside the content-addressed store."""
    alice = world.caller("alice")
    world.catalog.package_create(alice, DATASET)
    resource = world.catalog.resource_create(
        alice, {"package_id": "bornes-irve"}, Upload("../../../etc/passwd", io.BytesIO(b"root:x:0:0"))
    )
    assert resource["url"].endswith("/download/passwd") and "/../" not in resource["url"]
    stored = world.catalog.file_path(resource["hash"].removeprefix("sha256:"))
    assert stored.is_relative_to(world.catalog.files) and stored.read_bytes() == b"root:x:0:0"
    with pytest.raises(NotFound):
        world.catalog.resource_file(world.caller("anonymous"), "bornes-irve", resource["id"], "../passwd")


def test_another_organization_s_resource_id_is_neither_taken_over_nor_a_crash(world: OpenDataWorld) -> None:
    """Attack: Bob lists Alice's resource id in his own dataset's resources (as a dump being loaded would)."""
    alice_doc = world.catalog.package_create(world.caller("alice"), DATASET)
    theirs = alice_doc["resources"][0]["id"]
    mine = world.catalog.package_create(
        world.caller("bob"),
        {"name": "parkings", "owner_org": "ville-nice", "resources": [{"id": theirs, "url": "https://evil.example/"}]},
    )
    assert mine["resources"][0]["id"] != theirs
    world.catalog.package_update(
        world.caller("bob"),
        {"name": "parkings", "owner_org": "ville-nice", "resources": [{"id": theirs, "url": "https://evil.example/2"}]},
    )
    kept = world.catalog.package_show(world.caller("anonymous"), "bornes-irve")["resources"]
    assert kept == alice_doc["resources"]
