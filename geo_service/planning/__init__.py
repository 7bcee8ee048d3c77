"""Planners' workflow on boundary versions: drafts from uploads, grid edits, codes, validation.

Only the planner role works on drafts (:data:`PLANNER_ROLES`); publishing, impact and
suggestions build on the drafts made here.
"""

from __future__ import annotations

from typing import Final

from geo_service.auth import Principal
from geo_service.errors import Forbidden, Unauthorized

PLANNER_ROLES: Final[tuple[str, ...]] = ("planner",)
DRAFT_READERS: Final[tuple[str, ...]] = ("planner", "operator", "admin")
"""Who may see draft versions: listed, their validation report and their diff map."""


def reads_drafts(who: Principal | None) -> bool:
    """Whether ``who`` (None: the public) may see draft versions."""
    return who is not None and who.role in DRAFT_READERS


def require_draft_reader(who: Principal | None) -> None:
    """401 for the public, 403 for a role that may not see draft versions."""
    if who is None:
        raise Unauthorized("draft versions need a planner, operator or admin key")
    if not reads_drafts(who):
        raise Forbidden(
            f"role {who.role!r} may not see draft versions (needs planner, operator or admin)"
        )
