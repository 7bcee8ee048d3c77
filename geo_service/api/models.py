"""Response bodies of the HTTP API as pydantic models: what the OpenAPI document promises.

Routes answer pre-rendered bytes (orjson) and name their model with ``response_model=`` for
the document only (FastAPI hands a ``Response`` through untouched), so these models describe,
they never copy or filter an answer; ``tests/test_fuzz.py`` holds every answer to them.
Members listed are always present unless they have a default; a model may carry more members
than it lists (JSON Schema's default), so an added field never breaks a client.

Also here: the error bodies (ours, OGC API's, Open311's), the ``responses=`` tables routers
declare them with, and the non-JSON media types (GeoJSON, MVT, HTML, XML).
"""

from __future__ import annotations

from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel

GEOJSON: Final = "application/geo+json"
MVT: Final = "application/vnd.mapbox-vector-tile"
HTML: Final = "text/html"
XML: Final = "text/xml"
NDJSON: Final = "application/x-ndjson"
JSON: Final = "application/json"
TEXT: Final[dict[str, Any]] = {"type": "string"}
BINARY: Final[dict[str, Any]] = {"type": "string", "format": "binary"}


class _Out(BaseModel):
    """A response body: documented members, more allowed."""

    model_config = ConfigDict(extra="allow")


# --- errors -----------------------------------------------------------------------------------


class ErrorBody(_Out):
    """Every error of the service's own routes: a stable machine code, a message naming the
    problem, and details (the problems listed, the limit passed…) where there are some."""

    error: str = Field(description="stable machine code, e.g. invalid_input, not_found")
    message: str
    details: Any = None


class OgcException(_Out):
    """An OGC API - Features exception (``/ogc``)."""

    code: str
    description: str


class Open311Error(_Out):
    """One Open311 GeoReport v2 error; Open311 answers a list of them."""

    code: int
    description: str



REF: Final = "#/components/schemas/"


def _error(description: str, model: str = "ErrorBody", xml: bool = False) -> dict[str, Any]:
    """A ``responses=`` entry: an error body in JSON (whatever the route's own media type)."""
    schema: dict[str, Any] = {"$ref": REF + model}
    if model == "Open311Error":
        schema = {"type": "array", "items": schema}
    content: dict[str, Any] = {JSON: {"schema": schema}}
    if xml:
        content[XML] = {"schema": TEXT}
    return {"description": description, "content": content}


# what the edge may answer on any route: rate limit, body limit, database outage
EDGE_ERRORS: Final[dict[int | str, dict[str, Any]]] = {
    413: _error("the request body is over its route's limit"),
    429: _error("over the caller's rate (Retry-After says when to retry)"),
    503: _error("the database is unreachable or the query ran out of time (Retry-After)"),
}
# the service's own routes (/v1, /tiles, /maps, /health): every error an ErrorBody
ERRORS: Final[dict[int | str, dict[str, Any]]] = {
    401: _error("no key where one is needed, a malformed header, or an unknown or revoked key"),
    403: _error("the caller's role may not do this"),
    404: _error("no such object (or not one the caller may see)"),
    409: _error("the request conflicts with the current state"),
    422: _error("a parameter or the body is invalid: the message names it"),
    **EDGE_ERRORS,
}
OGC_ERRORS: Final[dict[int | str, dict[str, Any]]] = {
    400: _error("a bad or unknown parameter", "OgcException"),
    401: _error("a malformed Authorization header, or an unknown or revoked key", "OgcException"),
    404: _error("no such collection or feature", "OgcException"),
    **EDGE_ERRORS,
    503: _error("the database is unreachable or the query ran out of time", "OgcException"),
}
OPEN311_ERRORS: Final[dict[int | str, dict[str, Any]]] = {
    400: _error("a missing or bad parameter", "Open311Error", xml=True),
    403: _error("a missing, unknown or revoked key, or a role that may not file",
                "Open311Error", xml=True),
    404: _error("no such service, request or resource", "Open311Error", xml=True),
    **EDGE_ERRORS,
    503: _error("the database is unreachable or the query ran out of time", "Open311Error",
                xml=True),
}


def media(media_type: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    """A ``responses=`` entry for a body that is not the route's JSON model."""
    return {"description": description, "content": {media_type: {"schema": schema}}}



# --- shared pieces ----------------------------------------------------------------------------


class Version(_Out):
    """A boundary version: MapIt-style generation, ``draft → published → retired``."""

    id: int | None
    label: str
    status: str
    effective_from: str | None = Field(description="YYYY-MM-DD")
    effective_to: str | None = Field(description="YYYY-MM-DD, exclusive")


class Geometry(_Out):
    """A GeoJSON geometry (RFC 7946), WGS84 lon/lat."""

    type: str
    coordinates: Any = None
    geometries: list[Any] | None = None


class Feature(_Out):
    """A GeoJSON Feature."""

    type: Literal["Feature"]
    id: str | int | None = None
    geometry: Geometry | None
    properties: dict[str, Any] | None


class FeatureCollection(_Out):
    """A GeoJSON FeatureCollection."""

    type: Literal["FeatureCollection"]
    features: list[Feature]


# --- health, versions -------------------------------------------------------------------------


class Health(_Out):
    """The database answered: PostGIS's version and the boundary version in force."""

    status: str
    postgis: str | None
    boundary_version: str | None


class Versions(_Out):
    """Every boundary version the caller may see, newest first."""

    versions: list[Version]


# --- locate -----------------------------------------------------------------------------------


class Point(_Out):
    """A WGS84 point."""

    lon: float
    lat: float


class GridBrief(_Out):
    """A grid by code and name."""

    code: str
    name: str | None


class Grid(GridBrief):
    """The owning grid of a one-point answer, with what is known of it."""

    households: int | None = None
    population: int | None = None
    grid_worker: str | None = None
    grid_leader: str | None = None


class NearGrid(GridBrief):
    """A grid near the point: the runner-up within a few metres, or the nearest one."""

    distance_m: float


class ChainLink(_Out):
    """One level of the code chain district → town → community → grid."""

    level: str
    code: str
    name: str | None


class PointAnswer(_Out):
    """Where one point is: its grid (null outside coverage, with a reason and the nearest grid
    within 2 km) and, inside, the distance to the grid's boundary and a runner-up."""

    point: Point
    grid: Grid | None
    boundary_distance_m: float | None = None
    runner_up: NearGrid | None = None
    reason: str | None = None
    nearest: NearGrid | None = None


class LocateQuery(_Out):
    """The point as asked."""

    lon: float
    lat: float
    crs: str


class LocateAnswer(PointAnswer):
    """``GET /v1/locate``: the point's answer, its code chain, the query and the version."""

    chain: list[ChainLink] | None = None
    query: LocateQuery
    version: Version


class LocateBatch(_Out):
    """``POST /v1/locate``: one answer per point, in input order."""

    version: Version
    crs: str
    results: list[PointAnswer]


# --- reports ----------------------------------------------------------------------------------


class Unit(_Out):
    """A responsible unit."""

    id: int
    code: str
    name: str
    type: str | None = None


class ReportLocation(_Out):
    """Where a report is (WGS84), and as it was sent."""

    lon: float
    lat: float
    lon_original: float | None = None
    lat_original: float | None = None
    crs_original: str | None = None


class Contact(_Out):
    """The reporter (only to the reporter who filed, and to operators and admins)."""

    name: str | None
    phone: str | None


class Report(_Out):
    """A report as the caller's role may see it."""

    id: int
    status: str
    channel: str
    category: str
    description: str | None
    photos: list[str] | None
    reported_at: str
    received_at: str
    location: ReportLocation
    in_coverage: bool
    grid_code: str | None
    community_code: str | None
    town_code: str | None
    district_code: str | None
    boundary_version_id: int | None
    handling_level: str | None
    unit: Unit | None
    routed_by: str | None
    status_at: str
    due_at: str
    overdue: bool
    closed_at: str | None
    supervised: bool
    hard: bool
    rating: int | None
    duplicate_of: int | None
    public: bool = False  # staff marked it public (geo_service.reports.disclosure)
    reporter: Contact | None = None


class ReportList(_Out):
    """A page of reports, newest first, and how many match in all."""

    total: int
    items: list[Report]


class FiledReport(_Out):
    """A report as filed: located, routed, stored."""

    id: int
    status: str
    channel: str
    category: str
    reported_at: str
    location: ReportLocation
    in_coverage: bool
    grid: GridBrief | None
    community_code: str | None
    town_code: str | None
    district_code: str | None
    boundary_version: str | None
    handling_level: str | None
    unit: Unit | None
    routed_by: str | None
    due_at: str
    suspected_duplicate_of: int | None


class BulkItem(_Out):
    """One item of a bulk filing: stored, a duplicate of an earlier filing, or refused."""

    index: int
    status: Literal["stored", "duplicate", "refused"]
    id: int | None = None
    report: FiledReport | None = None
    reason: str | None = None


class BulkAnswer(_Out):
    """Counts by outcome and an answer per item, in order."""

    stored: int
    duplicate: int
    refused: int
    items: list[BulkItem]


class Event(_Out):
    """One step of a case's loop."""

    id: int
    at: str
    action: str
    from_status: str | None
    to_status: str | None
    unit: Unit | None
    actor_key_id: int | None
    actor: str | None
    note: str | None
    duration_s: float | None


class Events(_Out):
    """A case's loop history, oldest first."""

    items: list[Event]


class Escalated(_Out):
    """How many overdue cases went one level up."""

    escalated: int


# --- analyses, figures ------------------------------------------------------------------------


class Analysis(_Out):
    """What an analysis layer is (layer, unit, resolution or level, version…) and what the
    small-count suppression hid."""

    layer: str
    k: int
    suppressed: int
    returned: int


class AnalysisLayer(FeatureCollection):
    """An analysis as a GeoJSON layer."""

    analysis: Analysis


class Period(_Out):
    """A figures period: start (inclusive), end (exclusive), the moment figures are taken at."""

    start: str
    end: str
    as_of: str | None = None


class FigureRow(_Out):
    """One area, unit or post with its figures (counts, rates, medians, score, grade, rank)."""

    code: str | None
    name: str | None = None
    level: str | None = None


class Indicators(_Out):
    """``GET /v1/stats/indicators``."""

    period: Period
    items: list[FigureRow]


class Trend(_Out):
    """``GET /v1/stats/trend``: the figures per step, in total and per row."""

    period: Period
    step: str
    steps: list[Period]
    total: list[dict[str, Any]]
    items: list[FigureRow]


# --- planning ---------------------------------------------------------------------------------


class DraftCreated(_Out):
    """A draft stored from an upload, with the count of problems left to fix."""

    id: int
    label: str
    status: str
    counts: dict[str, Any]
    errors: int | list[Any]
    warnings: int | list[Any]
    validation: str


class ValidationReport(_Out):
    """A version's validation: validity, counts by kind, every problem."""

    version: Version
    valid: bool
    errors: int
    warnings: int
    kinds: dict[str, int]
    problems: list[dict[str, Any]]


class ProblemLayer(FeatureCollection):
    """The validation problems as a GeoJSON layer."""

    version: Version


class EditedGrid(_Out):
    """A grid as an edit left it."""

    code: str
    name: str | None
    parent_code: str | None
    households: int | None
    area_m2: float


class GridReplaced(_Out):
    """``PUT …/grids/{code}``."""

    version_id: int
    grid: EditedGrid


class GridsChanged(_Out):
    """A split or a merge: the codes removed and the grids made."""

    version_id: int
    removed: list[str]
    created: list[EditedGrid]


class Renumbered(_Out):
    """What a renumbering changed."""

    version_id: int
    renamed: Any
    kept_from_version_in_force: Any
    numbered: Any


class Rerouted(_Out):
    """Open cases moved to the version in force."""

    version_id: int | None
    open_cases: int
    moved: int
    unit_changed: int
    kept_manual_unit: int


class Switched(_Out):
    """A publish (``replaced``: the version it replaced) or a rollback (``rolled_back``)."""

    version: Version
    mode: str | None = None
    open_cases: Rerouted | None = None
    replaced: Version | None = None
    rolled_back: Version | None = None


class Impact(_Out):
    """What a draft would change against a base version: grids, reports, open cases, workload."""

    draft: Version
    base: Version
    grids: dict[str, Any]
    reports: dict[str, Any]
    open_cases: dict[str, Any]
    workload: dict[str, Any]


class Suggestions(_Out):
    """Splits and merges stored as a new draft, with the workload's spread before and after."""

    draft: dict[str, Any]
    base: Version
    splits: list[Any]
    merges: list[Any]
    cv: dict[str, Any]


class AreaVersion(_Out):
    """An area in one version, and how it changed from the version before."""

    version: Version
    name: str | None
    level: str
    change: str


class AreaHistory(_Out):
    """The versions an area was in."""

    code: str
    versions: list[AreaVersion]


# --- tiles ------------------------------------------------------------------------------------


class TileJSON(_Out):
    """TileJSON 3.0.0 of a tile layer."""

    tilejson: str
    tiles: list[str]
    vector_layers: list[dict[str, Any]]
    bounds: list[float] | None = None
    minzoom: int | None = None
    maxzoom: int | None = None


# --- OGC API - Features -----------------------------------------------------------------------


class Link(_Out):
    """An OGC link."""

    href: str
    rel: str
    type: str | None = None
    title: str | None = None


class Landing(_Out):
    """The OGC API landing page."""

    links: list[Link]
    title: str | None = None
    description: str | None = None


class Conformance(_Out):
    """The conformance classes implemented."""

    conformsTo: list[str]  # the standard's name


class Collection(_Out):
    """One OGC collection with its extent."""

    id: str
    links: list[Link]
    title: str | None = None
    description: str | None = None
    extent: dict[str, Any] | None = None


class Collections(_Out):
    """Every OGC collection."""

    collections: list[Collection]
    links: list[Link]


class OgcItems(FeatureCollection):
    """A page of OGC features, with paging links."""

    links: list[Link]
    numberMatched: int | None = None  # the standard's name
    numberReturned: int  # the standard's name
    timeStamp: str | None = None  # the standard's name


class OgcItem(Feature):
    """One OGC feature, with its links."""

    links: list[Link] | None = None


class OpenAPIDocument(_Out):
    """An OpenAPI 3 document."""

    openapi: str
    info: dict[str, Any]
    paths: dict[str, Any]


# --- Open311 GeoReport v2 ---------------------------------------------------------------------


class Open311Service(_Out):
    """A category as an Open311 service."""

    service_code: str
    service_name: str
    description: str | None = None
    metadata: bool
    type: str


class Open311ServiceDefinition(_Out):
    """A service's definition (no attributes beyond the standard fields)."""

    service_code: str
    attributes: list[Any]


class Open311Request(_Out):
    """A service request as Open311 shows it: never any personal data."""

    service_request_id: str
    status: str
    service_code: str | None = None
    service_name: str | None = None
    description: str | None = None
    requested_datetime: str | None = None
    updated_datetime: str | None = None
    lat: float | None = None
    long: float | None = None


class Open311Created(_Out):
    """A service request just filed."""

    service_request_id: str
    service_notice: str | None = None
    account_id: str | None = None


Open311Services = RootModel[list[Open311Service]]
Open311Requests = RootModel[list[Open311Request]]
Open311CreatedList = RootModel[list[Open311Created]]


def open311_answer(description: str) -> dict[int | str, dict[str, Any]]:
    """An Open311 route's 200 besides its JSON model: the same as XML (``.xml``)."""
    return {200: {"description": description, "content": {XML: {"schema": TEXT}}}}


COMPONENTS: Final[tuple[type[BaseModel], ...]] = (
    ErrorBody,
    OgcException,
    Open311Error,
    ProblemLayer,
)
"""Models that ``responses=`` tables refer to by ``$ref`` (:data:`REF`), placed in the
document's components by :mod:`geo_service.api.openapi`."""
