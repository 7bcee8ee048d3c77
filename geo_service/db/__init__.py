"""Database access: the private PostGIS cluster, engines, ORM models and alembic migrations."""
