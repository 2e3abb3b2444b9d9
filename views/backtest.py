"""Backtest: run the desk over recorded history and read the report.

Choose the data folder, range, symbols, interval, capital and CEO on/off; the run goes to a
background thread of the server (``core.service.start_backtest``) and a fragment polls its progress
once a second, so neither this page nor any other freezes. Finished runs are listed; one is shown
in full (figures, the drawdown-halt statement, equity and drawdown against buy-and-hold, per-agent
PnL, candles with entries and exits, CSV downloads) and any of them can be compared side by side.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from core import queries, service
from core.errors import FeedError
from core.models import INTERVAL_MS, MAX_CAPITAL
from dashboard import LOSS, MISSING, PROFIT, get_runtime, pnl_color, run_action

runtime = get_runtime()
db = runtime.db
settings = runtime.settings

RUN_KEY = "backtest_run"
SHOW_NEXT = "bt_show_next"  # a run that just finished, shown on the next full rerun
LAYOUT: dict[str, Any] = {"height": 340, "margin": {"l": 10, "r": 10, "t": 40, "b": 10},
                          "hovermode": "x unified",  # the legend goes under the plot, clear of the title
                          "legend": {"orientation": "h", "yanchor": "top", "y": -0.12, "x": 0}}
CANDLE_INTERVALS = ("1m", "15m", "1h", "4h", "1d")
EQUITY_LINE = "#4c8dff"
BH_COLORS = ["#f2a93b", "#9b59b6", "#1abc9c", "#e67e22", "#7f8c8d"]


def _pct(v: float | None, signed: bool = True) -> str:
    """Every percentage of the report with two decimals ("+1.31%", "44.00%")."""
    return "–" if v is None else f"{v:+.2%}" if signed else f"{v:.2%}"


PERCENT = "%.2f%%"  # tables hold percents ×100 so every percentage reads with two decimals
PERCENT_FIGURES = ("total_return", "cagr", "max_drawdown", "win_rate", "exposure_time")


def _times_100(v: float | None) -> float | None:
    return None if v is None else v * 100


def _in_percent(frame: pd.DataFrame) -> pd.DataFrame:
    """The report's fractions as percents, for ``PERCENT`` columns."""
    shown = frame.copy()
    for column in PERCENT_FIGURES:
        if column in shown:
            shown[column] = shown[column] * 100
    return shown


def _num(v: float | None) -> str:
    return "–" if v is None else f"{v:,.2f}"


# ---------------------------------------------------------------------- the request form
def request_form() -> None:
    known = sorted({*queries.recorded_symbols(settings.replay_data_dir), *settings.symbol_list})
    with st.form("backtest_form", enter_to_submit=False):  # a run starts from its button only
        data_dir = st.text_input("Data folder", value=str(settings.replay_data_dir),
                                 help="Any folder of SYMBOL-INTERVAL.csv files with columns "
                                      "open_time_ms,open,high,low,close,volume.")
        left, mid, right = st.columns(3)
        start = left.date_input("From", value=date(2025, 10, 1), format="YYYY-MM-DD")
        end = mid.date_input("To (inclusive)", value=date(2025, 10, 31), format="YYYY-MM-DD")
        interval = right.selectbox("Interval", ["15m", "1h", "1m"], index=0)
        left, mid, right = st.columns(3)
        symbols = left.multiselect("Symbols", known, default=list(settings.symbol_list),
                                   accept_new_options=True, key="bt_symbols",
                                   help="Perpetuals the agents may trade; each needs "
                                        "SYMBOL-INTERVAL.csv in the data folder (type another "
                                        "symbol for a folder of your own).")
        capital = mid.text_input("Capital (USDT)", value=f"{settings.default_capital:,.2f}",
                                 max_chars=40, key="bt_capital",
                                 help=f"From 100 to {MAX_CAPITAL:,.0f} USDT.")
        ceo = right.toggle("CEO on", value=True,
                           help="Off: the agents trade under the venue's limits only (no per-trade "
                                "caps, pauses, rebalances or drawdown halt), to measure the CEO.")
        left, right = st.columns([2, 1])
        name = left.text_input("Name (optional)", max_chars=120, key="bt_name",
                               help="Tells the run apart in the lists; two runs cannot share one.")
        llm_cache = right.toggle("Recorded model replies", value=False,
                                 help="Agents answer from model replies already recorded for the "
                                      "same prompt (the LLM audit log), rules otherwise; a "
                                      "backtest never calls a live model.")
        submitted = st.form_submit_button("Run backtest", type="primary")
    if not submitted:
        return
    ok = {}

    def start_run() -> int:
        run_id = service.start_backtest(
            db, settings, start=str(start), end=str(end), data_dir=data_dir.strip() or None,
            interval=interval, symbols=[s.strip().upper() for s in symbols if s.strip()],
            capital=service.read_capital(capital), ceo=bool(ceo), name=name.strip() or None,
            llm_cache=bool(llm_cache))
        ok["run"] = run_id
        return run_id

    if run_action(start_run, done="Backtest started"):
        st.session_state[RUN_KEY] = ok["run"]


@st.fragment(run_every=1)
def progress_panel(run_id: int) -> None:
    found = queries.backtest_progress(db, run_id)
    if found is None:
        return
    if found["status"] in ("running", "saving"):
        label = "saving the run" if found["status"] == "saving" else (
            f"run {run_id}: {found['ticks_done']:,} of {found['ticks_total']:,} bars")
        st.progress(min(1.0, float(found["progress"] or 0.0)), text=label)
        return
    st.session_state.pop(RUN_KEY, None)
    if found["status"] == "done":
        st.session_state[SHOW_NEXT] = run_id
        st.rerun(scope="app")  # show the new run's report
    why = found["error"] or "its process stopped before it finished"
    st.error(f"Backtest run {run_id} {found['status']}: {why}")


# ---------------------------------------------------------------------- one run's report
def curve_chart(report: dict[str, Any]) -> go.Figure:
    curve = report["curve"]
    ts = pd.to_datetime(curve["ts_ms"], unit="ms", utc=True)
    fig = go.Figure(go.Scatter(x=ts, y=curve["equity"], name="Desk equity",
                               line={"color": EQUITY_LINE, "width": 2}))
    for i, key in enumerate(k for k in curve if k.startswith("bh_")):
        fig.add_trace(go.Scatter(x=ts, y=curve[key], name=f"Buy & hold {key[3:]}",
                                 line={"color": BH_COLORS[i % len(BH_COLORS)], "width": 1,
                                       "dash": "dot"}))
    fig.update_layout(title="Equity vs buy-and-hold (USDT)", **LAYOUT)
    return fig


def drawdown_chart(report: dict[str, Any]) -> go.Figure:
    curve = report["curve"]
    ts = pd.to_datetime(curve["ts_ms"], unit="ms", utc=True)
    fig = go.Figure(go.Scatter(x=ts, y=[-100 * d for d in curve["drawdown"]], name="Desk",
                               fill="tozeroy", line={"color": LOSS}))
    for i, key in enumerate(k for k in curve if k.startswith("bh_")):
        values = pd.Series(curve[key])
        dd = -100 * (1 - values / values.cummax())
        fig.add_trace(go.Scatter(x=ts, y=dd, name=f"Buy & hold {key[3:]}",
                                 line={"color": BH_COLORS[i % len(BH_COLORS)], "width": 1, "dash": "dot"}))
    limit = report["drawdown_halt"]["limit"]
    if report["ceo"]:
        fig.add_hline(y=-100 * limit, line_dash="dash", line_color=LOSS,
                      annotation_text=f"halt at {limit:.0%}")
    fig.update_layout(title="Drawdown (%)", **LAYOUT)
    return fig


def agents_chart(report: dict[str, Any]) -> go.Figure:
    agents = report["agents"]
    pnl = [a["net_pnl"] for a in agents]
    fig = go.Figure(go.Bar(x=[a["agent"] for a in agents], y=pnl,
                           marker_color=[pnl_color(v) for v in pnl],
                           text=[f"{v:+,.0f}" for v in pnl], textposition="outside"))
    fig.update_layout(title="Net PnL per agent (USDT, after fees and funding)",
                      **{**LAYOUT, "hovermode": "closest"})
    return fig


def candles_chart(run: dict[str, Any], symbol: str, interval: str) -> go.Figure:
    candles, marks = queries.backtest_candles(db, run, symbol, interval)
    fig = go.Figure(go.Candlestick(
        x=candles["time"], open=candles["open"], high=candles["high"], low=candles["low"],
        close=candles["close"], name=symbol, increasing={"line": {"color": PROFIT}},
        decreasing={"line": {"color": LOSS}}))
    if not marks.empty:
        for label, kind, side, shape in (("Long entry", "entry", "LONG", "triangle-up"),
                                         ("Short entry", "entry", "SHORT", "triangle-down")):
            part = marks[(marks["kind"] == kind) & (marks["side"] == side)]
            fig.add_trace(go.Scatter(x=part["time"], y=part["price"], mode="markers", name=label,
                                     text=part["agent"], marker={"symbol": shape, "size": 11}))
        exits = marks[marks["kind"] == "exit"]
        fig.add_trace(go.Scatter(
            x=exits["time"], y=exits["price"], mode="markers", name="Exit", text=exits["agent"],
            marker={"symbol": "x", "size": 10,
                    "color": [pnl_color(v) for v in exits["realized_pnl"].astype(float)]}))
    fig.update_layout(title=f"{symbol} {interval} with the desk's entries and exits",
                      xaxis_rangeslider_visible=False, **{**LAYOUT, "height": 480,
                                                         "hovermode": "closest"})
    return fig


def show_run(run: dict[str, Any]) -> None:
    report = run["report"]
    s = report["summary"]
    p = run["params"]
    st.subheader(f"Run {run['id']}: {run['name']}")
    st.caption(f"{queries.run_range(p)} · {p['interval']} bars · {', '.join(p['symbols'])} · "
               f"CEO {'on' if p['ceo'] else 'off'} · data {p['data_dir']} · "
               f"{report['run']['ticks']:,} ticks in {report['run']['seconds']:.1f} s · "
               f"session {run['session_id']}")
    annual = report.get("annualised") or {"shown": True, "why": ""}
    absent = annual["why"] or None
    cols = st.columns(6)
    cols[0].metric("Total return", _pct(s["total_return"]))
    cols[1].metric("CAGR", _pct(s["cagr"]), help=absent or "Annualised over 365-day years")
    cols[2].metric("Max drawdown", _pct(s["max_drawdown"], signed=False))
    cols[3].metric("Sharpe", _num(s["sharpe"]), help=absent or "Annualised, zero risk-free rate")
    cols[4].metric("Sortino", _num(s["sortino"]), help=absent or "Annualised, zero risk-free rate")
    cols[5].metric("Profit factor", _num(s["profit_factor"]))
    cols = st.columns(6)
    cols[0].metric("Trades", f"{s['trades']:,}")
    cols[1].metric("Win rate", _pct(s["win_rate"], signed=False))
    cols[2].metric("Fees", f"{s['fees']:,.2f}")
    cols[3].metric("Funding paid", f"{s['funding_paid']:,.2f}")
    cols[4].metric("Exposure", _pct(s["exposure_time"], signed=False),
                   help="Share of bars with a position open")
    cols[5].metric("Final equity", f"{s['final_equity']:,.0f}",
                   help=f"{s['final_equity']:,.2f} USDT")
    if absent:
        st.caption(f"No annualised figures: {absent}")
    halt = report["drawdown_halt"]
    if not halt["applies"]:
        st.info(halt["statement"], icon=":material/info:")
    elif halt["held"]:
        st.success(halt["statement"], icon=":material/verified:")
    else:
        st.error(halt["statement"], icon=":material/report:")
    note = report["agents_model"]
    st.caption(f"{note[:1].upper()}{note[1:]}. {report['conventions']}")
    ran_with = report.get("agent_params")
    with st.expander(f"Agent parameters: {queries.params_summary(report)}",
                     icon=":material/tune:"):
        if ran_with is None:
            st.caption("This run is older than stored parameters; it ran on the defaults.")
        else:
            changed = set(report.get("agent_params_changed") or ())
            st.dataframe([{"parameter": k, "value": f"{v:g}" if isinstance(v, float) else str(v),
                           "changed": k in changed} for k, v in ran_with.items()],
                         hide_index=True, width="stretch")

    left, right = st.columns(2)
    left.plotly_chart(curve_chart(report), width="stretch", config={"displayModeBar": False})
    right.plotly_chart(drawdown_chart(report), width="stretch", config={"displayModeBar": False})
    st.plotly_chart(agents_chart(report), width="stretch", config={"displayModeBar": False})

    st.markdown("**Per agent**")
    st.dataframe(_in_percent(queries.agent_table(report)), hide_index=True, width="stretch",
                 column_config=AGENT_COLUMNS, placeholder=MISSING)
    c = report["ceo_stats"]
    st.markdown(
        f"**CEO**: {c['approvals']} approved, {c['modifications']} modified, {c['rejections']} "
        f"rejected · {c['pauses']} pauses · {c['resumes']} resumes · {c['rebalances']} rebalances · "
        f"{c['halts']} halts" + ("" if report["ceo"] else " (CEO off: venue limits only)"))
    if c["rejections_by_rule"]:
        st.caption("Rejections by rule: " + ", ".join(f"{k} {v}" for k, v in c["rejections_by_rule"].items()))
    st.markdown("**Buy and hold** (whole capital in one symbol, no fees)")
    st.dataframe(_in_percent(queries.buy_and_hold_table(report)), width="stretch",
                 column_config=BUY_AND_HOLD_COLUMNS, placeholder=MISSING)

    candles(run)

    left, right = st.columns(2)
    session_id, rows = run["session_id"], queries.report_rows(report)
    left.download_button("Trades (CSV)", lambda: queries.trades_csv(db, session_id),
                         file_name=f"backtest-{run['id']}-trades.csv", mime="text/csv",
                         icon=":material/download:")
    right.download_button("Report (CSV)", lambda: rows.to_csv(index=False),
                          file_name=f"backtest-{run['id']}-report.csv", mime="text/csv",
                          icon=":material/download:")


CAGR_COLUMN = st.column_config.NumberColumn(
    "CAGR", format=PERCENT, help="Annualised over 365-day years; only for ranges of 90 days or more")
AGENT_COLUMNS: dict[str, Any] = {
    "agent": st.column_config.TextColumn("Agent"),
    "total_return": st.column_config.NumberColumn("Return", format=PERCENT),
    "cagr": CAGR_COLUMN,
    "max_drawdown": st.column_config.NumberColumn("Max DD", format=PERCENT),
    "sharpe": st.column_config.NumberColumn("Sharpe", format="%.2f"),
    "sortino": st.column_config.NumberColumn("Sortino", format="%.2f"),
    "profit_factor": st.column_config.NumberColumn("Profit factor", format="%.2f"),
    "win_rate": st.column_config.NumberColumn("Win rate", format=PERCENT),
    "trades": st.column_config.NumberColumn("Trades"),
    "fees": st.column_config.NumberColumn("Fees", format="%.2f"),
    "funding_paid": st.column_config.NumberColumn("Funding paid", format="%.2f"),
    "exposure_time": st.column_config.NumberColumn("Exposure", format=PERCENT,
                                                   help="Share of bars with a position open"),
    "net_pnl": st.column_config.NumberColumn("Net PnL", format="%.2f"),
}


BUY_AND_HOLD_COLUMNS: dict[str, Any] = {
    "start_price": st.column_config.NumberColumn("Start price", format="%.2f"),
    "end_price": st.column_config.NumberColumn("End price", format="%.2f"),
    "total_return": st.column_config.NumberColumn("Return", format=PERCENT),
    "cagr": CAGR_COLUMN,
    "max_drawdown": st.column_config.NumberColumn("Max drawdown", format=PERCENT),
}

COMPARE_FORMATS = {**dict.fromkeys(PERCENT_FIGURES, PERCENT), "trades": "%,d"}  # the others: "%,.2f"
COMPARE_COLUMNS: dict[str, Any] = {
    "run": st.column_config.TextColumn("Run"),
    **{key: st.column_config.NumberColumn(label, format=COMPARE_FORMATS.get(key, "%,.2f"))
       for key, label in queries.COMPARE_ROWS},
    "cagr": CAGR_COLUMN,
    **{key: st.column_config.TextColumn(label) for key, label in queries.COMPARE_SETUP},
}


def candles(run: dict[str, Any]) -> None:
    """Candles of the run's range with its entries and exits, at most MAX_CANDLES of them: the
    interval offered first is the fastest that shows the whole range."""
    p = run["params"]
    offered = [i for i in CANDLE_INTERVALS if INTERVAL_MS[i] >= INTERVAL_MS[p["interval"]]]
    counts = {i: (p["end_ms"] - p["start_ms"]) // INTERVAL_MS[i] + 1 for i in offered}
    whole = next((i for i in offered if counts[i] <= queries.MAX_CANDLES), offered[-1])
    left, right = st.columns([1, 1])
    symbol = left.selectbox("Candles of", p["symbols"], key=f"bt_symbol_{run['id']}")
    interval = right.selectbox("Candle interval", offered, index=offered.index(whole),
                               key=f"bt_interval_{run['id']}")
    try:
        figure = candles_chart(run, symbol, interval)
    except FeedError as exc:
        st.warning(f"The candles cannot be drawn: {exc}. The run's figures, trades and report "
                   "are stored and shown here; only this chart reads the data folder.",
                   icon=":material/warning:")
        return
    if counts[interval] > queries.MAX_CANDLES:
        st.caption(f"The last {queries.MAX_CANDLES:,} of {counts[interval]:,} {interval} candles "
                   f"of the range; {whole} candles show all of it.")
    st.plotly_chart(figure, width="stretch")


def compare(runs: list[dict[str, Any]]) -> None:
    st.subheader("Compare runs")
    labels = {r["id"]: f"#{r['id']} {r['name']}" for r in runs}
    chosen = st.multiselect("Runs", list(labels), default=list(labels)[:2],
                            format_func=labels.get, key="bt_compare")
    picked = [r for r in runs if r["id"] in chosen]
    if len(picked) < 1:
        return
    st.dataframe(_in_percent(queries.compare_runs(picked)), hide_index=True, width="stretch",
                 column_config=COMPARE_COLUMNS, placeholder=MISSING)
    fig = go.Figure()
    for r in picked:
        curve = r["report"]["curve"]
        growth = [v / r["report"]["summary"]["initial_capital"] - 1 for v in curve["equity"]]
        fig.add_trace(go.Scatter(x=pd.to_datetime(curve["ts_ms"], unit="ms", utc=True),
                                 y=[100 * g for g in growth], name=labels[r["id"]]))
    fig.update_layout(title="Return over time (%)", **LAYOUT)
    st.plotly_chart(fig, width="stretch", config={"displayModeBar": False})


# ---------------------------------------------------------------------- page
st.title("Backtest")
st.caption("The desk's own engine, agents, CEO rules and paper venue replayed over recorded candles "
           "as fast as the machine allows. Runs are stored and never become the desk's session.")
request_form()
running = st.session_state.get(RUN_KEY) or service.running_backtest()
if running:
    progress_panel(int(running))

service.record_dead_backtests(db)  # a run whose process died reads, and stays, interrupted
runs = queries.backtest_runs(db)
done = [r for r in runs if r["status"] == "done" and r["report"]]
if not runs:
    st.info("No backtest yet: choose a range above and run one.", icon=":material/waving_hand:")
    st.stop()
st.subheader("Runs")
table = pd.DataFrame([{
    "run": r["id"], "name": r["name"], "status": r["status"],
    "return": _times_100((r["report"] or {}).get("summary", {}).get("total_return")),
    "max drawdown": _times_100((r["report"] or {}).get("summary", {}).get("max_drawdown")),
    "trades": (r["report"] or {}).get("summary", {}).get("trades"),
    "CEO": "on" if r["params"].get("ceo", True) else "off",
    "error": r["error"] or "",
} for r in runs])
st.dataframe(table, hide_index=True, width="stretch", placeholder=MISSING,
             column_config={"return": st.column_config.NumberColumn("return", format=PERCENT),
                            "max drawdown": st.column_config.NumberColumn("max drawdown",
                                                                          format=PERCENT)})
if not done:
    st.stop()
names = {r["id"]: f"#{r['id']} {r['name']}" for r in done}
finished = st.session_state.pop(SHOW_NEXT, None)
if finished in names:
    st.session_state["bt_show"] = finished
shown = st.selectbox("Show run", list(names), format_func=names.get, key="bt_show")
show_run(next(r for r in done if r["id"] == shown))
compare(done)
