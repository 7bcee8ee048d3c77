"""``/v1/locate``: point → owning grid, its code chain, boundary distance and runner-up."""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import orjson
from fastapi import APIRouter, Query

from geo_service.api.deps import LocatorsDep, SettingsDep
from geo_service.api.limits import LocateRequest
from geo_service.api.locate_fastpath import answers, one_answer
from geo_service.api.models import ERRORS, LocateAnswer, LocateBatch
from geo_service.api.responses import JSONBytes
from geo_service.boundaries.versions import parse_date
from geo_service.errors import InvalidInput, TooLarge

router = APIRouter(prefix="/v1", tags=["locate"], responses=ERRORS)

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


@router.get("/locate", response_class=JSONBytes, response_model=LocateAnswer)
async def locate_one(
    locators: LocatorsDep,
    settings: SettingsDep,
    lon: float = Query(..., description="longitude in the given crs"),
    lat: float = Query(..., description="latitude in the given crs"),
    crs: str = Query("wgs84", max_length=32, description="wgs84, cgcs2000, gcj02, bd09 or EPSG:n"),
    as_of: dt.date | None = Query(None, description="date YYYY-MM-DD; default: today"),
) -> JSONBytes:
    """The grid that owns a point: ``ST_Covers``-exact, lowest grid code wins on shared edges."""
    loc = await locators.get(as_of)
    return JSONBytes(one_answer(loc, lon, lat, crs, settings.locate.runner_up_within_m))


@router.post(
    "/locate", response_class=JSONBytes, response_model=LocateBatch, openapi_extra=_BATCH_SCHEMA
)
async def locate_many(
    request: LocateRequest, locators: LocatorsDep, settings: SettingsDep
) -> JSONBytes:
    """Locate up to 100,000 points; answers come back in input order."""
    body = await request.body()
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
    as_of = payload.get("as_of")
    if as_of is not None and not isinstance(as_of, str):
        raise InvalidInput('"as_of" must be a date, YYYY-MM-DD')
    loc = await locators.get(parse_date(as_of))
    res = loc.locate(arr[:, 0], arr[:, 1], crs=crs)
    results = answers(loc, res, settings.locate.runner_up_within_m, chain=False)
    return JSONBytes({"version": loc.version.as_dict(), "crs": crs, "results": results})
