"""Live ingest over MQTT: a subscriber that appends each message to the incident log, losing and duplicating none.

It subscribes to ``<prefix>/<source>/events`` (QoS 1) with a **persistent session** (a fixed client id,
``clean_session=False``), so the broker keeps the messages that arrive while the subscriber or the broker is
away, and acknowledges a message (**manual acks**) only after its event is written: a crash before the write
means the broker delivers it again. A message delivered twice (QoS 1 is at least once) is recognised by its
``(source, message id)`` and adds nothing (:func:`massalia.safety.ingest.append`). The topic binds the source:
an event claiming another source than its topic's is refused as forged.

The broker's address is :data:`URL_SETTING` (``mqtt://host:port``). Messages are ingested in small batches
(up to :data:`BATCH` per write) by one worker thread, with the caller that started the subscriber (its right
``safety.live.ingest`` is checked, and audited, for each batch).
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt

from massalia.engine import Engine
from massalia.governance import Caller
from massalia.safety.alarms import service
from massalia.safety.ingest import IngestError
from massalia.safety.query import SOURCES

URL_SETTING = "MASSALIA_MQTT_URL"
DEFAULT_URL = "mqtt://127.0.0.1:1883"
PREFIX = "massalia/safety"
BATCH = 2000
"""Messages written per batch at most. A batch costs a fixed part (about ten statements, one commit, one signed
tree head) and a part per event: at a high rate, larger batches keep up (500 capped the feed near 5,000 events/s).
The broker must let that many QoS 1 messages be in flight unacknowledged (mosquitto's ``max_inflight_messages``,
20 by default, would cap every batch at 20)."""
log = logging.getLogger(__name__)


def broker_address(url: str | None = None) -> tuple[str, int]:
    """(host, port) of ``mqtt://host:port`` (the setting's, by default)."""
    parts = urlsplit(url or os.environ.get(URL_SETTING) or DEFAULT_URL)
    if parts.scheme != "mqtt" or not parts.hostname:
        raise ValueError(f"{URL_SETTING}: expected mqtt://host:port, got {url!r}")
    return parts.hostname, parts.port or 1883


def topic_of(source: str, prefix: str = PREFIX) -> str:
    """The topic a source's feed publishes to."""
    return f"{prefix}/{source}/events"


@dataclass
class Stats:
    """What the subscriber did: messages received, events accepted, repeats, refusals (by message)."""

    received: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: list[str] = field(default_factory=list)
    connects: int = 0


class Subscriber:
    """Subscribe to every source's topic and ingest what arrives (start with :meth:`start`, stop with :meth:`stop`).

    Parameters
    ----------
    caller
        Who ingests (needs ``safety.live.ingest``).
    engine
        The warehouse written to (one writer: this subscriber's worker thread).
    client_id
        The persistent session's id: the same id after a restart resumes the session and its queued messages.
    """

    def __init__(
        self, caller: Caller, engine: Engine, *, client_id: str = "massalia-safety", url: str | None = None,
        prefix: str = PREFIX,
    ) -> None:  # fmt: skip
        self.caller, self.engine, self.prefix = caller, engine, prefix
        self.host, self.port = broker_address(url)
        self.stats = Stats()
        self._queue: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        self._stop = threading.Event()
        self._worker = threading.Thread(target=self._work, name="massalia-mqtt-ingest", daemon=True)
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=False,
            protocol=mqtt.MQTTv311,
            manual_ack=True,
        )
        self.client.reconnect_delay_set(min_delay=1, max_delay=2)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        if reason.is_failure:
            log.warning("MQTT connection refused: %s", reason)
            return
        self.stats.connects += 1
        client.subscribe([(topic_of(source, self.prefix), 1) for source in SOURCES])

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        self._queue.put(message)

    def start(self) -> Subscriber:
        """Connect (retrying until the broker answers) and start the worker."""
        self._worker.start()
        self.client.connect_async(self.host, self.port, keepalive=5)
        self.client.loop_start()
        return self

    def stop(self) -> None:
        """Drain what was received, stop the worker and disconnect (the session stays on the broker)."""
        self._stop.set()
        self._worker.join(timeout=30)
        self.client.disconnect()
        self.client.loop_stop()

    def _work(self) -> None:
        while not (self._stop.is_set() and self._queue.empty()):
            try:
                first = self._queue.get(timeout=0.05)
            except queue.Empty:
                continue
            batch = [first]
            while len(batch) < BATCH:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            self._ingest(batch)

    def _ingest(self, batch: list[mqtt.MQTTMessage]) -> None:
        by_source: dict[str, list[mqtt.MQTTMessage]] = {}
        for message in batch:
            self.stats.received += 1
            parts = message.topic.split("/")
            by_source.setdefault(parts[-2] if len(parts) >= 2 else "", []).append(message)
        for source, messages in by_source.items():
            payloads: list[bytes | str | dict[str, Any]] = [bytes(m.payload) for m in messages]
            for attempt in range(3):
                try:
                    if len(payloads) == 1:
                        try:
                            result = service.ingest(
                                self.caller, self.engine, payloads, channel="mqtt", channel_source=source
                            )
                        except IngestError as error:
                            result = {"accepted": [], "rejected": [{"index": 0, "error": str(error)}]}
                    else:
                        result = service.ingest(
                            self.caller, self.engine, payloads, channel="mqtt", channel_source=source
                        )
                    break
                except Exception:  # the warehouse is busy or failed: unacknowledged messages come again
                    log.exception("MQTT ingest failed (attempt %d)", attempt + 1)
                    time.sleep(0.5)
            else:
                continue  # not acknowledged: the broker delivers them again after a reconnect
            for row in result["accepted"]:
                if row["outcome"] in ("duplicate", "duplicate_row"):
                    self.stats.duplicates += 1
                else:
                    self.stats.accepted += 1
            self.stats.rejected += [str(r["error"]) for r in result["rejected"]]
            for message in messages:  # written (or refused for good): the broker may forget them
                self.client.ack(message.mid, message.qos)
