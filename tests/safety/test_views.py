"""Saved searches that notify on new matches, and saved views shared within a role: owners, roles, attacks."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from safety_world import Loaded
from search_world import City, make_city

from massalia.governance import AccessDenied, InvalidRequest, NotFound
from massalia.safety import search, views
from massalia.safety.log import REPORTS
from massalia.safety.query import IncidentFilter
from massalia.text import TantivyIndex


@pytest.fixture(scope="module")
def city(tmp_path_factory: pytest.TempPathFactory) -> Iterator[City]:
    made = make_city(tmp_path_factory.mktemp("views-gov"))
    try:
        yield made
    finally:
        made.gov.close()


@pytest.fixture(scope="module")
def partial_index(city: City, loaded: Loaded, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    """An index holding the reports up to a cut (as if the rest had not been loaded yet), and the cut."""
    root = tmp_path_factory.mktemp("views-index")
    search.index_reports(city.caller("admin"), loaded.engine, root)
    cut = loaded.engine.scalar_int(f"SELECT CAST(quantile_disc(report_id, 0.5) AS BIGINT) FROM {REPORTS}")
    index = TantivyIndex.open(root, search.INDEX_NAME, search.SCHEMA)
    later = loaded.engine.query(f"SELECT report_id FROM {REPORTS} WHERE report_id > {cut}").to_pylist()
    index.delete([r["report_id"] for r in later])
    index.commit()
    return root, cut


def test_a_saved_search_notifies_only_the_matches_indexed_since_its_last_check(
    city: City, loaded: Loaded, partial_index: tuple[Path, int]
) -> None:
    root, cut = partial_index
    operator = city.caller("operator")
    saved = views.save_search(operator, loaded.engine, root, "Auditions du centre", "audition")
    assert saved["checked_up_to"] <= cut
    first = views.check_searches(operator, loaded.engine, root)["searches"]
    assert [s["new_matches"] for s in first if s["search_id"] == saved["search_id"]] == [0], "nothing new yet"
    search.index_reports(city.caller("admin"), loaded.engine, root)  # the later reports arrive
    everything = search.search_reports(operator, loaded.engine, root, "audition").total or 0
    before = search.search_reports(
        operator, loaded.engine, root, "audition",
        report_ids=[r["report_id"] for r in loaded.engine.query(
            f"SELECT report_id FROM {REPORTS} WHERE report_id <= {saved['checked_up_to']}").to_pylist()],
    ).total or 0  # fmt: skip
    checked = next(s for s in views.check_searches(operator, loaded.engine, root)["searches"]
                   if s["search_id"] == saved["search_id"])  # fmt: skip
    assert checked["mode"] == "identified" and checked["new_matches"] == everything - before > 0
    assert all(h["report_id"] > saved["checked_up_to"] for h in checked["hits"]), "only new reports"
    again = next(s for s in views.check_searches(operator, loaded.engine, root)["searches"]
                 if s["search_id"] == saved["search_id"])  # fmt: skip
    assert again["new_matches"] == 0 and again["new_reports"] == 0, "the mark moved on"


def test_attack_saved_searches_are_their_owners_alone(city: City, loaded: Loaded,
                                                      partial_index: tuple[Path, int]) -> None:  # fmt: skip
    root, _ = partial_index
    owner, other = city.caller("operator"), city.caller("operator2")
    saved = views.save_search(owner, loaded.engine, root, "Nom d'une victime", "Dupont")
    listed = json.dumps(views.list_searches(other, loaded.engine), ensure_ascii=False)
    assert "Dupont" not in listed and "victime" not in listed
    with pytest.raises(NotFound):
        views.delete_search(other, loaded.engine, saved["search_id"])
    with pytest.raises(NotFound):
        views.check_searches(other, loaded.engine, root, search_id=saved["search_id"])
    assert any(s["search_id"] == saved["search_id"] for s in views.list_searches(owner, loaded.engine)["searches"])


def test_attack_a_partner_cannot_keep_or_check_saved_searches_and_an_analyst_gets_counts_only(
    city: City, loaded: Loaded, partial_index: tuple[Path, int]
) -> None:
    root, _ = partial_index
    partner = city.caller("partner")
    with pytest.raises(AccessDenied):
        views.save_search(partner, loaded.engine, root, "Tout", "audition")
    with pytest.raises(AccessDenied):
        views.check_searches(partner, loaded.engine, root)
    analyst = city.caller("analyst")
    saved = views.save_search(analyst, loaded.engine, root, "Auditions", "audition")
    # Make every indexed report "new" for this search: the check then runs over all of them.
    loaded.engine.execute(f"UPDATE {views.SEARCHES} SET checked_up_to = 0 WHERE search_id = {saved['search_id']}")
    result = next(s for s in views.check_searches(analyst, loaded.engine, root)["searches"]
                  if s["search_id"] == saved["search_id"])  # fmt: skip
    assert result["mode"] == "count" and result["hits"] == [] and result["release"]["mode"] == "noisy"
    assert "fragment" not in json.dumps(result)


def test_views_are_shared_within_a_role_and_changed_only_by_their_owner(city: City, loaded: Loaded) -> None:
    analyst, colleague = city.caller("analyst"), city.caller("analyst2")
    operator, partner = city.caller("operator"), city.caller("partner")
    layout = {"by": "month", "bucket": "week", "cell": 1000, "panels": ["stats", "map", "timeline"]}
    shared = views.save_view(analyst, loaded.engine, "Nord, été", IncidentFilter(zones=("D15", "D16")), layout,
                             share="safety_analyst")  # fmt: skip
    private = views.save_view(analyst, loaded.engine, "Brouillon", IncidentFilter(), {"by": "zone"})
    seen = {v["view_id"]: v for v in views.list_views(colleague, loaded.engine)["views"]}
    assert shared["view_id"] in seen and private["view_id"] not in seen
    opened = views.get_view(colleague, loaded.engine, shared["view_id"])
    assert opened["layout"] == layout and opened["filter"]["zones"] == ["D15", "D16"] and not opened["mine"]
    assert views.filter_from(opened["filter"]) == IncidentFilter(zones=("D15", "D16"))
    # another role does not see it; another user's private view is "not found"; only the owner deletes
    assert shared["view_id"] not in {v["view_id"] for v in views.list_views(operator, loaded.engine)["views"]}
    with pytest.raises(NotFound):
        views.get_view(operator, loaded.engine, shared["view_id"])
    with pytest.raises(NotFound):
        views.get_view(colleague, loaded.engine, private["view_id"])
    with pytest.raises(NotFound):
        views.delete_view(colleague, loaded.engine, shared["view_id"])
    with pytest.raises(AccessDenied):
        views.list_views(partner, loaded.engine)
    with pytest.raises(InvalidRequest, match="share"):
        views.save_view(operator, loaded.engine, "Pour les analystes", IncidentFilter(), {}, share="safety_analyst")
    assert views.delete_view(analyst, loaded.engine, shared["view_id"]) == {"deleted": shared["view_id"]}
    with pytest.raises(NotFound):
        views.get_view(colleague, loaded.engine, shared["view_id"])


def test_attack_sql_in_names_and_layouts_is_kept_as_text(city: City, loaded: Loaded) -> None:
    manager = city.caller("manager")
    name = "x'); DROP TABLE safety_saved_view; --"
    made = views.save_view(manager, loaded.engine, name, IncidentFilter(), {"note": "' OR 1=1 --"})
    assert loaded.engine.table_exists(views.VIEWS)
    back = views.get_view(manager, loaded.engine, made["view_id"])
    assert back["name"] == name and back["layout"] == {"note": "' OR 1=1 --"}
    with pytest.raises(InvalidRequest, match="layout"):
        views.save_view(manager, loaded.engine, "Trop grand", IncidentFilter(), {"x": "a" * 10_000})
