"""``massalia serve`` for real: uvicorn in a child process on a free local port, called over TCP."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_serve_answers_over_http(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "MASSALIA_HOME": str(tmp_path / "home")}
    env.pop("MASSALIA_API_CORS_ORIGINS", None)
    server = subprocess.Popen(
        [sys.executable, "-m", "massalia", "serve", "--port", str(port), "--log-level", "warning"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=2)
                break
            except httpx.TransportError:
                if server.poll() is not None or time.monotonic() > deadline:
                    output = server.stdout.read().decode() if server.stdout else ""
                    raise AssertionError(f"massalia serve did not start: {output}") from None
                time.sleep(0.2)
        assert response.status_code == 200 and response.json()["status"] == "ok"
        assert response.headers["x-content-type-options"] == "nosniff"
        assert "server" not in response.headers  # no server banner
        denied = httpx.get(f"http://127.0.0.1:{port}/api/v1/projects", timeout=5)
        assert denied.status_code == 401 and denied.json()["error"]["code"] == "unauthenticated"
        assert (tmp_path / "home" / "metadata.sqlite").is_file()
    finally:
        server.terminate()
        server.wait(timeout=30)
