"""Health and service information."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter
from sqlalchemy import text

from geo_service.api.deps import EngineDep

router = APIRouter(tags=["health"])


@router.get("/health")
async def health(engine: EngineDep) -> dict[str, Any]:
    """Really asks PostGIS: its version and the boundary version in force."""

    def probe() -> dict[str, Any]:
        with engine.connect() as conn:
            postgis = conn.execute(text("SELECT postgis_lib_version()")).scalar_one()
            version = conn.execute(
                text(
                    "SELECT label FROM boundary_versions WHERE status IN ('published', 'retired') "
                    "AND effective_from <= CURRENT_DATE AND (effective_to IS NULL OR "
                    "effective_to > CURRENT_DATE) ORDER BY effective_from DESC LIMIT 1"
                )
            ).scalar()
        return {"status": "ok", "postgis": postgis, "boundary_version": version}

    return await asyncio.to_thread(probe)
