"""Where batch work runs: a LocalCluster of N workers, or an existing Dask cluster.

``--workers N`` starts N single-threaded worker processes on 127.0.0.1 (one per core);
``--scheduler tcp://host:8786`` joins a cluster started with ``dask scheduler`` and
``dask worker`` (the workers must see the source and destination paths). Progress comes
from the scheduler itself (``distributed``'s Progress plugin: every task of the graph,
retries after a lost worker included), drawn by whatever callback the caller gives.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from distributed import Client, Future, LocalCluster
from distributed.diagnostics.progressbar import ProgressBar

from geo_service.errors import InvalidInput

Update = Callable[[int, int], None]
DASHBOARD = "127.0.0.1:8787"


def default_workers() -> int:
    """One worker per core this process may use."""
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1)


@contextmanager
def batch_client(
    scheduler: str | None = None,
    workers: int | None = None,
    *,
    dashboard: str = DASHBOARD,
) -> Iterator[Client]:
    """A client on ``scheduler``, or on a new LocalCluster of ``workers`` processes (default:
    one per core), closed on exit. Raises :class:`InvalidInput` for both or an unreachable
    scheduler."""
    if scheduler and workers:
        raise InvalidInput("give --scheduler or --workers, not both")
    if workers is not None and workers < 1:
        raise InvalidInput(f"--workers must be at least 1, not {workers}")
    cluster: LocalCluster | None = None
    if scheduler:
        try:
            client = Client(scheduler, timeout="15s")  # type: ignore[no-untyped-call]
        except (OSError, TimeoutError) as exc:
            raise InvalidInput(f"cannot reach the Dask scheduler at {scheduler}: {exc}") from exc
    else:
        cluster = LocalCluster(  # type: ignore[no-untyped-call]
            n_workers=workers or default_workers(),
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=dashboard,
            silence_logs=logging.ERROR,
        )
        client = Client(cluster)  # type: ignore[no-untyped-call]
    warming = start_warm_up(client)  # noqa: F841  # held so the tasks are not cancelled
    try:
        yield client
    finally:
        client.close()  # type: ignore[no-untyped-call]
        if cluster is not None:
            cluster.close()


def warm_up() -> None:
    """Import the batch path and load the Locator's compiled kernels: run on every worker as
    it joins, so this overlaps the client's own preparation instead of delaying a task."""
    import geopandas as gpd
    import numpy as np
    import shapely

    import geo_service.batch.relocate
    import geo_service.batch.rollup  # noqa: F401
    from geo_service.locator import Locator

    tiny = gpd.GeoDataFrame({"code": ["0"]}, geometry=[shapely.box(0.0, 0.0, 1e-3, 1e-3)])
    Locator.from_frame(tiny, cell_m=10.0).locate(np.array([5e-4]), np.array([5e-4]))


def start_warm_up(client: Client) -> list[Future]:
    """Submit :func:`warm_up` once to each worker now connected, without waiting for it."""
    workers = client.scheduler_info(n_workers=-1).get("workers", {})
    return [client.submit(warm_up, workers=[address], pure=False) for address in workers]


def describe(client: Client) -> str:
    """One line: scheduler, workers and threads, and the dashboard address."""
    info = client.scheduler_info(n_workers=-1)
    workers = info.get("workers", {})
    threads = sum(int(w.get("nthreads", 0)) for w in workers.values())
    link = client.dashboard_link if "dashboard" in info.get("services", {}) else None
    return (
        f"Dask scheduler {info.get('address')}: {len(workers)} worker(s), {threads} thread(s); "
        + (f"dashboard {link}" if link else "no dashboard")
    )


class _Feed(ProgressBar):
    """The scheduler's Progress plugin streamed to a ``(done, total)`` callback."""

    def __init__(self, futures: Sequence[Future], scheduler: str, update: Update) -> None:
        super().__init__(  # type: ignore[no-untyped-call]
            futures, scheduler=scheduler, interval="200ms", complete=True
        )
        self._update = update

    def _draw_bar(self, remaining: int, all: int, **kwargs: Any) -> None:
        self._update(all - remaining, all)


def follow(
    client: Client, futures: Sequence[Future], update: Update
) -> concurrent.futures.Future[None]:
    """Call ``update(done, total)`` as the scheduler finishes the tasks behind ``futures``
    (on the client's event-loop thread); the returned future ends with the stream."""
    scheduler = client.scheduler
    loop = client.loop
    if scheduler is None or loop is None:
        raise RuntimeError("the Dask client is not connected")
    feed = _Feed(futures, str(scheduler.address), update)
    listen = feed.listen()  # type: ignore[no-untyped-call]
    return asyncio.run_coroutine_threadsafe(listen, loop.asyncio_loop)  # type: ignore[attr-defined]


def wait_followed(stream: concurrent.futures.Future[None] | None, timeout: float = 5.0) -> None:
    """Let a progress stream deliver its last update (it ends when the tasks do)."""
    if stream is None:
        return
    try:
        stream.result(timeout=timeout)
    except (concurrent.futures.TimeoutError, OSError):
        stream.cancel()
