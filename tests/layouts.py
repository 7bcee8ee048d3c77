"""A small hand-made layout (district → towns → communities → grids of unit squares) that tests
break on purpose."""

from __future__ import annotations

import geopandas as gpd
from shapely.geometry import box

# a 0.04° x 0.02° district near Jiaxing, split 2 towns x 2 communities x 4 grids
X0, Y0 = 120.70, 30.74
STEP = 0.005


def small_layout() -> gpd.GeoDataFrame:
    """16 grids of 0.005° squares; every code follows the national pattern."""
    rows = [
        {
            "code": "330411",
            "name": "测试区",
            "level": "district",
            "parent_code": "",
            "geometry": box(X0, Y0, X0 + 8 * STEP, Y0 + 2 * STEP),
        }
    ]
    for t in range(2):
        tcode = f"330411{100 + t:03d}"
        rows.append(
            {
                "code": tcode,
                "name": f"镇{t + 1}",
                "level": "town",
                "parent_code": "330411",
                "geometry": box(X0 + 4 * t * STEP, Y0, X0 + 4 * (t + 1) * STEP, Y0 + 2 * STEP),
            }
        )
        for c in range(2):
            ccode = f"{tcode}{c + 1:03d}"
            cx = X0 + (4 * t + 2 * c) * STEP
            rows.append(
                {
                    "code": ccode,
                    "name": f"社区{t + 1}-{c + 1}",
                    "level": "community",
                    "parent_code": tcode,
                    "geometry": box(cx, Y0, cx + 2 * STEP, Y0 + 2 * STEP),
                }
            )
            seq = 1
            for row in (1, 0):  # north first
                for col in range(2):
                    rows.append(
                        {
                            "code": f"{ccode}{seq:03d}",
                            "name": f"第{seq}网格",
                            "level": "grid",
                            "parent_code": ccode,
                            "households": 300 + seq,
                            "geometry": box(
                                cx + col * STEP,
                                Y0 + row * STEP,
                                cx + (col + 1) * STEP,
                                Y0 + (row + 1) * STEP,
                            ),
                        }
                    )
                    seq += 1
    return gpd.GeoDataFrame(rows, geometry="geometry", crs="EPSG:4326")
