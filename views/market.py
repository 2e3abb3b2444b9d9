"""Market overview for the session's symbols: price, 24 h change, range, volume and funding, and a
candlestick chart with the desk's entries and exits drawn on it.

A thin page: ``core.queries.market_overview`` / ``market_candles`` read the session's market feed
at the session's engine time (in replay that is the recorded candles up to the engine clock), and
the desk's trades from the store.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from core import queries
from core.errors import DeskError
from core.ui import (
    LOSS,
    MISSING,
    PROFIT,
    get_runtime,
    number_column,
    pnl_color,
    price_format,
    refresh_every,
    session_or_stop,
)

runtime = get_runtime()
db = runtime.db
settings = runtime.settings

INTERVALS = ("15m", "1h", "4h")
CANDLES = 300
# entries in colours the candles do not use, so they stand out on green and red bars
LONG_COLOR = "#3b82f6"
SHORT_COLOR = "#f59e0b"
OUTLINE = "#f5f5f5"


def price(value: float) -> str:
    return f"{value:,.2f}" if abs(value) >= 100 else f"{value:,.4f}"


def _change_style(value: Any) -> str:
    return f"color: {pnl_color(None if value is None or pd.isna(value) else float(value))}"


def overview_table(frame: pd.DataFrame) -> Any:
    """The symbols' figures as numbers, the 24 h change coloured (formats: ``overview_columns``)."""
    shown = pd.DataFrame({
        "Symbol": frame["symbol"], "Price (USDT)": frame["price"],
        "24h change": frame["change_24h_pct"], "24h high": frame["high_24h"],
        "24h low": frame["low_24h"], "24h volume": frame["volume_24h"],
        "Funding rate": pd.to_numeric(frame["funding_rate"]) * 100,
    })
    return shown.style.map(_change_style, subset=["24h change"])


def overview_columns(frame: pd.DataFrame) -> dict[str, Any]:
    prices = price_format(frame["price"], frame["high_24h"], frame["low_24h"])
    return {
        "Price (USDT)": number_column("Price (USDT)", prices),
        "24h change": number_column("24h change", "%+.2f%%"),
        "24h high": number_column("24h high", prices), "24h low": number_column("24h low", prices),
        "24h volume": number_column("24h volume", "%,.0f", help="In the symbol's base asset"),
        "Funding rate": number_column("Funding rate", "%+.4f%%",
                                      help=f"Per funding interval; {MISSING} where the market "
                                           "data has none (replayed candles)"),
    }


def _markers(fig: go.Figure, marks: pd.DataFrame) -> None:
    groups = [
        ("Long entry", (marks["kind"] == "entry") & (marks["side"] == "LONG"), "triangle-up", LONG_COLOR),
        ("Short entry", (marks["kind"] == "entry") & (marks["side"] == "SHORT"), "triangle-down", SHORT_COLOR),
    ]
    for name, mask, symbol, color in groups:
        part = marks[mask]
        if part.empty:
            continue
        fig.add_trace(go.Scatter(
            x=part["time"], y=part["price"], mode="markers", name=name,
            marker={"symbol": symbol, "size": 14, "color": color, "line": {"width": 1.5, "color": OUTLINE}},
            customdata=list(zip(part["agent"], part["side"], part["price"].map(price), strict=True)),
            hovertemplate="<b>%{customdata[0]}</b><br>%{customdata[1]} entry at %{customdata[2]} USDT"
                          "<br>%{x|%Y-%m-%d %H:%M} UTC<extra></extra>",
        ))
    exits = marks[marks["kind"] == "exit"]
    if not exits.empty:
        pnl = exits["realized_pnl"].astype(float)
        fig.add_trace(go.Scatter(
            x=exits["time"], y=exits["price"], mode="markers", name="Exit (green win, red loss)",
            marker={"symbol": "x", "size": 13, "color": [pnl_color(v) for v in pnl],
                    "line": {"width": 1.5, "color": OUTLINE}},
            customdata=list(zip(exits["agent"], exits["side"], exits["price"].map(price),
                                [f"{v:+,.2f}" for v in pnl], strict=True)),
            hovertemplate="<b>%{customdata[0]}</b><br>%{customdata[1]} exit at %{customdata[2]} USDT"
                          "<br>PnL %{customdata[3]} USDT (net of fees and funding)"
                          "<br>%{x|%Y-%m-%d %H:%M} UTC<extra></extra>",
        ))


def chart(candles: pd.DataFrame, marks: pd.DataFrame, symbol: str, interval: str) -> go.Figure:
    fig = go.Figure(go.Candlestick(
        x=candles["time"], open=candles["open"], high=candles["high"], low=candles["low"],
        close=candles["close"], name=f"{symbol} {interval}", opacity=0.8,
        increasing={"line": {"color": PROFIT}, "fillcolor": PROFIT},
        decreasing={"line": {"color": LOSS}, "fillcolor": LOSS},
    ))
    if not marks.empty:
        _markers(fig, marks)
    fig.update_layout(
        height=560, margin={"l": 10, "r": 10, "t": 30, "b": 10}, xaxis_rangeslider_visible=False,
        yaxis_title="USDT", hovermode="closest",
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.01, "x": 0},
    )
    fig.update_xaxes(title_text="engine time (UTC)", gridcolor="rgba(128,128,128,0.15)")
    fig.update_yaxes(gridcolor="rgba(128,128,128,0.15)", tickformat=",")
    return fig


@st.fragment(run_every=refresh_every())
def market(session_id: int) -> None:
    try:
        frame = queries.market_overview(settings, db, session_id)
    except DeskError as exc:
        st.error(f"Market data unavailable: {exc}")
        return
    st.caption(f"Market time **{frame['time'].iloc[0]} UTC** — the session's engine time. This "
               "paper session replays recorded real candles, so prices move as the engine ticks, "
               "not with the wall clock.")
    for col, row in zip(st.columns(len(frame)), frame.itertuples(), strict=True):
        change = None if pd.isna(row.change_24h_pct) else float(row.change_24h_pct)
        col.metric(row.symbol, f"{price(row.price)} USDT",
                   None if change is None else f"{change:+.2f}% 24h", border=True,
                   help=f"24h range {price(row.low_24h)} – {price(row.high_24h)} USDT")
    st.dataframe(overview_table(frame), hide_index=True, width="stretch",
                 column_config=overview_columns(frame), placeholder=MISSING)
    if frame["funding_rate"].isna().all():
        st.caption(f"Funding: recorded candles carry no funding history, so it shows {MISSING}. "
                   f"The paper venue charges open positions a flat "
                   f"{settings.paper_funding_rate * 100:.4f}% every "
                   f"{settings.paper_funding_interval_hours} h (longs pay when positive).")

    left, right = st.columns([3, 2])
    symbols = frame["symbol"].tolist()
    symbol = left.radio("Symbol", symbols, horizontal=True, key="mkt_symbol")
    interval = right.radio("Interval", INTERVALS, index=1, horizontal=True, key="mkt_interval")
    try:
        candles, marks = queries.market_candles(settings, db, session_id, symbol, interval, CANDLES)
    except DeskError as exc:
        st.error(f"Candles unavailable: {exc}")
        return
    if candles.empty:
        st.info("No closed candles yet at this interval; they appear as the engine ticks.")
        return
    st.plotly_chart(chart(candles, marks, symbol, interval), width="stretch",
                    config={"displaylogo": False}, key="mkt_chart")
    entries = int((marks["kind"] == "entry").sum()) if not marks.empty else 0
    exits = int((marks["kind"] == "exit").sum()) if not marks.empty else 0
    st.caption(f"The last {len(candles)} {interval} candles of {symbol} · the desk's {entries} "
               f"entries (▲ long, ▼ short) and {exits} exits (✕) in this window; hover a marker "
               "for the agent and its PnL." if entries or exits else
               f"The last {len(candles)} {interval} candles of {symbol} · no desk trades on "
               f"{symbol} in this window yet.")


st.title("Market")
session = session_or_stop(
    db, "the market view follows the session's symbols and its engine clock.")

st.caption(f"{session['name']} · prices in USDT.")
market(int(session["id"]))
