"""Shared helpers of the benchmark sections: timing, a throw-away database, result tables."""

from __future__ import annotations

import gc
import os
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from rich.console import Console
from rich.table import Table
from sqlalchemy.engine import make_url

from geo_service.db.cluster import PrivateCluster, drop_database, ensure_database
from geo_service.db.engine import libpq_url
from geo_service.settings import PROJECT_ROOT

T = TypeVar("T")
RESULTS_DIR = PROJECT_ROOT / "bench-results"


def best_of(
    fn: Callable[[], T], reps: int = 3, budget_s: float = 20.0, warmup: int = 0
) -> tuple[float, T]:
    """Best wall time of up to ``reps`` calls (fewer once ``budget_s`` is spent) and a result.

    ``warmup`` untimed calls run first (first-touch page faults, thread-pool start).
    """
    for _ in range(warmup):
        fn()
    best = float("inf")
    spent = 0.0
    result: T
    for _ in range(reps):
        gc.collect()
        t0 = time.perf_counter()
        result = fn()
        elapsed = time.perf_counter() - t0
        best = min(best, elapsed)
        spent += elapsed
        if spent > budget_s:
            break
    return best, result


def timed(fn: Callable[[], T]) -> tuple[float, T]:
    """Wall time of one call and its result."""
    return best_of(fn, reps=1)


@dataclass(frozen=True)
class CpuSnapshot:
    """Machine-wide busy and steal CPU seconds (``/proc/stat``) and this process's CPU seconds."""

    busy_s: float
    steal_s: float
    own_s: float

    @classmethod
    def take(cls) -> CpuSnapshot:
        """Read the counters now (zeros where ``/proc/stat`` is missing)."""
        times = os.times()
        own = times.user + times.system
        try:
            fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
        except OSError:
            return cls(0.0, 0.0, own)
        tick = os.sysconf("SC_CLK_TCK")
        user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[:8])
        return cls((user + nice + system + irq + softirq) / tick, steal / tick, own)

    def others_since(self, start: CpuSnapshot) -> tuple[float, float]:
        """CPU seconds other processes used since ``start``, and steal seconds."""
        busy = self.busy_s - start.busy_s
        return max(busy - (self.own_s - start.own_s), 0.0), self.steal_s - start.steal_s


def server_admin_url() -> str:
    """Admin URL of the server: ``DATABASE_URL``'s (database postgres), else the private cluster."""
    url = os.environ.get("DATABASE_URL")
    if url:
        return libpq_url(make_url(url).set(database="postgres").render_as_string(False))
    return PrivateCluster(PROJECT_ROOT / ".data" / "pg").url("postgres")


@contextmanager
def throwaway_database(prefix: str = "bench") -> Iterator[str]:
    """A new empty database ``<prefix>_<random>`` on the server, dropped on exit."""
    admin = server_admin_url()
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    ensure_database(admin, name)
    try:
        yield make_url(admin).set(database=name).render_as_string(hide_password=False)
    finally:
        drop_database(admin, name)


@dataclass
class ResultTable:
    """A results table shown with rich and written as markdown, with notes under it."""

    title: str
    columns: Sequence[str]
    right_aligned: Sequence[str] = ()
    rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    verdicts: list[str] = field(default_factory=list)

    def add(self, *cells: str) -> None:
        """Append one row (as many cells as columns)."""
        if len(cells) != len(self.columns):
            raise ValueError(f"{len(cells)} cells for {len(self.columns)} columns")
        self.rows.append(list(cells))

    def show(self, console: Console) -> None:
        """Print the table, the verdict lines and the notes."""
        table = Table(title=self.title, title_style="bold", show_lines=False)
        for col in self.columns:
            table.add_column(col, justify="right" if col in self.right_aligned else "left")
        previous = None
        for row in self.rows:
            if previous is not None and row[0] != previous:
                table.add_section()
            previous = row[0]
            table.add_row(*row)
        console.print(table)
        for line in self.verdicts:
            style = "green" if line.startswith("target met") else "bold red"
            console.print(line, style=style, highlight=False)
        for note in self.notes:
            console.print(f"[dim]- {note}[/dim]", highlight=False)

    def markdown(self) -> str:
        """The table, verdicts and notes as a markdown fragment."""
        align = ["---:" if c in self.right_aligned else ":---" for c in self.columns]
        lines = [f"### {self.title}", ""]
        lines.append("| " + " | ".join(self.columns) + " |")
        lines.append("| " + " | ".join(align) + " |")
        lines += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in self.rows]
        lines.append("")
        lines += [f"**{v}**  " for v in self.verdicts]
        if self.verdicts:
            lines.append("")
        lines += [f"- {n}" for n in self.notes]
        return "\n".join(lines) + "\n"

    def write_markdown(self, name: str) -> Path:
        """Write :meth:`markdown` to ``bench-results/<name>.md`` and return the path."""
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        path = RESULTS_DIR / f"{name}.md"
        path.write_text(self.markdown(), encoding="utf-8")
        return path
