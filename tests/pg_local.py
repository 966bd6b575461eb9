"""A throwaway local PostgreSQL server, for the tests and the benchmarks (a test helper, not the library).

Production deployments point ``MASSALIA_PG_DSN`` at their own server; this module only starts a
private cluster on 127.0.0.1 (a free port, trust authentication, no fsync) and removes it on stop.
PostgreSQL refuses to run as root, so when Massalia runs as root the server runs as the
``postgres`` system user when it exists, else as ``nobody``.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

_CANDIDATE_BINDIRS = [Path(f"/usr/lib/postgresql/{v}/bin") for v in (17, 16, 15, 14)]


class PostgresUnavailable(RuntimeError):  # noqa: N818 (reads as a sentence)
    """No PostgreSQL server binaries were found, or the server would not start."""


def find_pg_bindir() -> Path | None:
    """The folder holding ``initdb`` and ``pg_ctl``, or ``None`` when PostgreSQL is not installed."""
    for candidate in _CANDIDATE_BINDIRS:
        if (candidate / "initdb").exists():
            return candidate
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        path = Path(out.stdout.strip())
        if (path / "initdb").exists():
            return path
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _run_as() -> list[str]:
    if os.geteuid() != 0:
        return []
    try:
        import pwd

        pwd.getpwnam("postgres")
        return ["runuser", "-u", "postgres", "--"]
    except KeyError:
        return ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]


class LocalPostgres:
    """Start and stop a private PostgreSQL cluster.

    Examples
    --------
    >>> with LocalPostgres() as server:  # doctest: +SKIP
    ...     dsn = server.dsn
    """

    def __init__(self, root: Path | None = None, *, port: int | None = None, settings: dict[str, str] | None = None):
        bindir = find_pg_bindir()
        if bindir is None:
            raise PostgresUnavailable("PostgreSQL server binaries not found (install Debian's postgresql-15)")
        self.bindir: Path = bindir
        self._own_root = root is None
        # /tmp, not the project folder: the server user must be able to reach the data directory.
        self.root = Path(tempfile.mkdtemp(prefix="massalia-pg-")) if root is None else root
        self.data_dir = self.root / "data"
        self.port = port or free_port()
        self.settings = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"} | (settings or {})
        self._started = False

    @property
    def dsn(self) -> str:
        """The libpq connection string for the ``postgres`` database."""
        return f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres"

    def _tool(self, name: str, *args: str) -> subprocess.CompletedProcess[str]:
        command = [*_run_as(), str(self.bindir / name), *args]
        return subprocess.run(command, capture_output=True, text=True, check=False)

    def start(self) -> str:
        """Create and start the cluster; return its DSN."""
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o755)
        if _run_as():
            user = "postgres" if _run_as()[0] == "runuser" else "nobody"
            shutil.chown(self.root, user=user)
        result = self._tool(
            "initdb",
            "-D",
            str(self.data_dir),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
            "--no-sync",
        )
        if result.returncode != 0:
            raise PostgresUnavailable(f"initdb failed: {result.stderr.strip() or result.stdout.strip()}")
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.data_dir}"
        options += "".join(f" -c {key}={value}" for key, value in self.settings.items())
        result = self._tool(
            "pg_ctl",
            "-D",
            str(self.data_dir),
            "-l",
            str(self.data_dir / "server.log"),
            "-o",
            options,
            "-w",
            "-t",
            "60",
            "start",
        )
        if result.returncode != 0:
            log = (
                (self.data_dir / "server.log").read_text(errors="replace")[-2000:]
                if (self.data_dir / "server.log").exists()
                else ""
            )
            raise PostgresUnavailable(f"pg_ctl start failed: {result.stderr.strip()}\n{log}")
        self._started = True
        return self.dsn

    def stop(self) -> None:
        """Stop the server and remove its files (when this object created them)."""
        if self._started:
            self._tool("pg_ctl", "-D", str(self.data_dir), "-m", "fast", "-w", "stop")
            self._started = False
        if self._own_root:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> LocalPostgres:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
