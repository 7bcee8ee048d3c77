"""Schemathesis against the real service: ``make fuzz`` (``python -m tests.fuzz``) and, at a small
size, ``tests/test_fuzz.py``.

A throw-away database gets the demo boundaries, a synthetic year of reports and one API key per
role; the app is served by a real uvicorn (a subprocess, its rate limits and statement
timeouts set so high that no 429 or 503 of a budget hides a fault); then ``schemathesis run``
goes over the whole OpenAPI document once per caller (the public, then each role, admin last
since it may roll versions back) with every check on and ``--continue-on-failure``. The
figures are summed over the callers: cases generated, server errors, schema violations, every
other finding by check, time, the server's peak RSS. Exit status 1 on any finding but the
:data:`ADVISORY` ones, or too few cases.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from sqlalchemy.engine import make_url

from geo_service.auth import create_key
from geo_service.db.cluster import PrivateCluster, drop_database, ensure_database
from geo_service.db.engine import libpq_url, make_engine
from geo_service.locator import Locator
from geo_service.reports.importer import load_demo_history
from geo_service.routing import RoutingTable
from geo_service.settings import PROJECT_ROOT
from tests.support import load_demo

CALLERS = ("public", "reporter", "grid_worker", "operator", "planner", "admin")
HIGH = "cheap=100000/100000,standard=100000/100000,costly=100000/100000"
# the server's settings during the fuzz: rate limits on, but never reached
SERVER_ENV = {
    "GEO_RATE_ENABLED": "true",
    **{f"GEO_RATE_{who.upper()}": HIGH for who in (
        "anonymous", "anonymous_all", "reporter", "grid_worker", "operator", "planner", "admin")},
    "GEO_RATE_UNKNOWN_KEYS": "100000/100000",
    # and statement timeouts long: a 503 there is the role's budget, tested on its own
    **{f"GEO_STATEMENT_TIMEOUT_MS_{who.upper()}": "120000" for who in (
        "anonymous", "reporter", "grid_worker", "operator", "planner", "admin")},
}
# the response-time check's limit: a 10,000-report bulk takes ~10-40 s on 2 busy cores
MAX_RESPONSE_S = 60
# the tool's hooks (an NDJSON serializer), importable from the project
TOOL_ENV = {"SCHEMATHESIS_HOOKS": "tests.fuzz_hooks", "PYTHONPATH": str(PROJECT_ROOT)}
SERVER_ERROR = "Server error"
SCHEMA_VIOLATION = "Response violates schema"
# findings that fail the run; the rest of every check's findings are reported beside them:
# whether a request the schema allows is accepted and one it refuses is refused
# (positive_data_acceptance, negative_data_rejection, missing_required_header) depends on
# rules JSON Schema cannot state (a date in the future, a bbox whose corners are swapped, a
# timestamp given as a number), and the response-time limit on the machine's load
ADVISORY = frozenset({
    "Schema-valid request rejected",
    "Schema-violating request accepted",
    "Missing required header accepted",
    "Response time limit exceeded",
})


@dataclass
class Figures:
    """What the runs found, summed over the callers."""

    cases: int = 0
    seconds: float = 0.0
    failures: Counter[str] = field(default_factory=Counter)  # by title
    operations: dict[str, set[str]] = field(default_factory=dict)  # title -> operations
    errors: Counter[str] = field(default_factory=Counter)
    per_caller: dict[str, int] = field(default_factory=dict)
    peak_rss_mb: float = 0.0
    wall_s: float = 0.0  # the whole run: database, server and the tool

    @property
    def server_errors(self) -> int:
        return self.failures[SERVER_ERROR]

    @property
    def schema_violations(self) -> int:
        return self.failures[SCHEMA_VIOLATION]

    @property
    def blocking(self) -> int:
        """Findings that fail the run: every check's but the :data:`ADVISORY` ones."""
        return sum(n for title, n in self.failures.items() if title not in ADVISORY)

    @property
    def clean(self) -> bool:
        """No blocking finding and no error of the tool."""
        return not self.blocking and not self.errors

    def add(self, caller: str, report: dict[str, object]) -> None:
        """Add one caller's JSON run report."""
        cases = report["test_cases"]
        assert isinstance(cases, dict)
        self.cases += int(cases["generated"])
        self.per_caller[caller] = int(cases["generated"])
        seconds = report.get("running_time")
        self.seconds += float(seconds) if isinstance(seconds, int | float) else 0.0
        for group in report["failures"]:  # type: ignore[attr-defined]
            self.failures[group["title"]] += int(group["count"])
            self.operations.setdefault(group["title"], set()).update(group["operations"])
        for group in report["errors"]:  # type: ignore[attr-defined]
            self.errors[group["title"]] += int(group["count"])

    def table(self) -> str:
        """The figures as a plain-text table."""
        lines = [
            f"cases generated     {self.cases:>8,}  ("
            + ", ".join(f"{k} {v:,}" for k, v in self.per_caller.items()) + ")",
            f"server errors       {self.server_errors:>8,}",
            f"schema violations   {self.schema_violations:>8,}",
        ]
        for title, n in sorted(self.failures.items()):
            if title not in (SERVER_ERROR, SCHEMA_VIOLATION):
                lines.append(f"{title[:19]:<19} {n:>8,}")
        for title, n in sorted(self.errors.items()):
            lines.append(f"tool error: {title}  {n:,}")
        lines.append(f"time                {self.seconds:>8.1f} s (the tool's; "
                     f"{self.wall_s:.0f} s in all)")
        lines.append(f"server peak RSS     {self.peak_rss_mb:>8.0f} MB")
        for title, ops in sorted(self.operations.items()):
            lines.append(f"  {title}: {', '.join(sorted(ops))}")
        return "\n".join(lines)


def _admin_url() -> str:
    url = os.environ.get("DATABASE_URL")
    if url:
        return libpq_url(make_url(url).set(database="postgres").render_as_string(False))
    return PrivateCluster(PROJECT_ROOT / ".data" / "pg").url("postgres")


@contextmanager
def demo_database(reports: int) -> Iterator[str]:
    """A throw-away database with the demo boundaries and ``reports`` synthetic reports."""
    admin = _admin_url()
    name = f"geo_fuzz_{uuid.uuid4().hex[:10]}"
    ensure_database(admin, name)
    url = make_url(admin).set(database=name).render_as_string(hide_password=False)
    try:
        load_demo(url)
        if reports:
            engine = make_engine(url, pool_size=1)
            try:
                with engine.connect() as conn:
                    routing = RoutingTable.load(conn)
                load_demo_history(engine, Locator.from_database(url), routing, n=reports)
            finally:
                engine.dispose()
        yield url
    finally:
        drop_database(admin, name)


def role_keys(url: str) -> dict[str, str]:
    """One API key per role (the grid worker covers the first demo community)."""
    community = str(Locator.from_database(url).grids["community_code"].iloc[0])
    engine = make_engine(url, pool_size=1)
    try:
        with engine.begin() as conn:
            return {
                role: create_key(
                    conn, role, label=f"fuzz {role}",
                    scope=community if role == "grid_worker" else None,
                )
                for role in CALLERS[1:]
            }
    finally:
        engine.dispose()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def uvicorn_server(url: str, log: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """The app on ``url``'s database in a uvicorn subprocess; its stderr goes to ``log``."""
    port = _free_port()
    env = {**os.environ, **SERVER_ENV, "DATABASE_URL": url}
    cmd = [sys.executable, "-m", "uvicorn", "geo_service.app:create_app", "--factory",
           "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    with log.open("wb") as sink:
        proc = subprocess.Popen(cmd, env=env, stdout=sink, stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 120
            while True:
                try:
                    if httpx.get(f"{base}/health", timeout=5).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the server did not start: see {log}")
                time.sleep(0.2)
            yield base, proc
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def peak_rss_mb(pid: int) -> float:
    """The peak resident set of process ``pid`` so far (``VmHWM``), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


@dataclass(frozen=True)
class Plan:
    """How much to fuzz: cases per operation and phase, the phases, the callers in order."""

    max_examples: int = 5
    phases: str = "examples,coverage,fuzzing,stateful"
    seed: int = 20251
    callers: tuple[str, ...] = CALLERS
    # one run in which the callers take turns request by request (tests/fuzz_hooks.py), not
    # one run per caller: every role in a fraction of the time (the suite's fuzz)
    rotate: bool = False


def schemathesis_command(
    base: str, key: str | None, plan: Plan, seed: int, report: Path
) -> list[str]:
    """One ``schemathesis run`` over the whole document as one caller, every check on."""
    exe = shutil.which("schemathesis", path=str(Path(sys.executable).parent)) or "schemathesis"
    cmd = [
        exe, "--no-color", "run", f"{base}/openapi.json",
        "--checks", "all",
        "--continue-on-failure",
        "--phases", plan.phases,
        "--max-examples", str(plan.max_examples),
        "--seed", str(seed),
        "--workers", "1",
        "--generation-database", "none",
        "--suppress-health-check", "all",
        "--request-timeout", "120",
        "--max-response-time", str(MAX_RESPONSE_S),
        "--report", "json", "--report-json-path", str(report),
    ]
    if key is not None:
        cmd += ["--header", f"Authorization: Bearer {key}"]
    return cmd


def run(plan: Plan, reports: int, out: Path, verbose: bool = True) -> Figures:
    """The whole fuzz (see the module notes) on a new demo database of ``reports`` reports;
    the tool's output and reports and the server's log go to ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    figures = Figures()
    with demo_database(reports) as url:
        keys = role_keys(url)
        turns = [keys[c] for c in plan.callers if c in keys]
        runs: list[tuple[str, str | None, dict[str, str]]] = (
            [("+".join(plan.callers), None, {"GEO_FUZZ_KEYS": json.dumps(turns)})]
            if plan.rotate
            else [(caller, keys.get(caller), {}) for caller in plan.callers]
        )
        with uvicorn_server(url, out / "server.log") as (base, proc):
            for n, (caller, key, env) in enumerate(runs):
                report = out / f"{caller}.json"
                cmd = schemathesis_command(base, key, plan, plan.seed + n, report)
                with (out / f"{caller}.txt").open("w") as sink:  # its caches stay in ``out``
                    subprocess.run(
                        cmd, stdout=sink, stderr=subprocess.STDOUT, check=False, cwd=out,
                        env={**os.environ, **TOOL_ENV, **env},
                    )
                figures.add(caller, json.loads(report.read_text()))
                if verbose:
                    print(f"{caller}: {figures.per_caller[caller]:,} cases", flush=True)
            figures.peak_rss_mb = peak_rss_mb(proc.pid)
    return figures


def main(argv: list[str] | None = None) -> int:
    """``python -m tests.fuzz``: run, print the figures, exit 1 on any failure."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-examples", type=int, default=Plan.max_examples,
                        help="per operation, phase and caller")
    parser.add_argument("--phases", default=Plan.phases)
    parser.add_argument("--min-cases", type=int, default=5000, help="fail below this many")
    parser.add_argument("--reports", type=int, default=5000, help="synthetic reports stored")
    parser.add_argument("--seed", type=int, default=Plan.seed)
    parser.add_argument("--out", type=Path, default=None, help="where logs and reports go")
    parser.add_argument("--callers", default=",".join(CALLERS), help="comma list, in order")
    parser.add_argument("--rotate", action="store_true", help="one run, callers taking turns")
    args = parser.parse_args(argv)
    out = args.out or Path(tempfile.mkdtemp(prefix="geo-fuzz-"))
    callers = tuple(c for c in args.callers.split(",") if c)
    plan = Plan(args.max_examples, args.phases, args.seed, callers, args.rotate)
    started = time.monotonic()
    figures = run(plan, args.reports, out)
    figures.wall_s = time.monotonic() - started
    print(figures.table())
    print(f"logs and reports: {out}")
    if figures.cases < args.min_cases:
        print(f"only {figures.cases:,} cases, fewer than {args.min_cases:,}")
        return 1
    return 0 if figures.clean else 1  # advisory findings are listed, they do not fail it


if __name__ == "__main__":
    sys.exit(main())
