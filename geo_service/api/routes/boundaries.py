"""``/v1/boundaries``: the versions and their areas. Drafts are work in progress: they are
listed only to planner, operator and admin keys; published and retired versions to anyone."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter

from geo_service.api.deps import CallerDep, EngineDep
from geo_service.api.models import ERRORS, Versions
from geo_service.boundaries import versions
from geo_service.planning import reads_drafts

router = APIRouter(prefix="/v1/boundaries", tags=["boundaries"], responses=ERRORS)


@router.get("/versions", response_model=Versions)
async def list_versions(engine: EngineDep, who: CallerDep) -> dict[str, Any]:
    """Every boundary version with its status and effective range, newest first (drafts only
    for planner, operator and admin keys)."""
    drafts = reads_drafts(who)

    def query() -> list[dict[str, Any]]:
        with engine.connect() as conn:
            shown = [v for v in versions.list_versions(conn) if drafts or v.status != "draft"]
        return [v.as_dict() for v in shown]

    return {"versions": await asyncio.to_thread(query)}
