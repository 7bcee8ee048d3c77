"""Shared test set-ups: a database holding the published demo, and the app on a real uvicorn."""

from __future__ import annotations

import datetime as dt
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from geo_service.app import create_app
from geo_service.boundaries.importer import import_layout
from geo_service.db.engine import make_engine
from geo_service.db.migrate import upgrade
from geo_service.settings import PROJECT_ROOT, DatabaseSettings, Settings

DEMO_LAYOUT = PROJECT_ROOT / "boundaries" / "xiuzhou_demo.geojson"
DEMO_LABEL = "demo-2025"
DEMO_FROM = dt.date(2025, 1, 1)


def load_demo(url: str) -> str:
    """Migrate the empty database ``url`` and publish the demo boundaries from 2025-01-01."""
    upgrade(url)
    engine = make_engine(url, pool_size=1)
    try:
        import_layout(
            engine, DEMO_LAYOUT, DEMO_LABEL, crs="wgs84", effective_from=DEMO_FROM, publish=True
        )
    finally:
        engine.dispose()
    return url


@contextmanager
def serve(url: str, settings: Settings | None = None, app: Any = None) -> Iterator[str]:
    """The app on ``url``'s database (or ``app`` as given), served by a real uvicorn on a free
    loopback port."""
    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings = settings or Settings(database=DatabaseSettings(url=url))
    app = app or create_app(settings)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def read_only(url: str) -> str:
    """``url`` with every transaction of its sessions read only: any INSERT, UPDATE, DELETE,
    SELECT ... FOR UPDATE or DDL through it fails, so a read path served by it provably writes
    nothing."""
    from sqlalchemy.engine import make_url

    options = "-c default_transaction_read_only=on"
    return make_url(url).update_query_dict({"options": options}).render_as_string(False)
