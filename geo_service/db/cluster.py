"""A private PostgreSQL + PostGIS cluster in a project data folder: the embedded default.

Used when no ``DATABASE_URL`` is given. The cluster listens on 127.0.0.1 only (no unix socket,
so long checkout paths do not matter), on a free port chosen at start, with a generated
password kept in ``cluster.json`` (mode 0600). PostgreSQL refuses to run as root, so under
root the server runs as the ``postgres`` system user.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

DEFAULT_DATABASE = "geo_service"


class ClusterError(RuntimeError):
    """The private cluster could not be created or started; the message says why."""


def _pg_bindir() -> Path:
    """The PostgreSQL server binaries: ``pg_config --bindir``, else the newest Debian install."""
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), reverse=True)
    for pg_ctl in candidates:
        return pg_ctl.parent
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).resolve().parent
    raise ClusterError(
        "PostgreSQL server binaries not found: install postgresql-15-postgis-3 "
        "(make demo / make test do it) or set DATABASE_URL"
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _port_free(port: int) -> bool:
    """Whether PostgreSQL could listen on ``port``: bound as it binds (SO_REUSEADDR), so the
    closed connections of a server just stopped (TIME_WAIT) do not move it to another port
    under the clients that know this one."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


@dataclass
class PrivateCluster:
    """One PostgreSQL cluster under ``root`` (``root/data`` holds PGDATA)."""

    root: Path

    @property
    def pgdata(self) -> Path:
        return self.root / "data"

    @property
    def _state_file(self) -> Path:
        return self.root / "cluster.json"

    def _run_as(self) -> list[str]:
        """Prefix that runs a server command as ``postgres`` when we are root."""
        if os.geteuid() != 0:
            return []
        return ["runuser", "-u", "postgres", "--"]

    def _chown_for_server(self, path: Path) -> None:
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            os.chown(path, pw.pw_uid, pw.pw_gid)

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _state(self) -> dict[str, object]:
        if not self._state_file.exists():
            return {}
        return dict(json.loads(self._state_file.read_text()))

    def _save_state(self, state: dict[str, object]) -> None:
        tmp = self._state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(state))
        tmp.chmod(0o600)
        tmp.replace(self._state_file)

    def _initdb(self) -> None:
        password = secrets.token_urlsafe(24)
        self.pgdata.mkdir(parents=True, exist_ok=True)
        self.pgdata.chmod(0o700)
        self._chown_for_server(self.pgdata)
        pwfile = self.root / "pwfile"
        pwfile.write_text(password + "\n")
        pwfile.chmod(0o600)
        self._chown_for_server(pwfile)
        try:
            self._exec(
                [
                    str(_pg_bindir() / "initdb"),
                    "-D",
                    str(self.pgdata),
                    "-U",
                    "postgres",
                    "--auth=scram-sha-256",
                    f"--pwfile={pwfile}",
                    "-E",
                    "UTF8",
                    "--locale=C.UTF-8",
                ]
            )
        finally:
            pwfile.unlink(missing_ok=True)
        self._save_state({"password": password, "port": _free_port()})

    def _exec(self, cmd: list[str]) -> str:
        try:
            done = subprocess.run(
                self._run_as() + cmd, check=True, capture_output=True, text=True, cwd="/"
            )
        except subprocess.CalledProcessError as exc:
            raise ClusterError(
                f"{Path(cmd[0]).name} failed: {exc.stderr.strip() or exc.stdout.strip()}"
            ) from exc
        return done.stdout

    def running_port(self) -> int | None:
        """The port of the running server, read from ``postmaster.pid``, or None."""
        pidfile = self.pgdata / "postmaster.pid"
        if not pidfile.exists():
            return None
        lines = pidfile.read_text().splitlines()
        try:
            pid, port = int(lines[0]), int(lines[3])
            os.kill(pid, 0)
        except (IndexError, ValueError, ProcessLookupError, PermissionError):
            return None
        return port

    def start(self) -> int:
        """Start the server (initialising the cluster first if needed); return its port."""
        with self._lock():
            if not (self.pgdata / "PG_VERSION").exists():
                self._initdb()
            port = self.running_port()
            if port is not None:
                return port
            state = self._state()
            port = int(str(state.get("port") or 0))
            if not port or not _port_free(port):
                port = _free_port()
            state["port"] = port
            self._save_state(state)
            log = self.root / "server.log"
            log.touch()
            self._chown_for_server(log)
            options = (
                f"-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' "
                "-c max_connections=200 -c shared_buffers=256MB"
            )
            self._exec(
                [
                    str(_pg_bindir() / "pg_ctl"),
                    "-D",
                    str(self.pgdata),
                    "-l",
                    str(log),
                    "-o",
                    options,
                    "-w",
                    "-t",
                    "60",
                    "start",
                ]
            )
            return port

    def stop(self) -> None:
        """Stop the server if it runs."""
        with self._lock():
            if self.running_port() is not None:
                self._exec(
                    [
                        str(_pg_bindir() / "pg_ctl"),
                        "-D",
                        str(self.pgdata),
                        "-m",
                        "fast",
                        "-w",
                        "stop",
                    ]
                )

    def url(self, database: str = DEFAULT_DATABASE) -> str:
        """libpq URL of ``database`` on this cluster, starting it and creating it when missing."""
        port = self.start()
        password = str(self._state()["password"])
        admin = f"postgresql://postgres:{password}@127.0.0.1:{port}/postgres"
        ensure_database(admin, database)
        return f"postgresql://postgres:{password}@127.0.0.1:{port}/{database}"


def ensure_database(admin_url: str, database: str) -> None:
    """Create ``database`` through ``admin_url`` unless it exists (retrying while starting)."""
    deadline = time.monotonic() + 30
    while True:
        try:
            with psycopg.connect(admin_url, autocommit=True) as conn:
                exists = conn.execute(
                    "SELECT 1 FROM pg_database WHERE datname = %s", (database,)
                ).fetchone()
                if not exists:
                    conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
                return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


def drop_database(admin_url: str, database: str) -> None:
    """Drop ``database`` (used by the test suite for its throw-away databases)."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database))
        )
