"""Domain errors and the one table that maps them to HTTP status codes (database driver
errors map onto domain errors here too: a statement timeout, an outage), and the one check of
what text a caller may send (:data:`StorableText`: what PostgreSQL can store)."""

from __future__ import annotations

import re
import tempfile
from typing import Annotated, Any

import psycopg.errors
import sqlalchemy.exc
from pydantic import AfterValidator

# a server path in a message: a path (GDAL's /vsizip/… too) into a folder tempfile made
_SERVER_PATH = re.compile(
    r"(?:/vsi[a-z0-9]+/)?(?:" + re.escape(tempfile.gettempdir().rstrip("/")) + r"|/tmp|/var/tmp)"
    r"/[\w.-]*?(?:tmp|-)[a-z0-9_]{8}(?:/[^\s'\"/:,;()]*)*/([^\s'\"/:,;()]+)"
)


def without_server_paths(text: str) -> str:
    """``text`` with every path into a temporary folder (``tempfile``'s) cut to its last part,
    the file's name: a caller never learns where the server keeps its files."""
    return _SERVER_PATH.sub(r"\1", text)


# what PostgreSQL cannot store in text or jsonb: NUL, and UTF-16 surrogates standing alone
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def unstorable(text: str) -> str | None:
    """Why PostgreSQL could not store ``text``, or None when it can (text from callers is
    checked with this at the edge, so no such value ever reaches a query)."""
    found = _UNSTORABLE.search(text)
    if found is None:
        return None
    return f"holds U+{ord(found.group()):04X} at character {found.start()}, which cannot be stored"


def storable(text: str) -> str:
    """``text`` when it can be stored, else ``ValueError`` (a pydantic validator: the refusal
    names the field)."""
    problem = unstorable(text)
    if problem is not None:
        raise ValueError(f"text {problem}")
    return text


StorableText = Annotated[str, AfterValidator(storable)]
"""A caller's text that PostgreSQL can store (no NUL, no lone surrogate): every text field of
a request body is one, and :func:`unstorable` checks every path and query string."""


class GeoServiceError(Exception):
    """Base of every error the service reports to a caller; ``code`` is a stable machine name.
    The message never carries a server path (:func:`without_server_paths`)."""

    code = "error"
    retry_after_s: float | None = None  # answered as Retry-After when set

    def __init__(self, message: str, *, details: Any = None) -> None:
        message = without_server_paths(message)
        super().__init__(message)
        self.message = message
        self.details = details


class InvalidInput(GeoServiceError):
    """A request or file is malformed: bad JSON, missing field, wrong type."""

    code = "invalid_input"


class InvalidCoordinates(InvalidInput):
    """Coordinates are NaN, infinite, or outside the valid range of their CRS."""

    code = "invalid_coordinates"


class UnknownCRS(InvalidInput):
    """The CRS name is not one we can convert from."""

    code = "unknown_crs"


class InvalidGeometry(InvalidInput):
    """A geometry is broken (self-intersection, too few points, non-finite coordinates...)."""

    code = "invalid_geometry"


class BoundaryValidationFailed(InvalidInput):
    """A boundary layout failed validation; ``details`` lists every problem found."""

    code = "boundary_validation_failed"


class TooLarge(GeoServiceError):
    """The request carries more than the configured limit."""

    code = "too_large"


class NotFound(GeoServiceError):
    """The named object (version, area, report) does not exist."""

    code = "not_found"


class Conflict(GeoServiceError):
    """The request conflicts with the current state (duplicate label, impossible transition)."""

    code = "conflict"


class Unauthorized(GeoServiceError):
    """No valid API key was given."""

    code = "unauthorized"


class Forbidden(GeoServiceError):
    """The caller's role may not do this."""

    code = "forbidden"


class NoBoundaryVersion(GeoServiceError):
    """No published boundary version is in force at the requested date."""

    code = "no_boundary_version"


class RateLimited(GeoServiceError):
    """The caller sent more requests than its role's rate for this kind of route."""

    code = "rate_limited"

    def __init__(self, message: str, *, retry_after_s: float, details: Any = None) -> None:
        super().__init__(message, details=details)
        self.retry_after_s = retry_after_s


class StatementTimeout(GeoServiceError):
    """A query ran past the caller's role's ``statement_timeout`` and was cancelled."""

    code = "statement_timeout"
    retry_after_s = 30.0


class ServiceUnavailable(GeoServiceError):
    """The database cannot be reached (down, restarting, or every connection busy): retry soon;
    the connection pool recovers by itself when it is back."""

    code = "service_unavailable"
    retry_after_s = 5.0


HTTP_STATUS: dict[type[GeoServiceError], int] = {
    InvalidInput: 422,
    InvalidCoordinates: 422,
    UnknownCRS: 422,
    InvalidGeometry: 422,
    BoundaryValidationFailed: 422,
    TooLarge: 413,
    NotFound: 404,
    Conflict: 409,
    NoBoundaryVersion: 404,
    Unauthorized: 401,
    Forbidden: 403,
    RateLimited: 429,
    StatementTimeout: 503,
    ServiceUnavailable: 503,
    GeoServiceError: 400,
}

_OUTAGE = "the database cannot be reached at the moment"

# database driver errors answered as domain errors (looked up by the driver error's class, or
# the one SQLAlchemy wrapped); anything else from the driver is not the caller's doing
DRIVER_ERRORS: dict[type[Exception], tuple[type[GeoServiceError], str]] = {
    psycopg.errors.QueryCanceled: (
        StatementTimeout,
        "the query ran past this caller's statement timeout and was cancelled: narrow the "
        "request (a shorter period, a smaller area) or use a key whose role allows longer",
    ),
    # the server went away (shut down, restarted, unreachable) or refused a new connection;
    # QueryCanceled above is an OperationalError too, but the closer class wins
    psycopg.OperationalError: (ServiceUnavailable, _OUTAGE),
    psycopg.InterfaceError: (ServiceUnavailable, _OUTAGE),
    sqlalchemy.exc.TimeoutError: (ServiceUnavailable, "every database connection is busy"),
}


def from_driver_error(error: BaseException) -> GeoServiceError | None:
    """The domain error a database driver error stands for (see :data:`DRIVER_ERRORS`), or
    None; ``error`` may be the driver's exception or SQLAlchemy's wrapper of it."""
    orig = getattr(error, "orig", None) or error
    for cls in type(orig).__mro__:
        if cls in DRIVER_ERRORS:
            domain, message = DRIVER_ERRORS[cls]
            return domain(message)
    return None


def http_status(error: GeoServiceError) -> int:
    """The HTTP status of ``error``: the entry of its closest class in :data:`HTTP_STATUS`."""
    for cls in type(error).__mro__:
        if cls in HTTP_STATUS:
            return HTTP_STATUS[cls]
    return 400
