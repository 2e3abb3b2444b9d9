"""Market overview for the session's symbols: price, 24 h change, range, volume and funding, and a
chart analysis per symbol and interval: candles over volume, the indicators the agents read
(toggled per chart, on at first where an agent reads them on that interval, with the strategies'
thresholds drawn), and each agent's entries, exits, stops and take-profits, with the agent's
reasoning on hover and in the table under the chart.

A thin page: ``core.queries.market_overview`` / ``chart_analysis`` read the session's market feed
at the session's engine time (in replay that is the recorded candles up to the engine clock; the
indicator values are the arrays the agents are served), and the desk's trades from the store, for
the window shown only.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from core import queries
from core.errors import DeskError
from dashboard import (
    CLOSE_REASON_LABEL,
    MISSING,
    SIGNED_MONEY,
    analysis_figure,
    chart_times,
    get_runtime,
    number_column,
    pnl_color,
    price_column,
    price_text,
    refresh_every,
    session_or_stop,
    shown_times,
    tick_prices,
    zone_name,
    zoned,
)

runtime = get_runtime()
db = runtime.db
settings = runtime.settings

INTERVALS = ("15m", "1h", "4h")
CANDLES = 300
STUDY_MEMORY = "mkt_studies_chosen"  # interval → the indicators the trader chose on it


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
    return tick_prices(shown.style.map(_change_style, subset=["24h change"]), shown["Symbol"],
                       ["Price (USDT)", "24h high", "24h low"])


def overview_columns(frame: pd.DataFrame) -> dict[str, Any]:
    return {
        "Price (USDT)": price_column("Price (USDT)"),
        "24h change": number_column("24h change", "%+.2f%%"),
        "24h high": price_column("24h high"), "24h low": price_column("24h low"),
        "24h volume": number_column("24h volume", "%,.0f", help="In the symbol's base asset"),
        "Funding rate": number_column("Funding rate", "%+.4f%%",
                                      help=f"Per funding interval: the last rate settled (on "
                                           f"replay, Binance's recorded one); {MISSING} where "
                                           "the market data has none"),
    }


def study_picker(chart: queries.Chart) -> list[str]:
    """The indicator toggles of this chart: on at first where an agent of the session reads the
    indicator on this interval; each interval keeps its own choice."""
    labels = {v.study.key: v.study.label for v in chart.studies}
    # Streamlit forgets a widget's state once a run does not draw it (another interval shown),
    # so the choice per interval is kept beside it
    memory: dict[str, list[str]] = st.session_state.setdefault(STUDY_MEMORY, {})
    default = memory.get(chart.interval, [v.study.key for v in chart.studies if v.on_by_default])
    picked = st.pills(
        "Indicators", list(labels), selection_mode="multi", default=default,
        format_func=labels.__getitem__, key=f"mkt_studies_{chart.interval}",
        help="Computed by the agents' own code on these very bars. On at first: what an agent "
             "of this session reads on this interval.")
    memory[chart.interval] = list(picked or [])
    return memory[chart.interval]


def agent_picker(chart: queries.Chart) -> list[str]:
    traded = set(chart.trades["agent"])
    return st.multiselect(
        "Agents on the chart", chart.agents, default=chart.agents, key="mkt_agents",
        help="Entries ▲/▼, exits ✕ (green: net win, red: loss), stops (dashed red) and "
             "take-profits (dashed green) as they rested at the venue. "
             + (f"{len(traded)} of {len(chart.agents)} traded {chart.symbol} in this window."
                if traded else f"No agent traded {chart.symbol} in this window."))


def reading_guide(chart: queries.Chart, shown: list[str]) -> None:
    """Who reads each indicator, here and on other intervals, and the rule it feeds."""
    with st.expander("What the agents read on this chart"):
        for view in [chart.volume, *chart.studies]:
            study = view.study
            here = ", ".join(view.read_here) or "no agent on this interval"
            also = f" · also {', '.join(view.read_elsewhere)}" if view.read_elsewhere else ""
            mark = "●" if study.key in shown or study.key == "volume" else "○"
            st.markdown(f"{mark} **{study.label}** — read by {here}{also}.  \n{study.help}")


def _minute(times: pd.Series, missing: str = MISSING) -> pd.Series:
    """UTC times to the minute in the display zone, ``missing`` where there is none."""
    return chart_times(times).dt.strftime("%Y-%m-%d %H:%M").astype(object).where(times.notna(), missing)


def trades_table(chart: queries.Chart, agents: list[str]) -> None:
    """The trades drawn on the chart, with the agent's own reasoning in full."""
    t = chart.trades[chart.trades["agent"].isin(agents)]
    if t.empty:
        return
    shown = pd.DataFrame({
        "Trade #": t["trade_id"], "Agent": t["agent"],
        "Side": t["side"].map({"LONG": "▲ LONG", "SHORT": "▼ SHORT"}),
        zoned("Opened"): _minute(t["entry_time"]), "Entry": t["entry_price"],
        "Stop": t["stop_price"], "Take-profit": t["take_profit"],
        zoned("Closed"): _minute(t["exit_time"], "open"), "Exit": t["exit_price"],
        "Close reason": t["close_reason"].map(
            lambda r: CLOSE_REASON_LABEL.get(r, r) if isinstance(r, str) and r else MISSING),
        "Net PnL": t["net_pnl"],
        "Why (the agent's reasoning)": t["reasoning"].map(
            lambda r: r if isinstance(r, str) and r else "no reasoning recorded"),
    }).iloc[::-1]
    marks = ("Entry", "Stop", "Take-profit", "Exit")
    st.dataframe(tick_prices(shown.style.map(_change_style, subset=["Net PnL"]), chart.symbol, marks),
                 hide_index=True, width="stretch", placeholder=MISSING, key="mkt_trades",
                 column_config={
                     **{c: price_column(c) for c in marks},
                     "Net PnL": number_column("Net PnL (USDT)", SIGNED_MONEY,
                                              help="After fees and funding; – while open"),
                     "Why (the agent's reasoning)": st.column_config.TextColumn(
                         "Why (the agent's reasoning)", width="large")})


@st.fragment(run_every=refresh_every())
def market(session_id: int) -> None:
    try:
        frame = queries.market_overview(settings, db, session_id)
    except DeskError as exc:
        st.error(f"Market data unavailable: {exc}")
        return
    st.caption(f"Market time **{shown_times(frame['time'].iloc[0])} {zone_name()}** — the session's engine time. This "
               "paper session replays recorded real candles, so prices move as the engine ticks, "
               "not with the wall clock.")
    for col, row in zip(st.columns(len(frame)), frame.itertuples(), strict=True):
        change = None if pd.isna(row.change_24h_pct) else float(row.change_24h_pct)
        col.metric(row.symbol, f"{price_text(row.price, row.symbol)} USDT",
                   None if change is None else f"{change:+.2f}% 24h", border=True,
                   help=f"24h range {price_text(row.low_24h, row.symbol)} – "
                        f"{price_text(row.high_24h, row.symbol)} USDT")
    st.dataframe(overview_table(frame), hide_index=True, width="stretch",
                 column_config=overview_columns(frame), placeholder=MISSING)
    missing = frame.loc[frame["funding_rate"].isna(), "symbol"].tolist()
    if missing:
        st.caption(f"Funding: no recorded rate for {', '.join(missing)} at this time, so it shows "
                   f"{MISSING}; the paper venue charges positions there a flat "
                   f"{settings.paper_funding_rate * 100:.4f}% every "
                   f"{settings.paper_funding_interval_hours} h (longs pay when positive). Replayed "
                   "symbols with a funding history settle Binance's recorded rates.")

    left, right = st.columns([3, 2])
    symbols = frame["symbol"].tolist()
    symbol = left.radio("Symbol", symbols, horizontal=True, key="mkt_symbol")
    interval = right.radio("Interval", INTERVALS, index=1, horizontal=True, key="mkt_interval")
    try:
        chart = queries.chart_analysis(settings, db, session_id, symbol, interval, CANDLES)
    except DeskError as exc:
        st.error(f"Candles unavailable: {exc}")
        return
    if chart.candles.empty:
        st.info("No closed candles yet at this interval; they appear as the engine ticks.")
        return
    studies = study_picker(chart)
    agents = agent_picker(chart)
    st.plotly_chart(analysis_figure(chart, studies, agents), width="stretch",
                    config={"displaylogo": False}, key="mkt_chart")
    t = chart.trades[chart.trades["agent"].isin(agents)]
    lo, hi = chart.span_ms or (0, 0)
    entries = int(t["opened_ms"].between(lo, hi).sum())
    exits = int(((t["status"] == "closed") & t["closed_ms"].between(lo, hi)).sum())
    st.caption(f"The last {len(chart.candles)} {interval} candles of {symbol}, volume under them"
               + (f" · {entries} entries (▲ long, ▼ short) and {exits} exits (✕) of the chosen "
                  "agents in this window, with their stops and take-profits; hover a marker for "
                  "the agent's reasoning, its stop and its PnL." if entries or exits else
                  f" · no trade of the chosen agents on {symbol} in this window yet."))
    reading_guide(chart, studies)
    trades_table(chart, agents)


st.title("Market")
session = session_or_stop(
    db, "the market view follows the session's symbols and its engine clock.")

st.caption(f"{session['name']} · prices in USDT.")
market(int(session["id"]))
