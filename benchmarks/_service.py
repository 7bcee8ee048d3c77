"""The real service as a subprocess (``geo-service serve``), for the HTTP benchmarks, the load
run and the chaos harness: start, wait until it answers, read its processes' CPU and memory
from ``/proc``, stop it gently or ``kill -9`` it.

Why a subprocess and not uvicorn in a thread: what is measured (or killed) is the service as
it runs in production, ``uvicorn`` with uvloop and httptools and N worker processes, with no
benchmark code sharing its interpreter.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

STARTUP_S = 180.0
# the public's one-point rate (GEO_RATE_*: cheap=200/s per address) would refuse a benchmark
# client; these keep the limiter in the path (its cost is measured) but never refuse it
UNLIMITED_RATES = {
    "GEO_RATE_ANONYMOUS": "cheap=1000000/1000000,standard=1000000/1000000,costly=1000000/1000000",
    "GEO_RATE_ANONYMOUS_ALL": "cheap=1000000/1000000,standard=1000000/1000000,"
    "costly=1000000/1000000",
    "GEO_RATE_OPERATOR": "cheap=1000000/1000000,standard=1000000/1000000,costly=1000000/1000000",
    "GEO_RATE_REPORTER": "cheap=1000000/1000000,standard=1000000/1000000,costly=1000000/1000000",
}


def free_port() -> int:
    """A TCP port free on the loopback interface now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _children(pid: int) -> list[int]:
    """Direct children of ``pid`` (``/proc/*/stat``'s parent field)."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid:
            out.append(int(entry.name))
    return out


def _new_log() -> Path:
    fd, name = tempfile.mkstemp(prefix="geo-service-", suffix=".log")
    os.close(fd)
    return Path(name)


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (all its threads), 0 when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    """Resident memory of process ``pid`` in MB (``VmRSS`` of ``/proc/PID/status``)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


@dataclass
class Service:
    """``geo-service serve --workers N`` on a free loopback port over database ``url``."""

    url: str
    workers: int = 1
    env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    log: Path = field(default_factory=_new_log)
    # its stderr, appended over restarts (a pipe nobody drains could stall it)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = STARTUP_S) -> str:
        """Start it and wait until ``/health`` answers 200 (the same port on every restart);
        the base URL."""
        env = {**os.environ, "DATABASE_URL": self.url, **self.env}
        cmd = [str(Path(sys.executable).with_name("geo-service")), "serve"]
        cmd += ["--host", "127.0.0.1", "--port", str(self.port), "--workers", str(self.workers)]
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=log)
        deadline = time.monotonic() + timeout_s
        while True:
            if self.proc.poll() is not None:
                err = self.log.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"the service exited: {err}")
            try:
                if httpx.get(f"{self.base}/health", timeout=2.0).status_code == 200:
                    return self.base
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"the service did not answer within {timeout_s:.0f} s")
            time.sleep(0.1)

    def pids(self) -> list[int]:
        """The master process and its worker processes (one process when ``workers`` is 1)."""
        if self.proc is None or self.proc.poll() is not None:
            return []
        return [self.proc.pid, *_children(self.proc.pid)]

    def cpu_seconds(self) -> float:
        """CPU seconds used so far by every process of the service."""
        return sum(cpu_seconds(p) for p in self.pids())

    def rss_mb(self) -> float:
        """Resident memory of every process of the service together, MB."""
        return sum(rss_mb(p) for p in self.pids())

    def rss_by_process(self) -> list[float]:
        """Resident memory of each process of the service, MB (the master first)."""
        return [rss_mb(p) for p in self.pids()]

    def kill(self) -> None:
        """``kill -9`` every process of the service at once (workers first: no orderly exit)."""
        if self.proc is None:
            return
        for pid in reversed(self.pids()):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.proc.wait()
        self.proc = None

    def stop(self) -> None:
        """Stop it gently (SIGTERM, then SIGKILL after 20 s)."""
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.kill()
            return
        self.proc = None

    def __enter__(self) -> Service:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
