"""The JSON documents of OGC API - Features: landing page, conformance, collections, items.

Every link is absolute (built from the request's base URL) and says its ``rel`` and ``type``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Final
from urllib.parse import urlencode

from geo_service.protocols.ogc.collections import Collection
from geo_service.protocols.ogc.params import ItemsQuery

JSON: Final = "application/json"
GEOJSON: Final = "application/geo+json"
OPENAPI: Final = "application/vnd.oai.openapi+json;version=3.0"
CRS84: Final = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
CONFORMANCE: Final = (
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
)


def link(href: str, rel: str, type_: str, title: str | None = None) -> dict[str, str]:
    """One link object."""
    out = {"href": href, "rel": rel, "type": type_}
    if title:
        out["title"] = title
    return out


def landing(base: str) -> dict[str, Any]:
    """``/ogc``: what the service is and where its parts are."""
    return {
        "title": "geo_service OGC API - Features",
        "description": "Grid-governance areas (districts, towns, communities, grids) of the "
        "boundary version in force, and reports as the public Open311 view shows them.",
        "links": [
            link(f"{base}/ogc", "self", JSON, "this document"),
            link(f"{base}/ogc/api", "service-desc", OPENAPI, "the API definition"),
            link(f"{base}/docs", "service-doc", "text/html", "the API documentation"),
            link(f"{base}/ogc/conformance", "conformance", JSON, "conformance classes"),
            link(f"{base}/ogc/collections", "data", JSON, "the collections"),
        ],
    }


def conformance() -> dict[str, Any]:
    """``/ogc/conformance``."""
    return {"conformsTo": list(CONFORMANCE)}


def collection_doc(
    base: str,
    c: Collection,
    bbox: list[float] | None,
    interval: list[str | None] | None,
) -> dict[str, Any]:
    """One collection's description with its extent and links."""
    url = f"{base}/ogc/collections/{c.id}"
    extent: dict[str, Any] = {}
    if bbox is not None:
        extent["spatial"] = {"bbox": [bbox], "crs": CRS84}
    if interval is not None:
        extent["temporal"] = {
            "interval": [interval],
            "trs": "http://www.opengis.net/def/uom/ISO-8601/0/Gregorian",
        }
    doc: dict[str, Any] = {
        "id": c.id,
        "title": c.title,
        "description": c.description,
        "itemType": "feature",
        "crs": [CRS84],
        "storageCrs": CRS84,
        "links": [
            link(url, "self", JSON, "this collection"),
            link(f"{url}/items", "items", GEOJSON, f"{c.title}, GeoJSON"),
        ],
    }
    if extent:
        doc["extent"] = extent
    return doc


def collections_doc(base: str, docs: list[dict[str, Any]]) -> dict[str, Any]:
    """``/ogc/collections``."""
    return {
        "links": [link(f"{base}/ogc/collections", "self", JSON, "the collections")],
        "collections": docs,
    }


def _page_url(url: str, params: dict[str, str], offset: int) -> str:
    return f"{url}?{urlencode({**params, 'offset': str(offset)})}"


def items_doc(
    base: str,
    c: Collection,
    features: list[dict[str, Any]],
    matched: int,
    q: ItemsQuery,
    params: dict[str, str],
) -> dict[str, Any]:
    """A page of features with self, collection and next/prev links (offset paging)."""
    url = f"{base}/ogc/collections/{c.id}/items"
    page = {k: v for k, v in params.items() if k != "offset"}
    page["limit"] = str(q.limit)
    links = [
        link(_page_url(url, page, q.offset), "self", GEOJSON, "this page"),
        link(f"{base}/ogc/collections/{c.id}", "collection", JSON, c.title),
    ]
    if q.offset + len(features) < matched:
        links.append(link(_page_url(url, page, q.offset + q.limit), "next", GEOJSON, "next page"))
    if q.offset > 0:
        prev = max(q.offset - q.limit, 0)
        links.append(link(_page_url(url, page, prev), "prev", GEOJSON, "previous page"))
    return {
        "type": "FeatureCollection",
        "features": features,
        "links": links,
        "numberMatched": matched,
        "numberReturned": len(features),
        "timeStamp": dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
    }


def item_doc(base: str, c: Collection, feature: dict[str, Any]) -> dict[str, Any]:
    """One feature with its self and collection links."""
    url = f"{base}/ogc/collections/{c.id}"
    return {
        **feature,
        "links": [
            link(f"{url}/items/{feature['id']}", "self", GEOJSON, "this feature"),
            link(url, "collection", JSON, c.title),
        ],
    }
