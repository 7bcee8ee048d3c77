"""Domain errors and the one table that maps them to HTTP status codes."""

from __future__ import annotations

from typing import Any


class GeoServiceError(Exception):
    """Base of every error the service reports to a caller; ``code`` is a stable machine name."""

    code = "error"

    def __init__(self, message: str, *, details: Any = None) -> None:
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
    GeoServiceError: 400,
}


def http_status(error: GeoServiceError) -> int:
    """The HTTP status of ``error``: the entry of its closest class in :data:`HTTP_STATUS`."""
    for cls in type(error).__mro__:
        if cls in HTTP_STATUS:
            return HTTP_STATUS[cls]
    return 400
