"""A real MQTT broker (Debian's mosquitto) for the live-ingest tests: 127.0.0.1, a free port, a tmp dir.

Configured as /work/shared/MACHINE-NOTES.md "MQTT" says so that no message is dropped under load (no queue or
in-flight limits), with persistence on so that a persistent session's queued messages survive a restart.
Skipped only when mosquitto is absent and not under CI (under CI its absence fails).
"""

from __future__ import annotations

import getpass
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

MOSQUITTO = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None)


def require_mosquitto() -> str:
    if MOSQUITTO is None:
        if os.environ.get("CI"):
            pytest.fail("mosquitto is not installed (scripts/install-system installs it); CI must run the MQTT tests")
        pytest.skip("mosquitto is not installed (apt-get install mosquitto); the MQTT tests need a real broker")
    return MOSQUITTO


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Broker:
    """A mosquitto process that can be stopped (SIGTERM: it saves its persistence) and started again."""

    def __init__(self, root: Path) -> None:
        self.binary = require_mosquitto()
        self.root = root
        self.port = free_port()
        self.config = root / "mosquitto.conf"
        self.config.write_text(
            # Started as root the broker would drop to the mosquitto user, who cannot reach pytest's tmp dirs.
            f"user {getpass.getuser()}\nlistener {self.port} 127.0.0.1\nallow_anonymous true\npersistence true\n"
            f"persistence_location {root}/\nautosave_interval 1\nmax_queued_messages 0\nmax_queued_bytes 0\n"
            f"max_inflight_messages 0\nlog_dest file {root}/mosquitto.log\n"
        )
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.process = subprocess.Popen([self.binary, "-c", str(self.config)], stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"mosquitto did not listen on {self.port}; see {self.root}/mosquitto.log")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=10)
        self.process = None
