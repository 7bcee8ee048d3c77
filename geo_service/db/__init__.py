"""Database access: the private PostGIS cluster, engines, the schema (``schema``: every table and
vocabulary, declared once) and the alembic migrations that build it."""
