"""The sharded Locator answers exactly what one Locator over the whole layout answers:
interiors, every shared vertex and edge (lowest code wins across shards too), points outside,
and the code chain; a shard holds only its own grids, and the router sends a point only to
shards that may own it."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import shapely

from geo_service.batch.sharding import (
    CELL_M_FLOOR,
    ShardedLayout,
    chain_codes,
    locate_sharded,
    shard_cell_m,
)
from geo_service.boundaries.reader import read_layout
from geo_service.errors import InvalidInput
from geo_service.locator import Locator
from tests.support import DEMO_LAYOUT


@pytest.fixture(scope="module")
def layout() -> gpd.GeoDataFrame:
    return read_layout(DEMO_LAYOUT, crs="wgs84").frame


@pytest.fixture(scope="module")
def whole(layout: gpd.GeoDataFrame) -> Locator:
    return Locator.from_frame(layout)


@pytest.fixture(scope="module")
def by_town(layout: gpd.GeoDataFrame) -> ShardedLayout:
    return ShardedLayout.from_frame(layout, level="town")


def _hard_points(grids: gpd.GeoDataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Random points around the layout, every grid vertex and every edge midpoint."""
    rng = np.random.default_rng(7)
    x0, y0, x1, y1 = grids.total_bounds
    rx, ry = rng.uniform(x0 - 0.01, x1 + 0.01, 200_000), rng.uniform(y0 - 0.01, y1 + 0.01, 200_000)
    rings = shapely.get_exterior_ring(shapely.get_parts(grids.geometry.to_numpy()))
    coords = shapely.get_coordinates(rings)
    vx, vy = coords[:, 0], coords[:, 1]
    mx, my = (vx[:-1] + vx[1:]) / 2, (vy[:-1] + vy[1:]) / 2
    return np.concatenate([rx, vx, mx]), np.concatenate([ry, vy, my])


def test_town_shards_answer_as_the_whole_locator_on_edges_and_vertices(
    by_town: ShardedLayout, whole: Locator
) -> None:
    assert len(by_town.keys) == 9 and by_town.n_grids == len(whole)
    x, y = _hard_points(whole.grids)
    shards = {i: by_town.build(i) for i in range(len(by_town.keys))}
    shard_of, local = locate_sharded(by_town.router, shards, x, y)
    codes = chain_codes(shards, shard_of, local)
    expected = whole.locate(x, y)
    assert (codes["grid_code"] == expected.grid_code).all()
    assert expected.found.mean() > 0.3 and (~expected.found).any()
    rows = whole.grids.set_index("code")
    inside = expected.found
    for level in ("community", "town", "district"):
        want = rows[f"{level}_code"].reindex(expected.grid_code[inside]).to_numpy()
        assert (codes[f"{level}_code"][inside] == want).all(), level
        assert all(v is None for v in codes[f"{level}_code"][~inside])


def test_points_on_town_boundaries_need_several_shards(
    by_town: ShardedLayout, whole: Locator
) -> None:
    """The tie-break across shards is exercised: some vertices are shared by two towns."""
    x, y = _hard_points(whole.grids)
    pi, si = by_town.router.candidates(x, y)
    per_point = np.bincount(pi, minlength=len(x))
    assert (per_point > 1).any()
    towns = whole.grids["town_code"].to_numpy()
    owner = whole.locate(x, y).grid_index
    # the router never leaves out the shard that owns a point
    routed = set(zip(pi.tolist(), si.tolist(), strict=True))
    key_index = {k: i for i, k in enumerate(by_town.keys)}
    for p in np.flatnonzero(owner >= 0)[::997].tolist():
        assert (p, key_index[towns[owner[p]]]) in routed


def test_a_shard_holds_only_its_grids_and_their_ancestors(by_town: ShardedLayout) -> None:
    for key, part in zip(by_town.keys, by_town.parts, strict=True):
        grids = part[part["level"] == "grid"]
        assert grids["code"].str.startswith(key).all()
        assert set(part.loc[part["level"] != "grid", "code"]) >= {key[:6], key}


def test_district_shards_of_one_district_are_one_shard(layout: gpd.GeoDataFrame) -> None:
    sharded = ShardedLayout.from_frame(layout)
    assert sharded.keys == ("330411",) and sharded.grid_counts == [2988]


def test_a_shard_index_is_never_finer_than_the_floor(by_town: ShardedLayout) -> None:
    small = by_town.parts[0]
    bounds = small.loc[small["level"] == "grid"].geometry.bounds.to_numpy()
    assert shard_cell_m(bounds) == CELL_M_FLOOR
    shard = by_town.build(0)
    assert shard.locator.index.stats()["cell_m"] == pytest.approx(CELL_M_FLOOR, rel=1e-3)


def test_a_layout_without_grids_is_refused(layout: gpd.GeoDataFrame) -> None:
    with pytest.raises(InvalidInput, match="no grids"):
        ShardedLayout.from_frame(layout[layout["level"] != "grid"])
    with pytest.raises(InvalidInput, match="districts or towns"):
        ShardedLayout.from_frame(layout, level="community")
