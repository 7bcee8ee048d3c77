"""``case_facts_refresh`` reads only the reports it was asked for.

Its ``facts`` step joined the events of the ``ids`` to all of ``reports`` (for the deadlines
they carry), and the generic plan of the SQL function hashed the whole table: every loop
event cost 20-25 ms on the demo year, so an overdue sweep of 1,000 cases took 24 s. The join
now repeats ``r.id = ANY(ids)``, so the rows come by primary key.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-05
"""

import importlib.util
from pathlib import Path

from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

_JOIN = "FROM ev JOIN reports r ON r.id = ev.report_id\n"
_BOUNDED = "FROM ev JOIN reports r ON r.id = ev.report_id AND r.id = ANY(ids)\n"


def _figures_refresh() -> str:
    """The function as migration 0008 created it (one text, not a second copy of it)."""
    path = Path(__file__).with_name("0008_figures.py")
    spec = importlib.util.spec_from_file_location("_migration_0008", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    text: str = module._REFRESH
    assert text.count(_JOIN) == 1, "migration 0008's case_facts_refresh changed"
    return text.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1)


def upgrade() -> None:
    op.execute(_figures_refresh().replace(_JOIN, _BOUNDED))


def downgrade() -> None:
    op.execute(_figures_refresh())
