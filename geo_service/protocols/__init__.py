"""Standard protocols over our data: Open311 GeoReport v2 and OGC API - Features."""
