"""The per-case facts in memory: a columnar copy of ``case_facts``, one per database and
process, brought up to date before every read.

Why: the figures of a year at grid level aggregate ~200,000 cases with a dozen conditions and
two medians per request. PostgreSQL takes 0.1-0.3 s for that over the fact table itself, and
no pre-aggregation helps: a grid sees fewer than one case a day, so rows per (day, grid, unit,
category, channel) are about as many as cases. numpy over columns in memory takes a few
milliseconds. The database stays the source: the triggers of migration 0008 keep
``case_facts`` exact in the writer's transaction, and this copy follows it exactly.

How it follows: each read opens one REPEATABLE READ snapshot and reads the rows whose
``changed`` (the writer's transaction id) the previous read's snapshot did not see: ids at or
above its ``xmax``, or in its list of transactions then in progress. Every row version the
new snapshot sees was written by a transaction the old one saw (held already) or did not (read
now), so nothing is missed, and in a quiet moment nothing is read; rows read again unchanged
are skipped. Deleting reports bumps ``case_facts_epoch``, and a new epoch
reloads everything. Rows come by binary COPY of fixed-width fields, straight into numpy.

The loop steps (1.3 M for the demo year, for the median time per step of the case-stage layer)
are loaded the first time they are asked for, and followed the same way from then on.

A :class:`Snapshot` is immutable: readers compute on the one they got while a refresh builds
the next.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
from sqlalchemy import Connection, Engine

from geo_service.boundaries.codes import CODE_LENGTH
from geo_service.db.schema import CHANNELS, REPORT_STATUSES, URGENCIES
from geo_service.reports.taxonomy import CATEGORIES
from geo_service.stats import catalogue
from geo_service.store import stats as store

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
Columns = dict[str, npt.NDArray[np.generic]]

CATEGORY_CODES: Final = tuple(c.code for c in CATEGORIES)
VOCABULARIES: Final[Mapping[str, Sequence[str]]] = {
    "categories": CATEGORY_CODES,
    "channels": CHANNELS,
    "statuses": REPORT_STATUSES,
    "urgencies": URGENCIES,
}
"""What the vocabulary fields count positions in (1-based in the rows, 0: none; here
0-based, -1: none)."""
TIME_FIELDS: Final = tuple(n for n, t, _ in store.FACT_FIELDS if t == "f8")
_COPY_HEADER: Final = 19  # signature, flags, header extension length
_COPY_TRAILER: Final = 2


def read_binary(data: bytes, fields: Sequence[tuple[str, str, str]]) -> Columns:
    """The columns of a binary COPY whose fields are all fixed-width and never NULL."""
    layout: list[tuple[str, str]] = [("_n", ">i2")]
    for name, kind, _ in fields:
        layout += [(f"_len_{name}", ">i4"), (name, f">{kind}")]
    dtype = np.dtype(layout)
    count = max(0, (len(data) - _COPY_HEADER - _COPY_TRAILER) // dtype.itemsize)
    rec = (
        np.frombuffer(data, dtype=dtype, offset=_COPY_HEADER, count=count)
        if count
        else (np.zeros(0, dtype=dtype))
    )
    return {name: rec[name].astype(kind) for name, kind, _ in fields}


def _derive(cols: Columns) -> Columns:
    """Add the deadlines that are not stored: verification (the accept limit from the
    report) and check (the check limit from the handling's completion), in working time."""
    n = len(cols["report_id"])
    accept_due = np.full(n, np.nan)
    check_due = np.full(n, np.nan)
    cat = cols["category"].astype(np.int64)
    known = cat >= 0
    if known.any():
        names = np.array(CATEGORY_CODES, dtype=object)[cat[known]]
        urg_pos = cols["urgency"].astype(np.int64)[known]
        names_u = np.array(URGENCIES, dtype=object)[np.maximum(urg_pos, 0)]
        urgency = np.where(urg_pos >= 0, names_u, np.array(None, dtype=object))
        accept_due[known] = catalogue.deadlines(names, "accept", cols["reported"][known], urgency)
        check_due[known] = catalogue.deadlines(names, "check", cols["handled"][known], urgency)
    return {**cols, "accept_due": accept_due, "check_due": check_due}


def _merge(held: Columns, fresh: Columns, key: str = "report_id") -> Columns:
    """``held`` with the rows of ``fresh``'s report ids replaced (or added), sorted by id."""
    if len(fresh[key]) == 0:
        return held
    keep = ~np.isin(held[key], fresh[key])
    out = {k: np.concatenate([held[k][keep], fresh[k]]) for k in held}
    ids = out[key]
    if len(ids) > 1 and (np.diff(ids) < 0).any():
        order = np.argsort(ids, kind="stable")
        out = {k: v[order] for k, v in out.items()}
    return out


def _drop(held: Columns, ids: IntArray, key: str = "report_id") -> Columns:
    keep = ~np.isin(held[key], ids)
    return {k: v[keep] for k, v in held.items()}


@dataclass
class Snapshot:
    """The facts of every case at one moment, as arrays aligned by row (sorted by report
    id): times are epoch seconds (NaN: never), vocabularies are positions (-1: none); and
    the overdue stretches (``spell_pos`` the row, ``spell_lo``/``spell_hi`` the times, the
    start included or not)."""

    cols: Columns
    spells: Columns
    _levels: dict[str, tuple[npt.NDArray[np.int32], npt.NDArray[np.object_]]] = field(
        default_factory=dict
    )
    _durations: dict[str, tuple[IntArray, FloatArray]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.report_id: IntArray = self.cols["report_id"].astype(np.int64)
        self.n = len(self.report_id)
        self.spell_pos = self.positions(self.spells["report_id"].astype(np.int64))
        self.spell_lo: FloatArray = self.spells["lo"].astype(np.float64)
        self.spell_hi: FloatArray = self.spells["hi"].astype(np.float64)
        self.spell_lo_inc = self.spells["lo_inc"].astype(bool)

    def durations(self, name: str) -> tuple[IntArray, FloatArray]:
        """``minutes_to_dispatch`` (report → first dispatch) or ``hours_to_close`` (report →
        evaluation) per row, and the rows in ascending order of it (NaN last); computed
        once per snapshot, so grouped medians need no sort of the values."""
        hit = self._durations.get(name)
        if hit is None:
            end, unit = {"minutes_to_dispatch": ("dispatched", 60.0),
                         "hours_to_close": ("closed", 3600.0)}[name]  # fmt: skip
            values = (self.time(end) - self.time("reported")) / unit
            hit = self._durations[name] = (np.argsort(values, kind="stable"), values)
        return hit

    def overdue_at(self, as_of: float) -> npt.NDArray[np.bool_]:
        """Per row: open past its handling deadline at ``as_of`` (epoch seconds)."""
        lo, hi = self.spell_lo, self.spell_hi
        active = ((lo < as_of) | (self.spell_lo_inc & (lo == as_of))) & (as_of < hi)
        out = np.zeros(self.n, dtype=bool)
        pos = self.spell_pos[active]
        out[pos[pos >= 0]] = True
        return out

    def __getitem__(self, name: str) -> npt.NDArray[np.generic]:
        return self.cols[name]

    def time(self, name: str) -> FloatArray:
        """A time column (epoch seconds, NaN: never)."""
        return self.cols[name].astype(np.float64, copy=False)

    def positions(self, ids: IntArray) -> IntArray:
        """The rows of some report ids (-1 for ids not held)."""
        if self.n == 0:
            return np.full(len(ids), -1, dtype=np.int64)
        pos = np.searchsorted(self.report_id, ids)
        ok = (pos < self.n) & (self.report_id[np.minimum(pos, self.n - 1)] == ids)
        return np.where(ok, pos, -1).astype(np.int64)

    def level_keys(self, level: str) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.object_]]:
        """Per row, the position of its area code at ``level`` in the returned (sorted)
        codes; -1 when it has none (outside coverage below the district, or not numeric)."""
        hit = self._levels.get(level)
        if hit is not None:
            return hit
        length = CODE_LENGTH[level]  # type: ignore[index]
        place = self.cols["place"].astype(np.int64)
        digits = self.cols["place_len"].astype(np.int64)
        has = (place >= 0) & (digits >= length)
        cut = np.where(has, place // (10 ** np.clip(digits - length, 0, 18)), -1)
        values, key = np.unique(cut, return_inverse=True)
        first = 1 if len(values) and values[0] < 0 else 0
        per_row = (key.astype(np.int32) - first) if first else key.astype(np.int32)
        codes = np.array([str(v) for v in values[first:]], dtype=object)
        out = (per_row, codes)
        self._levels[level] = out
        return out


@dataclass
class Steps:
    """The loop steps of every case: report id, action and the seconds since the case's
    event before it; with the actions numbered (``action_key`` into ``actions``), the steps
    in ascending order of seconds (``order``, for grouped medians without a sort) and each
    step's row in a snapshot (:meth:`positions`)."""

    cols: Columns
    _sorted: tuple[int, IntArray, IntArray, FloatArray] | None = None

    def __post_init__(self) -> None:
        key, actions = pd.factorize(self.cols["action"])
        self.action_key: IntArray = key.astype(np.int64)
        self.actions = np.asarray(actions, dtype=object)
        self.seconds: FloatArray = self.cols["seconds"].astype(np.float64)
        self.order: IntArray = np.argsort(self.seconds, kind="stable")

    def by_seconds(self, snap: Snapshot) -> tuple[IntArray, IntArray, FloatArray]:
        """The steps in ascending order of seconds: their case's row in ``snap`` (-1: not
        there), action and seconds (kept until the next snapshot)."""
        if self._sorted is None or self._sorted[0] != id(snap):
            ids = self.cols["report_id"].astype(np.int64)[self.order]
            self._sorted = (
                id(snap),
                snap.positions(ids),
                self.action_key[self.order],
                self.seconds[self.order],
            )
        return self._sorted[1], self._sorted[2], self._sorted[3]


def _empty_facts() -> Columns:
    return _derive(read_binary(b"", store.FACT_FIELDS))


class FactCache:
    """The facts of one database, kept up to date by :meth:`snapshot` and :meth:`steps`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._current = Snapshot(_empty_facts(), read_binary(b"", store.SPELL_FIELDS))
        self._since = store.Seen.nothing()  # what the last read's snapshot saw
        self._epoch: int | None = None
        self._steps: Steps | None = None
        self._steps_since = store.Seen.nothing()
        self._steps_epoch: int | None = None

    @staticmethod
    def _read(engine: Engine) -> Connection:
        return engine.connect().execution_options(
            isolation_level="REPEATABLE READ", postgresql_readonly=True
        )

    def snapshot(self, engine: Engine) -> Snapshot:
        """The facts as of now (one snapshot of the database), refreshed if anything changed."""
        with self._lock, self._read(engine) as conn, conn.begin():
            seen, epoch = store.read_state(conn)
            if epoch != self._epoch:
                self._since = store.Seen.nothing()
                self._current = Snapshot(_empty_facts(), read_binary(b"", store.SPELL_FIELDS))
            since = self._since
            rows = read_binary(store.copy_facts(conn, since, VOCABULARIES), store.FACT_FIELDS)
            rows = {k: v - 1 if k in ("category", "channel", "status", "urgency") else v
                    for k, v in rows.items()}  # fmt: skip
            fresh = self._changed(rows)
            if len(fresh["report_id"]):
                spells = read_binary(store.copy_spells(conn, since), store.SPELL_FIELDS)
                ids = fresh["report_id"].astype(np.int64)
                spells = {k: v[np.isin(spells["report_id"], ids)] for k, v in spells.items()}
                cur = self._current
                self._current = Snapshot(
                    _merge(cur.cols, _derive(fresh)),
                    {k: np.concatenate([v, spells[k]])
                     for k, v in _drop(cur.spells, ids).items()},
                )  # fmt: skip
            self._since, self._epoch = seen, epoch
            return self._current

    def _changed(self, rows: Columns) -> Columns:
        """The rows read whose ``changed`` differs from what is held (or are new)."""
        ids = rows["report_id"]
        if len(ids) == 0:
            return rows
        cur = self._current
        pos = cur.positions(ids.astype(np.int64))
        held = np.where(pos >= 0, cur["changed"][np.maximum(pos, 0)] if cur.n else -1, -1)
        fresh = (pos < 0) | (held != rows["changed"])
        return {k: v[fresh] for k, v in rows.items()}

    def steps(self, engine: Engine) -> Steps:
        """Every case's loop steps as of now (loaded on first use, then followed)."""
        with self._lock, self._read(engine) as conn, conn.begin():
            seen, epoch = store.read_state(conn)
            if epoch != self._steps_epoch or self._steps is None:
                self._steps, self._steps_since = None, store.Seen.nothing()
            fresh = _read_steps(store.copy_steps(conn, self._steps_since))
            if self._steps is None:
                self._steps = Steps(fresh)
            elif len(fresh["report_id"]):
                # a changed case's steps are all read again: replace them
                changed = np.unique(fresh["report_id"]).astype(np.int64)
                kept = _drop(self._steps.cols, changed)
                self._steps = Steps({k: np.concatenate([v, fresh[k]]) for k, v in kept.items()})
            self._steps_since, self._steps_epoch = seen, epoch
            return self._steps


def _read_steps(data: bytes) -> Columns:
    if not data:
        return {
            "report_id": np.zeros(0, dtype=np.int64),
            "action": np.zeros(0, dtype=object),
            "seconds": np.zeros(0, dtype=np.float64),
        }
    table = pacsv.read_csv(
        io.BytesIO(data),
        read_options=pacsv.ReadOptions(column_names=["report_id", "action", "seconds"]),
        convert_options=pacsv.ConvertOptions(
            column_types={"report_id": pa.int64(), "action": pa.string(), "seconds": pa.float64()}
        ),
    )
    return {
        "report_id": table["report_id"].to_numpy(),
        "action": table["action"].to_numpy(zero_copy_only=False).astype(object),
        "seconds": table["seconds"].to_numpy(),
    }


_caches: dict[str, FactCache] = {}
_caches_lock = threading.Lock()


def cache_of(engine: Engine) -> FactCache:
    """The fact cache of ``engine``'s database in this process."""
    key = engine.url.render_as_string(hide_password=True)
    with _caches_lock:
        cache = _caches.get(key)
        if cache is None:
            cache = _caches[key] = FactCache()
        return cache


def facts(engine: Engine) -> Snapshot:
    """The current facts of ``engine``'s database."""
    return cache_of(engine).snapshot(engine)
