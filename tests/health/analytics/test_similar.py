"""Similar patients: the distance is Gower's, neighbours share the index's cancer, and the attacks fail.

Attacks (each a regression test that fails if the attack works again): a researcher without approval, a
member of another project naming a pseudonym of a different project, a person id passed instead of a
pseudonym, a pseudonym named under an aggregate project, a person of another site named under a site-scoped
project, and out-of-scope site patients returned as neighbours.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from analytics_world import World
from pydantic import ValidationError

from massalia.engine.duckdb import DuckDBEngine
from massalia.governance import (
    AccessDenied,
    Caller,
    Governance,
    InvalidRequest,
    NotFound,
    Principal,
    ProjectScope,
    Role,
    operator_principal,
)
from massalia.governance.pseudonym import pseudonymize
from massalia.health.analytics import run_groups, run_similar
from massalia.health.analytics.requests import GroupsRequest, SimilarRequest
from massalia.health.analytics.similar import SIMILARITY_WEIGHTS, Feature, GowerIndex, comparable, features_of
from massalia.health.analytics.similar_service import mart_index
from massalia.health.marts.catalogue import load_catalogue
from massalia.health.marts.filters import FilterSpec, parse_clause


def pseudonymized_project(gov: Governance, owner: Principal, dpo: Principal, *, sites: tuple[str, ...] = ()) -> int:
    project = gov.create_project(
        "Similar cases", "patients like this one and their outcomes", scope=ProjectScope(sites=sites),
        access_level="pseudonymized", expires=dt.date.today() + dt.timedelta(days=365), actor=owner,
    )  # fmt: skip
    request = gov.file_request(project.id, actor=owner, justification="protocol approved by the board")
    gov.decide_request(request.id, True, "proportionate", actor=dpo)
    return project.id


@dataclass
class Cases:
    world: World
    rita_pseudo: int  # rita's pseudonymized project, every site
    rita_north: int  # rita's pseudonymized project, chu_nord only
    olga_pseudo: int  # olga's pseudonymized project

    def pseudonym(self, project: int, person_id: int) -> str:
        key = self.world.gov.project_key(project)
        return str(pseudonymize([person_id], key=key, project=project)[0].as_py())

    def person(self, where: str) -> int:
        query = f"SELECT person_id FROM mart_patient WHERE {where} ORDER BY person_id LIMIT 1"
        return int(self.world.engine.query(query).column(0)[0].as_py())

    def persons_of(self, project: int, names: list[str]) -> list[int]:
        ids = self.world.engine.query("SELECT person_id FROM mart_patient").column(0).to_pylist()
        key = self.world.gov.project_key(project)
        lookup = dict(zip(pseudonymize(ids, key=key, project=project).to_pylist(), ids, strict=True))
        return [lookup[name] for name in names]


@pytest.fixture(scope="module")
def cases(world: World) -> Iterator[Cases]:
    dina = world.gov.create_user("dora", None, [Role.DPO], actor=operator_principal())
    yield Cases(world, pseudonymized_project(world.gov, world.rita, dina),
                pseudonymized_project(world.gov, world.rita, dina, sites=("chu_nord",)),
                pseudonymized_project(world.gov, world.olga, dina))  # fmt: skip


def _similar(cases: Cases, who: Principal, **fields: object) -> dict[str, object]:
    return run_similar(Caller(who, cases.world.gov), cases.world.engine, SimilarRequest(**fields))  # type: ignore[arg-type]


def test_gower_distance_matches_its_definition() -> None:
    """Independent per-pair computation of Gower's formula (missing on either side: the variable does not count)."""
    frame = pd.DataFrame({"site": ["lung", "lung", "breast", None], "stage": ["I", "IV", "II", "III"],
                          "age": [50.0, 70.0, np.nan, 90.0],
                          "er": [None, "positive", "positive", "negative"]})  # fmt: skip
    features = [Feature("site", "category", 3.0), Feature("stage", "ordinal", 2.0, ("I", "II", "III", "IV")),
                Feature("age", "number", 1.0), Feature("er", "category", 1.0)]  # fmt: skip
    index = GowerIndex.build(frame, features)
    ranks = {"I": 0, "II": 1, "III": 2, "IV": 3}
    for i in range(4):
        got = index.distances(index.row(i))
        for j in range(4):
            num = den = 0.0
            a, b = frame.iloc[i], frame.iloc[j]
            for name, weight in (("site", 3.0), ("er", 1.0)):
                if a[name] is not None and b[name] is not None:
                    num, den = num + weight * (a[name] != b[name]), den + weight
            num, den = num + 2.0 * abs(ranks[a["stage"]] - ranks[b["stage"]]) / 3, den + 2.0
            if not (np.isnan(a["age"]) or np.isnan(b["age"])):
                num, den = num + abs(a["age"] - b["age"]) / 40.0, den + 1.0
            assert got[j] == pytest.approx(num / den), (i, j)


def test_neighbours_of_a_breast_cancer_are_breast_cancers_like_it(cases: Cases) -> None:
    person = cases.person("primary_site = 'breast' AND stage_group = 'II' AND er_status = 'positive'")
    name = cases.pseudonym(cases.rita_pseudo, person)
    result = _similar(cases, cases.world.rita, project_id=cases.rita_pseudo, index_pseudonym=name, k=30)
    listed = result["listed"]
    assert isinstance(listed, list) and len(listed) == 30
    assert name not in {row["pseudonym"] for row in listed}, "the index is not its own neighbour"
    assert [row["distance"] for row in listed] == sorted(row["distance"] for row in listed)
    ids = cases.persons_of(cases.rita_pseudo, [row["pseudonym"] for row in listed])
    columns = "primary_site, stage_group, er_status, her2_status"
    rows = cases.world.engine.query(
        f"SELECT {columns} FROM mart_patient WHERE person_id IN ({','.join(map(str, ids))})"
    ).to_pandas()
    assert (rows["primary_site"] == "breast").all()
    # HER2 positive in ~15 % of breast cancers, nearly all of the neighbours of a HER2-positive index.
    assert (rows["er_status"] == "positive").all() and (rows["her2_status"] == "positive").mean() >= 0.9
    # Stage weighs 2 among ~25: neighbours share the index's stage far more often than breast cancers at large.
    share = "avg(CASE WHEN stage_group = 'II' THEN 1.0 ELSE 0 END)"
    base = cases.world.engine.query(f"SELECT {share} FROM mart_patient WHERE primary_site = 'breast'").column(0)[0]
    base = base.as_py()
    assert (rows["stage_group"] == "II").mean() >= base + 0.2
    agreement = {row["variable"]: row for row in result["agreement"]}  # type: ignore[attr-defined]
    assert agreement["primary_site"]["agreeing"]["count"] == 30
    assert result["agreement"][0]["similarity"] == 1.0  # type: ignore[index]
    assert result["index"]["values"]["primary_site"] == "breast"  # type: ignore[index]
    assert result["km"]["n"]["count"] == 30  # type: ignore[index]


def test_a_described_profile_gives_only_a_protected_aggregate(cases: Cases) -> None:
    profile = {"primary_site": "lung", "stage_group": "IV", "egfr_status": "positive", "age_at_diagnosis": 64}
    result = _similar(cases, cases.world.rita, project_id=cases.world.study, index_profile=profile, k=40)
    assert "listed" not in result, "no pseudonym leaves an aggregate-level project"
    # No membership oracle: a nearest distance of 0 would say that someone has exactly these values.
    assert result["distance"]["range"] is None  # type: ignore[index]
    assert result["neighbours"] == {"count": 40, "shown": "40"}
    counts = result["profile"]["primary_site"]["counts"]  # type: ignore[index]
    assert counts == {"lung": {"count": 40, "shown": "40"}}
    for row in result["agreement"]:  # type: ignore[attr-defined]
        for key in ("agreeing", "differing", "missing"):
            assert row[key]["count"] is None or row[key]["count"] >= 10
    with pytest.raises(InvalidRequest, match="at least 10"):
        _similar(cases, cases.world.rita, project_id=cases.world.study, index_profile=profile, k=5)
    with pytest.raises(InvalidRequest, match="outside the distance"):
        _similar(cases, cases.world.rita, project_id=cases.world.study, index_profile={"os_days": 3}, k=20)


@pytest.mark.parametrize("who", ["olga", "nora"])
def test_attack_a_researcher_without_approval_is_refused(cases: Cases, who: str) -> None:
    principal = cases.world.olga if who == "olga" else cases.world.nora
    name = cases.pseudonym(cases.rita_pseudo, cases.person("primary_site = 'lung'"))
    project = cases.rita_pseudo if who == "olga" else cases.world.draft
    with pytest.raises(AccessDenied, match="approved members of an approved, unexpired project"):
        _similar(cases, principal, project_id=project, index_pseudonym=name)


def test_attack_another_projects_pseudonym_does_not_resolve(cases: Cases) -> None:
    person = cases.person("primary_site = 'colorectal'")
    # olga's own pseudonym of the person works in her project (the control) ...
    own = _similar(cases, cases.world.olga, project_id=cases.olga_pseudo,
                   index_pseudonym=cases.pseudonym(cases.olga_pseudo, person), k=10)  # fmt: skip
    assert len(own["listed"]) == 10  # type: ignore[arg-type]
    # ... rita's project's pseudonym of the same person, learnt elsewhere, resolves to nobody in olga's project.
    with pytest.raises(NotFound, match="no person with pseudonym"):
        _similar(cases, cases.world.olga, project_id=cases.olga_pseudo,
                 index_pseudonym=cases.pseudonym(cases.rita_pseudo, person))  # fmt: skip


def test_attack_a_person_id_is_no_pseudonym(cases: Cases) -> None:
    person = cases.person("primary_site = 'lung'")
    for reference in (person, str(person), f"p{cases.rita_pseudo}-{person:016d}"):
        with pytest.raises((ValidationError, NotFound)):
            _similar(cases, cases.world.rita, project_id=cases.rita_pseudo, index_pseudonym=reference)


def test_attack_a_pseudonym_under_an_aggregate_project_is_refused(cases: Cases) -> None:
    name = cases.pseudonym(cases.world.study, cases.person("primary_site = 'lung'"))
    with pytest.raises(AccessDenied, match="needs a pseudonymized project"):
        _similar(cases, cases.world.rita, project_id=cases.world.study, index_pseudonym=name)


def test_attack_out_of_scope_site_patients_are_never_returned(cases: Cases) -> None:
    south = cases.person("care_site_code <> 'chu_nord' AND primary_site = 'lung'")
    with pytest.raises(NotFound):  # a patient of another site is nobody in a chu_nord project
        _similar(cases, cases.world.rita, project_id=cases.rita_north,
                 index_pseudonym=cases.pseudonym(cases.rita_north, south))  # fmt: skip
    north = cases.person("care_site_code = 'chu_nord' AND primary_site = 'lung'")
    # Asking explicitly for another site's patients gives nobody, and never the index's own neighbours elsewhere.
    result = _similar(cases, cases.world.rita, project_id=cases.rita_north, k=200,
                      index_pseudonym=cases.pseudonym(cases.rita_north, north))  # fmt: skip
    ids = cases.persons_of(cases.rita_north, [row["pseudonym"] for row in result["listed"]])  # type: ignore[attr-defined]
    sites = (
        cases.world.engine.query(
            f"SELECT DISTINCT care_site_code FROM mart_patient WHERE person_id IN ({','.join(map(str, ids))})"
        )
        .column(0)
        .to_pylist()
    )
    assert sites == ["chu_nord"]
    # Under the aggregate chu_nord project, asking for another site's patients gives no candidate.
    elsewhere = SimilarRequest(project_id=cases.world.north, index_profile={"primary_site": "lung"}, k=20,
                               filters=FilterSpec(all=[parse_clause("care_site_code = clcc_sud")]))  # fmt: skip
    aggregate = run_similar(Caller(cases.world.rita, cases.world.gov), cases.world.engine, elsewhere)
    assert aggregate["candidates"] == {"count": None, "shown": "<10"} and aggregate["provenance"]["rows_read"] == 0
    assert aggregate["km"]["n"] == {"count": None, "shown": "<10"}


def test_default_weights_are_documented_variables() -> None:
    assert set(SIMILARITY_WEIGHTS) >= {"primary_site", "histology_code", "stage_group", "ecog_at_diagnosis"}
    assert "brca_status" not in SIMILARITY_WEIGHTS and "n_comorbidities" not in SIMILARITY_WEIGHTS


def test_the_index_is_built_once_per_mart_build(cases: Cases) -> None:
    """The HTTP API opens an engine per request: the cache must outlive the engine object."""
    features = features_of(load_catalogue(), SIMILARITY_WEIGHTS)
    first = mart_index(cases.world.engine, features)
    with DuckDBEngine(cases.world.engine.path, read_only=True) as other:
        assert mart_index(other, features) is first


def test_attack_a_pseudonym_of_another_governance_does_not_resolve(cases: Cases, tmp_path: Path) -> None:
    """Two governances over one warehouse both have a project N: one's pseudonyms must not resolve in the other."""
    operator = operator_principal()
    with Governance(f"sqlite:///{(tmp_path / 'other.sqlite').as_posix()}", tmp_path / "ledger",
                    key_path=tmp_path / "master.key") as other:  # fmt: skip
        owner = other.create_user("rita", None, [Role.RESEARCHER], actor=operator)
        dpo = other.create_user("dina", None, [Role.DPO], actor=operator)
        projects = [pseudonymized_project(other, owner, dpo) for _ in range(cases.rita_pseudo)]
        assert projects[-1] == cases.rita_pseudo  # the same project id, another key
        person = cases.person("primary_site = 'lung'")
        mine = cases.pseudonym(cases.rita_pseudo, person)
        _similar(cases, cases.world.rita, project_id=cases.rita_pseudo, index_pseudonym=mine, k=10)  # cached
        request = SimilarRequest(project_id=projects[-1], index_pseudonym=mine, k=10)
        with pytest.raises(NotFound):
            run_similar(Caller(owner, other), cases.world.engine, request)


@pytest.mark.parametrize("variable", ["person_id", "year_of_diagnosis", "care_site_code", "residence_area"])
def test_attack_identifiers_years_and_places_cannot_describe_a_patient(cases: Cases, variable: str) -> None:
    """A listed neighbour's person id, calendar year or site beside its pseudonym would undo the pseudonymization."""
    name = cases.pseudonym(cases.rita_pseudo, cases.person("primary_site = 'lung'"))
    with pytest.raises(InvalidRequest, match="cannot describe a patient"):
        _similar(cases, cases.world.rita, project_id=cases.rita_pseudo, index_pseudonym=name,
                 weights={"primary_site": 1.0, variable: 1.0})  # fmt: skip
    with pytest.raises(InvalidRequest, match="cannot describe a patient"):
        run_groups(Caller(cases.world.rita, cases.world.gov), cases.world.engine,
                   GroupsRequest(project_id=cases.world.study, variables=["sex", variable]))  # fmt: skip
    assert all(comparable(load_catalogue().variable(name)) for name in SIMILARITY_WEIGHTS)


@pytest.mark.parametrize("clause", ["person_id = {person}", "diagnosis_date = {date}", "year_of_birth = {year}"])
def test_attack_a_filter_cannot_tie_a_pseudonym_to_a_person(cases: Cases, clause: str) -> None:
    """``person_id = 123`` would list that person's pseudonym, or say "found" only for it: refused, audited."""
    person = cases.person("primary_site = 'lung'")
    row = cases.world.engine.query(
        f"SELECT diagnosis_date, year_of_birth FROM mart_patient WHERE person_id = {person}"
    ).to_pylist()[0]
    text = clause.format(person=person, date=row["diagnosis_date"], year=row["year_of_birth"])
    filters = FilterSpec(all=[parse_clause(text)])
    name = cases.pseudonym(cases.rita_pseudo, person)
    for index in ({"index_pseudonym": name}, {"index_profile": {"primary_site": "lung"}}):
        with pytest.raises(AccessDenied, match="filter may not use"):
            _similar(cases, cases.world.rita, project_id=cases.rita_pseudo, filters=filters, k=5, **index)
    # Outside a pseudonymized project only protected aggregates come back: the same filter gives nothing per person.
    result = _similar(cases, cases.world.rita, project_id=cases.world.study, filters=filters, k=10,
                      index_profile={"primary_site": "lung"})  # fmt: skip
    assert "listed" not in result
    if clause.startswith("person_id"):
        assert result["neighbours"]["count"] is None and result["km"]["curve"][1:] == []
