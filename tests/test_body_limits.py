"""Request bodies are held to one limit per route family (``GEO_BODY_LIMIT_*``): a declared
Content-Length over it is refused before anything is read, a body sent without one is cut at
the limit, 413 either way, in the route's own error format; families are independent."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Iterator

import orjson
import pytest
from fastapi.testclient import TestClient

from geo_service.api.limits import BodyMeter
from geo_service.app import create_app
from geo_service.errors import TooLarge
from geo_service.settings import BodyLimitSettings, DatabaseSettings, Settings
from tests.conftest import auth

LIMITS = BodyLimitSettings(locate=2_000, intake=1_500, bulk=20_000, upload=50_000, other=500)
JSON = {"content-type": "application/json"}


@pytest.fixture(scope="module")
def small(database_url: str) -> Iterator[TestClient]:
    """The app with small body limits (see :data:`LIMITS`)."""
    settings = Settings(database=DatabaseSettings(url=database_url), body_limits=LIMITS)
    with TestClient(create_app(settings)) as c:
        yield c


def _report(**kw: object) -> dict[str, object]:
    body: dict[str, object] = {
        "channel": "grid_app", "category": "sanitation", "description": "垃圾堆放",
        "reported_at": dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat(),
        "location": {"lon": 120.75, "lat": 30.75},
    }  # fmt: skip
    body.update(kw)
    return body


def _padded(doc: object, size: int) -> bytes:
    """``doc`` as JSON, padded with insignificant white space to ``size`` bytes."""
    raw = orjson.dumps(doc)
    assert len(raw) < size
    return raw + b" " * (size - len(raw))


def _chunks(body: bytes, size: int = 100) -> Iterator[bytes]:
    """``body`` streamed in pieces: the client sends no Content-Length."""
    for i in range(0, len(body), size):
        yield body[i : i + size]


def test_each_family_has_its_own_limit(small: TestClient, keys: dict[str, str]) -> None:
    one = _padded(_report(), 1_400)  # under the intake limit
    assert small.post("/v1/reports", content=one, headers={**auth(keys["operator"]), **JSON}
                      ).status_code == 201
    over = _padded(_report(), 1_600)  # over intake (1,500), well under bulk (20,000)
    r = small.post("/v1/reports", content=over, headers={**auth(keys["operator"]), **JSON})
    assert r.status_code == 413, r.text
    assert r.json()["message"] == "report of 1600 bytes is over the limit of 1500 bytes"
    bulk = _padded([_report(external_id="limits-bulk-1")], 1_600)
    r = small.post("/v1/reports:bulk", content=bulk, headers={**auth(keys["operator"]), **JSON})
    assert r.status_code == 200 and r.json()["stored"] == 1, r.text


def test_declared_length_over_the_limit_is_refused_before_reading(small: TestClient) -> None:
    body = _padded({"points": [[120.75, 30.75]]}, 2_001)
    r = small.post("/v1/locate", content=body, headers=JSON)
    assert r.status_code == 413
    assert r.json() == {
        "error": "too_large",
        "message": "locate request of 2001 bytes is over the limit of 2000 bytes",
        "details": {"limit_bytes": 2000},
    }
    assert small.post("/v1/locate", content=body[:2_000], headers=JSON).status_code == 200


def test_body_without_length_is_cut_at_the_limit(small: TestClient) -> None:
    body = _padded({"points": [[120.75, 30.75]]}, 5_000)
    r = small.post("/v1/locate", content=_chunks(body), headers=JSON)
    assert r.status_code == 413
    assert r.json()["message"] == "locate request is over the limit of 2000 bytes"


@pytest.mark.parametrize("streamed", [False, True])
def test_bodies_the_framework_parses_get_413_not_400(
    small: TestClient, keys: dict[str, str], streamed: bool
) -> None:
    """Routes with a pydantic body (here a loop step) are held to the ``other`` limit."""
    body = _padded({"to": "accepted", "note": "ok"}, 600)
    content = _chunks(body) if streamed else body
    headers = {**auth(keys["operator"]), **JSON}
    r = small.post("/v1/reports/1/transitions", content=content, headers=headers)
    assert r.status_code == 413, r.text
    assert r.json()["error"] == "too_large"
    assert "over the limit of 500 bytes" in r.json()["message"]
    small_step = small.post("/v1/reports/999999999/transitions", content=body[:400],
                            headers=headers)
    assert small_step.status_code == 404, small_step.text  # under the limit: answered as usual


def test_open311_answers_413_in_its_own_format(small: TestClient, keys: dict[str, str]) -> None:
    form = {"api_key": keys["reporter"], "service_code": "sanitation", "lat": "30.75",
            "long": "120.75", "description": "x" * 2_000}  # fmt: skip
    r = small.post("/open311/v2/requests.json", data=form)
    assert r.status_code == 413
    [error] = r.json()
    assert error["code"] == 413 and "over the limit of 1500 bytes" in error["description"]


def test_the_caller_is_checked_before_the_body(small: TestClient) -> None:
    over = _padded(_report(), 1_600)
    assert small.post("/v1/reports", content=over, headers=JSON).status_code == 401


def _meter(chunks: int, size: int, declared: int | None) -> tuple[BodyMeter, list[int]]:
    """A meter on a body of ``chunks`` pieces of ``size`` bytes; the list counts the reads."""
    reads: list[int] = []

    async def receive() -> dict[str, object]:
        reads.append(1)
        return {"type": "http.request", "body": b"x" * size, "more_body": len(reads) < chunks}

    return BodyMeter(receive, declared, LIMITS), reads


def test_a_streamed_body_is_not_read_past_the_limit() -> None:
    meter, reads = _meter(chunks=50, size=300, declared=None)
    meter.use("locate")

    async def read_all() -> None:
        while (await meter.receive()).get("more_body"):
            pass

    with pytest.raises(TooLarge, match="locate request is over the limit of 2000 bytes"):
        asyncio.run(read_all())
    assert len(reads) == 7  # 6 x 300 = 1,800 fit; the 7th piece passes 2,000: nothing after


def test_a_declared_length_over_the_limit_reads_nothing() -> None:
    meter, reads = _meter(chunks=1, size=10, declared=2_001)
    with pytest.raises(TooLarge, match="locate request of 2001 bytes"):
        meter.use("locate")
    with pytest.raises(TooLarge):
        asyncio.run(meter.receive())
    assert reads == []
