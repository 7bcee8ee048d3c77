"""Compiled kernels of the point → grid index: PostGIS's point-in-polygon test and the cell index.

The exact test replicates PostGIS 3.3 ``point_in_multipolygon_rtree`` (Dan Sunday's winding
number with ``determineSide`` in plain IEEE double arithmetic, boundary = covered), so our owner
is the one ``ST_Covers`` names, on edges and vertices included. Numba compiles without
fast-math, so no fused multiply-add changes a rounding.

The entry points release the GIL (``nogil``): a Locator built, or a bulk request located, in
a worker thread leaves the event loop, and uvicorn's worker health check, free to run.

Cell index: a uniform grid of cells over the extent. A cell touched by no grid boundary has one
answer for all its points (``state >= -1``: the owner, or -1 for none); a touched cell
(``state <= -2``, -2 - its rank in its row: ``row_first[row] + rank`` numbers it) keeps the
grids whose boundary touches it, lowest code first, and the lowest-code grid that covers it
wholly (``base``); only those candidates are tested exactly.
"""

from __future__ import annotations

import numba as nb
import numpy as np

# Offsets follow shapely.to_ragged_array for MultiPolygons:
#   coords[ring_off[r]:ring_off[r+1]] is ring r; rings[poly_off[p]:poly_off[p+1]] belong to
#   polygon p (first = exterior); polygons[geom_off[g]:geom_off[g+1]] belong to grid g.

_ZERO_LEN2 = 1e-24  # PostGIS ignores segments shorter than 1e-12


@nb.njit(cache=True, inline="always")
def ring_location(xs, ys, start, end, px, py):
    """-1 outside, 0 on the boundary, 1 inside ring ``xs[start:end]`` (closed), as PostGIS."""
    wn = 0
    for i in range(start, end - 1):
        x1 = xs[i]
        y1 = ys[i]
        x2 = xs[i + 1]
        y2 = ys[i + 1]
        if (py < y1 and py < y2) or (py > y1 and py > y2):
            continue
        if (x2 - x1) * (x2 - x1) + (y2 - y1) * (y2 - y1) < _ZERO_LEN2:
            continue
        side = (x2 - x1) * (py - y1) - (px - x1) * (y2 - y1)
        on_line = side == 0.0
        if on_line and min(x1, x2) <= px <= max(x1, x2) and min(y1, y2) <= py <= max(y1, y2):
            return 0
        if y1 <= py < y2 and side > 0:
            wn += 1
        elif y2 <= py < y1 and side < 0:
            wn -= 1
    return 1 if wn != 0 else -1


@nb.njit(cache=True)
def covers(g, xs, ys, ring_off, poly_off, geom_off, px, py):
    """True when grid ``g`` covers (interior or boundary) the point, as ``ST_Covers``."""
    for p in range(geom_off[g], geom_off[g + 1]):
        r0 = poly_off[p]
        r1 = poly_off[p + 1]
        where = ring_location(xs, ys, ring_off[r0], ring_off[r0 + 1], px, py)
        if where == 0:
            return True
        if where == 1:
            in_hole = False
            for r in range(r0 + 1, r1):
                h = ring_location(xs, ys, ring_off[r], ring_off[r + 1], px, py)
                if h == 0:
                    return True
                if h == 1:
                    in_hole = True
                    break
            if not in_hole:
                return True
    return False


@nb.njit(cache=True)
def _mark_segment(x1, y1, x2, y2, x0, y0, dx, dy, nx, ny, eps, g, stamp, out, n_out):
    """Stamp with ``g`` every cell within ``eps`` of segment (x1,y1)-(x2,y2); append new ones."""
    ylo = min(y1, y2) - eps
    yhi = max(y1, y2) + eps
    r0 = max(int(np.floor((ylo - y0) / dy)), 0)
    r1 = min(int(np.floor((yhi - y0) / dy)), ny - 1)
    for r in range(r0, r1 + 1):
        # the part of the segment inside this row band (widened by eps)
        band_lo = max(y0 + r * dy - eps, ylo)
        band_hi = min(y0 + (r + 1) * dy + eps, yhi)
        if y1 == y2:
            sx0 = min(x1, x2)
            sx1 = max(x1, x2)
        else:
            t0 = (band_lo - y1) / (y2 - y1)
            t1 = (band_hi - y1) / (y2 - y1)
            t0 = min(max(t0, 0.0), 1.0)
            t1 = min(max(t1, 0.0), 1.0)
            xa = x1 + t0 * (x2 - x1)
            xb = x1 + t1 * (x2 - x1)
            sx0 = min(xa, xb)
            sx1 = max(xa, xb)
        c0 = max(int(np.floor((sx0 - eps - x0) / dx)), 0)
        c1 = min(int(np.floor((sx1 + eps - x0) / dx)), nx - 1)
        base = r * nx
        for c in range(c0, c1 + 1):
            cell = base + c
            if stamp[cell] != g:
                stamp[cell] = g
                out[n_out] = cell
                n_out += 1
    return n_out


@nb.njit(cache=True, nogil=True)
def build_cells(xs, ys, ring_off, poly_off, geom_off, bbox, x0, y0, dx, dy, nx, ny, eps):
    """Classify every cell; return (state, touched_cell, touched_grid) before compaction.

    ``state`` holds the lowest grid covering the cell wholly (or -1); ``touched_*`` lists
    (cell, grid) pairs where the grid's boundary comes within ``eps`` of the cell.
    """
    n_grids = geom_off.shape[0] - 1
    ncell = nx * ny
    state = np.full(ncell, -1, dtype=np.int32)
    stamp = np.full(ncell, -1, dtype=np.int32)
    cap = 1 << 16
    pair_cell = np.empty(cap, dtype=np.int64)
    pair_grid = np.empty(cap, dtype=np.int32)
    n_pairs = 0
    scratch = np.empty(1 << 12, dtype=np.int64)
    crossings = np.empty(1 << 10, dtype=np.float64)
    for g in range(n_grids):
        # 1. cells touched by g's boundary
        n_touch = 0
        for p in range(geom_off[g], geom_off[g + 1]):
            for r in range(poly_off[p], poly_off[p + 1]):
                for i in range(ring_off[r], ring_off[r + 1] - 1):
                    # worst case of cells this segment can add: its widened bbox in cells
                    rows = (
                        np.floor((max(ys[i], ys[i + 1]) + eps - y0) / dy)
                        - np.floor((min(ys[i], ys[i + 1]) - eps - y0) / dy)
                        + 1
                    )
                    cols = (
                        np.floor((max(xs[i], xs[i + 1]) + eps - x0) / dx)
                        - np.floor((min(xs[i], xs[i + 1]) - eps - x0) / dx)
                        + 1
                    )
                    need = n_touch + int(rows * cols)
                    if need > scratch.shape[0]:
                        bigger = np.empty(max(2 * scratch.shape[0], need), dtype=np.int64)
                        bigger[:n_touch] = scratch[:n_touch]
                        scratch = bigger
                    n_touch = _mark_segment(
                        xs[i],
                        ys[i],
                        xs[i + 1],
                        ys[i + 1],
                        x0,
                        y0,
                        dx,
                        dy,
                        nx,
                        ny,
                        eps,
                        g,
                        stamp,
                        scratch,
                        n_touch,
                    )
        if n_pairs + n_touch > pair_cell.shape[0]:
            new_cap = max(2 * pair_cell.shape[0], n_pairs + n_touch)
            pc = np.empty(new_cap, dtype=np.int64)
            pg = np.empty(new_cap, dtype=np.int32)
            pc[:n_pairs] = pair_cell[:n_pairs]
            pg[:n_pairs] = pair_grid[:n_pairs]
            pair_cell = pc
            pair_grid = pg
        for k in range(n_touch):
            pair_cell[n_pairs] = scratch[k]
            pair_grid[n_pairs] = g
            n_pairs += 1
        # 2. cells whose centre lies inside g and that g's boundary does not touch: g covers
        #    them wholly (even-odd scanline; valid polygons only).
        r0 = max(int(np.floor((bbox[g, 1] - y0) / dy)), 0)
        r1 = min(int(np.floor((bbox[g, 3] - y0) / dy)), ny - 1)
        for row in range(r0, r1 + 1):
            yc = y0 + (row + 0.5) * dy
            nc = 0
            for p in range(geom_off[g], geom_off[g + 1]):
                for r in range(poly_off[p], poly_off[p + 1]):
                    for i in range(ring_off[r], ring_off[r + 1] - 1):
                        ya = ys[i]
                        yb = ys[i + 1]
                        if (ya <= yc < yb) or (yb <= yc < ya):
                            if nc == crossings.shape[0]:
                                more = np.empty(2 * nc, dtype=np.float64)
                                more[:nc] = crossings[:nc]
                                crossings = more
                            crossings[nc] = xs[i] + (yc - ya) * (xs[i + 1] - xs[i]) / (yb - ya)
                            nc += 1
            if nc < 2:
                continue
            cx = np.sort(crossings[:nc])
            base = row * nx
            for k in range(0, nc - 1, 2):
                c0 = max(int(np.ceil((cx[k] - x0) / dx - 0.5)), 0)
                c1 = min(int(np.floor((cx[k + 1] - x0) / dx - 0.5)), nx - 1)
                for c in range(c0, c1 + 1):
                    cell = base + c
                    if stamp[cell] != g and state[cell] == -1:
                        state[cell] = g
    return state, pair_cell[:n_pairs], pair_grid[:n_pairs]


@nb.njit(cache=True, inline="always")
def _cell(x, y, state, row_first, x0, y0, dx, dy, nx, ny):
    """The cell answer of one point: (owner or -1, -1, row) for a cell no boundary touches
    (or a point off the index, NaN included), (-1, touched cell number, row) otherwise."""
    if not (x >= x0 and x < x0 + nx * dx and y >= y0 and y < y0 + ny * dy):
        return -1, -1, 0
    c = min(int((x - x0) / dx), nx - 1)
    r = min(int((y - y0) / dy), ny - 1)
    v = int(state[r * nx + c])
    if v >= -1:
        return v, -1, r
    return -1, row_first[r] + (-2 - v), r


@nb.njit(cache=True, inline="always")
def _exact_owner(k, x, y, xs, ys, ring_off, poly_off, geom_off, simple, b_start, b_base, cand):
    """Owner of a point in touched cell ``k``: its first candidate (lowest code) that covers
    the point exactly, else the cell's wholly-covering grid ``b_base[k]`` (or -1)."""
    for j in range(b_start[k], b_start[k + 1]):
        g = cand[j]
        s0 = simple[g, 0]
        if s0 >= 0:  # one polygon, no hole: its ring directly (fewer dependent loads)
            hit = ring_location(xs, ys, s0, simple[g, 1], x, y) >= 0
        else:
            hit = covers(g, xs, ys, ring_off, poly_off, geom_off, x, y)
        if hit:
            return g
    return b_base[k]


@nb.njit(cache=True, parallel=True, nogil=True)
def locate_points(
    px,
    py,
    xs,
    ys,
    ring_off,
    poly_off,
    geom_off,
    simple,
    state,
    row_first,
    b_start,
    b_base,
    cand,
    x0,
    y0,
    dx,
    dy,
    nx,
    ny,
):
    """Owner grid index of every point (-1: none); see the module docstring for ``state``.

    Two passes: cell look-ups first, recording each touched-cell point's candidate list; then
    the exact tests in row order (a counting sort), so neighbouring points reuse the cached
    candidate lists and polygon coordinates instead of each paying several memory misses.
    For large inputs: the thread pool's start costs more than a few thousand points take
    (:func:`locate_points_serial` answers those, with the same per-point functions).
    """
    n = px.shape[0]
    out = np.empty(n, dtype=np.int32)
    kk = np.empty(n, dtype=np.int64)  # touched cell number of point i, or -1
    rows = np.empty(n, dtype=np.int64)
    for i in nb.prange(n):
        owner, k, r = _cell(px[i], py[i], state, row_first, x0, y0, dx, dy, nx, ny)
        out[i] = owner
        kk[i] = k
        rows[i] = r
    # counting sort of the touched-cell points by row (serial, over those points only)
    touched = np.nonzero(kk >= 0)[0]
    m = touched.shape[0]
    per_row = np.zeros(ny + 1, dtype=np.int64)
    for t in range(m):
        per_row[rows[touched[t]] + 1] += 1
    for r in range(ny):
        per_row[r + 1] += per_row[r]
    order = np.empty(m, dtype=np.int64)
    for t in range(m):
        i = touched[t]
        order[per_row[rows[i]]] = i
        per_row[rows[i]] += 1
    for t in nb.prange(m):
        i = order[t]
        out[i] = _exact_owner(
            kk[i], px[i], py[i], xs, ys, ring_off, poly_off, geom_off, simple, b_start, b_base,
            cand,
        )  # fmt: skip
    return out


@nb.njit(cache=True, nogil=True)
def locate_points_serial(
    px,
    py,
    xs,
    ys,
    ring_off,
    poly_off,
    geom_off,
    simple,
    state,
    row_first,
    b_start,
    b_base,
    cand,
    x0,
    y0,
    dx,
    dy,
    nx,
    ny,
):
    """:func:`locate_points` on the calling thread, one point after the other: for the few
    points of a request, where waking a thread pool costs more than the work (and a pool per
    worker process would fight the others' for the cores). The same answers, by the same
    per-point functions."""
    n = px.shape[0]
    out = np.empty(n, dtype=np.int32)
    for i in range(n):
        x = px[i]
        y = py[i]
        owner, k, _ = _cell(x, y, state, row_first, x0, y0, dx, dy, nx, ny)
        if k >= 0:
            owner = _exact_owner(
                k, x, y, xs, ys, ring_off, poly_off, geom_off, simple, b_start, b_base, cand
            )
        out[i] = owner
    return out


@nb.njit(cache=True, nogil=True)
def covers_many(gidx, px, py, xs, ys, ring_off, poly_off, geom_off):
    """``covers`` for each (grid, point) pair; the brute-force reference used by the tests."""
    out = np.empty(gidx.shape[0], dtype=np.bool_)
    for i in range(gidx.shape[0]):
        out[i] = covers(gidx[i], xs, ys, ring_off, poly_off, geom_off, px[i], py[i])
    return out


# --- one point's metric details (a request's boundary distance and runner-up grid) ----------


@nb.njit(cache=True, inline="always")
def _segment_distance(px, py, ax, ay, bx, by):
    """Distance from (px, py) to segment A-B with GEOS's arithmetic (``Distance::
    pointToSegment``, operation for operation), so the result is GEOS's to the last bit."""
    if ax == bx and ay == by:
        return np.sqrt((px - ax) * (px - ax) + (py - ay) * (py - ay))
    len2 = (bx - ax) * (bx - ax) + (by - ay) * (by - ay)
    r = ((px - ax) * (bx - ax) + (py - ay) * (by - ay)) / len2
    if r <= 0.0:
        return np.sqrt((px - ax) * (px - ax) + (py - ay) * (py - ay))
    if r >= 1.0:
        return np.sqrt((px - bx) * (px - bx) + (py - by) * (py - by))
    s = ((ay - py) * (bx - ax) - (ax - px) * (by - ay)) / len2
    return abs(s) * np.sqrt(len2)


@nb.njit(cache=True)
def _rings_distance(g, px, py, xs, ys, ring_off, poly_off, geom_off):
    """Distance from the point to the nearest segment of any ring of grid ``g``."""
    best = np.inf
    for p in range(geom_off[g], geom_off[g + 1]):
        for r in range(poly_off[p], poly_off[p + 1]):
            for i in range(ring_off[r], ring_off[r + 1] - 1):
                d = _segment_distance(px, py, xs[i], ys[i], xs[i + 1], ys[i + 1])
                if d < best:
                    best = d
    return best


@nb.njit(cache=True, nogil=True)
def point_details(g, px, py, xs, ys, ring_off, poly_off, geom_off, bounds, within, hard):
    """One point's metric details, in a metric frame (``xs``, ``ys``: the grids' coordinates
    there; ``bounds``: each grid's min x, min y, max x, max y): (distance to the boundary of
    its grid ``g``, NaN for -1; the nearest other grid within ``within``, -1 if none; its
    distance, 0 inside it; a flag).

    Distances are GEOS's (see :func:`_segment_distance`); whether the point lies in a grid is
    decided by winding number in plain doubles, which agrees with GEOS's exact predicate
    except within a hair of a boundary: when a grid's boundary passes within ``hard`` metres
    the flag is set and the answer must be taken from GEOS instead.
    """
    own = np.nan
    if g >= 0:
        own = _rings_distance(g, px, py, xs, ys, ring_off, poly_off, geom_off)
    best = -1
    best_d = np.nan
    for h in range(geom_off.shape[0] - 1):
        if h == g:
            continue
        ex = max(bounds[h, 0] - px, px - bounds[h, 2])
        ey = max(bounds[h, 1] - py, py - bounds[h, 3])
        if ex > within or ey > within:  # its envelope is farther: so is the grid
            continue
        d = _rings_distance(h, px, py, xs, ys, ring_off, poly_off, geom_off)
        if d <= hard:
            return own, best, best_d, True
        if d > 0.0:
            for p in range(geom_off[h], geom_off[h + 1]):
                r0 = poly_off[p]
                if ring_location(xs, ys, ring_off[r0], ring_off[r0 + 1], px, py) > 0:
                    in_hole = False
                    for r in range(r0 + 1, poly_off[p + 1]):
                        if ring_location(xs, ys, ring_off[r], ring_off[r + 1], px, py) > 0:
                            in_hole = True
                            break
                    if not in_hole:
                        d = 0.0
                        break
        if d <= within and (best < 0 or d < best_d or (d == best_d and h < best)):
            best = h
            best_d = d
    return own, best, best_d, False
