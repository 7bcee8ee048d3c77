"""Publish a draft with an effective date, or roll the latest publish back: one transaction each.

Publishing: lock the draft row (edits take the same lock), refuse it with every validation
error listed (422), then switch under the publishers' advisory lock — the version it replaces
gets ``effective_to`` = the new ``effective_from`` — and seed the standing units of its areas.
When the new version is in force today (``effective_from`` today or earlier), open cases follow
it at once (:mod:`geo_service.planning.reroute`); for a later date the sweep
``POST /v1/boundaries/reroute-open-cases`` moves them once that day has come.

Rolling back (:func:`geo_service.boundaries.versions.rollback`) puts the replaced version back
in force and the same policy moves open cases back: those the publish re-routed and that are
still open return to their old grid and its unit (with a ``relocate`` event each); cases closed
since, and reports filed meanwhile whose grid exists in both versions, are left as they are.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection

from geo_service.auth import Principal
from geo_service.boundaries import versions
from geo_service.errors import BoundaryValidationFailed
from geo_service.locator import Locator, VersionInfo
from geo_service.planning.drafts import lock_draft
from geo_service.planning.reroute import Rerouted, follow_version
from geo_service.planning.validation_report import refusal, validation_errors
from geo_service.routing import RoutingTable, seed_units
from geo_service.settings import PlanningSettings


@dataclass(frozen=True)
class Switch:
    """The outcome of a publish or a rollback."""

    version: VersionInfo  # the version published, or the one restored
    other: VersionInfo | None  # the version replaced, or the one rolled back
    rerouted: Rerouted | None  # None when the change takes effect later
    mode: str  # "published", or the rollback's mode

    def as_dict(self, other_key: str) -> dict[str, Any]:
        return {
            "version": self.version.as_dict(),
            other_key: self.other.as_dict() if self.other else None,
            "mode": self.mode,
            "open_cases": self.rerouted.as_dict() if self.rerouted else None,
        }


def follow_in_force(
    conn: Connection, principal: Principal | None, reason: str, today: dt.date | None = None
) -> Rerouted:
    """Move open cases to the version in force today (see :mod:`reroute`)."""
    locator = Locator.from_connection(conn, as_of=today)
    return follow_version(conn, locator, RoutingTable.load(conn), principal, reason)


def publish_draft(
    conn: Connection,
    version_id: int,
    effective_from: dt.date,
    principal: Principal | None = None,
    limits: PlanningSettings | None = None,
    today: dt.date | None = None,
) -> Switch:
    """Publish draft ``version_id`` from ``effective_from`` in the caller's transaction."""
    day = today or dt.date.today()
    draft = lock_draft(conn, version_id)
    errors = validation_errors(conn, version_id, limits)
    if errors:
        message, details = refusal(draft.label, errors)
        raise BoundaryValidationFailed(message, details=details)
    info = versions.publish(conn, version_id, effective_from)
    seed_units(conn, version_id)
    replaced = versions.replaced_by_publish(conn, version_id)
    other = versions.get_version(conn, replaced) if replaced is not None else None
    rerouted = None
    if effective_from <= day:
        rerouted = follow_in_force(conn, principal, "boundary version published", day)
    return Switch(info, other, rerouted, "published")


def rollback_version(
    conn: Connection,
    version_id: int,
    principal: Principal | None = None,
    today: dt.date | None = None,
) -> Switch:
    """Roll back ``version_id`` in the caller's transaction; open cases follow the restored one."""
    day = today or dt.date.today()
    done = versions.rollback(conn, version_id, day)
    rerouted = None
    if done.mode != "unscheduled":  # a version never in force moved no case
        rerouted = follow_in_force(conn, principal, "boundary version restored by a rollback", day)
    return Switch(done.restored, done.rolled_back, rerouted, done.mode)
