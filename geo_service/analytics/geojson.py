"""Analysis frames as GeoJSON FeatureCollections (WGS84 lon/lat, RFC 7946).

Geometries are serialised by GEOS in one vectorised call and embedded as pre-rendered JSON
(``orjson.Fragment``); coordinates are rounded to 1e-7° (about 1 cm). The frame's ``attrs``
(layer, resolution, band, version, suppression ...) travel as the collection's ``analysis``
member.
"""

from __future__ import annotations

from typing import Any

import geopandas as gpd
import numpy as np
import orjson
import pandas as pd
import shapely

DECIMALS = 7


def _plain(value: Any) -> Any:
    if isinstance(value, float | np.floating) and not np.isfinite(value):
        return None
    if value is pd.NA or value is pd.NaT:
        return None
    return value


def feature_collection(
    frame: gpd.GeoDataFrame, id_column: str | None = None, **extra: Any
) -> dict[str, Any]:
    """A FeatureCollection of ``frame``: properties are its columns (NaN → null), the
    feature id is ``id_column``; ``extra`` keys are added to the ``analysis`` member."""
    geoms = shapely.transform(np.asarray(frame.geometry.values), lambda xy: np.round(xy, DECIMALS))
    rendered = shapely.to_geojson(geoms)
    props = pd.DataFrame(frame.drop(columns=frame.geometry.name))
    records = props.to_dict(orient="records")
    ids = props[id_column].tolist() if id_column else [None] * len(records)
    features = [
        {
            "type": "Feature",
            **({"id": fid} if fid is not None else {}),
            "geometry": orjson.Fragment(g) if g is not None else None,
            "properties": {k: _plain(v) for k, v in rec.items()},
        }
        for fid, g, rec in zip(ids, rendered, records, strict=True)
    ]
    analysis = {**frame.attrs, **extra, "returned": len(features)}
    return {"type": "FeatureCollection", "analysis": analysis, "features": features}
