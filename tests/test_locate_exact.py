"""The Locator names the same owner as PostGIS ``ST_Covers``, lowest grid code on shared edges."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from sqlalchemy import Engine, text

from geo_service.locator import Locator

# The grid PostGIS names for each point: every grid that covers it, lowest code first.
POSTGIS_OWNER = text("""
    SELECT p.i, min(va.code) AS code
    FROM unnest(CAST(:xs AS float8[]), CAST(:ys AS float8[])) WITH ORDINALITY AS p(x, y, i)
    JOIN areas a ON ST_Covers(a.geom, ST_SetSRID(ST_MakePoint(p.x, p.y), 4326))
    JOIN version_areas va ON va.area_id = a.id AND va.version_id = :v AND va.level = 'grid'
    GROUP BY p.i
""")


def postgis_owner(engine: Engine, version_id: int, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    out = np.full(len(xs), None, dtype=object)
    with engine.connect() as conn:
        for lo in range(0, len(xs), 50_000):
            rows = conn.execute(POSTGIS_OWNER, {"xs": xs[lo:lo + 50_000].tolist(),
                                                "ys": ys[lo:lo + 50_000].tolist(),
                                                "v": version_id}).all()
            for i, code in rows:
                out[lo + i - 1] = code
    return out


def test_100k_random_points_match_postgis(demo_locator: Locator, engine: Engine) -> None:
    rng = np.random.default_rng(2026)
    minx, miny, maxx, maxy = demo_locator.grids.total_bounds
    pad = 0.01  # some points fall outside the district on purpose
    xs = rng.uniform(minx - pad, maxx + pad, 100_000)
    ys = rng.uniform(miny - pad, maxy + pad, 100_000)
    ours = demo_locator.locate(xs, ys).grid_code
    theirs = postgis_owner(engine, demo_locator.version.id, xs, ys)
    assert (ours == None).sum() > 1_000  # noqa: E711 - outside points were exercised
    assert (ours != None).sum() > 30_000  # noqa: E711
    mismatch = np.flatnonzero(ours != theirs)
    assert len(mismatch) == 0, f"{len(mismatch)} disagreements, e.g. {xs[mismatch[:3]]}"


def _shared_vertices(locator: Locator) -> np.ndarray:
    coords, which = shapely.get_coordinates(locator.grids.geometry.to_numpy(), return_index=True)
    pairs = np.unique(np.column_stack([coords, which]), axis=0)  # one per (vertex, grid)
    verts, counts = np.unique(pairs[:, :2], axis=0, return_counts=True)
    return verts[counts >= 2]


def test_every_shared_vertex_goes_to_the_lowest_covering_code(
    demo_locator: Locator, engine: Engine
) -> None:
    verts = _shared_vertices(demo_locator)
    assert len(verts) > 5_000
    ours = demo_locator.locate(verts[:, 0], verts[:, 1]).grid_code
    theirs = postgis_owner(engine, demo_locator.version.id, verts[:, 0], verts[:, 1])
    assert (ours == None).sum() == 0  # noqa: E711 - a shared vertex is always covered
    assert list(ours) == list(theirs)


def test_shared_vertex_tie_break_is_the_lowest_code(demo_locator: Locator) -> None:
    verts = _shared_vertices(demo_locator)[:2_000]
    geoms = demo_locator.grids.geometry.to_numpy()
    codes = demo_locator.grids["code"].to_numpy()
    tree = shapely.STRtree(geoms)
    pi, gi = tree.query(shapely.points(verts), predicate="intersects")
    expected = {}
    for p, g in zip(pi, gi, strict=True):
        expected[p] = min(expected.get(p, codes[g]), codes[g])
    ours = demo_locator.locate(verts[:, 0], verts[:, 1]).grid_code
    assert [ours[p] for p in sorted(expected)] == [expected[p] for p in sorted(expected)]


def test_points_on_shared_edges_are_owned_exactly_once(demo_locator: Locator) -> None:
    """Axis-aligned midpoints of shared edges are exactly representable: PostGIS's own side
    test says 'boundary', so both grids cover them and the lower code must win."""
    grids = demo_locator.grids
    codes = grids["code"].to_numpy()
    coords, which = shapely.get_coordinates(grids.geometry.to_numpy(), return_index=True)
    xs, ys, owners = [], [], []
    for g in range(min(len(grids), 400)):
        ring = coords[which == g]
        for (x1, y1), (x2, y2) in zip(ring[:-1], ring[1:], strict=True):
            if x1 == x2 or y1 == y2:  # a midpoint of an axis-aligned edge lies on it exactly
                xs.append((x1 + x2) / 2)
                ys.append((y1 + y2) / 2)
                owners.append(g)
    res = demo_locator.locate(np.array(xs), np.array(ys))
    idx = res.grid_index
    assert (idx >= 0).all()
    assert (idx <= np.array(owners)).all()  # never a higher code than a covering grid
    assert demo_locator.index.covers(idx, np.array(xs), np.array(ys)).all()
    assert all(codes[i] <= codes[o] for i, o in zip(idx, owners, strict=True))


def test_locator_from_file_equals_locator_from_database(demo_locator: Locator) -> None:
    from tests.conftest import DEMO_LAYOUT

    from_file = Locator.from_file(DEMO_LAYOUT, crs="wgs84")
    rng = np.random.default_rng(3)
    minx, miny, maxx, maxy = demo_locator.grids.total_bounds
    xs, ys = rng.uniform(minx, maxx, 50_000), rng.uniform(miny, maxy, 50_000)
    assert list(from_file.locate(xs, ys).grid_code) == list(demo_locator.locate(xs, ys).grid_code)


def test_gcj02_input_is_converted_before_locating(demo_locator: Locator) -> None:
    from geo_service.coords import wgs84_to_gcj02

    rng = np.random.default_rng(5)
    minx, miny, maxx, maxy = demo_locator.grids.total_bounds
    xs, ys = rng.uniform(minx, maxx, 5_000), rng.uniform(miny, maxy, 5_000)
    gx, gy = wgs84_to_gcj02(xs, ys)
    direct = demo_locator.locate(xs, ys)
    via_gcj = demo_locator.locate(gx, gy, crs="gcj02")
    near_edge = direct.boundary_distance_m() < 0.01  # conversion error is below 1 cm
    assert (direct.grid_code[~near_edge] == via_gcj.grid_code[~near_edge]).all()


def test_result_carries_codes_names_and_chain(demo_locator: Locator) -> None:
    g = demo_locator.grids.iloc[0]
    pt = g.geometry.representative_point()
    res = demo_locator.locate([pt.x], [pt.y])
    assert res.grid_code[0] == g["code"]
    assert res.grid_name[0] == g["name"]
    chain = demo_locator.chain(int(res.grid_index[0]))
    assert [c["level"] for c in chain] == ["district", "town", "community", "grid"]
    assert all(chain[-1]["code"].startswith(c["code"]) for c in chain)


@pytest.mark.parametrize("bad", [[np.nan], [np.inf]])
def test_non_finite_points_are_refused(demo_locator: Locator, bad: list[float]) -> None:
    from geo_service.errors import InvalidCoordinates

    with pytest.raises(InvalidCoordinates):
        demo_locator.locate(bad, [30.7])
