"""Who changed what, when and from where: the audit log's writer, called by the domain functions
that change boundaries, cases, units, keys and users, in the transaction of the change.

Because the domain functions write the entry, every path that changes something is audited,
whether it came over HTTP or from the command line, and an entry exists exactly when its change
committed (nothing half-written). *Who* is the API key (id and role) the change was made with,
the signed-in user (``user:<name>`` and role) for a browser session, or the local account for
the command line. *From where* is the client address of the HTTP
request (:class:`geo_service.api.origin.OriginMiddleware` puts it in :data:`ORIGIN` for the
request's context), else ``local:<host>``. Free text (notes, descriptions) is not copied into
the log: the case's own history keeps it; entries carry ids, codes, statuses and counts.
"""

from __future__ import annotations

import datetime as dt
import getpass
import os
import socket
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from functools import cache
from typing import TYPE_CHECKING, Any, Final

from sqlalchemy import Connection

from geo_service.store import audit as store

if TYPE_CHECKING:  # geo_service.auth records key changes here
    from geo_service.auth import Principal

ORIGIN: Final[ContextVar[str | None]] = ContextVar("geo_service_audit_origin", default=None)
"""The client address of the HTTP request being served (None outside a request)."""

TARGET_TYPES: Final = ("boundary_version", "report", "unit", "api_key", "user")
"""What an entry can be about."""


@cache
def local_origin() -> str:
    """Where a change made outside any HTTP request comes from: ``local:<host name>``."""
    return f"local:{socket.gethostname()}"


@cache
def local_actor() -> str:
    """Who makes a change outside any HTTP request: ``local:<account>`` (the OS user)."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (a bare container): the numeric id
        user = str(os.getuid())
    return f"local:{user}"


@contextmanager
def origin(address: str | None) -> Iterator[None]:
    """Changes made inside this block come from ``address`` (a client address)."""
    token = ORIGIN.set(address)
    try:
        yield
    finally:
        ORIGIN.reset(token)


def _json(value: Any) -> Any:
    """``value`` with dates as ISO text, for the ``details`` column."""
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): _json(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_json(v) for v in value]
    return value


def entry(
    action: str,
    target_type: str,
    target_id: object,
    principal: Principal | None,
    details: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """One audit row: ``principal`` (None: the local account) did ``action`` to a target."""
    if target_type not in TARGET_TYPES:
        raise ValueError(f"unknown audit target type {target_type!r}")
    where = ORIGIN.get()
    return {
        "actor_key_id": principal.key_id if principal else None,
        "actor_role": principal.role if principal else None,
        "actor": principal.actor if principal else local_actor(),
        "origin": where if where is not None else local_origin(),
        "action": action,
        "target_type": target_type,
        "target_id": str(target_id),
        "details": _json(dict(details or {})),
    }


def record(
    conn: Connection,
    action: str,
    target_type: str,
    target_id: object,
    principal: Principal | None,
    details: Mapping[str, Any] | None = None,
) -> None:
    """Append one entry in ``conn``'s transaction (it commits or rolls back with the change)."""
    store.append(conn, [entry(action, target_type, target_id, principal, details)])


def record_many(
    conn: Connection,
    action: str,
    target_type: str,
    targets: Iterable[tuple[object, Mapping[str, Any] | None]],
    principal: Principal | None,
) -> None:
    """Append one entry per (target id, details) in one statement, in ``conn``'s transaction."""
    store.append(
        conn, [entry(action, target_type, tid, principal, details) for tid, details in targets]
    )
