"""Hot spots: our sparse Gi* equals esda's G_Local(star=True) on the same weights (z and p to
1e-9), FDR equals the references, classes follow Esri's Gi_Bin, the automatic band follows
Optimized Hot Spot Analysis, fewer than 30 features are refused, and the layer finds a planted
cluster through the API."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import esda
import geopandas as gpd
import h3
import libpysal
import numpy as np
import pytest
import scipy.sparse as sp
import shapely
from fastapi.testclient import TestClient
from scipy import stats
from sqlalchemy import Engine

from geo_service.analytics import h3sql, hotspots
from geo_service.analytics.hotspots import (
    NotEnoughFeatures,
    NoVariation,
    analyse,
    bh_adjust,
    confidence_bins,
    gi_star,
    permutation_p,
)
from geo_service.analytics.weights import (
    auto_band,
    contiguity,
    distance_band,
    moran_z_by_distance,
    projected,
)
from geo_service.locator import Locator
from geo_service.settings import PROJECT_ROOT
from tests.conftest import auth
from tests.test_heat import file_reports

BJ = ZoneInfo("Asia/Shanghai")


def _esda(y: np.ndarray, w: libpysal.weights.W) -> esda.G_Local:
    return esda.G_Local(y, w, transform="B", star=True, permutations=0)


def _same_neighbours(ours: sp.csr_matrix, theirs: libpysal.weights.W) -> None:
    """Our weights without the diagonal are exactly libpysal's."""
    off = (ours - sp.identity(ours.shape[0], format="csr")).tocsr()
    off.eliminate_zeros()
    assert abs(off - theirs.sparse.tocsr()).nnz == 0


def _clustered(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, 5000, (n, 2))
    y = rng.poisson(3, n).astype(float)
    y[np.hypot(*(xy - 1500).T) < 700] += rng.poisson(6, (np.hypot(*(xy - 1500).T) < 700).sum())
    y[np.hypot(*(xy - 4000).T) < 600] = 0  # a cold patch
    return xy, y


def test_gi_star_equals_esda_on_a_distance_band() -> None:
    xy, y = _clustered(600, 1)
    ours = distance_band(xy, 420.0)
    theirs = libpysal.weights.DistanceBand(xy, 420.0, binary=True, silence_warnings=True)
    _same_neighbours(ours, theirs)
    g, ref = gi_star(y, ours), _esda(y, theirs)
    np.testing.assert_allclose(g.z, ref.Zs, rtol=0, atol=1e-9)
    np.testing.assert_allclose(g.p_norm, ref.p_norm, rtol=0, atol=1e-9)
    np.testing.assert_allclose(g.p, np.minimum(2 * ref.p_norm, 1), rtol=0, atol=1e-9)
    cardinalities = np.array([theirs.cardinalities[i] for i in theirs.id_order])
    assert (g.neighbours == cardinalities + 1).all()


def test_gi_star_equals_esda_on_h3_cells_with_the_automatic_band() -> None:
    cells = h3sql.cells_in(shapely.box(120.6, 30.65, 120.8, 30.8), 9)
    lon, lat = h3sql.centres(cells)
    xy = projected(lon, lat)
    rng = np.random.default_rng(2)
    y = rng.poisson(1.5, cells.size).astype(float)
    y[np.hypot(*(xy - xy.mean(axis=0)).T) < 1500] += 4
    band = auto_band(xy, y)
    ours = distance_band(xy, band.distance_m)
    theirs = libpysal.weights.DistanceBand(xy, band.distance_m, binary=True,
                                           silence_warnings=True)
    _same_neighbours(ours, theirs)
    g, ref = gi_star(y, ours), _esda(y, theirs)
    np.testing.assert_allclose(g.z, ref.Zs, rtol=0, atol=1e-9)
    np.testing.assert_allclose(g.p_norm, ref.p_norm, rtol=0, atol=1e-9)


@pytest.fixture(scope="module")
def demo_grids() -> gpd.GeoDataFrame:
    frame = gpd.read_file(PROJECT_ROOT / "boundaries" / "xiuzhou_demo.geojson")
    return frame[frame["level"] == "grid"].reset_index(drop=True)


@pytest.mark.parametrize(
    ("rule", "reference"), [("queen", libpysal.weights.Queen), ("rook", libpysal.weights.Rook)]
)
def test_gi_star_equals_esda_on_grid_contiguity(demo_grids, rule, reference) -> None:  # type: ignore[no-untyped-def]
    ours = contiguity(np.asarray(demo_grids.geometry.values), rule)
    theirs = reference.from_dataframe(demo_grids, use_index=False, silence_warnings=True)
    _same_neighbours(ours, theirs)
    rng = np.random.default_rng(3)
    y = rng.poisson(4, len(demo_grids)).astype(float)
    y[:150] += 5  # the first town's grids: a hot region
    g, ref = gi_star(y, ours), _esda(y, theirs)
    np.testing.assert_allclose(g.z, ref.Zs, rtol=0, atol=1e-9)
    np.testing.assert_allclose(g.p_norm, ref.p_norm, rtol=0, atol=1e-9)


def test_fdr_equals_scipy_and_esda() -> None:
    rng = np.random.default_rng(4)
    p = np.concatenate([rng.uniform(0, 1, 900), rng.uniform(0, 1e-3, 60), [0.0, 1.0]])
    q = bh_adjust(p)
    np.testing.assert_allclose(q, stats.false_discovery_control(p, method="bh"), atol=1e-12)
    for alpha in (0.01, 0.05, 0.10):
        assert ((q <= alpha) == (p <= esda.fdr(p, alpha))).all()
    none = rng.uniform(0.5, 1, 100)  # nothing to reject
    assert not (bh_adjust(none) <= 0.1).any() and not (none <= esda.fdr(none, 0.1)).any()


def test_bins_follow_esri_confidence_levels() -> None:
    z = np.array([3.0, 2.0, 1.7, 1.5, -1.7, -2.0, -3.0, 0.0])
    p = 2 * stats.norm.sf(np.abs(z))  # no FDR: the |z| thresholds 2.576, 1.96, 1.645
    assert confidence_bins(z, p).tolist() == [3, 2, 1, 0, -1, -2, -3, 0]
    frame = analyse(np.r_[np.full(40, 1.0), 9, 9, 9], sp.identity(43, format="csr"), fdr=False)
    assert set(frame["class"]) <= set(hotspots.CLASS_OF_BIN.values())
    assert (frame["class"] == frame["gi_bin"].map(hotspots.CLASS_OF_BIN)).all()


def test_fdr_makes_classes_stricter() -> None:
    xy, y = _clustered(600, 5)
    w = distance_band(xy, 420.0)
    plain, corrected = analyse(y, w, fdr=False), analyse(y, w, fdr=True)
    assert (np.abs(corrected["gi_bin"]) <= np.abs(plain["gi_bin"])).all()
    assert (corrected["q"] >= corrected["p"] - 1e-15).all()
    assert (corrected["gi_bin"] == 3).any() and (corrected["gi_bin"] < 0).any()


@pytest.mark.slow
def test_permutation_p_agrees_with_esda() -> None:
    xy, y = _clustered(300, 6)
    theirs = libpysal.weights.DistanceBand(xy, 500.0, binary=True, silence_warnings=True)
    ref = esda.G_Local(y, theirs, transform="B", star=True, permutations=9999, seed=5,
                       n_jobs=1, keep_simulations=False)
    ours = permutation_p(y, distance_band(xy, 500.0), 9999, seed=11)
    assert np.abs(ours - ref.p_sim).max() < 0.03  # Monte Carlo error only
    np.testing.assert_array_equal(ours, permutation_p(y, distance_band(xy, 500.0), 9999, seed=11))
    assert ours.min() == pytest.approx(1 / 10000) and ours.max() <= 0.5 + 1e-3


def test_permutation_inference_classes() -> None:
    xy, y = _clustered(400, 7)
    frame = analyse(y, distance_band(xy, 450.0), method="permutation", permutations=999, seed=1)
    assert {"p_sim", "q"} <= set(frame.columns)
    np.testing.assert_allclose(frame["p"], np.minimum(2 * frame["p_sim"], 1))
    analytic = analyse(y, distance_band(xy, 450.0))
    agree = (np.sign(frame["gi_bin"]) == np.sign(analytic["gi_bin"])).mean()
    assert agree > 0.9


def test_fewer_than_30_features_are_refused() -> None:
    with pytest.raises(NotEnoughFeatures, match="at least 30"):
        analyse(np.arange(29.0), sp.identity(29, format="csr"))
    analyse(np.arange(30.0), sp.identity(30, format="csr"))
    with pytest.raises(NoVariation):
        gi_star(np.ones(40), sp.identity(40, format="csr"))


def test_moran_curve_equals_esda() -> None:
    xy, y = _clustered(500, 8)
    radii = [250.0, 410.5, 777.7]
    ours = moran_z_by_distance(xy, y, radii)
    for r, z in zip(radii, ours, strict=True):
        w = libpysal.weights.DistanceBand(xy, r, binary=True, silence_warnings=True)
        ref = esda.Moran(y, w, transformation="B", permutations=0)
        assert z == pytest.approx(ref.z_rand, abs=1e-9)


def test_automatic_band_takes_the_first_significant_peak() -> None:
    gx, gy = np.meshgrid(np.arange(40), np.arange(40))
    xy = np.column_stack([gx.ravel(), gy.ravel()]) * 100.0 + 0.01 * np.arange(1600)[:, None]
    y = np.zeros(len(xy))
    for cx in range(500, 4000, 1000):  # blobs 1 km apart: clustering peaks at a few hundred m
        for cy in range(500, 4000, 1000):
            y += 10 * np.exp(-((xy[:, 0] - cx) ** 2 + (xy[:, 1] - cy) ** 2) / (2 * 250**2))
    y += np.random.default_rng(9).normal(0, 0.5, len(y))
    band = auto_band(xy, y)
    assert band.rule == "isa_first_peak"
    z = band.detail["z"]
    i = band.detail["distances_m"].index(round(band.distance_m, 1))  # type: ignore[union-attr]
    assert 0 < i < 9 and z[i] > z[i - 1] and z[i] >= z[i + 1] and z[i] >= 1.96  # type: ignore[index,operator]


def test_automatic_band_without_a_peak_is_the_mean_distance_to_k_neighbours() -> None:
    rng = np.random.default_rng(10)
    xy = rng.uniform(0, 10_000, (400, 2))
    y = rng.poisson(3, 400).astype(float)  # no spatial structure
    band = auto_band(xy, y)
    assert band.rule == "mean_distance_to_k_neighbours"
    k = 20  # 5 % of 400
    assert band.detail["k"] == k
    dist = np.sort(np.hypot(*(xy[:, None, :] - xy[None, :, :]).transpose(2, 0, 1)), axis=1)
    assert band.distance_m == pytest.approx(max(dist[:, k].mean(), dist[:, 1].max()))


# --------------------------------------------------------------------------- through the API

APRIL = {"from": "2025-04-01T00:00:00+08:00", "to": "2025-05-01T00:00:00+08:00"}


@pytest.fixture(scope="module")
def april(engine: Engine, demo_locator: Locator) -> dict[str, object]:
    """A planted cluster (a res-9 cell and its ring, 25 reports each) over a background of
    one or two reports in 150 scattered cells, all in April 2025."""
    grids = demo_locator.grids
    centre_grid = grids.iloc[1400]
    c = centre_grid.geometry.representative_point()
    centre = h3.latlng_to_cell(c.y, c.x, 9)
    rows = []
    for cell in h3.grid_disk(centre, 1):
        lat, lon = h3.cell_to_latlng(cell)
        rows += [{"lon": lon + 1e-6 * i, "lat": lat} for i in range(25)]
    rng = np.random.default_rng(11)
    inside = h3sql.cells_in(shapely.union_all(np.asarray(grids.geometry.values)), 9)
    for cell in rng.choice(inside, 150, replace=False):
        lat, lon = h3.cell_to_latlng(h3.int_to_str(int(cell)))
        rows += [{"lon": lon, "lat": lat}] * int(rng.integers(1, 3))
    rows += [{"lon": 121.6, "lat": 31.4}] * 6  # outside coverage: not in the study area
    t0 = dt.datetime(2025, 4, 2, tzinfo=BJ)
    for i, r in enumerate(rows):
        r["at"] = t0 + dt.timedelta(minutes=37 * i % (25 * 24 * 60))
        r["category"] = "road_occupation"
    file_reports(engine, demo_locator, rows)
    return {"centre": centre, "grid": demo_locator.locate([c.x], [c.y]).grid_code[0]}


def test_hotspot_layer_finds_the_planted_cluster(client: TestClient, keys, april) -> None:  # type: ignore[no-untyped-def]
    r = client.get("/v1/analytics/hotspots", params={**APRIL, "res": 9, "k": 0},
                   headers=auth(keys["operator"]))
    assert r.status_code == 200, r.text
    body = r.json()
    meta = body["analysis"]
    assert meta["layer"] == "hotspots" and meta["fdr"] is True and meta["features"] >= 30
    assert meta["band_rule"] in ("isa_first_peak", "mean_distance_to_k_neighbours")
    feats = {f["id"]: f["properties"] for f in body["features"]}
    assert h3.latlng_to_cell(31.4, 121.6, 9) not in feats  # the outlier does not stretch
    assert meta["distance_band_m"] < 5000  # the band
    centre = feats[april["centre"]]
    assert centre["class"] == "hot_99" and centre["gi_bin"] == 3 and centre["n"] == 25
    assert centre["q"] <= 0.01 and centre["z"] > 2.576
    far = [p for c, p in feats.items() if h3.grid_distance(c, april["centre"]) > 8]
    assert any(p["n"] > 0 for p in far)
    assert all(p["class"] == "not_significant" for p in far)  # scattered reports: no cluster
    # unasked k (a staff key: the public sees no res-9 cells): cells of 1..4 reports are
    # dropped, zeros and the cluster stay
    public = client.get("/v1/analytics/hotspots", params={**APRIL, "res": 9},
                        headers=auth(keys["operator"])).json()
    kept = {f["id"]: f["properties"]["n"] for f in public["features"]}
    assert april["centre"] in kept and not any(0 < n < 5 for n in kept.values())
    assert public["analysis"]["suppressed"] == sum(1 for p in feats.values() if 0 < p["n"] < 5)


def test_hotspots_on_grids_with_contiguity(client: TestClient, keys, april) -> None:  # type: ignore[no-untyped-def]
    for params in ({"level": "grid"}, {"level": "grid", "contiguity": "rook",
                                       "per_household": True}):
        r = client.get("/v1/analytics/hotspots", params={**APRIL, **params, "k": 0},
                       headers=auth(keys["planner"]))
        assert r.status_code == 200, r.text
        feats = {f["id"]: f["properties"] for f in r.json()["features"]}
        assert feats[april["grid"]]["class"].startswith("hot")
        assert r.json()["analysis"]["weights"] == params.get("contiguity", "queen")


def test_permutation_layer_is_reproducible(client: TestClient, keys, april) -> None:  # type: ignore[no-untyped-def]
    params = {**APRIL, "res": 8, "method": "permutation", "permutations": 199, "seed": 3, "k": 0}
    a = client.get("/v1/analytics/hotspots", params=params, headers=auth(keys["admin"])).json()
    b = client.get("/v1/analytics/hotspots", params=params, headers=auth(keys["admin"])).json()
    assert a["features"] == b["features"]
    assert all(p["properties"]["p_sim"] >= 1 / 200 for p in a["features"])


def test_too_few_features_is_a_clear_422(client: TestClient, april) -> None:  # type: ignore[no-untyped-def]
    r = client.get("/v1/analytics/hotspots", params={**APRIL, "level": "town"})  # 9 towns
    assert r.status_code == 422
    assert r.json()["error"] == "not_enough_features"
    assert "at least 30" in r.json()["message"] and "got 9" in r.json()["message"]
    community = str(april["grid"])[:12]  # a community holds a dozen res-8 cells
    r = client.get("/v1/analytics/hotspots", params={**APRIL, "res": 8, "area": community})
    assert r.status_code == 422 and r.json()["error"] == "not_enough_features"
