"""The analyst notebooks run top to bottom on the demo data with the project's .venv kernel, and
what they compute holds: figures are checked against counts taken here straight from the
database and the layout file, not against the notebooks' own numbers.

They run on a database of their own (migrated, demo boundaries published, no reports), so the
notebooks take their "empty database" path and store the synthetic year, and the session's
shared database keeps only what the other tests put there.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import geopandas as gpd
import nbformat
import numpy as np
import pandas as pd
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient
from sqlalchemy import Engine, text

from geo_service.db.engine import make_engine
from geo_service.settings import PROJECT_ROOT
from tests.support import DEMO_LAYOUT, load_demo

NOTEBOOKS = PROJECT_ROOT / "notebooks"
VENV_PYTHON = PROJECT_ROOT / ".venv" / "bin" / "python"
KERNEL = "geo-service-venv"
N_REPORTS = 20_000
K_MIN = 4  # the notebooks' kernel runs with GEO_ANALYTICS_K_MIN=4 (the default is 5)
CELL_TIMEOUT_S = 300
MARK = "@@probe@@"

HOTSPOT_PROBE = """
import json as _json, sys as _sys
_html = hot_map.get_root().render()
print("@@probe@@" + _json.dumps({
    "prefix": _sys.prefix,
    "executable": _sys.executable,
    "total": int(total),
    "since": since.isoformat(),
    "until": until.isoformat(),
    "heat_total": int(heat_cells["n"].sum()),
    "k_min": int(k_min),
    "public_min": int(public_heat["n"].min()),
    "public_suppressed": int(public_heat.attrs["suppressed"]),
    "heat_small": int(((heat_cells["n"] >= 1) & (heat_cells["n"] < k_min)).sum()),
    "features": int(hot_spots.attrs["features"]),
    "classes": hot_spots["class"].value_counts().to_dict(),
    "q_ge_p": bool((hot_spots["q"] >= hot_spots["p"] - 1e-15).all()),
    "fdr_effect": {c: {k: int(v) for k, v in fdr_effect[c].items()} for c in fdr_effect},
    "esda": esda_check,
    "grid_spots": int(len(grid_spots)),
    "emerging": emerging["category"].value_counts().to_dict(),
    "emerging_slices": len(emerging.attrs["slices"]),
    "map_type": type(hot_map).__module__ + "." + type(hot_map).__name__,
    "map_html": len(_html),
    "map_has_classes": all(c in _html for c in ("hot_99", "L.control.layers")),
}))
"""

WORKLOAD_PROBE = """
import json as _json, sys as _sys
print("@@probe@@" + _json.dumps({
    "prefix": _sys.prefix,
    "total": int(total),
    "since": since.isoformat(),
    "until": until.isoformat(),
    "grids": int(len(workload)),
    "workers": int(workload["workers"].sum()),
    "reports": int(workload["reports"].sum()),
    "per_grid": dict(zip(workload["code"].tolist(), workload["reports"].astype(int).tolist())),
    "open": int(workload["open"].sum()),
    "overdue": int(workload["overdue"].sum()),
    "overdue_share": float(district["overdue share of open cases"]),
    "loop_steps": {a: [float(r.median_s), int(r.steps)] for a, r in loop_steps.iterrows()},
    "cv": workload_cv,
    "overloaded": sorted(overloaded.index),
    "overloaded_min_index": float(overloaded["load_index"].min()),
    "concentration_rows": int(len(concentration)),
}))
"""


# --------------------------------------------------------------------------- running


@pytest.fixture(scope="module")
def notebook_url(new_database) -> str:  # type: ignore[no-untyped-def]
    """A migrated database with the demo boundaries published and no reports."""
    return load_demo(str(new_database("geo_notebooks")))


@pytest.fixture(scope="module")
def notebook_engine(notebook_url: str) -> Iterator[Engine]:
    eng = make_engine(notebook_url, pool_size=1)
    yield eng
    eng.dispose()


@pytest.fixture(scope="module")
def kernels(tmp_path_factory: pytest.TempPathFactory, notebook_url: str) -> KernelSpecManager:
    """A kernel spec that launches the project's .venv python with the notebooks' database
    (and a non-default k, so the walk-through's public layer shows it reads the setting)."""
    if not VENV_PYTHON.exists():
        pytest.fail(f"no project environment at {VENV_PYTHON}: run `make test` (uv sync) first")
    root = tmp_path_factory.mktemp("kernels")
    spec = root / KERNEL
    spec.mkdir()
    (spec / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [str(VENV_PYTHON), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "geo_service .venv",
                "language": "python",
                "env": {
                    "DATABASE_URL": notebook_url,
                    "GEO_NOTEBOOK_REPORTS": str(N_REPORTS),
                    "GEO_ANALYTICS_K_MIN": str(K_MIN),
                },
            }
        )
    )
    return KernelSpecManager(kernel_dirs=[str(root)])


def run_notebook(name: str, probe: str, kernels: KernelSpecManager) -> dict[str, Any]:
    """Execute ``notebooks/<name>`` with a probe cell appended; the probe's JSON, and the
    seconds the notebook took."""
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(probe))
    km = KernelManager(kernel_name=KERNEL, kernel_spec_manager=kernels)
    client = NotebookClient(
        nb,
        km=km,
        kernel_name=KERNEL,
        timeout=CELL_TIMEOUT_S,
        resources={"metadata": {"path": str(NOTEBOOKS)}},
    )
    started = time.perf_counter()
    client.execute()
    seconds = time.perf_counter() - started
    for cell in nb.cells[:-1]:
        for out in cell.get("outputs", []):
            assert out.get("output_type") != "error", out
    lines = [
        line
        for out in nb.cells[-1].outputs
        if out.get("output_type") == "stream"
        for line in out["text"].splitlines()
        if line.startswith(MARK)
    ]
    assert len(lines) == 1, nb.cells[-1].outputs
    result: dict[str, Any] = json.loads(lines[0][len(MARK) :])
    result["seconds"] = seconds
    print(f"{name}: {seconds:.1f} s")  # shown with -s; the budget is about a minute each
    return result


@pytest.fixture(scope="module")
def hotspot_run(kernels: KernelSpecManager) -> dict[str, Any]:
    return run_notebook("hotspot_walkthrough.ipynb", HOTSPOT_PROBE, kernels)


@pytest.fixture(scope="module")
def workload_run(kernels: KernelSpecManager) -> dict[str, Any]:
    return run_notebook("grid_workload.ipynb", WORKLOAD_PROBE, kernels)


def _in_window(engine: Engine, run: dict[str, Any], where: str = "") -> int:
    """Reports in the notebook's analysis window, counted here in SQL."""
    sql = "SELECT count(*) FROM reports WHERE reported_at >= :a AND reported_at < :b" + where
    with engine.connect() as conn:
        return int(
            conn.execute(
                text(sql),
                {"a": dt.datetime.fromisoformat(run["since"]),
                 "b": dt.datetime.fromisoformat(run["until"])},
            ).scalar_one()
        )


def _cv(values: np.ndarray) -> float:
    return float(values.std() / values.mean())


# --------------------------------------------------------------------------- both


def test_committed_notebooks_carry_no_outputs() -> None:
    names = sorted(p.name for p in NOTEBOOKS.glob("*.ipynb"))
    assert names == ["grid_workload.ipynb", "hotspot_walkthrough.ipynb"]
    for name in names:
        nb = nbformat.read(NOTEBOOKS / name, as_version=4)
        nbformat.validate(nb)
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert cell.outputs == [] and cell.execution_count is None, name


def test_notebooks_run_on_the_project_venv_kernel(hotspot_run, workload_run) -> None:  # type: ignore[no-untyped-def]
    venv = (PROJECT_ROOT / ".venv").resolve()
    for run in (hotspot_run, workload_run):
        assert Path(run["prefix"]).resolve() == venv
    assert Path(hotspot_run["executable"]).parent.parent.resolve() == venv
    assert Path(sys.prefix).resolve() == venv  # the suite itself runs from .venv too


def test_an_empty_database_gets_the_synthetic_year_once(  # type: ignore[no-untyped-def]
    notebook_engine, hotspot_run, workload_run
) -> None:
    with notebook_engine.connect() as conn:
        stored = conn.execute(text("SELECT count(*) FROM reports")).scalar_one()
        demo = conn.execute(
            text("SELECT count(*) FROM reports WHERE idempotency_key LIKE 'import:demo-%'")
        ).scalar_one()
    assert stored == demo == N_REPORTS  # loaded once, whichever notebook ran first
    assert hotspot_run["total"] == workload_run["total"] == N_REPORTS


# --------------------------------------------------------------------------- hot spots


def test_walkthrough_heat_counts_every_report_of_the_year(notebook_engine, hotspot_run) -> None:  # type: ignore[no-untyped-def]
    run = hotspot_run
    assert run["heat_total"] == _in_window(notebook_engine, run) > 0.95 * N_REPORTS
    assert run["k_min"] == K_MIN  # the setting, read from the environment
    assert run["public_min"] >= K_MIN
    assert run["public_suppressed"] == run["heat_small"] > 0


def test_walkthrough_finds_significant_hot_spots_after_fdr(hotspot_run) -> None:  # type: ignore[no-untyped-def]
    run = hotspot_run
    classes = run["classes"]
    significant = sum(n for c, n in classes.items() if c != "not_significant")
    assert significant > 0 and classes.get("hot_99", 0) > 0
    assert sum(classes.values()) == run["features"] > 1000
    assert run["q_ge_p"]  # FDR only ever raises p
    with_fdr, without = run["fdr_effect"]["with FDR (q)"], run["fdr_effect"]["without FDR (p)"]
    assert sum(with_fdr.values()) == sum(without.values()) == run["features"]
    assert with_fdr["not_significant"] >= without["not_significant"]  # FDR is stricter
    assert run["grid_spots"] == 2988


def test_walkthrough_matches_esda_g_local(hotspot_run) -> None:  # type: ignore[no-untyped-def]
    check = hotspot_run["esda"]
    assert check["cells"] == hotspot_run["features"]
    assert check["max_abs_dz"] <= 1e-9 and check["max_abs_dp"] <= 1e-9
    assert check["max_abs_dz_layer"] <= 1e-12  # the layer is the rebuilt analysis
    assert check["significant_ours_fdr_05"] == check["significant_esda_fdr_05"] > 0


def test_walkthrough_emerging_categories_and_map(hotspot_run) -> None:  # type: ignore[no-untyped-def]
    run = hotspot_run
    assert run["emerging_slices"] >= 10
    hot_categories = {c for c in run["emerging"] if c.endswith("_hot_spot")}
    assert len(hot_categories) >= 3, run["emerging"]
    assert sum(run["emerging"].values()) > 1000
    assert run["map_type"] == "folium.folium.Map"
    assert run["map_has_classes"] and run["map_html"] > 10_000


# --------------------------------------------------------------------------- workload


@pytest.fixture(scope="module")
def demo_grids() -> gpd.GeoDataFrame:
    frame = gpd.read_file(DEMO_LAYOUT)
    return frame[frame["level"] == "grid"].reset_index(drop=True)


def test_workload_covers_every_grid_and_located_report(  # type: ignore[no-untyped-def]
    notebook_engine, workload_run, demo_grids
) -> None:
    run = workload_run
    assert run["grids"] == len(demo_grids) == 2988
    assert run["workers"] == int(demo_grids["grid_worker"].notna().sum()) == 2988
    located = _in_window(notebook_engine, run, " AND grid_code IS NOT NULL")
    assert run["reports"] == located > 0.95 * N_REPORTS
    with notebook_engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT grid_code, count(*) FROM reports WHERE reported_at >= :a "
                "AND reported_at < :b AND grid_code IS NOT NULL GROUP BY grid_code"
            ),
            {"a": dt.datetime.fromisoformat(run["since"]),
             "b": dt.datetime.fromisoformat(run["until"])},
        ).all()
    assert {g: n for g, n in run["per_grid"].items() if n} == dict(rows)
    assert 0 < run["overdue"] <= run["open"] and 0 < run["overdue_share"] <= 1


def test_workload_cv_matches_an_independent_count(workload_run, demo_grids) -> None:  # type: ignore[no-untyped-def]
    per_grid = np.array([workload_run["per_grid"][c] for c in demo_grids["code"]], dtype=float)
    cv = workload_run["cv"]
    assert cv["reports per grid worker, across grids"] == pytest.approx(_cv(per_grid), rel=1e-12)
    per_hh = 100 * per_grid / demo_grids["households"].to_numpy(dtype=float)
    assert cv["reports per 100 households, across grids"] == pytest.approx(_cv(per_hh), rel=1e-12)
    assert all(np.isfinite(v) and v > 0 for v in cv.values())


def test_workload_flags_communities_at_one_and_a_half_times_the_district_load(  # type: ignore[no-untyped-def]
    workload_run, demo_grids
) -> None:
    community = demo_grids["code"].str.slice(0, 12)
    reports = np.array([workload_run["per_grid"][c] for c in demo_grids["code"]])
    per = (
        pd.DataFrame({"community": community, "reports": reports})
        .groupby("community")["reports"]
        .agg(["sum", "size"])
    )
    index = (per["sum"] / per["size"]) / (per["sum"].sum() / per["size"].sum())
    expected = sorted(index[index >= 1.5].index)
    assert workload_run["overloaded"] == expected and len(expected) > 0
    assert workload_run["overloaded_min_index"] >= 1.5
    assert workload_run["concentration_rows"] == len(expected)


def test_workload_medians_every_loop_step(workload_run) -> None:  # type: ignore[no-untyped-def]
    steps = workload_run["loop_steps"]
    loop = ["accept", "dispatch", "start", "complete", "verify", "feed_back", "evaluate"]
    assert [a for a in steps if a in loop] == loop  # in loop order
    for action in loop:
        median_s, count = steps[action]
        assert median_s > 0 and count > 0.5 * N_REPORTS, action
    assert steps["dispatch"][0] < steps["complete"][0]  # dispatching is minutes, handling hours
