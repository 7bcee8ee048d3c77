"""The health probe's question to the database: is PostGIS there, and which version is it."""

from __future__ import annotations

from sqlalchemy import Connection, func, select


def postgis_version(conn: Connection) -> str:
    """PostGIS's library version: answering it needs a live connection and the extension."""
    return str(conn.execute(select(func.postgis_lib_version())).scalar_one())
