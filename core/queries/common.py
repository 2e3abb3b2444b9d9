"""Helpers and constants the read-model modules share.

The CEO log and the trade history are filtered, paged and downloaded the same way, so the pieces
they have in common live here once: epoch-millisecond → text formatting (one value, or a whole
column vectorised), the engine's JSON marks, the "All"/empty selector meaning "no filter", the
agent-name subquery that keeps filters on the (session, agent_id) indexes, the chunked CSV
writer (``CSV_CHUNK`` rows per fetch), and the rounding that keeps binary float noise out of the
CSVs (a fill average written as 64123.100000000006 instead of 64123.1). Tests that want several
chunks patch ``core.queries.common.CSV_CHUNK``: the name re-exported by ``core.queries`` is only
a copy.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Engine, select

from core.models import ms_to_dt
from core.store.tables import AgentRow

CSV_CHUNK = 20_000
PRICE_DIGITS = 12  # significant digits of a price or quantity: a double's noise sits past ~15
MONEY_DECIMALS = 8  # USDT amounts the store keeps unrounded (the CEO log's margins)
_ANY = (None, "", "All", "all")


def _iso(ms: int | None) -> str | None:
    return ms_to_dt(ms).strftime("%Y-%m-%d %H:%M:%S") if ms is not None else None


def _marks(raw: str | None) -> dict[str, float]:
    return json.loads(raw) if raw else {}


def _chosen(value: Any) -> Any:
    """A selector's value, or None when it means "no filter" ("All", empty)."""
    return None if value in _ANY else value


def _agent_ids(session_id: int, name: str) -> Any:
    """Agent name → ids as a subquery, so filters use the (session, agent_id) indexes instead
    of joining every row to ``agents``."""
    return select(AgentRow.id).where(AgentRow.session_id == session_id, AgentRow.name == name)


TIME_COLUMNS = frozenset({"ts", "at", "opened_at", "closed_at", "created_at", "updated_at"})


def utc_stamped(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` for a CSV: its engine-time columns say they are UTC ("2025-09-02 14:00:00+00:00",
    ISO 8601, read back as UTC by spreadsheets, pandas and ``datetime.fromisoformat``)."""
    times = [c for c in frame.columns if c in TIME_COLUMNS]
    if not times:
        return frame
    out = frame.copy()
    for column in times:
        known = out[column].notna()
        out[column] = out[column].astype(object)
        out.loc[known, column] = out.loc[known, column].astype(str) + "+00:00"
    return out


def _stream_csv(engine: Engine, stmt: Any, to_frame: Callable[[Sequence[Any]], pd.DataFrame],
                columns: list[str]) -> str:
    """CSV of every row of ``stmt``, fetched and formatted ``CSV_CHUNK`` rows at a time; times
    in UTC and saying so (``utc_stamped``)."""
    out = io.StringIO()
    header = True
    with engine.connect() as conn:
        result = conn.execution_options(stream_results=True, yield_per=CSV_CHUNK).execute(stmt)
        for part in result.partitions(CSV_CHUNK):
            utc_stamped(to_frame(part)).to_csv(out, index=False, header=header)
            header = False
    if header:
        pd.DataFrame(columns=columns).to_csv(out, index=False)
    return out.getvalue()


def _iso_column(ms: pd.Series) -> pd.Series:
    """``_iso`` for a whole column of epoch milliseconds (None stays None), vectorised."""
    out = pd.Series([None] * len(ms), index=ms.index, dtype=object)
    known = ms.notna()
    if known.any():
        stamps = ms[known].astype("int64").to_numpy().astype("datetime64[ms]").astype("datetime64[s]")
        out[known] = np.char.replace(np.datetime_as_string(stamps, unit="s"), "T", " ")
    return out


def _significant(values: pd.Series, digits: int = PRICE_DIGITS) -> pd.Series:
    """``values`` rounded to ``digits`` significant digits (None/NaN stay NaN), so a price prints
    as the digits it has whatever its size (64123.1, 0.000012345); vectorised, one ``round`` per
    order of magnitude present."""
    x = values.to_numpy(dtype=float, na_value=np.nan)
    out = x.copy()
    known = np.isfinite(x) & (x != 0)
    decimals = np.zeros(len(x), dtype=int)
    decimals[known] = digits - 1 - np.floor(np.log10(np.abs(x[known]))).astype(int)
    for d in np.unique(decimals[known]):
        pick = known & (decimals == d)
        out[pick] = np.round(x[pick], d)
    return pd.Series(out, index=values.index, name=values.name)


def _records(rows: Sequence[Any], columns: list[str]) -> pd.DataFrame:
    # plain tuples: pandas probes every Row object for namedtuple fields otherwise (slow)
    return pd.DataFrame.from_records([tuple(r) for r in rows], columns=columns)
