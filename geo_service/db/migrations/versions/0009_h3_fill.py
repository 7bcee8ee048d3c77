"""Every stored report gets its H3 cell, so reading never has to write one.

Until now the analytics layers, map pages and tile misses filled ``reports.h3_11`` for reports
stored without it before reading: a write on every read path. Intake and history import store
the cell with the report, and the reads no longer fill; this fills, once, the cells any other
writer left NULL (computed here with the h3 package, in batches by id). The roll-up triggers of
0004 count each filled report as the UPDATE commits. No schema change.

Revision ID: 0009
Revises: 0007
Create Date: 2026-12-08
"""

import h3
import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0007"
branch_labels = None
depends_on = None

BATCH = 50_000
STORED_RES = 11

_MISSING = sa.text(
    "SELECT id, ST_Y(geom) AS lat, ST_X(geom) AS lon FROM reports "
    "WHERE h3_11 IS NULL AND id > :last ORDER BY id LIMIT :n"
)
_SET = sa.text(
    "UPDATE reports r SET h3_11 = u.c FROM unnest(CAST(:ids AS bigint[]), "
    "CAST(:cells AS bigint[])) AS u(id, c) WHERE r.id = u.id AND r.h3_11 IS NULL"
)


def upgrade() -> None:
    conn = op.get_bind()
    last = -(2**63)  # ids are bigints; any value is below the first
    while True:
        rows = conn.execute(_MISSING, {"last": last, "n": BATCH}).all()
        if not rows:
            return
        cells = [h3.str_to_int(h3.latlng_to_cell(r.lat, r.lon, STORED_RES)) for r in rows]
        conn.execute(_SET, {"ids": [r.id for r in rows], "cells": cells})
        last = rows[-1].id


def downgrade() -> None:
    """Nothing to undo: the cells filled are the ones intake would have stored."""
