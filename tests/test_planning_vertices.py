"""Topological edits through the draft API: a shared vertex moves in every grid that passes
through it (corners and T-junctions alike), snapping to vertices and edges; a move that would
open a gap, make an overlap or leave the community is refused naming the problem and changes
nothing. Also: a draft copied from a stored version, attribute edits, a version's areas as
GeoJSON."""

from __future__ import annotations

import uuid
from typing import Any

import geopandas as gpd
import pytest
import shapely
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from geo_service.boundaries import versions
from tests.conftest import DEMO_LABEL, auth
from tests.layouts import STEP, X0, Y0, small_layout

C1 = "330411100001"
G = [f"{C1}{n:03d}" for n in range(1, 5)]  # NW, NE, SW, SE
CENTRE = [X0 + STEP, Y0 + STEP]

TILING = text("""
    WITH kids AS (
        SELECT a.code, a.geom FROM version_areas va JOIN areas a ON a.id = va.area_id
        WHERE va.version_id = :vid AND va.level = 'grid' AND a.parent_code = :community),
    parent AS (
        SELECT a.geom FROM version_areas va JOIN areas a ON a.id = va.area_id
        WHERE va.version_id = :vid AND va.code = :community)
    SELECT ST_Area(ST_SymDifference((SELECT ST_Union(geom) FROM kids),
                                    (SELECT geom FROM parent))::geography) AS mismatch_m2,
           (SELECT count(*) FROM kids x JOIN kids y ON x.code < y.code
             WHERE ST_Overlaps(x.geom, y.geom)) AS overlapping,
           (SELECT bool_and(ST_IsValid(geom)) FROM kids) AS valid
""")


def _url(vid: int, tail: str = "") -> str:
    return f"/v1/boundaries/versions/{vid}{tail}"


def _grids(engine: Engine, vid: int) -> gpd.GeoDataFrame:
    with engine.connect() as conn:
        return versions.load_areas(conn, vid, ("grid",)).set_index("code")


def tiles(engine: Engine, vid: int, community: str) -> tuple[float, int, bool]:
    """PostGIS's word: area where the grids' union and the community differ (m²), pairs of
    grids that overlap, whether every grid is valid."""
    with engine.connect() as conn:
        row = conn.execute(TILING, {"vid": vid, "community": community}).one()
    return float(row.mismatch_m2), int(row.overlapping), bool(row.valid)


def _move(client: TestClient, keys, vid: int, src: list[float], dst: list[float],
          **extra: Any):  # type: ignore[no-untyped-def]
    return client.post(_url(vid, "/vertices/move"), json={"from": src, "to": dst, **extra},
                       headers=auth(keys["planner"]))


@pytest.fixture
def draft(client: TestClient, keys) -> int:
    r = client.post(
        "/v1/boundaries/versions",
        files={"file": ("layout.geojson", small_layout().to_json().encode())},
        data={"label": f"vertices-{uuid.uuid4().hex[:8]}"},
        headers=auth(keys["planner"]),
    )
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


def test_moving_a_shared_corner_moves_it_in_every_grid_and_keeps_the_tiling(
    client: TestClient, keys, engine: Engine, draft: int
) -> None:
    assert tiles(engine, draft, C1) == (0.0, 0, True)
    dst = [CENTRE[0] + STEP / 4, CENTRE[1] - STEP / 5]
    r = _move(client, keys, draft, [CENTRE[0] + 1e-6, CENTRE[1]], dst)  # within the 2 m snap
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["snapped"]["from"] == "vertex" and body["from"] == CENTRE
    assert sorted(g["code"] for g in body["grids"]) == G
    grids = _grids(engine, draft)
    for code in G:  # every grid holds the new vertex, bit for bit
        assert tuple(dst) in set(map(tuple, shapely.get_coordinates(grids.geometry[code]).tolist()))
    mismatch, overlapping, valid = tiles(engine, draft, C1)
    assert mismatch < 0.01 and overlapping == 0 and valid
    report = client.get(_url(draft, "/validation"), headers=auth(keys["planner"])).json()
    assert report["errors"] == 0


def test_a_point_on_a_shared_edge_becomes_a_vertex_of_both_neighbours(
    client: TestClient, keys, engine: Engine, draft: int
) -> None:
    mid = [X0 + STEP / 2, Y0 + STEP]  # on the edge between NW (001) and SW (003)
    r = _move(client, keys, draft, mid, [mid[0], mid[1] + STEP / 6])
    assert r.status_code == 200, r.text
    assert r.json()["snapped"]["from"] == "edge"
    assert sorted(g["code"] for g in r.json()["grids"]) == [G[0], G[2]]
    mismatch, overlapping, valid = tiles(engine, draft, C1)
    assert mismatch < 0.01 and overlapping == 0 and valid
    grids = _grids(engine, draft)
    assert grids.geometry[G[0]].area < grids.geometry[G[2]].area  # the edge bulged north


def test_the_target_snaps_to_a_nearby_vertex(
    client: TestClient, keys, engine: Engine, draft: int
) -> None:
    mid = [X0 + STEP / 2, Y0 + STEP]
    first = _move(client, keys, draft, mid, [mid[0], mid[1] + STEP / 6])
    assert first.status_code == 200, first.text
    # the centre moves to within a metre of the bulge's new vertex: it lands exactly on it
    bulge = first.json()["to"]
    near = [bulge[0] + 5e-6, bulge[1]]
    r = _move(client, keys, draft, CENTRE, near, tolerance_m=1.0)
    assert r.status_code == 200, r.text
    assert r.json()["snapped"]["to"] == "vertex" and r.json()["to"] == bulge


@pytest.mark.parametrize(
    ("src", "dst", "said"),
    [
        (CENTRE, [X0 + 2.5 * STEP, Y0 + STEP], "moving the vertex would"),  # out of C1
        ([X0 + STEP, Y0 + 2 * STEP], [X0 + STEP, Y0 + 2.2 * STEP], "boundary of community"),
        ([X0 + STEP / 3, Y0 + STEP / 3], [X0, Y0], "no grid boundary within"),
    ],
)
def test_moves_that_would_break_the_tiling_are_refused_and_change_nothing(
    client: TestClient, keys, engine: Engine, draft: int, src: list[float], dst: list[float],
    said: str,
) -> None:
    before = _grids(engine, draft)["area_id"]
    r = _move(client, keys, draft, src, dst)
    assert r.status_code == 422, r.text
    assert said in r.json()["message"]
    assert (_grids(engine, draft)["area_id"] == before).all()


def test_a_move_that_would_overlap_a_grid_names_both(
    client: TestClient, keys, engine: Engine, draft: int
) -> None:
    # the edge between NW and SW bulges north past NW's interior without folding a ring:
    # first bend it, then drag its vertex across the shared corner's edge
    mid = [X0 + STEP / 2, Y0 + STEP]
    assert _move(client, keys, draft, mid, [mid[0], mid[1] + STEP / 2]).status_code == 200
    r = _move(client, keys, draft, [mid[0], mid[1] + STEP / 2], [X0 + 1.5 * STEP, Y0 + 1.5 * STEP])
    assert r.status_code == 422, r.text
    assert any(w in r.json()["message"] for w in ("overlap", "invalid", "gap"))


def test_only_drafts_move_vertices_and_only_planners(
    client: TestClient, keys, engine: Engine
) -> None:
    with engine.connect() as conn:
        demo = versions.get_version(conn, DEMO_LABEL).id
    assert _move(client, keys, int(demo), CENTRE, CENTRE).status_code == 409  # type: ignore[arg-type]
    r = client.post(_url(int(demo), "/vertices/move"),  # type: ignore[arg-type]
                    json={"from": CENTRE, "to": CENTRE}, headers=auth(keys["operator"]))
    assert r.status_code == 403


def test_a_draft_copies_a_stored_version_sharing_every_row(
    client: TestClient, keys, engine: Engine
) -> None:
    with engine.connect() as conn:
        demo = int(versions.get_version(conn, DEMO_LABEL).id)  # type: ignore[arg-type]
    r = client.post(_url(demo, "/copy"), json={"label": f"copy-{uuid.uuid4().hex[:8]}"},
                    headers=auth(keys["planner"]))
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "draft"
    with engine.connect() as conn:
        mine = versions.load_areas(conn, int(r.json()["id"]))
        theirs = versions.load_areas(conn, demo)
    assert sorted(mine["area_id"]) == sorted(theirs["area_id"])
    again = client.post(_url(demo, "/copy"), json={"label": r.json()["label"]},
                        headers=auth(keys["planner"]))
    assert again.status_code == 409


def test_attributes_are_edited_and_the_geometry_kept(
    client: TestClient, keys, engine: Engine, draft: int
) -> None:
    before = _grids(engine, draft).loc[G[0]]
    r = client.patch(_url(draft, f"/grids/{G[0]}"),
                     json={"name": "新网格", "households": 420, "grid_worker": "王芳"},
                     headers=auth(keys["planner"]))
    assert r.status_code == 200, r.text
    after = _grids(engine, draft).loc[G[0]]
    assert (after["name"], after["households"], after["grid_worker"]) == ("新网格", 420, "王芳")
    assert after.geometry.equals(before.geometry)
    bad = client.patch(_url(draft, f"/grids/{G[0]}"), json={"colour": "red"},
                       headers=auth(keys["planner"]))
    assert bad.status_code == 422


def test_a_versions_areas_come_as_geojson_by_box_and_parent(
    client: TestClient, keys, draft: int
) -> None:
    r = client.get(_url(draft, "/areas"), params={"parent": C1}, headers=auth(keys["planner"]))
    assert r.status_code == 200, r.text
    assert sorted(f["properties"]["code"] for f in r.json()["features"]) == G
    box = f"{X0},{Y0},{X0 + STEP / 2},{Y0 + STEP / 2}"
    r = client.get(_url(draft, "/areas"), params={"bbox": box}, headers=auth(keys["planner"]))
    assert [f["properties"]["code"] for f in r.json()["features"]] == [G[2]]
    assert client.get(_url(draft, "/areas"), params={"bbox": "1,2,3"},
                      headers=auth(keys["planner"])).status_code == 422
    assert client.get(_url(draft, "/areas")).status_code == 401


def test_a_split_shares_its_crossing_points_with_the_neighbours(
    client: TestClient, keys, engine: Engine, draft: int
) -> None:
    # a slanted line across NW (001): it meets NW's east edge, shared with NE (002), at a point
    # float arithmetic cannot put exactly on that edge; NE gets the very same vertex
    line = {"type": "LineString", "coordinates": [[X0 - 0.001, Y0 + 1.3 * STEP],
                                                  [X0 + STEP + 0.001, Y0 + 1.77 * STEP]]}
    r = client.post(_url(draft, f"/grids/{G[0]}/split"), json={"line": line},
                    headers=auth(keys["planner"]))
    assert r.status_code == 201, r.text
    pieces = [c["code"] for c in r.json()["created"]]
    grids = _grids(engine, draft)
    ne = {tuple(c) for c in shapely.get_coordinates(grids.geometry[G[1]]).tolist()}
    crossing = [tuple(c) for p in pieces for c in shapely.get_coordinates(grids.geometry[p])
                .tolist() if abs(c[0] - (X0 + STEP)) < 1e-9 and Y0 + STEP < c[1] < Y0 + 2 * STEP]
    assert crossing and set(crossing) <= ne
    mismatch, overlapping, valid = tiles(engine, draft, C1)
    assert overlapping == 0 and valid and mismatch < 1e-6
