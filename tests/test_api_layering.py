"""The HTTP edge's layering: route modules stand alone (none imports another; what they share
lives in ``api/deps.py``, ``api/limits.py`` or the domain), and none works out the caller or
enforces a body limit itself."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import geo_service

ROUTES = Path(geo_service.__file__).parent / "api" / "routes"
ROUTE_FILES = sorted(p for p in ROUTES.glob("*.py") if p.name != "__init__.py")


def _imported_modules(path: Path) -> set[str]:
    """Every module ``path`` imports, relative imports resolved against its package."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = ["geo_service", "api", "routes"]
                base = ".".join([*package[: len(package) - node.level + 1], base]).rstrip(".")
            out.add(base)
            out |= {f"{base}.{alias.name}" for alias in node.names}
    return out


def test_there_are_route_modules_to_check() -> None:
    assert len(ROUTE_FILES) >= 10


@pytest.mark.parametrize("path", ROUTE_FILES, ids=lambda p: p.name)
def test_no_route_module_imports_another(path: Path) -> None:
    others = {f"geo_service.api.routes.{p.stem}" for p in ROUTE_FILES}
    assert not _imported_modules(path) & others


@pytest.mark.parametrize("path", ROUTE_FILES, ids=lambda p: p.name)
def test_routes_leave_keys_and_body_limits_to_the_edge(path: Path) -> None:
    source = path.read_text(encoding="utf-8")
    assert "KeyStore" not in source and "state.keys" not in source  # api.deps.caller's job
    assert "MAX_BODY" not in source and "max_body" not in source  # api.limits' job
