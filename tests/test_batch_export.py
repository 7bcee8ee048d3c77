"""``geo-service batch export``: every stored report of the window, once, as GeoParquet 1.1 in
``month=YYYY-MM/district=CODE`` partitions (Beijing months), its point bit for bit, written a
chunk at a time with one file open, no personal data; a used destination is refused."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from sqlalchemy import Engine, text
from typer.testing import CliRunner

from geo_service.batch.export import export_reports
from geo_service.cli import app
from geo_service.db.engine import make_engine
from geo_service.errors import InvalidInput
from geo_service.locator import Locator
from geo_service.reports.importer import load_demo_history
from geo_service.routing import RoutingTable
from tests.support import load_demo

END = dt.date(2025, 11, 24)
N = 3_000
runner = CliRunner()


@pytest.fixture(scope="module")
def year_url(new_database) -> str:  # type: ignore[no-untyped-def]
    """A database with the demo boundaries and a stored synthetic year of ``N`` reports."""
    url = load_demo(str(new_database("geo_export")))
    engine = make_engine(url, pool_size=1)
    with engine.connect() as conn:
        routing = RoutingTable.load(conn)
    load_demo_history(engine, Locator.from_database(url), routing, n=N, end=END, prefix="exp")
    engine.dispose()
    return url


@pytest.fixture(scope="module")
def engine(year_url: str) -> Iterator[Engine]:
    eng = make_engine(year_url, pool_size=1)
    yield eng
    eng.dispose()


@pytest.fixture(scope="module")
def stored(engine: Engine) -> pd.DataFrame:
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT id, reported_at, category, channel, grid_code, district_code, "
                "ST_X(geom) AS lon, ST_Y(geom) AS lat FROM reports ORDER BY id"
            )
        ).all()
    return pd.DataFrame(rows, columns=list(rows[0]._fields))


@pytest.fixture(scope="module")
def exported(engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    out = tmp_path_factory.mktemp("export") / "reports"
    calls: list[tuple[int, int]] = []
    stats = export_reports(
        engine, out, chunk_rows=500, rows_per_file=400, progress=lambda d, t: calls.append((d, t))
    )
    assert calls[-1] == (N, N) and [d for d, _ in calls] == sorted(d for d, _ in calls)
    return out, stats


def _beijing_month(ts: pd.Series) -> pd.Series:
    return pd.to_datetime(ts, utc=True).dt.tz_convert("Asia/Shanghai").dt.strftime("%Y-%m")


def test_every_report_is_exported_once_in_its_month_and_district(
    exported: tuple[Path, object], stored: pd.DataFrame
) -> None:
    out, _ = exported
    files = sorted(out.glob("month=*/district=*/part-*.parquet"))
    assert files and not list(out.rglob(".*"))  # no temporary file left
    frames = []
    for f in files:
        part = gpd.read_parquet(f)
        part["month"] = f.parent.parent.name.removeprefix("month=")
        part["district"] = f.parent.name.removeprefix("district=")
        frames.append(part)
    got = pd.concat(frames).sort_values("id").reset_index(drop=True)
    assert got["id"].tolist() == stored["id"].tolist()
    assert (got["month"] == _beijing_month(stored["reported_at"])).all()
    assert (got["district"] == stored["district_code"]).all()
    assert (got["grid_code"].fillna("") == stored["grid_code"].fillna("")).all()
    assert np.array_equal(got.geometry.x.to_numpy(), stored["lon"].to_numpy())
    assert np.array_equal(got.geometry.y.to_numpy(), stored["lat"].to_numpy())
    assert (got["reported_at"] == pd.to_datetime(stored["reported_at"], utc=True)).all()
    assert not {"description", "photos", "name", "phone"} & set(got.columns)


def test_files_are_geoparquet_written_a_chunk_at_a_time(exported: tuple[Path, object]) -> None:
    out, stats = exported
    for f in sorted(out.glob("month=*/district=*/part-*.parquet")):
        meta = pq.ParquetFile(f).metadata
        geo = json.loads(meta.schema.to_arrow_schema().metadata[b"geo"])
        assert geo["version"] == "1.1.0"
        assert geo["columns"]["geometry"]["covering"]["bbox"]["xmin"] == ["bbox", "xmin"]
        # each write is at most one chunk; a file rolls over past rows_per_file
        assert max(meta.row_group(i).num_rows for i in range(meta.num_row_groups)) <= 500
        assert meta.num_rows < 400 + 500
    assert stats.rows == N  # type: ignore[attr-defined]


def test_the_window_is_beijing_days_from_included_to_excluded(
    engine: Engine, stored: pd.DataFrame, tmp_path: Path
) -> None:
    first, stop = dt.date(2025, 3, 1), dt.date(2025, 5, 1)
    stats = export_reports(engine, tmp_path / "spring", first, stop)
    local = pd.to_datetime(stored["reported_at"], utc=True).dt.tz_convert("Asia/Shanghai")
    inside = (local.dt.date >= first) & (local.dt.date < stop)
    assert stats.rows == int(inside.sum()) > 0
    assert {p.name for p in (tmp_path / "spring").iterdir()} == {"month=2025-03", "month=2025-04"}
    got = pd.read_parquet(tmp_path / "spring", columns=["id"])
    assert sorted(got["id"]) == sorted(stored.loc[inside, "id"])


def test_a_used_destination_or_an_empty_window_is_refused(engine: Engine, tmp_path: Path) -> None:
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "x.txt").write_text("keep me")
    with pytest.raises(InvalidInput, match="not an empty folder"):
        export_reports(engine, tmp_path / "used")
    with pytest.raises(InvalidInput, match="--from must be before --to"):
        export_reports(engine, tmp_path / "none", dt.date(2025, 5, 1), dt.date(2025, 5, 1))


def test_the_cli_exports_a_window(
    year_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DATABASE_URL", year_url)
    result = runner.invoke(
        app,
        ["batch", "export", str(tmp_path / "jan"), "--from", "2025-01-01", "--to", "2025-02-01"],
    )
    assert result.exit_code == 0, result.output
    assert "exported" in result.output
    assert [p.name for p in (tmp_path / "jan").iterdir()] == ["month=2025-01"]
    bad = runner.invoke(app, ["batch", "export", str(tmp_path / "x"), "--from", "2025-13-01"])
    assert bad.exit_code == 2 and "not a date" in bad.output
