"""Health and service information."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

from fastapi import APIRouter

from geo_service.api.deps import EngineDep
from geo_service.api.models import EDGE_ERRORS, Health
from geo_service.store import health as health_store
from geo_service.store import versions

router = APIRouter(tags=["health"], responses=EDGE_ERRORS)


@router.get("/health", response_model=Health)
async def health(engine: EngineDep) -> dict[str, Any]:
    """Really asks PostGIS: its version and the boundary version in force."""

    def probe() -> dict[str, Any]:
        with engine.connect() as conn:
            postgis = health_store.postgis_version(conn)
            version = versions.in_force(conn, dt.date.today())
        label = version.label if version is not None else None
        return {"status": "ok", "postgis": postgis, "boundary_version": label}

    return await asyncio.to_thread(probe)
