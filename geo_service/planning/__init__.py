"""Planners' workflow on boundary versions: drafts from uploads, grid edits, codes, validation.

Only the planner role works on drafts (:data:`PLANNER_ROLES`); publishing, impact and
suggestions build on the drafts made here.
"""

from __future__ import annotations

from typing import Final

PLANNER_ROLES: Final[tuple[str, ...]] = ("planner",)
