"""``/planner``: the planner's workbench page, for a signed-in planner (or admin)."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from geo_service.api.deps import EngineDep
from geo_service.api.session import csrf_token, page_role
from geo_service.auth import Principal
from geo_service.planner.page import planner_page
from geo_service.planning import PLANNER_ROLES
from geo_service.planning.drafts import in_force_extent

router = APIRouter(include_in_schema=False)
PlannerPage = Annotated[Principal, Depends(page_role("planner", "admin"))]


@router.get("/planner", response_class=HTMLResponse)
async def planner(request: Request, who: PlannerPage, engine: EngineDep) -> HTMLResponse:
    """The workbench: versions, the map editor, validation, impact, publish and roll back."""

    def extent() -> tuple[float, float, float, float] | None:
        with engine.connect() as conn:
            return in_force_extent(conn)

    html = planner_page(
        username=who.username or "", role=who.role, csrf=csrf_token(request),
        extent=await asyncio.to_thread(extent), can_edit=who.role in PLANNER_ROLES,
    )
    return HTMLResponse(html, headers={"Cache-Control": "no-store"})
