"""The one publish path: publish a draft from a date, roll the latest publish back, move open
cases to the version in force. The HTTP routes, ``geo-service boundaries publish``,
``boundaries import --publish``, ``boundaries rollback`` and the open-case sweep all come here.

Publishing is one transaction: the publishers' advisory lock, the draft's row lock (edits take
the same lock, so none slips in after validation), refusal with every validation error listed
(:class:`BoundaryValidationFailed`, 422; grid limits from :class:`PlanningSettings`), the
switch (the version it replaces gets ``effective_to`` = the new ``effective_from``), the
standing units of its areas, and, when the new version is in force today (``effective_from``
today or earlier), its open cases (:mod:`geo_service.planning.reroute`). For a later date the
sweep (:func:`follow_in_force`, from cron) moves them once the day has come.

Rolling back (:func:`geo_service.boundaries.versions.rollback`) puts the replaced version back
in force and the same policy moves open cases back: those the publish re-routed and that are
still open return to their old grid and its unit (a ``relocate`` event each); cases closed
since, and reports filed meanwhile whose grid exists in both versions, are left as they are.

Publishing, rolling back, the units a publish creates and every sweep that moves cases are
audited in the same transaction (:mod:`geo_service.audit`).

After either commits, the process's version registry is told once
(:meth:`~geo_service.locator.registry.VersionRegistry.switched`): everything derived from the
old schedule is dropped at commit here, and within the re-check interval everywhere else.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine

from geo_service import audit
from geo_service.auth import Principal
from geo_service.boundaries import versions
from geo_service.errors import BoundaryValidationFailed, Conflict, NotFound
from geo_service.locator import Locator, VersionInfo
from geo_service.locator.registry import Schedule, VersionRegistry, process_registry
from geo_service.planning.reroute import Rerouted, follow_version
from geo_service.planning.validation_report import refusal, validation_errors
from geo_service.routing import seed_units
from geo_service.settings import PlanningSettings
from geo_service.store import versions as store

PUBLISHED = "boundary version published"
RESTORED = "boundary version restored by a rollback"
IN_FORCE = "boundary version in force"


@dataclass(frozen=True)
class Switch:
    """The outcome of a publish or a rollback, and the schedule it committed."""

    version: VersionInfo  # the version published, or the one restored
    other: VersionInfo | None  # the version replaced, or the one rolled back
    rerouted: Rerouted | None  # None when the change takes effect later
    mode: str  # "published", or the rollback's mode
    schedule: Schedule  # for the version registry, once committed

    def as_dict(self, other_key: str) -> dict[str, Any]:
        """The HTTP answer; ``other_key`` names :attr:`other` (``replaced``/``rolled_back``)."""
        return {
            "version": self.version.as_dict(),
            other_key: self.other.as_dict() if self.other else None,
            "mode": self.mode,
            "open_cases": self.rerouted.as_dict() if self.rerouted else None,
        }


def follow_in_force(
    conn: Connection, principal: Principal | None, reason: str, today: dt.date | None = None
) -> Rerouted:
    """Move open cases to the version in force today, in the caller's transaction (see
    :mod:`geo_service.planning.reroute`); the Locator is built only when a case is open."""
    info = versions.version_in_force(conn, today)
    done = follow_version(
        conn, info, lambda: Locator.from_connection(conn, version=info.id), principal, reason
    )
    if done.moved or done.unit_changed:  # the cases it changed (each has a relocate event)
        details = {"reason": reason, **done.as_dict()}
        audit.record(conn, "boundary.reroute", "boundary_version", info.id, principal, details)
    return done


def _lock_draft(conn: Connection, version_id: int) -> VersionInfo:
    """Take the publishers' lock, then the draft's row lock; 404/409 unless it is a draft."""
    store.lock_publishers(conn)
    info = store.by_id(conn, version_id, for_update=True)
    if info is None:
        raise NotFound(f"no boundary version {version_id!r}")
    if info.status != "draft":
        raise Conflict(f"version {info.label!r} is {info.status}, only a draft can be published")
    return info


def publish_draft(
    conn: Connection,
    version_id: int,
    effective_from: dt.date,
    *,
    principal: Principal | None = None,
    limits: PlanningSettings | None = None,
    today: dt.date | None = None,
) -> Switch:
    """Publish draft ``version_id`` from ``effective_from`` in the caller's transaction (the
    caller then passes the result to :func:`announce` after its commit)."""
    day = today or dt.date.today()
    draft = _lock_draft(conn, version_id)
    errors = validation_errors(conn, version_id, limits)
    if errors:
        message, details = refusal(draft.label, errors)
        raise BoundaryValidationFailed(message, details=details)
    info = versions.publish(conn, version_id, effective_from)
    seed_units(conn, version_id, principal=principal)
    replaced = versions.replaced_by_publish(conn, version_id)
    other = versions.get_version(conn, replaced) if replaced is not None else None
    what = {"label": info.label, "effective_from": effective_from, "replaced": replaced}
    audit.record(conn, "boundary.publish", "boundary_version", version_id, principal, what)
    rerouted = None
    if effective_from <= day:
        rerouted = follow_in_force(conn, principal, PUBLISHED, day)
    return Switch(info, other, rerouted, "published", Schedule.read(conn))


def rollback_version(
    conn: Connection,
    version_id: int,
    *,
    principal: Principal | None = None,
    today: dt.date | None = None,
) -> Switch:
    """Roll back ``version_id`` in the caller's transaction; open cases follow the restored
    version (then :func:`announce` after the commit)."""
    day = today or dt.date.today()
    done = versions.rollback(conn, version_id, day)
    details = {"mode": done.mode, "restored": done.restored.id}
    audit.record(conn, "boundary.rollback", "boundary_version", version_id, principal, details)
    rerouted = None
    if done.mode != "unscheduled":  # a version never in force moved no case
        rerouted = follow_in_force(conn, principal, RESTORED, day)
    return Switch(done.restored, done.rolled_back, rerouted, done.mode, Schedule.read(conn))


def announce(bind: Engine | Connection, done: Switch, registry: VersionRegistry | None) -> None:
    """Tell the version registry (this process's when None) that ``done`` has committed."""
    (registry or process_registry()).switched(bind, done.schedule)


def publish(
    engine: Engine,
    version: int | str,
    effective_from: dt.date,
    *,
    principal: Principal | None = None,
    limits: PlanningSettings | None = None,
    registry: VersionRegistry | None = None,
    today: dt.date | None = None,
) -> Switch:
    """Publish draft ``version`` (id or label) from ``effective_from`` in a transaction of its
    own, then announce it."""
    with engine.begin() as conn:
        vid = version if isinstance(version, int) else versions.get_version(conn, version).id
        assert vid is not None, "stored versions have ids"
        done = publish_draft(
            conn, vid, effective_from, principal=principal, limits=limits, today=today
        )
    announce(engine, done, registry)
    return done


def rollback(
    engine: Engine,
    version: int | str,
    *,
    principal: Principal | None = None,
    registry: VersionRegistry | None = None,
    today: dt.date | None = None,
) -> Switch:
    """Roll back version ``version`` (id or label) in a transaction of its own, then announce
    it."""
    with engine.begin() as conn:
        vid = version if isinstance(version, int) else versions.get_version(conn, version).id
        assert vid is not None, "stored versions have ids"
        done = rollback_version(conn, vid, principal=principal, today=today)
    announce(engine, done, registry)
    return done
