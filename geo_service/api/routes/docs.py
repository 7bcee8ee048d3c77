"""``/docs``: Swagger UI served from the service's own copy (``static/vendor/swagger-ui-dist``),
so the API's interactive documentation works on a machine with no internet; ReDoc is off.
Signed in, the page carries the session's CSRF token, which ``static/docs/docs.js`` sends with
every unsafe call made from it."""

from __future__ import annotations

from html import escape
from typing import Final

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from geo_service.api.session import csrf_token, current_session
from geo_service.maps.assets import vendor

router = APIRouter(include_in_schema=False)

SWAGGER_UI: Final = "swagger-ui-dist/5.35.0"  # pinned in scripts/vendor_assets.py
DOCS_JS: Final = "/static/docs/docs.js"


@router.get("/docs", response_class=HTMLResponse)
async def docs(request: Request) -> HTMLResponse:
    """The Swagger UI page for ``/openapi.json``, every asset local."""
    openapi = escape(request.app.openapi_url or "/openapi.json")
    await current_session(request)  # looked up off the event loop; csrf_token reads it
    token = escape(csrf_token(request))
    meta = f'<meta name="csrf-token" content="{token}">' if token else ""
    css, favicon = vendor(f"{SWAGGER_UI}/swagger-ui.css"), vendor(f"{SWAGGER_UI}/favicon-32x32.png")
    return HTMLResponse(f"""<!doctype html>
<html lang="zh-CN">
<head>
<meta charset="utf-8">
<title>{escape(request.app.title)} · API</title>
{meta}
<link rel="stylesheet" href="{css}">
<link rel="icon" href="{favicon}">
</head>
<body>
<div id="swagger-ui"></div>
<script src="{vendor(f"{SWAGGER_UI}/swagger-ui-bundle.js")}"></script>
<script src="{DOCS_JS}" data-openapi="{openapi}"></script>
</body>
</html>""")
