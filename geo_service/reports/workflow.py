"""The closed loop of a case (Suzhou's eight steps): discover → accept → dispatch → handle →
track → supervise → feed back → evaluate, with who did each step and when.

Every change locks the report row (``SELECT ... FOR UPDATE``) in the caller's transaction, so
two concurrent moves from one state cannot both succeed, and writes one ``report_events`` row
and one audit entry (:mod:`geo_service.audit`: who, from where; HTTP and command line alike).
Checks run in a fixed order: 404 (may not see the case), 409 for an impossible move, 403 (role).
Marking a case public (:func:`set_public`) is audited but is no step of the loop: it writes no
event, so the loop's figures do not see it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Final

from sqlalchemy import Connection

from geo_service import audit
from geo_service.auth import Principal, require
from geo_service.db.schema import CLOSED_STATUSES
from geo_service.db.schema import REPORT_STATUSES as STATUSES
from geo_service.errors import Conflict, InvalidInput, NotFound
from geo_service.reports.placement import base_level
from geo_service.reports.taxonomy import (
    CATEGORY_BY_CODE,
    HANDLING_LEVELS,
    UNIT_LEVEL,
    next_level,
)
from geo_service.routing import RoutingTable
from geo_service.stats import catalogue
from geo_service.store import reports as store
from geo_service.store import units as store_units

# status -> {target status: action}; the only moves there are
TRANSITIONS: Final[dict[str, dict[str, str]]] = {
    "discovered": {"accepted": "accept", "rejected": "reject"},
    "accepted": {"dispatched": "dispatch"},
    "dispatched": {"handling": "start", "accepted": "return"},
    "handling": {"handled": "complete"},
    "handled": {"verified": "verify", "handling": "rework"},
    "verified": {"fed_back": "feed_back"},
    "fed_back": {"evaluated": "evaluate"},
    "evaluated": {},
    "rejected": {},
}
STAFF: Final = ("operator", "admin")
# grid workers act only on cases their scope covers, reporters only on their own: both are
# enforced by visibility (store.reports.visible_to), which answers 404 before any role check
HANDLERS: Final = ("grid_worker", *STAFF)
ROLES_OF: Final[dict[str, tuple[str, ...]]] = {
    "accept": STAFF,
    "reject": STAFF,
    "dispatch": STAFF,
    "start": HANDLERS,
    "return": HANDLERS,  # the unit sends the case back
    "complete": HANDLERS,
    "verify": STAFF,
    "rework": STAFF,
    "feed_back": STAFF,
    "evaluate": ("reporter", *STAFF),
    "reassign": STAFF,
    "escalate": STAFF,
    "supervise": STAFF,
    "escalate_overdue": STAFF,
    "publicity": STAFF,
}
# a case already with a unit goes back to 'dispatched' when another unit takes it over
BACK_TO_DISPATCHED: Final = frozenset({"dispatched", "handling"})
# the handling level a unit answers at, from the area level it belongs to
_LEVEL_OF_UNIT_AREA: Final = {
    "grid": "community",
    "community": "community",
    "town": "town",
    "district": "county",
}


@dataclass(frozen=True)
class _Case:
    """The locked report row: what a step needs to decide and re-route."""

    id: int
    status: str
    category: str
    handling_level: str
    hard: bool
    unit_id: int | None
    chain: dict[str, str] | None  # None outside coverage, as at intake
    reported_at: dt.datetime
    due_at: dt.datetime
    now: dt.datetime  # the database clock when the row was locked


@dataclass
class _Step:
    """One move of one case: the event to record and the report columns it changes."""

    case: _Case
    action: str
    to_status: str
    note: str | None
    changes: dict[str, Any] = field(default_factory=dict)


def _case(row: Any) -> _Case:
    m = row._mapping
    chain = None
    if m["in_coverage"]:
        codes = {lvl: m[f"{lvl}_code"] for lvl in ("grid", "community", "town", "district")}
        chain = {lvl: code for lvl, code in codes.items() if code}
    return _Case(
        m["id"],
        m["status"],
        m["category"],
        m["handling_level"],
        m["hard"],
        m["unit_id"],
        chain,
        m["reported_at"],
        m["due_at"],
        m["now"],
    )


def lock_case(conn: Connection, report_id: int, principal: Principal) -> _Case:
    """The report row, locked until the transaction ends; 404 when ``principal`` may not see it."""
    row = store.lock_case(conn, report_id, principal)
    if row is None:
        raise NotFound(f"no report {report_id}")
    return _case(row)


def allowed_targets(status: str) -> list[str]:
    """The statuses a case in ``status`` may move to."""
    return list(TRANSITIONS[status])


def _refusal(status: str, to: str) -> str:
    allowed = ", ".join(allowed_targets(status)) or "none (the case is closed)"
    return f"cannot go from {status!r} to {to!r}: allowed: {allowed}"


def _check_target(to: str, rating: int | None) -> None:
    """422 for an unknown status, or a rating missing (evaluate) or out of place."""
    if to not in TRANSITIONS:
        raise InvalidInput(f"unknown status {to!r}: use one of {', '.join(STATUSES)}")
    if to == "evaluated" and (rating is None or not 1 <= rating <= 5):
        raise InvalidInput("evaluating a case needs a rating from 1 to 5")
    if to != "evaluated" and rating is not None:
        raise InvalidInput("a rating is given only when the case is evaluated")


# what an audit entry of a step keeps of its changes (ids, codes, levels: never free text)
_AUDITED: Final = ("unit_id", "category", "handling_level", "routed_by", "hard", "rating")


def _audit_details(s: _Step) -> dict[str, Any]:
    details: dict[str, Any] = {"from_status": s.case.status, "to_status": s.to_status}
    details.update((k, s.changes[k]) for k in _AUDITED if k in s.changes)
    return details


def _record(
    conn: Connection, steps: list[_Step], at: dt.datetime, principal: Principal | None
) -> None:
    """Apply each step to its report and write its event (time, actor, role, note) and its
    audit entry."""
    changes = []
    for s in steps:
        values = dict(s.changes)
        if s.to_status != s.case.status:
            values.update(status=s.to_status, status_at=at)
        changes.append((s.case.id, values))
    store.update_cases(conn, changes)
    for action in sorted({s.action for s in steps}):
        audit.record_many(
            conn,
            f"report.{action}",
            "report",
            [(s.case.id, _audit_details(s)) for s in steps if s.action == action],
            principal,
        )
    store.add_events(
        conn,
        [
            {
                "report_id": s.case.id,
                "at": at,
                "action": s.action,
                "from_status": s.case.status,
                "to_status": s.to_status,
                "unit_id": s.changes.get("unit_id", s.case.unit_id),
                "actor_key_id": principal.key_id if principal else None,
                # a signed-in user is named (the timeline's "who"); a machine key by its role
                "actor": (principal.username or principal.role) if principal else "system",
                "note": s.note,
                "dispatch_due_at": s.changes.get("dispatch_due_at"),
                "handle_due_at": s.changes.get("handle_due_at"),
            }
            for s in steps
        ],
    )


def transition(
    conn: Connection,
    report_id: int,
    principal: Principal,
    to: str,
    *,
    note: str | None = None,
    rating: int | None = None,
) -> None:
    """Move a case along the loop to ``to``; 409 naming the allowed targets if it cannot go."""
    _check_target(to, rating)
    case = lock_case(conn, report_id, principal)
    action = TRANSITIONS[case.status].get(to)
    if action is None:
        raise Conflict(_refusal(case.status, to))
    require(principal, *ROLES_OF[action])
    if action == "dispatch" and case.unit_id is None:
        raise Conflict(f"report {report_id} has no unit to dispatch to: reassign it first")
    changes: dict[str, Any] = {}
    if to in CLOSED_STATUSES:
        changes["closed_at"] = case.now
    if action == "evaluate":
        changes["rating"] = rating
    if action == "accept":  # the case's urgency and deadlines (stats.catalogue)
        changes.update(catalogue.on_accept(case.category, case.now))
    _record(conn, [_Step(case, action, to, note, changes)], case.now, principal)


def _open_case(conn: Connection, report_id: int, principal: Principal, action: str) -> _Case:
    """The locked case for an action on open cases: 404, then 403, then 409 when closed."""
    case = lock_case(conn, report_id, principal)
    require(principal, *ROLES_OF[action])
    if case.status in CLOSED_STATUSES:
        raise Conflict(f"report {report_id} is closed ({case.status}): it cannot be changed")
    return case


def _reassigned_level(case: _Case, category: str) -> str:
    """The new category's first level, or the level the case was escalated to if higher."""
    rank = HANDLING_LEVELS.index
    base = base_level(category, case.hard)
    escalated = rank(case.handling_level) > rank(base_level(case.category, case.hard))
    return case.handling_level if escalated and rank(case.handling_level) > rank(base) else base


def _named_unit(conn: Connection, unit_code: str) -> tuple[int, str]:
    """The id and handling level of an active unit, 422 if there is none of that code."""
    row = store_units.active_unit(conn, unit_code)
    if row is None:
        raise InvalidInput(f"unknown unit {unit_code!r}")
    return row.id, _LEVEL_OF_UNIT_AREA[UNIT_LEVEL.get(row.unit_type, "district")]


def reassign(
    conn: Connection,
    report_id: int,
    principal: Principal,
    routing: RoutingTable,
    *,
    note: str,
    category: str | None = None,
    unit_code: str | None = None,
) -> None:
    """Change a case's category and/or unit; a new category without a unit is re-routed."""
    if category is None and unit_code is None:
        raise InvalidInput("reassigning needs a category, a unit_code or both")
    if category is not None and category not in CATEGORY_BY_CODE:
        raise InvalidInput(
            f"unknown category {category!r}: use one of {', '.join(sorted(CATEGORY_BY_CODE))}"
        )
    case = _open_case(conn, report_id, principal, "reassign")
    new_category = category or case.category
    changes: dict[str, Any] = {"category": new_category}
    if unit_code is not None:
        unit_id, level = _named_unit(conn, unit_code)
        changes.update(unit_id=unit_id, handling_level=level, routed_by="manual")
    else:
        level = _reassigned_level(case, new_category)
        route = routing.route(new_category, level, case.chain)
        changes.update(unit_id=route.unit_id, handling_level=level, routed_by=route.routed_by)
    accepted = case.status != "discovered"
    changes.update(catalogue.on_reassign(new_category, case.now, case.reported_at, accepted))
    if new_category != case.category:
        note = f"{note} (category {case.category} → {new_category})"
    to = "dispatched" if case.status in BACK_TO_DISPATCHED else case.status
    _record(conn, [_Step(case, "reassign", to, note, changes)], case.now, principal)


def _escalation(
    case: _Case,
    routing: RoutingTable,
    action: str,
    note: str,
    *,
    hard: bool = False,
    due_at: dt.datetime | None = None,
) -> _Step | None:
    """The step taking a case one handling level up, re-routed there (None at the county)."""
    level = next_level(case.handling_level)
    if level is None:
        return None
    route = routing.route(case.category, level, case.chain)
    changes: dict[str, Any] = {
        "handling_level": level,
        "unit_id": route.unit_id,
        "routed_by": route.routed_by,
    }
    if hard:
        changes["hard"] = True
    if due_at is not None:
        changes["due_at"] = due_at
    to = "dispatched" if case.status in BACK_TO_DISPATCHED else case.status
    return _Step(case, action, to, f"{note} ({case.handling_level} → {level})", changes)


def escalate(
    conn: Connection,
    report_id: int,
    principal: Principal,
    routing: RoutingTable,
    *,
    note: str,
    hard: bool = False,
) -> None:
    """Take a case up one level (community → town → county), re-routed; 409 at the county."""
    case = _open_case(conn, report_id, principal, "escalate")
    step = _escalation(case, routing, "escalate", note, hard=hard)
    if step is None:
        raise Conflict(
            f"report {report_id} is already handled at {case.handling_level!r} level, "
            "the highest: it cannot be escalated further"
        )
    _record(conn, [step], case.now, principal)


def supervise(conn: Connection, report_id: int, principal: Principal, *, note: str) -> None:
    """Put a case under supervision (督办): flagged, and the event says who pressed and why."""
    case = _open_case(conn, report_id, principal, "supervise")
    step = _Step(case, "supervise", case.status, note, {"supervised": True})
    _record(conn, [step], case.now, principal)


def set_public(
    conn: Connection,
    report_id: int,
    principal: Principal,
    *,
    public: bool,
    public_categories: frozenset[str],
) -> None:
    """Mark a case public (its point and description shown in the public views) or private
    again; operators and admins, audited. 409 when its category is not one of
    ``public_categories`` (``GEO_PRIVACY_PUBLIC_CATEGORIES``): such cases always stay private."""
    case = lock_case(conn, report_id, principal)
    require(principal, *ROLES_OF["publicity"])
    if public and case.category not in public_categories:
        allowed = ", ".join(sorted(public_categories)) or "none"
        raise Conflict(
            f"category {case.category!r} is not public: only cases of {allowed} can be shown "
            "to the public (GEO_PRIVACY_PUBLIC_CATEGORIES)"
        )
    store.update_case(conn, case.id, {"public": public})
    action = "report.make_public" if public else "report.make_private"
    audit.record(conn, action, "report", case.id, principal, {"category": case.category})


def escalate_overdue(
    conn: Connection,
    now: dt.datetime,
    routing: RoutingTable,
    principal: Principal | None = None,
) -> int:
    """Escalate every open case overdue at ``now`` one level; how many were escalated.

    Each gets a new due date, ``now`` + its category's handling limit (working time), so it
    escalates once per such period (its ``handle_due_at``, what figures judge, stays);
    cases already at the county stay put. Rows another transaction holds are left for next time.
    """
    rows = store.lock_overdue(conn, now, HANDLING_LEVELS[-1])
    steps = []
    for case in map(_case, rows):
        note = f"overdue since {case.due_at.isoformat()}: escalated"
        due = catalogue.deadline(case.category, "handle", now)
        step = _escalation(case, routing, "escalate_overdue", note, due_at=due)
        if step is not None:
            steps.append(step)
    _record(conn, steps, now, principal)
    return len(steps)


def history(conn: Connection, report_id: int, principal: Principal) -> list[dict[str, Any]]:
    """The loop history of a case, oldest first, with the seconds each step took.

    ``duration_s`` is the time since the previous event (None for the first; never negative,
    though a phone's clock may put ``reported_at`` a little after the first steps).
    """
    if not store.is_visible(conn, report_id, principal):
        raise NotFound(f"no report {report_id}")
    rows = store.events_of(conn, report_id)
    out: list[dict[str, Any]] = []
    previous: dt.datetime | None = None
    for r in rows:
        m = r._mapping
        duration = None if previous is None else max(0.0, (m["at"] - previous).total_seconds())
        previous = m["at"]
        out.append(
            {
                "id": m["id"],
                "at": m["at"].isoformat(),
                "action": m["action"],
                "from_status": m["from_status"],
                "to_status": m["to_status"],
                "unit": {"id": m["unit_id"], "code": m["unit_code"], "name": m["unit_name"]}
                if m["unit_id"]
                else None,
                "actor_key_id": m["actor_key_id"],
                "actor": m["actor"],
                "note": m["note"],
                "duration_s": duration,
            }
        )
    return out
