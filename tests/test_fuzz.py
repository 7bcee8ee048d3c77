"""Schemathesis over the whole API, small: the fuzz of ``make fuzz`` (``tests/fuzz.py``) with a
few generated cases per operation (the examples and fuzzing phases; ``make fuzz`` adds the
coverage phase's boundary cases, many more of each, and a run per caller), the public and
every role taking turns request by request, against a real uvicorn on a demo database of its
own: no server error, no answer the OpenAPI document does not declare, no other blocking
finding of any check."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fuzz import CALLERS, Plan, run

pytestmark = pytest.mark.slow


def test_fuzz_finds_no_server_error_and_no_schema_violation(tmp_path: Path) -> None:
    plan = Plan(max_examples=8, phases="examples,fuzzing", rotate=True)
    figures = run(plan, 200, tmp_path, verbose=False)
    assert list(figures.per_caller) == ["+".join(CALLERS)]
    assert figures.cases >= 300, figures.table()
    assert figures.server_errors == 0, figures.table()
    assert figures.schema_violations == 0, figures.table()
    assert figures.blocking == 0, figures.table()
    assert not figures.errors, figures.table()
