"""How every page writes a figure: money, percentages, prices at their symbol's tick size, times
in the display zone, table columns, colours and status badges."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import pandas as pd
import streamlit as st
from pandas.io.formats.style import Styler

from core.exchanges.symbols import KNOWN_FILTERS
from dashboard.runtime import get_runtime

PROFIT = "#1f9d55"
LOSS = "#e03e3e"
NEUTRAL = "#8a8f98"


# ---------------------------------------------------------------------- formatting
def usd(value: float | None, *, signed: bool = False) -> str:
    if value is None:
        return "–"
    return f"{value:+,.2f} USDT" if signed else f"{value:,.2f} USDT"


def pct(value: float | None, *, signed: bool = False) -> str:
    if value is None:
        return "–"
    return f"{value:+.2f}%" if signed else f"{value:.2f}%"


def pnl_color(value: float | None) -> str:
    if value is None or abs(value) < 1e-9:
        return NEUTRAL
    return PROFIT if value > 0 else LOSS


def colored(text: str, value: float | None) -> str:
    """Markdown text in the profit/loss colour of ``value``."""
    color = {PROFIT: "green", LOSS: "red"}.get(pnl_color(value), "gray")
    return f":{color}[{text}]"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 86_400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86_400:.1f} d"


CLOSE_REASON_LABEL = {
    "stop_loss": "stop-loss", "take_profit": "take-profit", "agent": "agent closed",
    "trailing_stop": "trailing stop",
    "ceo": "CEO closed", "drawdown_halt": "drawdown halt", "session_stop": "session stop",
    "liquidation": "liquidation", "reconcile": "reconciliation", "user": "closed by you",
}
GROSS_HELP = ("Gross PnL: what closed trades made on price, before fees and funding (the "
              "trades CSV's realized_pnl). Net PnL = gross − fees + funding.")


# ---------------------------------------------------------------------- table columns
# Tables hold numbers and let st.column_config format them, so they right-align and sort as
# numbers (a Styler may still colour them; column_config formatting takes precedence over it).
MISSING = "–"  # st.dataframe(placeholder=MISSING): how a table shows a missing figure
MONEY = "%,.2f"
SIGNED_MONEY = "%+,.2f"
LEVERAGE = "%dx"
QTY = "%,.4f"
HOURS = "%,.2f"


def number_column(label: str, fmt: str, help: str | None = None) -> Any:
    """A right-aligned, numerically sorted column; ``fmt`` is printf-style ("%,.2f", "%dx")
    or one of Streamlit's named formats ("percent", "compact", ...)."""
    return st.column_config.NumberColumn(label, format=fmt, help=help)


def price_decimals(symbol: str | None, value: float | None = None) -> int:
    """Decimals a price of ``symbol`` is quoted in: its tick size's (BTCUSDT 0.1 → 1). A symbol
    the desk has no filters for gets enough decimals for five significant figures of ``value``."""
    known = KNOWN_FILTERS.get((symbol or "").upper())
    if known is not None:
        return max(0, -int(known.tick_size.normalize().as_tuple().exponent))
    if value is None or not math.isfinite(value) or value == 0:
        return 4
    return min(8, max(2, 4 - math.floor(math.log10(abs(value)))))


def price_text(value: Any, symbol: str | None) -> str:
    """One price as the venue quotes it ("103,754.5"), "–" when there is none."""
    if value is None or not math.isfinite(float(value)):
        return MISSING
    return f"{float(value):,.{price_decimals(symbol, float(value))}f}"


def price_column(label: str, help: str | None = None) -> Any:
    """A numerically sorted price column whose text comes from ``tick_prices`` (a printf format
    here would override it and give the whole column one precision)."""
    return st.column_config.NumberColumn(label, help=help)


def tick_prices(data: pd.DataFrame | Styler, symbols: pd.Series | str,
                columns: Iterable[str]) -> Styler:
    """A Styler showing each row's prices at its own symbol's tick size; ``symbols`` is the rows'
    symbols (a Series on the frame's index) or one symbol for the whole table."""
    styler = data if isinstance(data, Styler) else data.style
    frame = styler.data
    per_row = (symbols if isinstance(symbols, pd.Series)
               else pd.Series(symbols, index=frame.index, dtype=object))
    columns = [c for c in columns if c in frame.columns]
    for symbol in per_row.dropna().unique():
        rows = per_row.index[per_row == symbol]
        styler = styler.format(lambda v, s=symbol: price_text(v, s),
                               subset=pd.IndexSlice[rows, columns])
    return styler


# ---------------------------------------------------------------------- display time zone
def zone_name() -> str:
    """The time zone the pages show times in (DISPLAY_TIMEZONE; UTC by default, as stored)."""
    return get_runtime().settings.display_timezone


def zoned(label: str) -> str:
    """A time column's header with its zone: "Time (UTC)", "Closed (Europe/Paris)"."""
    return f"{label} ({zone_name()})"


def shown_times(values: Any) -> Any:
    """UTC times (strings as the queries give them, or datetimes; a Series or one value) as
    strings in the display zone, same layout; missing stays missing."""
    zone = zone_name()
    if zone == "UTC" or values is None:
        return values
    if isinstance(values, pd.Series):
        stamps = pd.to_datetime(values, utc=True, errors="coerce")
        text = stamps.dt.tz_convert(zone).dt.strftime("%Y-%m-%d %H:%M:%S")
        return text.astype(object).where(stamps.notna(), values)
    stamp = pd.to_datetime(values, utc=True, errors="coerce")
    return values if pd.isna(stamp) else stamp.tz_convert(zone).strftime("%Y-%m-%d %H:%M:%S")


def chart_times(values: pd.Series) -> pd.Series:
    """UTC times for a chart's x axis, as wall-clock times of the display zone."""
    zone = zone_name()
    if zone == "UTC":
        return values
    return pd.to_datetime(values, utc=True).dt.tz_convert(zone).dt.tz_localize(None)


def hours(seconds: Any) -> Any:
    """Durations in seconds (a number or a pandas Series) as hours, for an "(h)" column."""
    return seconds / 3600


STATUS_COLOR = {
    "created": "gray", "running": "green", "active": "green", "paused": "orange",
    "halted": "red", "stopping": "orange", "stopped": "gray",
}


def status_label(status: str) -> str:
    """A coloured badge (Streamlit markdown) for a session or agent status."""
    return f":{STATUS_COLOR.get(status, 'gray')}-badge[{status}]"
