"""Chaos: acknowledged reports survive ``kill -9`` of the service and an immediate PostgreSQL
restart; none is lost, none is stored twice, every retry is answered with the first id.

``make chaos`` (``python -m benchmarks.chaos``; a small run is ``tests/test_chaos.py``).

The real service (``geo-service serve``) runs as a subprocess on a database of its own, in a
PostgreSQL cluster of its own (``.data/chaos-pg``: restarting it disturbs nothing else; each
run's database is a copy of a template migrated and loaded with the demo boundaries once per
schema head). Several client threads file reports (``POST /v1/reports``), each under a new
``Idempotency-Key`` and a description naming the key; a try that gets no answer (refused,
reset, timed out, a 5xx) is unacknowledged and is sent again later with the same key and the
same bytes, until it is answered; now and then an acknowledged key is sent again too. Meanwhile
the service is ``kill -9``'d (every process at once) and started again, over and over, and once
PostgreSQL is restarted with ``pg_ctl restart -m immediate`` (a crash and recovery) under the
running service, which must recover by itself.

At the end every still-unacknowledged key is retried until answered, every acknowledged key is
sent once more, and the database is read: **lost** = acknowledged keys without their report
(or with another id), **duplicated** = keys stored more than once, **retry mismatches** =
answers to a key carrying another id than its first.
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import threading
import time
import uuid
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import orjson
import psycopg
from psycopg import sql
from rich.console import Console
from sqlalchemy.engine import make_url

from benchmarks._common import ResultTable
from benchmarks._service import UNLIMITED_RATES, Service
from geo_service.db.cluster import PrivateCluster, _pg_bindir, drop_database, ensure_database
from geo_service.db.migrate import head_revision
from geo_service.settings import PROJECT_ROOT

CLUSTER_ROOT = PROJECT_ROOT / ".data" / "chaos-pg"
DEMO_LAYOUT = PROJECT_ROOT / "boundaries" / "xiuzhou_demo.geojson"
REQUEST_TIMEOUT_S = 10.0
FINAL_RETRY_S = 120.0  # how long the end may take to get every pending key answered
RECHECK_SAMPLE = 3_000  # acknowledged keys sent once more at the end (all when fewer)
RETRY_SHARE = 0.05  # share of tries that re-send an acknowledged key


@dataclass
class Ledger:
    """What the clients were told, per key: the first id and every id answered since."""

    first_id: dict[str, int] = field(default_factory=dict)
    mismatches: list[tuple[str, int, int]] = field(default_factory=list)
    tries: int = 0
    retries: int = 0
    unanswered: Counter[str] = field(default_factory=Counter)  # why a try got no answer
    refused: Counter[str] = field(default_factory=Counter)  # 4xx: should never happen
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answered(self, key: str, report_id: int) -> None:
        with self.lock:
            first = self.first_id.setdefault(key, report_id)
            if first != report_id:
                self.mismatches.append((key, first, report_id))


@dataclass
class Figures:
    """The run's outcome."""

    acknowledged: int
    lost: int
    duplicated: int
    retry_mismatches: int
    never_acknowledged: int
    tries: int
    retries: int
    rechecked: int
    kills: int
    pg_restarts: int
    seconds: float
    unanswered: Counter[str]
    refused: Counter[str]
    restart_s: list[float]

    @property
    def ok(self) -> bool:
        """Reports were acknowledged, and none was lost, stored twice, answered with another
        id or left unacknowledged, and no try was refused."""
        clean = self.lost == self.duplicated == self.retry_mismatches == 0
        return clean and self.acknowledged > 0 and self.never_acknowledged == 0 and not self.refused


# --- the cluster and the database ---------------------------------------------------------


def chaos_cluster() -> PrivateCluster:
    """The chaos runs' own PostgreSQL cluster (started, created on first use)."""
    cluster = PrivateCluster(CLUSTER_ROOT)
    cluster.start()
    return cluster


def restart_postgres_immediately(cluster: PrivateCluster) -> None:
    """``pg_ctl restart -m immediate``: every backend killed without a checkpoint, then crash
    recovery from the WAL, on the same port and options."""
    pg_ctl = str(_pg_bindir() / "pg_ctl")
    log = str(cluster.root / "server.log")  # the server must not keep pg_ctl's pipes open
    cluster._exec([pg_ctl, "-D", str(cluster.pgdata), "-l", log, "-m", "immediate", "-w",
                   "-t", "120", "restart"])  # fmt: skip


def _load_demo(url: str) -> None:
    """Migrate ``url`` and publish the demo boundaries from 2025-01-01."""
    from geo_service.boundaries.importer import import_layout
    from geo_service.db.engine import make_engine
    from geo_service.db.migrate import upgrade

    upgrade(url)
    engine = make_engine(url, pool_size=1)
    try:
        import_layout(
            engine, DEMO_LAYOUT, "chaos-demo", crs="wgs84", effective_from=dt.date(2025, 1, 1),
            publish=True,
        )  # fmt: skip
    finally:
        engine.dispose()


def _template(cluster: PrivateCluster) -> str:
    """A database migrated to the schema head with the demo boundaries published, made once
    per head; runs copy it (``CREATE DATABASE … TEMPLATE``) instead of loading it again."""
    name = f"chaos_template_{head_revision()}".lower()
    admin = cluster.url("postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            return name
        for (old,) in conn.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE 'chaos\\_template\\_%'"
        ).fetchall():
            drop_database(admin, old)
    building = f"{name}_building"
    drop_database(admin, building)
    ensure_database(admin, building)
    _load_demo(make_url(admin).set(database=building).render_as_string(hide_password=False))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(
            sql.SQL("ALTER DATABASE {} RENAME TO {}").format(
                sql.Identifier(building), sql.Identifier(name)
            )
        )
    return name


def new_database(cluster: PrivateCluster) -> str:
    """A fresh copy of the template; its URL."""
    template = _template(cluster)
    admin = cluster.url("postgres")
    name = f"chaos_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(template)
            )
        )
    return make_url(admin).set(database=name).render_as_string(hide_password=False)


def reporter_key(url: str) -> str:
    """A new reporter key in the run's database."""
    from geo_service.auth import create_key
    from geo_service.db.engine import make_engine

    engine = make_engine(url, pool_size=1)
    try:
        with engine.begin() as conn:
            return create_key(conn, "reporter", label="chaos run")
    finally:
        engine.dispose()


def grid_points(url: str, n: int = 200) -> list[tuple[float, float]]:
    """Points inside ``n`` grids of the version in force."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_PointOnSurface(a.geom) AS p FROM areas a "
            "WHERE a.level = 'grid' ORDER BY a.code LIMIT %s) s",
            (n,),
        ).fetchall()
    return [(float(x), float(y)) for x, y in rows]


# --- the clients --------------------------------------------------------------------------


def report_body(run: str, key: str, point: tuple[float, float]) -> bytes:
    """The bytes of one report (always the same for a key: a retry is the same request)."""
    return orjson.dumps(
        {
            "channel": "grid_app",
            "category": "safety_hazard",
            "description": f"{run} {key}",
            "reported_at": "2025-06-01T09:30:00+08:00",
            "location": {"lon": point[0], "lat": point[1], "crs": "wgs84"},
        }
    )


class Client(threading.Thread):
    """Files reports until told to stop, retrying each unanswered key with the same bytes."""

    def __init__(
        self, n: int, base: str, api_key: str, run: str, points: list[tuple[float, float]],
        ledger: Ledger, stop: threading.Event,
    ) -> None:  # fmt: skip
        super().__init__(name=f"chaos-client-{n}", daemon=True)
        self.n, self.base, self.run_id, self.points = n, base, run, points
        self.ledger, self.stop = ledger, stop
        self.headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}
        self.bodies: dict[str, bytes] = {}
        self.pending: deque[str] = deque()
        self.acked: list[str] = []
        self.rng = random.Random(n)

    def send(self, http: httpx.Client, key: str) -> bool:
        """One try of ``key``; True when it was answered with an id."""
        with self.ledger.lock:
            self.ledger.tries += 1
        try:
            r = http.post("/v1/reports", content=self.bodies[key], headers={"Idempotency-Key": key})
        except httpx.TransportError as exc:
            with self.ledger.lock:
                self.ledger.unanswered[type(exc).__name__] += 1
            return False
        if r.status_code in (200, 201):
            self.ledger.answered(key, int(r.json()["id"]))
            return True
        with self.ledger.lock:
            if r.status_code >= 500:
                self.ledger.unanswered[f"HTTP {r.status_code}"] += 1
            else:
                self.ledger.refused[f"HTTP {r.status_code}: {r.text[:120]}"] += 1
        return False

    def next_key(self) -> tuple[str, bool]:
        """A pending key (a retry), sometimes an acknowledged one, else a new key."""
        if self.pending:
            return self.pending.popleft(), True
        if self.acked and self.rng.random() < RETRY_SHARE:
            return self.rng.choice(self.acked), True
        key = f"{self.run_id}-{self.n}-{len(self.bodies)}"
        point = self.points[len(self.bodies) % len(self.points)]
        self.bodies[key] = report_body(self.run_id, key, point)
        return key, False

    def run(self) -> None:
        with httpx.Client(
            base_url=self.base, headers=self.headers, timeout=REQUEST_TIMEOUT_S
        ) as http:
            while not self.stop.is_set():
                key, retry = self.next_key()
                if retry:
                    with self.ledger.lock:
                        self.ledger.retries += 1
                if self.send(http, key):
                    if not retry or key not in self.acked:
                        self.acked.append(key)
                else:
                    self.pending.append(key)
                    time.sleep(0.05)  # the service is down or restarting

    def finish(self, deadline: float, recheck: list[str]) -> None:
        """After the chaos: every pending key until answered, then ``recheck`` once more."""
        with httpx.Client(
            base_url=self.base, headers=self.headers, timeout=REQUEST_TIMEOUT_S
        ) as http:
            while self.pending and time.monotonic() < deadline:
                key = self.pending.popleft()
                if self.send(http, key):
                    self.acked.append(key)
                else:
                    self.pending.append(key)
                    time.sleep(0.1)
            for key in recheck:
                self.send(http, key)


# --- the run ------------------------------------------------------------------------------


def run_chaos(
    kills: int = 10,
    pg_restarts: int = 1,
    clients: int = 4,
    workers: int = 1,
    acks_between: int = 200,
    say: Console | None = None,
) -> Figures:
    """Run the chaos (see the module docstring) on a new database; its figures.

    Each event comes once ``acks_between`` more reports were acknowledged since the last one
    (at most a minute later), after a random fraction of a second: so it strikes a service
    that is taking reports, with requests in flight, not one still starting."""
    out = say or Console(quiet=True)
    started = time.monotonic()
    cluster = chaos_cluster()
    url = new_database(cluster)
    run_id = f"chaos-{uuid.uuid4().hex[:8]}"
    ledger, stop = Ledger(), threading.Event()
    restart_s: list[float] = []
    service = Service(url, workers, env=UNLIMITED_RATES)
    try:
        api_key, points = reporter_key(url), grid_points(url)
        service.start()
        threads = [
            Client(n, service.base, api_key, run_id, points, ledger, stop) for n in range(clients)
        ]
        for t in threads:
            t.start()
        events = ["kill"] * kills
        for i in range(pg_restarts):  # spread among the kills
            events.insert((i + 1) * len(events) // (pg_restarts + 1), "postgres")
        rng = random.Random(run_id)
        for i, event in enumerate(events):
            _await_acks(ledger, acks_between)
            time.sleep(rng.uniform(0.0, 0.5))
            t0 = time.monotonic()
            if event == "kill":
                service.kill()
                service.start()
            else:
                restart_postgres_immediately(cluster)
            restart_s.append(time.monotonic() - t0)
            out.print(
                f"{i + 1}/{len(events)}: {event} (back in {restart_s[-1]:.1f} s); "
                f"{len(ledger.first_id):,} acknowledged so far"
            )
        _await_acks(ledger, acks_between)
        stop.set()
        for t in threads:
            t.join()
        acked = sorted(ledger.first_id)
        sample = acked if len(acked) <= RECHECK_SAMPLE else random.sample(acked, RECHECK_SAMPLE)
        deadline = time.monotonic() + FINAL_RETRY_S
        for i, t in enumerate(threads):
            t.finish(deadline, [k for k in sample if k.startswith(f"{run_id}-{i}-")])
        never = sum(len(t.pending) for t in threads)
        lost, duplicated = _audit(url, run_id, ledger.first_id)
    finally:
        service.kill()
        drop_database(cluster.url("postgres"), make_url(url).database or "")
        cluster.stop()
    return Figures(
        acknowledged=len(ledger.first_id),
        lost=lost,
        duplicated=duplicated,
        retry_mismatches=len(ledger.mismatches),
        never_acknowledged=never,
        tries=ledger.tries,
        retries=ledger.retries,
        rechecked=len(sample),
        kills=kills,
        pg_restarts=pg_restarts,
        seconds=time.monotonic() - started,
        unanswered=ledger.unanswered,
        refused=ledger.refused,
        restart_s=restart_s,
    )


def _await_acks(ledger: Ledger, n: int, timeout_s: float = 60.0) -> None:
    """Wait until ``n`` more keys are acknowledged (or ``timeout_s`` passed)."""
    target = len(ledger.first_id) + n
    deadline = time.monotonic() + timeout_s
    while len(ledger.first_id) < target and time.monotonic() < deadline:
        time.sleep(0.05)


def _audit(url: str, run_id: str, first_id: dict[str, int]) -> tuple[int, int]:
    """(acknowledged keys whose report is missing or has another id, keys stored twice)."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT description, count(*), min(id) FROM reports WHERE description LIKE %s "
            "GROUP BY description",
            (f"{run_id} %",),
        ).fetchall()
    stored = {desc.split(" ", 1)[1]: (int(n), int(first)) for desc, n, first in rows}
    lost = sum(1 for key, rid in first_id.items() if stored.get(key, (0, -1))[1] != rid)
    duplicated = sum(1 for n, _ in stored.values() if n > 1)
    return lost, duplicated


def show(console: Console, f: Figures, workers: int, clients: int) -> Path:
    """The figures as a table (and ``bench-results/chaos.md``)."""
    table = ResultTable(
        title=f"Chaos: {f.kills} × kill -9, {f.pg_restarts} × immediate PostgreSQL restart",
        columns=["figure", "value"],
        right_aligned=["value"],
    )
    for name, value in (
        ("acknowledged reports (distinct keys)", f.acknowledged),
        ("lost (acknowledged, not stored with that id)", f.lost),
        ("stored twice", f.duplicated),
        ("retries answered with another id", f.retry_mismatches),
        ("never acknowledged after the final retries", f.never_acknowledged),
        ("tries sent (first tries and retries)", f.tries),
        ("retries (unanswered keys and acknowledged ones)", f.retries),
        ("acknowledged keys re-sent at the end", f.rechecked),
    ):
        table.add(name, f"{value:,}")
    ok = f.ok
    table.verdicts.append(
        ("target met: " if ok else "target missed: ")
        + f"{f.acknowledged:,} acknowledged: {f.lost} lost, {f.duplicated} stored twice, "
        f"{f.retry_mismatches} retries answered with another id, {f.never_acknowledged} never "
        "acknowledged"
    )
    mean_restart = sum(f.restart_s) / max(len(f.restart_s), 1)
    table.notes = [
        f"`geo-service serve --workers {workers}` on a database of its own in the chaos "
        f"cluster (.data/chaos-pg); {clients} client threads filing `POST /v1/reports` with "
        "`Idempotency-Key`; each unanswered try sent again with the same key and bytes",
        "unanswered tries by cause: "
        + (", ".join(f"{k} {v:,}" for k, v in f.unanswered.most_common()) or "none"),
        "refused tries (4xx): "
        + (", ".join(f"{k} ({v})" for k, v in f.refused.most_common(3)) or "none"),
        f"each event took {mean_restart:.1f} s on average until the service answered again; "
        f"the run took {f.seconds:.0f} s",
    ]
    table.show(console)
    return table.write_markdown("chaos")


def main() -> int:
    """``python -m benchmarks.chaos [--kills N] [--pg-restarts N] [--clients N] [--workers N]
    [--acks-between N]``; exit 1 unless every figure is clean."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.chaos", description=__doc__)
    parser.add_argument("--kills", type=int, default=12)
    parser.add_argument("--pg-restarts", type=int, default=1)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--acks-between", type=int, default=500)
    args = parser.parse_args()
    console = Console()
    figures = run_chaos(
        args.kills, args.pg_restarts, args.clients, args.workers, args.acks_between, say=console
    )
    show(console, figures, args.workers, args.clients)
    return 0 if figures.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
