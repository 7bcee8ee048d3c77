"""Per-connection session settings: the ``statement_timeout`` a caller's role runs under."""

from __future__ import annotations

from typing import Any, Final

SET_TIMEOUT: Final = "SELECT set_config('statement_timeout', %s, false)"
RESET_TIMEOUT: Final = "RESET statement_timeout"


def set_statement_timeout(dbapi_connection: Any, ms: int | None) -> None:
    """Set the session's ``statement_timeout`` to ``ms`` milliseconds (0: none; None: the
    server's default) on a raw driver connection, committed so no rollback undoes it."""
    with dbapi_connection.cursor() as cur:
        if ms is None:
            cur.execute(RESET_TIMEOUT)
        else:
            cur.execute(SET_TIMEOUT, (f"{int(ms)}ms",))
    dbapi_connection.commit()
