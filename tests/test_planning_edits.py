"""Planners edit a draft grid by grid (replace a geometry, split by a line, merge two
neighbours) and renumber it; edits touch only the draft, never a stored area another version
shares, never a published version; bad edits get a 4xx naming the problem."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from fastapi.testclient import TestClient
from shapely import affinity
from shapely.geometry import LineString, Polygon, box, mapping
from sqlalchemy import Engine, text

from geo_service.boundaries import versions
from geo_service.boundaries.importer import import_layout
from geo_service.coords import wgs84_to_gcj02
from geo_service.errors import Conflict, InvalidInput
from geo_service.planning.edits import shared_edge_m
from geo_service.planning.numbering import free_grid_codes
from tests.conftest import DEMO_LABEL, DEMO_LAYOUT, auth
from tests.layouts import STEP, X0, Y0, small_layout

C1 = "330411100001"
G001, G002, G003, G004 = (f"{C1}{n:03d}" for n in range(1, 5))
NW = box(X0, Y0 + STEP, X0 + STEP, Y0 + 2 * STEP)  # grid 001 of community 1


def _url(vid: int, tail: str = "") -> str:
    return f"/v1/boundaries/versions/{vid}{tail}"


def _areas(engine: Engine, vid: int) -> gpd.GeoDataFrame:
    with engine.connect() as conn:
        return versions.load_areas(conn, vid).set_index("code")


def _report(client: TestClient, keys, vid: int) -> dict:  # type: ignore[no-untyped-def, type-arg]
    return client.get(_url(vid, "/validation"), headers=auth(keys["planner"])).json()  # type: ignore[no-any-return]


def _in_force_codes(engine: Engine, community: str) -> set[str]:
    with engine.connect() as conn:
        demo = versions.get_version(conn, DEMO_LABEL)
        grids = versions.load_areas(conn, demo.id, ("grid",))
    return set(grids.loc[grids["parent_code"] == community, "code"])


@pytest.fixture
def draft(client: TestClient, keys) -> int:
    """A fresh draft of the small layout (16 grids, 4 communities), uploaded by the planner."""
    r = client.post(
        "/v1/boundaries/versions",
        files={"file": ("layout.geojson", small_layout().to_json().encode())},
        data={"label": f"edits-{uuid.uuid4().hex[:8]}"},
        headers=auth(keys["planner"]),
    )
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


@pytest.fixture
def demo_draft(engine: Engine) -> int:
    """A draft identical to the published demo: every area row shared with it."""
    summary = import_layout(engine, DEMO_LAYOUT, f"demo-draft-{uuid.uuid4().hex[:8]}",
                            crs="wgs84")
    assert summary.new_areas == 0
    return int(summary.version.id)


@pytest.fixture(scope="module")
def demo_id(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(versions.get_version(conn, DEMO_LABEL).id)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------- replace a grid


def test_replacing_a_grid_changes_the_draft_and_no_shared_area(
    client: TestClient, keys, engine: Engine, demo_draft: int, demo_id: int
) -> None:
    before = _areas(engine, demo_draft)
    code = before[before["level"] == "grid"].index[0]
    old_geom, old_id = before.geometry[code], int(before.loc[code, "area_id"])
    new_geom = affinity.scale(old_geom, 0.9, 0.9)
    r = client.put(_url(demo_draft, f"/grids/{code}"), json={"geometry": mapping(new_geom)},
                   headers=auth(keys["planner"]))
    assert r.status_code == 200, r.text
    assert r.json()["grid"]["code"] == code
    after = _areas(engine, demo_draft)
    assert after.geometry[code].equals(new_geom)
    assert int(after.loc[code, "area_id"]) != old_id
    assert (after.drop(index=code)["area_id"] == before.drop(index=code)["area_id"]).all()
    published = _areas(engine, demo_id)
    assert published.geometry[code].equals(old_geom)
    assert int(published.loc[code, "area_id"]) == old_id
    with engine.connect() as conn:
        wkb = conn.execute(text("SELECT ST_AsBinary(geom) FROM areas WHERE id = :i"),
                           {"i": old_id}).scalar_one()
    assert shapely.from_wkb(bytes(wkb)).equals(old_geom)


def test_replacing_sets_households_when_given_and_keeps_them_otherwise(
    client: TestClient, keys, engine: Engine, draft: int
) -> None:
    smaller = affinity.scale(NW, 0.95, 0.95)
    r = client.put(_url(draft, f"/grids/{G001}"), json={"geometry": mapping(smaller)},
                   headers=auth(keys["planner"]))
    assert r.status_code == 200 and r.json()["grid"]["households"] == 301
    r = client.put(_url(draft, f"/grids/{G001}"),
                   json={"geometry": mapping(NW), "households": 420},
                   headers=auth(keys["planner"]))
    assert r.status_code == 200 and r.json()["grid"]["households"] == 420
    assert _areas(engine, draft).loc[G001, "households"] == 420


def test_replacement_geometry_in_gcj02_is_stored_in_wgs84(
    client: TestClient, keys, engine: Engine, draft: int
) -> None:
    target = affinity.scale(NW, 0.9, 0.9)
    gcj = Polygon(list(zip(*wgs84_to_gcj02(*target.exterior.xy), strict=True)))
    r = client.put(_url(draft, f"/grids/{G001}"), json={"geometry": mapping(gcj), "crs": "gcj02"},
                   headers=auth(keys["planner"]))
    assert r.status_code == 200, r.text
    assert _areas(engine, draft).geometry[G001].hausdorff_distance(target) < 1e-8


@pytest.mark.parametrize(
    "geometry, crs, words",
    [
        ({"type": "Polygon", "coordinates": [[[X0, Y0], [X0 + STEP, Y0 + STEP], [X0 + STEP, Y0],
                                              [X0, Y0 + STEP], [X0, Y0]]]}, "wgs84",
         "Self-intersection"),
        ({"type": "LineString", "coordinates": [[X0, Y0], [X0 + STEP, Y0]]}, "wgs84",
         "must be a GeoJSON Polygon or MultiPolygon"),
        ({"type": "Polygon", "coordinates": [[[X0, Y0], [X0 + STEP, Y0], [X0, float("nan")],
                                              [X0, Y0]]]}, "wgs84", "non-finite"),
        ({"type": "Polygon", "coordinates": [[[200, Y0], [201, Y0], [201, 1], [200, Y0]]]},
         "wgs84", "longitude"),
        ({"type": "Polygon", "coordinates": [[[X0, Y0]]]}, "wgs84", "not a readable GeoJSON"),
        ({"type": "Polygon", "coordinates": "nope"}, "wgs84", "not a readable GeoJSON"),
        ({"type": "Polygon", "coordinates": [[[[X0, Y0]]]]}, "wgs84", "is not [x, y]"),
        (mapping(NW), "mars2000", "unknown crs"),
    ],
)
def test_broken_replacement_geometry_is_refused_and_changes_nothing(
    client: TestClient, keys, engine: Engine, draft: int, geometry, crs: str, words: str  # type: ignore[no-untyped-def]
) -> None:
    before = _areas(engine, draft)["area_id"]
    body = json.dumps({"geometry": geometry, "crs": crs})  # NaN written as JSON's NaN token
    r = client.put(_url(draft, f"/grids/{G001}"), content=body,
                   headers={**auth(keys["planner"]), "Content-Type": "application/json"})
    assert r.status_code == 422, r.text
    assert words in r.json()["message"]
    assert (_areas(engine, draft)["area_id"] == before).all()


# ---------------------------------------------------------------------------- split


def _vertical(x: float, y0: float = Y0 + STEP - 0.001, y1: float = Y0 + 2 * STEP + 0.001) -> dict:  # type: ignore[type-arg]
    return mapping(LineString([(x, y0), (x, y1)]))  # type: ignore[return-value]


def test_splitting_a_grid_by_a_line_makes_grids_with_new_codes(
    client: TestClient, keys, engine: Engine, draft: int
) -> None:
    before = _areas(engine, draft)
    r = client.post(_url(draft, f"/grids/{G001}/split"), json={"line": _vertical(X0 + STEP / 2)},
                    headers=auth(keys["planner"]))
    assert r.status_code == 201, r.text
    created = r.json()["created"]
    assert r.json()["removed"] == [G001] and len(created) == 2
    codes = [c["code"] for c in created]
    taken = set(before.index) | _in_force_codes(engine, C1)
    assert all(c.startswith(C1) and len(c) == 15 and c not in taken for c in codes)
    assert codes == sorted(codes)
    after = _areas(engine, draft)
    assert G001 not in after.index
    west, east = after.geometry[codes[0]], after.geometry[codes[1]]
    assert west.centroid.x < east.centroid.x  # numbered west to east
    assert shapely.union(west, east).symmetric_difference(NW).area < 1e-14
    assert {after.loc[c, "parent_code"] for c in codes} == {C1}
    assert sum(c["households"] for c in created) == 301
    assert {c["households"] for c in created} == {150, 151}
    assert sorted(after.loc[codes, "name"]) == ["第1网格-1", "第1网格-2"]
    report = _report(client, keys, draft)
    assert report["errors"] == 0, report["problems"]


def test_a_line_that_does_not_cross_the_grid_is_refused(
    client: TestClient, keys, engine: Engine, draft: int
) -> None:
    before = _areas(engine, draft)["area_id"]
    inside = _vertical(X0 + STEP / 2, Y0 + 1.2 * STEP, Y0 + 1.8 * STEP)
    r = client.post(_url(draft, f"/grids/{G001}/split"), json={"line": inside},
                    headers=auth(keys["planner"]))
    assert r.status_code == 422 and "does not cut grid" in r.json()["message"]
    r = client.post(_url(draft, f"/grids/{G001}/split"), json={"line": mapping(NW)},
                    headers=auth(keys["planner"]))
    assert r.status_code == 422 and "LineString" in r.json()["message"]
    assert (_areas(engine, draft)["area_id"] == before).all()


# ---------------------------------------------------------------------------- merge


def test_merging_two_neighbours_makes_one_grid_with_a_new_code(
    client: TestClient, keys, engine: Engine, draft: int
) -> None:
    before = _areas(engine, draft)
    r = client.post(_url(draft, "/grids/merge"), json={"codes": [G002, G001]},
                    headers=auth(keys["planner"]))
    assert r.status_code == 201, r.text
    (merged,) = r.json()["created"]
    assert r.json()["removed"] == [G001, G002]
    assert merged["code"] not in set(before.index) | _in_force_codes(engine, C1)
    assert merged["households"] == 301 + 302
    after = _areas(engine, draft)
    assert G001 not in after.index and G002 not in after.index
    want = box(X0, Y0 + STEP, X0 + 2 * STEP, Y0 + 2 * STEP)
    assert after.geometry[merged["code"]].symmetric_difference(want).area < 1e-14
    assert after.loc[merged["code"], "name"] == before.loc[G001, "name"]
    assert _report(client, keys, draft)["errors"] == 0


@pytest.mark.parametrize(
    "codes, words",
    [
        ([G001, G004], "share no edge"),  # they meet at a corner only
        ([G002, "330411100002001"], "different communities"),
        ([G001, G001], "two different grid codes"),
        ([G001, C1], "not a grid"),
        ([G001, "330411100001099"], "no area"),
    ],
)
def test_merges_of_grids_that_are_not_neighbours_in_one_community_are_refused(
    client: TestClient, keys, engine: Engine, draft: int, codes: list[str], words: str
) -> None:
    before = _areas(engine, draft)["area_id"]
    r = client.post(_url(draft, "/grids/merge"), json={"codes": codes},
                    headers=auth(keys["planner"]))
    assert r.status_code in (404, 422), r.text
    assert words in r.json()["message"]
    assert (_areas(engine, draft)["area_id"] == before).all()


def test_merge_takes_exactly_two_codes(client: TestClient, keys, draft: int) -> None:
    r = client.post(_url(draft, "/grids/merge"), json={"codes": [G001, G002, G003]},
                    headers=auth(keys["planner"]))
    assert r.status_code == 422 and "codes" in r.json()["message"]


def test_a_piece_of_a_slanted_split_merges_back_with_its_neighbour(
    client: TestClient, keys, engine: Engine, draft: int
) -> None:
    line = mapping(LineString([(X0 + 0.3 * STEP, Y0 + STEP - 0.001),
                               (X0 + 0.71 * STEP, Y0 + 2 * STEP + 0.001)]))
    r = client.post(_url(draft, f"/grids/{G001}/split"), json={"line": line},
                    headers=auth(keys["planner"]))
    assert r.status_code == 201, r.text
    areas = _areas(engine, draft)
    pieces = [c["code"] for c in r.json()["created"]]
    south_piece = max(pieces, key=lambda c: shared_edge_m(areas.geometry[c], areas.geometry[G003]))
    r = client.post(_url(draft, "/grids/merge"), json={"codes": [south_piece, G003]},
                    headers=auth(keys["planner"]))
    assert r.status_code == 201, r.text
    report = _report(client, keys, draft)
    assert report["errors"] == 0, report["problems"]


# ---------------------------------------------------------------------------- refusals


def test_a_published_version_cannot_be_edited(
    client: TestClient, keys, engine: Engine, demo_id: int
) -> None:
    demo = _areas(engine, demo_id)
    code = demo[demo["level"] == "grid"].index[0]
    geom = demo.geometry[code]
    planner = auth(keys["planner"])
    x = geom.centroid.x
    attempts = [
        client.put(_url(demo_id, f"/grids/{code}"), json={"geometry": mapping(geom)},
                   headers=planner),
        client.post(_url(demo_id, f"/grids/{code}/split"),
                    json={"line": _vertical(x, geom.bounds[1] - 0.01, geom.bounds[3] + 0.01)},
                    headers=planner),
        client.post(_url(demo_id, "/grids/merge"), json={"codes": [code, demo.index[-1]]},
                    headers=planner),
        client.post(_url(demo_id, "/renumber"), headers=planner),
    ]
    for r in attempts:
        assert r.status_code == 409, r.text
        assert "only a draft can be edited" in r.json()["message"]
    assert (_areas(engine, demo_id)["area_id"] == demo["area_id"]).all()


def test_unknown_versions_and_grids_are_404_and_other_levels_422(
    client: TestClient, keys, draft: int
) -> None:
    planner = auth(keys["planner"])
    body = {"geometry": mapping(NW)}
    r = client.put(_url(999_999, f"/grids/{G001}"), json=body, headers=planner)
    assert r.status_code == 404 and "999999" in r.json()["message"]
    r = client.put(_url(draft, "/grids/330411100001777"), json=body, headers=planner)
    assert r.status_code == 404 and "330411100001777" in r.json()["message"]
    r = client.put(_url(draft, f"/grids/{C1}"), json=body, headers=planner)
    assert r.status_code == 422 and "is a community, not a grid" in r.json()["message"]


EDITS = [
    ("PUT", "/grids/{g}", {"geometry": mapping(NW)}),
    ("POST", "/grids/{g}/split", {"line": _vertical(X0 + STEP / 2)}),
    ("POST", "/grids/merge", {"codes": [G001, G002]}),
    ("POST", "/renumber", None),
]


@pytest.mark.parametrize("method, tail, body", EDITS)
@pytest.mark.parametrize(
    "role, status",
    [("anonymous", 401), ("bad_key", 401), ("reporter", 403), ("grid_worker", 403),
     ("operator", 403), ("admin", 403)],
)
def test_only_planners_edit_drafts(
    client: TestClient, keys, engine: Engine, draft: int, method: str, tail: str, body,  # type: ignore[no-untyped-def]
    role: str, status: int
) -> None:
    headers = {} if role == "anonymous" else auth(keys.get(role, "gs_not-a-key"))
    before = _areas(engine, draft)["area_id"]
    r = client.request(method, _url(draft, tail.format(g=G001)), json=body, headers=headers)
    assert r.status_code == status, r.text
    assert (_areas(engine, draft)["area_id"] == before).all()


# ---------------------------------------------------------------------------- renumber


def test_renumbering_gives_unchanged_grids_their_codes_in_force_back(
    client: TestClient, keys, engine: Engine, demo_id: int, tmp_path: Path
) -> None:
    frame = gpd.read_file(DEMO_LAYOUT)
    community = frame.loc[frame["level"] == "grid", "parent_code"].iloc[0]
    a, b = sorted(frame.loc[frame["parent_code"] == community, "code"])[:2]
    is_a, is_b = frame["code"] == a, frame["code"] == b
    frame.loc[is_a, "code"], frame.loc[is_b, "code"] = b, a
    frame.to_file(tmp_path / "swapped.geojson")
    vid = int(import_layout(engine, tmp_path / "swapped.geojson",
                            f"swapped-{uuid.uuid4().hex[:8]}", crs="wgs84").version.id)
    assert _report(client, keys, vid)["kinds"] == {"code_order": 1}
    r = client.post(_url(vid, "/renumber"), headers=auth(keys["planner"]))
    assert r.status_code == 200, r.text
    assert r.json()["renamed"] == {a: b, b: a}
    assert r.json()["kept_from_version_in_force"] == 2988 and r.json()["numbered"] == 0
    draft, demo = _areas(engine, vid), _areas(engine, demo_id)
    assert sorted(draft.index) == sorted(demo.index)
    assert draft.geometry[a].equals(demo.geometry[a]) and draft.geometry[b].equals(demo.geometry[b])
    report = _report(client, keys, vid)
    assert (report["errors"], report["warnings"]) == (0, 0)


def _southern_pair_and_northern_grid(areas: gpd.GeoDataFrame) -> tuple[str, str, str]:
    """In the demo's largest community: its southernmost grid and a neighbour sharing an edge,
    and its northernmost grid."""
    grids = areas[areas["level"] == "grid"]
    community = grids["parent_code"].value_counts().index[0]
    kids = grids[grids["parent_code"] == community]
    ys = pd.Series(shapely.get_y(shapely.centroid(kids.geometry.to_numpy())), kids.index)
    south, north = ys.idxmin(), ys.idxmax()
    edges = {c: shared_edge_m(kids.geometry[south], g) for c, g in kids.geometry.items()
             if c != south}
    neighbour = max(edges, key=lambda c: edges[c])
    assert edges[neighbour] > 1 and north not in (south, neighbour)
    return south, neighbour, north


def test_renumbering_orders_new_grids_north_to_south_after_the_kept_ones(
    client: TestClient, keys, engine: Engine, demo_draft: int
) -> None:
    planner = auth(keys["planner"])
    before = _areas(engine, demo_draft)
    south, neighbour, north = _southern_pair_and_northern_grid(before)
    community = before.loc[north, "parent_code"]
    r = client.post(_url(demo_draft, "/grids/merge"), json={"codes": [south, neighbour]},
                    headers=planner)
    merged = r.json()["created"][0]["code"]
    geom = before.geometry[north]
    line = _vertical(geom.centroid.x, geom.bounds[1] - 0.01, geom.bounds[3] + 0.01)
    r = client.post(_url(demo_draft, f"/grids/{north}/split"), json={"line": line},
                    headers=planner)
    assert r.status_code == 201, r.text
    pieces = [c["code"] for c in r.json()["created"]]
    assert merged < min(pieces)  # the southern grid was numbered first
    new = {merged, *pieces}
    assert sorted(new) == free_grid_codes(community, _in_force_codes(engine, community), len(new))

    r = client.post(_url(demo_draft, "/renumber"), headers=planner)
    assert r.status_code == 200, r.text
    renamed = r.json()["renamed"]
    assert set(renamed) <= new and r.json()["numbered"] == len(new)
    after = _areas(engine, demo_draft)
    unchanged = set(before.index) - {south, neighbour, north}
    assert unchanged <= set(after.index)
    kept = sorted(unchanged)
    same_row = after.loc[kept, "area_id"] == before.loc[kept, "area_id"]
    stitched = [c for c in kept if not same_row[c]]  # neighbours given the split's crossings
    assert len(stitched) <= 4
    assert all(after.geometry[c].symmetric_difference(before.geometry[c]).area < 1e-14
               for c in stitched)  # the same ground, one vertex more (under 1e-4 m²)
    assert all(c in after.index for c in stitched)  # and their codes
    final = {renamed.get(c, c) for c in new}
    assert final == new  # the same free numbers, given again in reading order
    merged_now = renamed.get(merged, merged)
    assert all(renamed.get(p, p) < merged_now for p in pieces)  # northern pieces first
    assert after.geometry[merged_now].equals(
        shapely.union(before.geometry[south], before.geometry[neighbour]))
    again = client.post(_url(demo_draft, "/renumber"), headers=planner).json()
    assert again["renamed"] == {}


def test_renumbering_a_new_layout_numbers_it_in_reading_order_with_unused_codes(
    client: TestClient, keys, engine: Engine
) -> None:
    frame = small_layout()
    first, last = frame["code"] == G001, frame["code"] == G004
    frame.loc[first, "code"], frame.loc[last, "code"] = G004, G001
    r = client.post("/v1/boundaries/versions",
                    files={"file": ("layout.geojson", frame.to_json().encode())},
                    data={"label": f"shuffled-{uuid.uuid4().hex[:8]}"},
                    headers=auth(keys["planner"]))
    vid = int(r.json()["id"])
    assert _report(client, keys, vid)["warnings"] == 1
    r = client.post(_url(vid, "/renumber"), headers=auth(keys["planner"]))
    assert r.status_code == 200 and r.json()["kept_from_version_in_force"] == 0
    areas = _areas(engine, vid)
    grids = areas[areas["parent_code"] == C1]
    in_force = _in_force_codes(engine, C1)
    assert not set(grids.index) & in_force  # no code of another piece of ground is reused
    by_code = grids.sort_index().geometry
    corners = [(round(g.bounds[0], 6), round(g.bounds[1], 6)) for g in by_code]
    nw, ne, sw, se = ((X0 + dx, Y0 + dy) for dx, dy in
                      ((0, STEP), (STEP, STEP), (0, 0), (STEP, 0)))
    assert corners == [tuple(np.round(c, 6)) for c in (nw, ne, sw, se)]
    report = _report(client, keys, vid)
    assert (report["errors"], report["warnings"]) == (0, 0)


def test_free_numbers_are_the_lowest_unused_and_run_out_with_a_409() -> None:
    assert free_grid_codes(C1, {G001, G003}, 3) == [G002, G004, f"{C1}005"]
    with pytest.raises(Conflict, match="free grid number"):
        free_grid_codes(C1, {f"{C1}{n:03d}" for n in range(1, 999)}, 2)
    with pytest.raises(InvalidInput, match="not a community code"):
        free_grid_codes("33041110000X", set(), 1)


def test_a_grid_stored_with_invalid_geometry_must_be_replaced_before_split_or_merge(
    client: TestClient, keys, engine: Engine, draft: int
) -> None:
    x0, y0, x1, y1 = NW.bounds
    bowtie = Polygon([(x0, y0), (x1, y1), (x1, y0), (x0, y1), (x0, y0)])
    with engine.begin() as conn:  # as a draft written by other code could hold it
        area_id = conn.execute(
            text("INSERT INTO areas (code, name, level, parent_code, fingerprint, geom) "
                 "VALUES (:c, 'bowtie', 'grid', :p, :f, ST_Multi(ST_GeomFromText(:w, 4326))) "
                 "RETURNING id"),
            {"c": G001, "p": C1, "f": uuid.uuid4().hex, "w": bowtie.wkt},
        ).scalar_one()
        conn.execute(
            text("UPDATE version_areas SET area_id = :a WHERE version_id = :v AND code = :c"),
            {"a": area_id, "v": draft, "c": G001},
        )
    planner = auth(keys["planner"])
    r = client.post(_url(draft, f"/grids/{G001}/split"), json={"line": _vertical(X0 + STEP / 2)},
                    headers=planner)
    assert r.status_code == 422 and "invalid stored geometry" in r.json()["message"]
    r = client.post(_url(draft, "/grids/merge"), json={"codes": [G001, G002]}, headers=planner)
    assert r.status_code == 422 and "replace it" in r.json()["message"]
    r = client.put(_url(draft, f"/grids/{G001}"), json={"geometry": mapping(NW)}, headers=planner)
    assert r.status_code == 200
    assert _report(client, keys, draft)["errors"] == 0
