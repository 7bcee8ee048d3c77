"""``/v1/boundaries``: the versions and their areas."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter

from geo_service.api.deps import EngineDep
from geo_service.boundaries import versions

router = APIRouter(prefix="/v1/boundaries", tags=["boundaries"])


@router.get("/versions")
async def list_versions(engine: EngineDep) -> dict[str, Any]:
    """Every boundary version with its status and effective range, newest first."""

    def query() -> list[dict[str, Any]]:
        with engine.connect() as conn:
            return [v.as_dict() for v in versions.list_versions(conn)]

    return {"versions": await asyncio.to_thread(query)}
