"""``/v1/locate``: point → owning grid, its code chain, boundary distance and runner-up."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
from fastapi import APIRouter, Query, Request

from geo_service.api.deps import LocatorsDep, SettingsDep
from geo_service.api.responses import JSONBytes
from geo_service.boundaries.versions import parse_date
from geo_service.errors import InvalidInput, TooLarge
from geo_service.locator import LocateResult, Locator

router = APIRouter(prefix="/v1", tags=["locate"])

OUTSIDE_NEAREST_M = 2_000.0

_BATCH_SCHEMA: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["points"],
                    "properties": {
                        "crs": {
                            "type": "string",
                            "default": "wgs84",
                            "description": "wgs84, cgcs2000, gcj02, bd09 or EPSG:n",
                        },
                        "as_of": {"type": "string", "format": "date"},
                        "points": {
                            "type": "array",
                            "maxItems": 100000,
                            "items": {
                                "type": "array",
                                "minItems": 2,
                                "maxItems": 2,
                                "items": {"type": "number"},
                            },
                        },
                    },
                },
                "example": {"crs": "gcj02", "points": [[120.7071, 30.7649]]},
            }
        },
    }
}


def _answers(loc: Locator, res: LocateResult, within_m: float, chain: bool) -> list[dict[str, Any]]:
    """One JSON-ready answer per point, in input order."""
    gi = res.grid_index
    dist = res.boundary_distance_m()
    runner, runner_d = loc.neighbours_within(gi, res.lons, res.lats, within_m)
    outside = np.flatnonzero(gi < 0)
    near, near_d = loc.neighbours_within(
        gi[outside], res.lons[outside], res.lats[outside], OUTSIDE_NEAREST_M
    )
    nearest = {int(i): (int(n), float(d)) for i, n, d in zip(outside, near, near_d, strict=True)}
    codes, names = loc.grids["code"].to_numpy(), loc.grids["name"].to_numpy()
    out: list[dict[str, Any]] = []
    for i in range(len(gi)):
        g = int(gi[i])
        point = {"lon": float(res.lons[i]), "lat": float(res.lats[i])}
        if g < 0:
            n, d = nearest[i]
            reason = "outside coverage: no grid covers this point"
            answer: dict[str, Any] = {
                "point": point,
                "grid": None,
                "reason": reason,
                "nearest": None,
            }
            if n >= 0:
                answer["nearest"] = {"code": codes[n], "name": names[n], "distance_m": round(d, 2)}
                answer["reason"] = f"{reason}; nearest grid {codes[n]} is {d:.0f} m away"
            out.append(answer)
            continue
        answer = {
            "point": point,
            "grid": {"code": codes[g], "name": names[g]},
            "boundary_distance_m": round(float(dist[i]), 2),
            "runner_up": None,
        }
        if chain:
            answer["chain"] = loc.chain(g)
        r = int(runner[i])
        if r >= 0:
            answer["runner_up"] = {
                "code": codes[r],
                "name": names[r],
                "distance_m": round(float(runner_d[i]), 2),
            }
        out.append(answer)
    return out


@router.get("/locate", response_class=JSONBytes)
async def locate_one(
    locators: LocatorsDep,
    settings: SettingsDep,
    lon: float = Query(..., description="longitude in the given crs"),
    lat: float = Query(..., description="latitude in the given crs"),
    crs: str = Query("wgs84", description="wgs84, cgcs2000, gcj02, bd09 or EPSG:n"),
    as_of: str | None = Query(None, description="date YYYY-MM-DD; default: today"),
) -> JSONBytes:
    """The grid that owns a point: ``ST_Covers``-exact, lowest grid code wins on shared edges."""
    loc = await locators.get(parse_date(as_of))
    res = loc.locate([lon], [lat], crs=crs)
    answer = _answers(loc, res, settings.locate.runner_up_within_m, chain=True)[0]
    g = int(res.grid_index[0])
    if g >= 0:
        row = loc.grids.iloc[g]
        for key in ("households", "population", "grid_worker", "grid_leader"):
            value = row.get(key)
            if value is not None and value == value:
                answer["grid"][key] = value.item() if hasattr(value, "item") else value
    answer.update({"query": {"lon": lon, "lat": lat, "crs": crs}, "version": loc.version.as_dict()})
    return JSONBytes(answer)


@router.post("/locate", response_class=JSONBytes, openapi_extra=_BATCH_SCHEMA)
async def locate_many(request: Request, locators: LocatorsDep, settings: SettingsDep) -> JSONBytes:
    """Locate up to 100,000 points; answers come back in input order."""
    body = await request.body()
    if len(body) > settings.api.max_body_bytes:
        raise TooLarge(f"request body of {len(body)} bytes is over {settings.api.max_body_bytes}")
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"malformed JSON: {exc}") from exc
    if not isinstance(payload, dict) or "points" not in payload:
        raise InvalidInput('body must be an object with "points": [[lon, lat], ...]')
    points = payload["points"]
    if not isinstance(points, list):
        raise InvalidInput('"points" must be an array of [lon, lat] pairs')
    limit = settings.api.max_batch_points
    if len(points) > limit:
        raise TooLarge(f"{len(points)} points in one request, over the limit of {limit}")
    try:
        arr = np.array(points, dtype=np.float64)
    except (ValueError, TypeError) as exc:
        raise InvalidInput(f'"points" must hold [lon, lat] number pairs: {exc}') from exc
    if arr.size == 0:
        arr = arr.reshape(0, 2)
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise InvalidInput('"points" must hold [lon, lat] number pairs')
    crs = payload.get("crs", "wgs84")
    if not isinstance(crs, str):
        raise InvalidInput('"crs" must be a string')
    loc = await locators.get(parse_date(payload.get("as_of")))
    res = loc.locate(arr[:, 0], arr[:, 1], crs=crs)
    results = _answers(loc, res, settings.locate.runner_up_within_m, chain=False)
    return JSONBytes({"version": loc.version.as_dict(), "crs": crs, "results": results})
