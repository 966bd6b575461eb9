"""A deleted dataset, and each of its resources, answer outsiders exactly as an id that never existed."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from opendata_world import OpenDataWorld

from massalia.governance import NotFound

DATASET = {
    "name": "arretes-retires",
    "title": "Arrêtés retirés",
    "owner_org": "region-sud",
    "license_id": "etalab-2.0",
    "resources": [{"url": "https://example.org/a.csv", "format": "CSV", "name": "A"}],
}


def _message(call: Callable[[], Any]) -> str:
    with pytest.raises(NotFound) as raised:
        call()
    return str(raised.value)


@pytest.mark.parametrize("who", ["anonymous", "bob", "carol"])
def test_an_outsider_cannot_tell_a_deleted_dataset_or_resource_from_one_that_never_existed(
    world: OpenDataWorld, who: str
) -> None:
    alice, outsider, catalog = world.caller("alice"), world.caller(who), world.catalog
    created = catalog.package_create(alice, DATASET)
    resource_id = created["resources"][0]["id"]
    catalog.package_delete(alice, DATASET["name"])
    never_name, never_id = "jamais-publie", str(uuid.uuid4())

    deleted = _message(lambda: catalog.package_show(outsider, DATASET["name"]))
    never = _message(lambda: catalog.package_show(outsider, never_name))
    assert deleted.replace(DATASET["name"], "?") == never.replace(never_name, "?")

    for call in (catalog.resource_show, catalog.readable_resource):
        deleted = _message(lambda call=call: call(outsider, resource_id))
        never = _message(lambda call=call: call(outsider, never_id))
        assert deleted.replace(resource_id, "?") == never.replace(never_id, "?")
        assert created["id"] not in deleted  # the deleted dataset's id is never named

    # its producer still sees both
    assert catalog.resource_show(alice, resource_id)["id"] == resource_id
