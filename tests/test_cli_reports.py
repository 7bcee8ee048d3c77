"""``geo-service reports import`` and the demo's year: history files (CSV, GeoJSON, GeoParquet)
go in located in the boundary version in force on each report's day; a file with a bad row is
refused whole, naming every problem by line or feature; the demo year is loaded once."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from shapely.geometry import box
from sqlalchemy import text
from typer.testing import CliRunner

from geo_service.boundaries.importer import import_layout
from geo_service.cli import app
from geo_service.coords import wgs84_to_gcj02
from geo_service.db.engine import make_engine
from geo_service.db.migrate import upgrade
from geo_service.demo.year import synthesize_year
from geo_service.locator import Locator
from geo_service.reports.schemas import CHINA_TZ
from tests.layouts import STEP, Y0, small_layout

runner = CliRunner()
V1, V2 = "small-2025", "regrid-2026"
REGRID_DAY = dt.date(2026, 1, 1)
END = dt.date(2026, 7, 1)  # the year straddles the re-gridding
N = 600


def regridded() -> gpd.GeoDataFrame:
    """The small layout with each community's four square grids replaced by two strips."""
    layout = small_layout()
    upper = layout[layout["level"] != "grid"]
    strips = []
    for c in upper[upper["level"] == "community"].itertuples():
        x0 = c.geometry.bounds[0]
        for k in range(2):
            strips.append(
                {
                    "code": f"{c.code}{11 + k:03d}",
                    "name": f"条{k + 1}",
                    "level": "grid",
                    "parent_code": c.code,
                    "households": 600,
                    "geometry": box(x0 + k * STEP, Y0, x0 + (k + 1) * STEP, Y0 + 2 * STEP),
                }
            )
    strip_frame = gpd.GeoDataFrame(strips, geometry="geometry", crs="EPSG:4326")
    return gpd.GeoDataFrame(pd.concat([upper, strip_frame], ignore_index=True), crs="EPSG:4326")


@pytest.fixture(scope="module")
def url(new_database, tmp_path_factory) -> str:  # type: ignore[no-untyped-def]
    """A database whose grids change on 2026-01-01: V1 before, V2 from then."""
    made = str(new_database("geo_cli_reports"))
    upgrade(made)
    folder = tmp_path_factory.mktemp("layouts")
    engine = make_engine(made, pool_size=1)
    for label, frame, day in (
        (V1, small_layout(), dt.date(2025, 1, 1)),
        (V2, regridded(), REGRID_DAY),
    ):
        path = folder / f"{label}.geojson"
        frame.to_file(path)
        import_layout(engine, path, label, crs="wgs84", effective_from=day, publish=True)
    engine.dispose()
    return made


@pytest.fixture(scope="module")
def locators(url: str) -> dict[str, Locator]:
    return {v: Locator.from_database(url, version=v) for v in (V1, V2)}


@pytest.fixture
def cli_env(url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("DATABASE_URL", url)
    return url


def year(locators: dict[str, Locator], prefix: str, n: int = N) -> pd.DataFrame:
    return synthesize_year(locators[V1], n=n, seed=3, end=END, prefix=prefix)


def write(frame: pd.DataFrame, path: Path) -> Path:
    """The frame as CSV (lon/lat columns) or as points (GeoJSON, GeoParquet)."""
    if path.suffix == ".csv":
        frame.to_csv(path, index=False)
        return path
    points = gpd.GeoDataFrame(
        frame.drop(columns=["lon", "lat"]),
        geometry=gpd.points_from_xy(frame["lon"], frame["lat"]),
        crs="EPSG:4326",
    )
    if path.suffix == ".geojson":
        points.to_file(path, driver="GeoJSON")
    else:
        points.to_parquet(path)
    return path


def stored(url: str, prefix: str) -> pd.DataFrame:
    """The stored reports of ``import:<prefix>-...``, by external id."""
    engine = make_engine(url, pool_size=1)
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT substr(r.idempotency_key, 8) AS external_id, r.grid_code, r.in_coverage, "
                "r.crs_original, r.status, v.label AS version, "
                "(SELECT count(*) FROM report_events e WHERE e.report_id = r.id) AS events "
                "FROM reports r JOIN boundary_versions v ON v.id = r.boundary_version_id "
                "WHERE r.idempotency_key LIKE :like"
            ),
            {"like": f"import:{prefix}-%"},
        ).all()
    engine.dispose()
    return (
        pd.DataFrame(rows, columns=list(rows[0]._fields) if rows else None).set_index("external_id")
        if rows
        else pd.DataFrame()
    )


def expected_placement(frame: pd.DataFrame, locators: dict[str, Locator]) -> pd.DataFrame:
    """Version in force on each report's Beijing day and the grid it gives the point."""
    days = frame["reported_at"].dt.tz_convert(CHINA_TZ).dt.date
    version = np.where(days < REGRID_DAY, V1, V2)
    grid = np.empty(len(frame), dtype=object)
    for v, loc in locators.items():
        sel = version == v
        grid[sel] = loc.locate(frame["lon"][sel].to_numpy(), frame["lat"][sel].to_numpy()).grid_code
    return pd.DataFrame(
        {"version": version, "grid_code": grid}, index=frame["external_id"].to_numpy()
    )


def codes(values: pd.Series) -> list[str | None]:
    return [None if pd.isna(v) else str(v) for v in values]


def invoke(*args: str) -> Any:
    return runner.invoke(app, ["reports", "import", *args])


# --------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("suffix", [".csv", ".geojson", ".parquet"])
def test_each_format_is_stored_located_in_the_version_in_force_on_its_day(
    suffix: str, cli_env: str, locators: dict[str, Locator], tmp_path: Path
) -> None:
    prefix = f"rt{suffix[1:]}"
    frame = year(locators, prefix)
    path = write(frame, tmp_path / f"history{suffix}")
    result = invoke(str(path))
    assert result.exit_code == 0, result.output
    assert f"stored {N:,} report(s)" in result.output
    got = stored(cli_env, prefix)
    assert len(got) == N
    want = expected_placement(frame, locators).loc[got.index]
    assert (got["version"] == want["version"]).all()
    assert set(got["version"]) == {V1, V2}  # the year straddles the re-gridding
    assert codes(got["grid_code"]) == codes(want["grid_code"])
    outside = want["grid_code"].isna()
    assert outside.any() and not got.loc[outside, "in_coverage"].any()
    assert (got["status"] == frame.set_index("external_id").loc[got.index, "status"]).all()
    assert (got["events"] >= 1).all()
    again = invoke(str(path))
    assert again.exit_code == 0, again.output
    assert "stored 0 report(s)" in again.output and f"{N:,} already there" in again.output
    assert len(stored(cli_env, prefix)) == N


def test_format_option_reads_a_file_whatever_its_suffix(
    cli_env: str, locators: dict[str, Locator], tmp_path: Path
) -> None:
    frame = year(locators, "fmt", n=50)
    path = write(frame, tmp_path / "export.csv").rename(tmp_path / "export.dat")
    assert invoke(str(path)).exit_code == 2  # the suffix tells nothing
    result = invoke(str(path), "--format", "csv")
    assert result.exit_code == 0, result.output
    assert len(stored(cli_env, "fmt")) == 50


def test_crs_option_gives_the_crs_of_rows_that_name_none(
    cli_env: str, locators: dict[str, Locator], tmp_path: Path
) -> None:
    frame = year(locators, "gcj", n=80)
    gx, gy = wgs84_to_gcj02(frame["lon"].to_numpy(), frame["lat"].to_numpy())
    shifted = frame.drop(columns=["crs"]).assign(lon=np.round(gx, 9), lat=np.round(gy, 9))
    path = write(shifted, tmp_path / "wechat.csv")
    result = invoke(str(path), "--crs", "gcj02")
    assert result.exit_code == 0, result.output
    got = stored(cli_env, "gcj")
    want = expected_placement(frame, locators).loc[got.index]
    assert (got["crs_original"] == "gcj02").all()
    # the points converted back to WGS84 fall in the grids of the original points
    inside = want["grid_code"].notna()
    agree = (got.loc[inside, "grid_code"] == want.loc[inside, "grid_code"]).mean()
    assert agree > 0.97  # GCJ-02 round trips to within centimetres; edges may flip


# --------------------------------------------------------------------------- refusals


def bad_csv(tmp_path: Path, locators: dict[str, Locator]) -> Path:
    """Three good rows and four bad ones, with a blank line and a two-line description so that
    line numbers differ from row numbers."""
    g = locators[V1].grids.iloc[3].geometry.representative_point()
    future = (dt.datetime.now(CHINA_TZ) + dt.timedelta(days=3)).strftime("%Y-%m-%d %H:%M")
    lines = [
        "external_id,channel,category,description,reported_at,lon,lat",  # line 1
        f"bad-1,grid_app,sanitation,垃圾满溢,2025-03-01 09:00,{g.x},{g.y}",  # 2
        "",  # 3
        f'bad-2,grid_app,sanitation,"两行\n描述",2025-03-01 09:00,{g.x},{g.y}',  # 4-5
        f"bad-3,grid_app,ufo_sighting,不明飞行物,2025-03-01 09:00,{g.x},{g.y}",  # 6
        f"bad-4,grid_app,sanitation,垃圾满溢,{future},{g.x},{g.y}",  # 7
        f"bad-5,grid_app,sanitation,垃圾满溢,2024-06-01 09:00,{g.x},{g.y}",  # 8
        f"bad-6,grid_app,sanitation,垃圾满溢,2025-03-01 09:00,abc,{g.y}",  # 9
        f"bad-7,wechat,theft,电瓶被盗,2026-02-01 09:00,{g.x},{g.y}",  # 10
    ]
    path = tmp_path / "bad.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_a_file_with_bad_rows_is_refused_whole_naming_each_by_line(
    cli_env: str, locators: dict[str, Locator], tmp_path: Path
) -> None:
    result = invoke(str(bad_csv(tmp_path, locators)))
    assert result.exit_code == 1, result.output
    out = result.output
    assert "4 row(s) refused: nothing written" in out
    assert "line 6: unknown category 'ufo_sighting'" in out
    assert "line 7: reported_at" in out and "is in the future" in out
    assert "line 8: no boundary version was in force on 2024-06-01" in out
    assert "line 9: lon 'abc' is not a number" in out
    assert "line 2:" not in out and "line 4:" not in out and "line 10:" not in out
    assert stored(cli_env, "bad").empty


def test_skip_bad_stores_the_good_rows_and_still_lists_the_refused(
    cli_env: str, locators: dict[str, Locator], tmp_path: Path
) -> None:
    result = invoke(str(bad_csv(tmp_path, locators)), "--skip-bad")
    assert result.exit_code == 1, result.output
    assert "4 row(s) refused" in result.output and "nothing written" not in result.output
    assert "stored 3 report(s)" in result.output
    got = stored(cli_env, "bad")
    assert sorted(got.index) == ["bad-1", "bad-2", "bad-7"]
    assert got.loc["bad-1", "version"] == V1 and got.loc["bad-7", "version"] == V2


def test_geojson_refusals_name_the_feature(
    cli_env: str, locators: dict[str, Locator], tmp_path: Path
) -> None:
    g = locators[V1].grids.iloc[5].geometry
    layer = gpd.GeoDataFrame(
        {
            "external_id": ["geo-1", "geo-2", "geo-3"],
            "channel": ["grid_app", "grid_app", "visit"],
            "category": ["sanitation", "sanitation", "sanitation"],
            "description": ["点", "面", "点"],
            "reported_at": ["2025-04-01T09:00:00+08:00", "2025-04-01T09:00:00+08:00", ""],
        },
        geometry=[g.representative_point(), g, g.representative_point()],
        crs="EPSG:4326",
    )
    path = tmp_path / "mixed.geojson"
    layer.to_file(path, driver="GeoJSON")
    result = invoke(str(path))
    assert result.exit_code == 1, result.output
    assert f"feature 2: geometry is a {g.geom_type}, not a Point" in result.output
    assert "feature 3: reported_at is missing" in result.output
    assert stored(cli_env, "geo").empty


def test_a_file_that_cannot_be_history_exits_2_naming_the_problem(
    cli_env: str, tmp_path: Path
) -> None:
    no_lon = tmp_path / "no_lon.csv"
    no_lon.write_text("channel,category,description,reported_at,lat\n", encoding="utf-8")
    result = invoke(str(no_lon))
    assert result.exit_code == 2 and "no column 'lon'" in result.output
    result = invoke(str(no_lon), "--format", "xlsx")
    assert result.exit_code == 2 and "unknown format 'xlsx'" in result.output
    result = invoke(str(tmp_path / "missing.csv"))
    assert result.exit_code == 2 and "no such file" in result.output


# --------------------------------------------------------------------------- the demo year


def test_the_demo_loads_its_year_once(new_database, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    url = str(new_database("geo_cli_demo"))
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("GEO_DEMO_REPORTS", "300")
    first = runner.invoke(app, ["demo", "--no-serve"])
    assert first.exit_code == 0, first.output
    assert "demo year: 300 reports stored" in first.output
    second = runner.invoke(app, ["demo", "--no-serve"])
    assert second.exit_code == 0, second.output
    assert "demo year: 300 reports already loaded" in second.output
    engine = make_engine(url, pool_size=1)
    with engine.connect() as conn:
        count = conn.execute(text("SELECT count(*) FROM reports")).scalar_one()
        keys = conn.execute(
            text(
                "SELECT count(DISTINCT idempotency_key) FROM reports "
                "WHERE idempotency_key LIKE 'import:demo-%'"
            )
        ).scalar_one()
        routed = conn.execute(
            text("SELECT count(*) FROM reports WHERE unit_id IS NULL AND in_coverage")
        ).scalar_one()
    engine.dispose()
    assert count == keys == 300
    assert routed == 0  # every report in a grid has its unit
