"""Acknowledged reports survive ``kill -9`` of the service and an immediate PostgreSQL restart:
none lost, none stored twice, every retry answered with the first id (a small run of
``make chaos``, :mod:`benchmarks.chaos`: the real service as a subprocess, in a PostgreSQL
cluster of its own, so the restart disturbs no other test)."""

from __future__ import annotations

import pytest

from benchmarks.chaos import run_chaos
from geo_service.db.cluster import ClusterError, _pg_bindir


@pytest.mark.slow
def test_acknowledged_reports_survive_kill_9_and_an_immediate_postgres_restart() -> None:
    try:
        _pg_bindir()
    except ClusterError:
        pytest.skip("needs the PostgreSQL server binaries for a cluster of its own")
    f = run_chaos(kills=3, pg_restarts=1, clients=3, workers=1, acks_between=40)
    assert (f.kills, f.pg_restarts) == (3, 1)
    assert f.unanswered, "the chaos interrupted no request: it tested nothing"
    assert f.acknowledged >= 4 * 40
    assert f.lost == 0, f"{f.lost} acknowledged reports lost"
    assert f.duplicated == 0, f"{f.duplicated} reports stored twice"
    assert f.retry_mismatches == 0, f"{f.retry_mismatches} retries answered with another id"
    assert f.never_acknowledged == 0
    assert not f.refused, f"tries refused: {dict(f.refused)}"
    assert f.rechecked == f.acknowledged  # every acknowledged key was sent again at the end
