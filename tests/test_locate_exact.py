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
            rows = conn.execute(
                POSTGIS_OWNER,
                {
                    "xs": xs[lo : lo + 50_000].tolist(),
                    "ys": ys[lo : lo + 50_000].tolist(),
                    "v": version_id,
                },
            ).all()
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


def test_points_on_shared_edges_and_corners_go_to_the_lowest_code(engine: Engine) -> None:
    """On the square test layout, points exactly on shared edges and corners are covered by
    two or four grids: PostGIS and the Locator both pick the lowest code."""
    from tests.layouts import small_layout

    layout = small_layout()
    locator = Locator.from_frame(layout)
    grids = locator.grids
    # every vertex of the squares, the midpoint of every edge (exactly on it: the edges are
    # axis-aligned) and every centre
    coords = np.unique(shapely.get_coordinates(grids.geometry.to_numpy()), axis=0)
    ux, uy = np.unique(coords[:, 0]), np.unique(coords[:, 1])
    mx, my = (
        np.concatenate([ux, (ux[:-1] + ux[1:]) / 2]),
        np.concatenate([uy, (uy[:-1] + uy[1:]) / 2]),
    )
    xs, ys = (a.ravel() for a in np.meshgrid(mx, my))
    ours = locator.locate(xs, ys).grid_code
    with engine.connect() as conn:
        rows = conn.execute(
            text("""
                SELECT p.i, min(g.code) FROM
                  unnest(CAST(:xs AS float8[]), CAST(:ys AS float8[])) WITH ORDINALITY p(x, y, i)
                  JOIN unnest(CAST(:codes AS text[]), CAST(:wkbs AS bytea[])) g(code, wkb)
                    ON ST_Covers(ST_GeomFromWKB(g.wkb, 4326), ST_Point(p.x, p.y, 4326))
                GROUP BY p.i"""),
            {
                "xs": xs.tolist(),
                "ys": ys.tolist(),
                "codes": grids["code"].tolist(),
                "wkbs": [g.wkb for g in grids.geometry],
            },
        ).all()
    theirs = np.full(len(xs), None, dtype=object)
    for i, code in rows:
        theirs[i - 1] = code
    assert (theirs != None).all()  # noqa: E711 - every lattice point is in the district
    assert list(ours) == list(theirs)
    # a corner shared by four grids goes to the lowest of the four codes
    cx, cy = ux[1], uy[1]
    corner = locator.locate([cx], [cy]).grid_code[0]
    covering = grids[grids.geometry.covers(shapely.Point(cx, cy))]["code"]
    assert len(covering) == 4 and corner == covering.min()


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


def test_chain_of_no_grid_is_none_never_another_grids_chain(demo_locator: Locator) -> None:
    res = demo_locator.locate([116.39], [39.91])  # Beijing: outside every grid
    assert int(res.grid_index[0]) == -1
    assert demo_locator.chain(int(res.grid_index[0])) is None
    with pytest.raises(IndexError, match="out of range"):
        demo_locator.chain(len(demo_locator))


@pytest.mark.parametrize("bad", [[np.nan], [np.inf]])
def test_non_finite_points_are_refused(demo_locator: Locator, bad: list[float]) -> None:
    from geo_service.errors import InvalidCoordinates

    with pytest.raises(InvalidCoordinates):
        demo_locator.locate(bad, [30.7])
