"""Boundary layouts: read files, validate, store versions in PostGIS, publish, history."""
