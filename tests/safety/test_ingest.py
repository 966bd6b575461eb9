"""Live ingest over HTTP-shaped calls and MQTT: validation naming JSON paths, idempotency, rights, a broker restart.

The MQTT tests run a real mosquitto (tests/safety/mqtt_broker.py) on 127.0.0.1; the subscriber is
:class:`massalia.safety.mqtt.Subscriber` writing into an in-memory warehouse through the guarded service.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import paho.mqtt.publish as publish
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from live_world import CENTRE, CITY_TZ, City, event, make_city, raw
from mqtt_broker import Broker
from pydantic import ValidationError

from massalia.engine import Engine, EngineError, connect
from massalia.governance import AccessDenied
from massalia.safety.alarms import service, state
from massalia.safety.ingest import MAX_EVENT_BYTES, MESSAGES, IngestError, LiveEvent, parse_event
from massalia.safety.log import INCIDENTS, LINKS, REPORTS
from massalia.safety.mqtt import Subscriber, topic_of


@pytest.fixture(scope="module")
def city(tmp_path_factory: pytest.TempPathFactory) -> Iterator[City]:
    world = make_city(tmp_path_factory.mktemp("ingest-gov"))
    try:
        yield world
    finally:
        world.gov.close()


@pytest.fixture
def engine() -> Iterator[Engine]:
    warehouse = connect("duckdb")
    try:
        yield warehouse
    finally:
        service.forget(warehouse)
        warehouse.close()


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    running = Broker(tmp_path_factory.mktemp("mosquitto"))
    running.start()
    try:
        yield running
    finally:
        running.stop()


def test_bad_events_are_refused_naming_the_json_path() -> None:
    good = event(1)
    cases: list[tuple[bytes, str]] = [
        (b"{", r"^\$: not JSON"),
        (b"[1, 2]", r"^\$: expected a JSON object"),
        (b"x" * (MAX_EVENT_BYTES + 1), r"^\$: 16385 bytes, over"),
        (raw({**good, "source": "sms"}), r"^\$\.source:"),
        (raw({**good, "occurred_at": "07/12/2026 20:00"}), r"^\$\.occurred_at:"),
        (raw({**good, "occurred_at": "2026-12-07T20:00:00"}), r"UTC offset"),
        (raw({**good, "lat": 123.0}), r"^\$\.lat:"),
        (raw({**good, "narrative": "x" * 5000}), r"^\$\.narrative:"),
        (raw({**good, "message_id": "a b'; DROP TABLE x"}), r"^\$\.message_id:"),
        (raw({**good, "extra_field": 1}), r"^\$\.extra_field:"),
        (raw({k: v for k, v in good.items() if k != "local_code"}), r"^\$\.local_code:"),
    ]
    for body, pattern in cases:
        with pytest.raises(IngestError, match=pattern):
            parse_event(body)


def test_mapping_refuses_unknown_codes_impossible_places_and_dates(city: City, engine: Engine) -> None:
    operator = city.caller("operator")
    cases = [
        (event(1, code="NOPE"), r"\$\.local_code: unmapped local code 'NOPE' of source 'csu'"),
        (event(2, point=(5.20, 43.30)), r"\$\.lat: coordinates outside the city outline"),
        (event(3, at=dt.datetime(1999, 1, 1, tzinfo=CITY_TZ)), r"\$\.occurred_at: .* before 2000"),
        (event(4, at=dt.datetime.now(CITY_TZ) + dt.timedelta(days=2)), r"\$\.occurred_at: .* in the future"),
        (event(5, zone="D14"), r"\$\.zone: D14 but the point lies in D0"),
    ]
    for body, pattern in cases:
        with pytest.raises(IngestError, match=pattern):
            service.ingest(operator, engine, [raw(body)], channel="http")
    assert not engine.table_exists(REPORTS) or engine.row_count(REPORTS) == 0


def test_idempotent_by_source_and_message_id_versions_and_cross_source_dedup(city: City, engine: Engine) -> None:
    operator = city.caller("operator")
    first = service.ingest(operator, engine, [raw(event(1))], channel="http")["accepted"][0]
    assert first["outcome"] == "new_incident"
    again = service.ingest(operator, engine, [raw(event(1))], channel="http")["accepted"][0]
    assert again == {**first, "outcome": "duplicate"}, "a redelivered message answers with its first report"
    same_record = service.ingest(operator, engine, [raw({**event(1), "message_id": "csu-other"})], channel="http")
    assert same_record["accepted"][0]["outcome"] == "duplicate_row"
    edited = service.ingest(operator, engine, [raw({**event(1), "message_id": "csu-edit", "status": "clos"})],
                            channel="http")["accepted"][0]  # fmt: skip
    assert edited["outcome"] == "new_version" and edited["incident_id"] == first["incident_id"]
    patrol = event(1, source="mc", code="PM103", point=(CENTRE[0] + 0.0005, CENTRE[1]))
    joined = service.ingest(operator, engine, [raw(patrol)], channel="http")["accepted"][0]
    assert joined["outcome"] == "same_place_time" and joined["incident_id"] == first["incident_id"]
    assert engine.row_count(INCIDENTS) == 1 and engine.row_count(REPORTS) == 3
    lineage = engine.query(f"SELECT source_file, run_id, version FROM {REPORTS} ORDER BY report_id").to_pylist()
    assert lineage[0]["source_file"] == "live:http:csu-m1" and lineage[1]["version"] == 2
    assert engine.row_count(MESSAGES) == 4, "one row per message id (the repeat adds none)"


def test_attack_ingest_by_roles_without_the_right_writes_nothing_and_is_audited(city: City, engine: Engine) -> None:
    since = city.size()
    for who in ("analyst", "partner", "researcher", "manager"):
        with pytest.raises(AccessDenied, match=r"safety\.live\.ingest"):
            service.ingest(city.caller(who), engine, [raw(event(9))], channel="http")
    assert not engine.table_exists(REPORTS) or engine.row_count(REPORTS) == 0
    denied = [e for e in city.entries(since) if e["action"] == "safety.live.ingest"]
    assert len(denied) == 4 and all(e.get("decision") == "denied" or "denied_because" in e for e in denied)


def test_attack_a_forged_source_is_refused(city: City, engine: Engine) -> None:
    forged = raw(event(1, source="mc", code="PM103"))
    with pytest.raises(IngestError, match=r"\$\.source: 'mc' on the channel of source 'csu' \(forged source\)"):
        service.ingest(city.caller("engineer"), engine, [forged], channel="mqtt", channel_source="csu")


def wait_for(condition: Callable[[], bool], seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError("condition not reached in time")


def send(broker: Broker, bodies: list[dict[str, object]]) -> None:
    publish.multiple(
        [{"topic": topic_of(str(b["source"])), "payload": json.dumps(b), "qos": 1} for b in bodies],
        hostname="127.0.0.1",
        port=broker.port,
    )


def test_mqtt_broker_restart_loses_nothing_and_duplicates_nothing(
    city: City, engine: Engine, broker: Broker, tmp_path: Path
) -> None:
    """Messages sent while the subscriber is away, then while the broker restarts, all arrive once."""
    feed = city.caller("engineer", channel="mqtt")
    bodies = [event(i, at=dt.datetime(2026, 12, 7, 18, 0, tzinfo=CITY_TZ) + dt.timedelta(minutes=i),
                    point=(5.37 + 0.001 * (i % 10), 43.30 + 0.001 * (i // 10))) for i in range(1, 121)]  # fmt: skip
    client_id = f"massalia-test-{tmp_path.name}"
    subscriber = Subscriber(feed, engine, client_id=client_id, url=broker.url).start()
    wait_for(lambda: subscriber.stats.connects >= 1)
    time.sleep(0.3)  # the subscription is acknowledged
    send(broker, bodies[:40])
    wait_for(lambda: subscriber.stats.accepted >= 40)
    # The subscriber goes away: the persistent session keeps what arrives meanwhile.
    subscriber.stop()
    send(broker, bodies[40:80])
    # The broker goes away too and comes back (its persistence keeps the session's queue).
    broker.stop()
    broker.start()
    subscriber = Subscriber(feed, engine, client_id=client_id, url=broker.url).start()
    wait_for(lambda: subscriber.stats.accepted >= 40)
    # The broker stops under the subscriber's feet; the subscriber reconnects by itself.
    broker.stop()
    broker.start()
    wait_for(lambda: subscriber.stats.connects >= 2)
    time.sleep(0.3)
    send(broker, bodies[80:])
    send(broker, bodies[70:100])  # a feed sent twice
    wait_for(lambda: engine.row_count(MESSAGES) >= 120 and subscriber.stats.received >= 70)
    subscriber.stop()
    ids = engine.query(f"SELECT source_id FROM {REPORTS}").column("source_id").to_pylist()
    assert len(ids) == 120 and len(set(ids)) == 120, "every event once, none lost, none duplicated"
    assert engine.row_count(MESSAGES) == 120
    assert subscriber.stats.rejected == []


def test_a_batch_gives_the_same_outcomes_and_rows_as_one_event_at_a_time(city: City) -> None:
    """The set-based batch path (staged keys, joins) against the same feed sent one message per call."""
    _batch_against_one_at_a_time(city, lambda: connect("duckdb"))


@pytest.mark.postgres
def test_a_batch_gives_the_same_outcomes_on_postgresql(
    city: City, pg_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MASSALIA_PG_DSN", pg_dsn)
    schemas = iter(("t_live_one", "t_live_batch"))
    _batch_against_one_at_a_time(city, lambda: connect("postgres", schema=next(schemas)))


def _batch_against_one_at_a_time(city: City, open_engine: Callable[[], Engine]) -> None:
    operator = city.caller("operator")
    at = dt.datetime(2026, 12, 7, 20, 0, tzinfo=CITY_TZ)
    feed = [
        event(1, at=at),
        event(1, at=at),  # the same message redelivered inside the batch
        {**event(1, at=at), "message_id": "csu-other"},  # the same record under another message id
        {**event(1, at=at), "message_id": "csu-edit", "status": "clos"},  # its next version
        event(1, source="mc", code="PM103", at=at, point=(CENTRE[0] + 0.0005, CENTRE[1])),  # another source
        event(2, at=at + dt.timedelta(minutes=3), point=None),  # a district alone: a new incident
        event(3, code="VOL04", at=at + dt.timedelta(minutes=4), point=(CENTRE[0] + 0.01, CENTRE[1] + 0.004)),
        {
            **event(3, code="VOL04", at=at + dt.timedelta(minutes=4), point=(CENTRE[0] + 0.01, CENTRE[1] + 0.004)),
            "message_id": "csu-m3-again",
            "narrative": "vol à l'arraché",
        },
    ]
    kept = ("source", "source_id", "version", "content_hash", "incident_id", "report_id", "source_file")
    results = []
    for batched in (False, True):
        warehouse = open_engine()
        try:
            service.ingest(operator, warehouse, [raw(event(9, at=at - dt.timedelta(hours=1)))], channel="http")
            calls = [feed] if batched else [[body] for body in feed]
            outcomes = [o for call in calls for o in service.ingest(
                operator, warehouse, [raw(b) for b in call], channel="http")["accepted"]]  # fmt: skip
            outcomes += service.ingest(operator, warehouse, [raw(b) for b in feed[:3]], channel="http")["accepted"]
            rows = warehouse.query(f"SELECT {', '.join(kept)} FROM {REPORTS} ORDER BY report_id").to_pylist()
            messages = warehouse.query(
                f"SELECT source, message_id, report_id, incident_id, outcome FROM {MESSAGES} ORDER BY 1, 2"
            ).to_pylist()
            results.append((outcomes, rows, messages, warehouse.row_count(INCIDENTS)))
        finally:
            service.forget(warehouse)
            if warehouse.dialect == "postgres":
                warehouse.drop_schema()  # type: ignore[attr-defined]
            warehouse.close()
    (one_by_one, rows_1, messages_1, incidents_1), (batch, rows_b, messages_b, incidents_b) = results
    assert [o["outcome"] for o in batch] == [
        "new_incident", "duplicate", "duplicate_row", "new_version", "same_place_time", "new_incident",
        "new_incident", "new_version", "duplicate", "duplicate", "duplicate",
    ]  # fmt: skip
    assert batch == one_by_one
    assert rows_b == rows_1 and messages_b == messages_1 and incidents_b == incidents_1 == 4


def test_a_batch_whose_alarm_write_fails_leaves_nothing_and_is_counted_once_when_resent(
    city: City, engine: Engine
) -> None:
    """The reports and the alarms of a batch share one transaction (group commit), and a failure forgets both.

    The alarm table is dropped under the ingest, so the alarm write at the end of the next batch fails after its
    reports were written: none of them may stay, and the alarm engine, which had counted them in memory, must
    restart from the log. Resent, the batch is ingested once, and the brawl alarm counts 6 incidents (3 + 3), not
    9 (a stale window would hold the failed batch too).
    """
    operator = city.caller("operator")
    at = dt.datetime(2026, 12, 7, 21, 0, tzinfo=CITY_TZ)
    first = [raw(event(i, at=at + dt.timedelta(minutes=i))) for i in range(1, 4)]
    again = [raw(event(i, at=at + dt.timedelta(minutes=i))) for i in range(4, 7)]
    service.ingest(operator, engine, first, channel="http")
    engine.drop_table(state.ALARMS)
    before = {t: engine.row_count(t) for t in (REPORTS, INCIDENTS, LINKS, MESSAGES)}
    with pytest.raises(EngineError):
        service.ingest(operator, engine, again, channel="http")
    assert {t: engine.row_count(t) for t in before} == before == {REPORTS: 3, INCIDENTS: 3, LINKS: 3, MESSAGES: 3}
    result = service.ingest(operator, engine, again, channel="http")
    assert [o["outcome"] for o in result["accepted"]] == ["new_incident"] * 3, "nothing of the failed try stayed"
    assert engine.row_count(REPORTS) == 6 and engine.row_count(MESSAGES) == 6
    brawls = [a for a in service.situation(engine).unclosed() if a.rule_id == "rixes-secteur"]
    assert len(brawls) == 1 and brawls[0].event_count == 6, "the window holds the log's incidents, each once"
    assert [o["outcome"] for o in service.ingest(operator, engine, again, channel="http")["accepted"]] == [
        "duplicate"
    ] * 3


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    text=st.text(alphabet=st.characters(codec="utf-8"), max_size=30),
    spaces=st.sampled_from(["", " ", "\t", " \n"]),
    lon=st.one_of(st.floats(allow_nan=False), st.integers(-200, 200)),
    when=st.sampled_from(["2026-12-07T20:00:00+01:00", "2026-12-07T19:00:00Z", "2026-12-07T20:00:00.123456+01:00",
                          "2026-12-07 20:00:00+01:00", "2026-12-07T20:00:00", "1765134000", "07/12/2026"]),
    drop=st.sampled_from(["", "lat", "local_code", "message_id"]),
)  # fmt: skip
def test_the_one_pass_json_validation_accepts_exactly_what_the_two_pass_one_does(
    text: str, spaces: str, lon: float, when: str, drop: str
) -> None:
    """Every body the fast path (pydantic's JSON validator) accepts, the reference (json.loads, then the model)
    accepts with the same values; a body the fast path refuses is refused by the reference's own message."""
    body: dict[str, object] = {**event(1), "message_id": f"{spaces}m-1{spaces}", "narrative": text,
                               "occurred_at": when, "lon": lon}  # fmt: skip
    body.pop(drop, None)
    data = json.dumps(body, ensure_ascii=bool(len(text) % 2)).encode()
    try:
        reference: LiveEvent | str = LiveEvent.model_validate(json.loads(data))
    except ValidationError as error:
        reference = str(error.errors()[0]["loc"])
    try:
        parsed: LiveEvent | str = parse_event(data)
    except IngestError as error:
        parsed = error.path
        assert isinstance(reference, str), f"the reference accepts what the fast path refused: {error}"
        return
    assert parsed == reference, "the fast path accepted a body the reference refuses, or read it otherwise"
    assert isinstance(parsed, LiveEvent) and parsed.content_hash() == reference.content_hash()


def _reference_hash(event: LiveEvent) -> str:
    """The content hash as first written (the log's stored hashes): the generic encoder with sorted keys."""
    import hashlib

    body = event.model_dump(mode="json", exclude={"message_id"})
    return hashlib.md5(json.dumps(body, sort_keys=True).encode()).hexdigest()  # noqa: S324 - a content key


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    text=st.text(max_size=40),
    number=st.floats(min_value=0, max_value=1_300_000, allow_nan=False),
    micro=st.integers(0, 999_999),
    offset=st.sampled_from(["Z", "+01:00", "-03:30", "+00:00"]),
    place=st.sampled_from(["lonlat", "l93", "zone"]),
)
def test_content_hash_bytes_are_the_generic_encoders(
    text: str, number: float, micro: int, offset: str, place: str
) -> None:
    """The field-by-field hash writes the very bytes ``json.dumps(sort_keys=True)`` wrote: a record logged before
    keeps its hash (a changed hash would turn every repeat of an old record into a new version). Awkward text
    (quotes, backslashes, control and non-ASCII characters), whole and tiny floats, microseconds, offsets."""
    body: dict[str, object] = {
        "source": "csu", "message_id": "m1", "source_id": "r/1", "local_code": "VOL04",
        "occurred_at": f"2026-12-07T21:00:00.{micro:06d}{offset}",
        "narrative": text or None, "address": text, "parties": None, "status": text[:64],
    }  # fmt: skip
    if place == "lonlat":
        body |= {"lon": min(number / 1e4, 180.0), "lat": 43.0}
    elif place == "l93":
        body |= {"x_l93": number, "y_l93": 6_250_000}
    else:
        body |= {"zone": "D07"}
    try:
        event = LiveEvent.model_validate(body)
    except ValidationError:
        return
    assert event.content_hash() == _reference_hash(event)


def test_a_message_or_record_id_of_another_source_is_not_a_repeat(city: City, engine: Engine) -> None:
    """The key of a message is (source, message id), of a record (source, record id): the same ids from another
    source are another message and another record, not a repeat nor a later version."""
    operator = city.caller("operator")
    shared = {"message_id": "shared-m1", "source_id": "shared-r1"}
    first = service.ingest(operator, engine, [raw({**event(1), **shared})], channel="http")["accepted"]
    other = {**event(1, source="mc", code="PM103", point=(CENTRE[0] + 0.0005, CENTRE[1])), **shared}
    again = service.ingest(operator, engine, [raw(other), raw({**event(1), **shared})], channel="http")["accepted"]
    assert first[0]["outcome"] == "new_incident"
    assert [o["outcome"] for o in again] == ["same_place_time", "duplicate"]
    assert again[0]["report_id"] != first[0]["report_id"] and again[1] == {**first[0], "outcome": "duplicate"}
    versions = engine.query(f"SELECT source, version FROM {REPORTS} ORDER BY source").to_pylist()
    assert versions == [{"source": "csu", "version": 1}, {"source": "mc", "version": 1}]
