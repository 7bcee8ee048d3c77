"""``/docs``: Swagger UI served from the service's own copy (``static/vendor/swagger-ui-dist``),
so the API's interactive documentation works on a machine with no internet; ReDoc is off."""

from __future__ import annotations

from typing import Final

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse

from geo_service.maps.assets import vendor

router = APIRouter(include_in_schema=False)

SWAGGER_UI: Final = "swagger-ui-dist/5.35.0"  # pinned in scripts/vendor_assets.py


@router.get("/docs", response_class=HTMLResponse)
async def docs(request: Request) -> HTMLResponse:
    """The Swagger UI page for ``/openapi.json``, every asset local."""
    return get_swagger_ui_html(
        openapi_url=request.app.openapi_url or "/openapi.json",
        title=f"{request.app.title} · API",
        swagger_js_url=vendor(f"{SWAGGER_UI}/swagger-ui-bundle.js"),
        swagger_css_url=vendor(f"{SWAGGER_UI}/swagger-ui.css"),
        swagger_favicon_url=vendor(f"{SWAGGER_UI}/favicon-32x32.png"),
    )
