"""Positions and trades: what the desk holds now (with its stops, take-profits and liquidation
prices), the orders resting at the venue, on a live session what the exchange itself holds,
each agent's equity curve, and the full trade history with filters, a summary and CSV downloads.
A trade opened from the history shows its candles around it (entry, exit, stop and take-profit
drawn, with the indicators its agent reads) and its chain back to the model call, its tables
under plain headers.

A thin page: filters map to ``core.queries.trade_filters`` so the table, its count, the summary
and the filtered download always mean the same trades; the history is paged and summed in SQL;
the equity curves (``agent_equity_curves``) are thinned in SQL and a trade's chart
(``trade_chart``) reads only its own window of candles.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from core import queries, service
from core.errors import DeskError
from dashboard import (
    CLOSE_REASON_LABEL,
    GROSS_HELP,
    HOURS,
    LEVERAGE,
    LOSS,
    MISSING,
    MONEY,
    NEUTRAL,
    PROFIT,
    QTY,
    SIGNED_MONEY,
    agent_color,
    analysis_figure,
    chart_times,
    colored,
    get_runtime,
    hours,
    number_column,
    pager,
    pct,
    pnl_color,
    price_column,
    price_text,
    refresh_every,
    session_or_stop,
    shown_times,
    tick_prices,
    usd,
    zone_name,
    zoned,
)

runtime = get_runtime()
db = runtime.db
settings = runtime.settings

PAGE_SIZE = 50
PAGE_KEY = "trades_page"
ALL = "All"
REASON_LABEL = CLOSE_REASON_LABEL
NET_HELP = "Gross PnL − fees + funding: what the trade made after costs"
PRICE_COLUMNS = ("Entry", "Mark", "Stop", "Take-profit", "Liquidation")
PURPOSE_LABEL = {"stop_loss": "stop-loss", "take_profit": "take-profit", "entry": "entry",
                 "trailing_stop": "trailing stop",
                 "exit": "exit", "agent": "close", "user": "your close"}
CHANGE_LABEL = {"leverage": "Leverage (x)", "margin": "Margin (USDT)",
                "margin_fraction": "Margin (fraction of equity)", "stop_price": "Stop",
                "stop_distance": "Stop distance (fraction of price)", "take_profit": "Take-profit",
                "quantity": "Qty", "notional": "Notional (USDT)"}


def purpose(value: str) -> str:
    """An order's purpose in words: what it was for, closes naming who closed."""
    if value in PURPOSE_LABEL:
        return PURPOSE_LABEL[value]
    return f"close ({CLOSE_REASON_LABEL.get(value, value)})"


def _reset_page() -> None:
    st.session_state[PAGE_KEY] = 1


def money(value: Any, *, signed: bool = False) -> str:
    if value is None or pd.isna(value):
        return "–"
    return usd(float(value), signed=signed)


def _pnl_style(value: Any) -> str:
    return f"color: {pnl_color(None if value is None or pd.isna(value) else float(value))}"


def side(value: str) -> str:
    return {"LONG": "▲ LONG", "SHORT": "▼ SHORT"}.get(value, value)


def _side_style(value: str) -> str:
    return f"color: {PROFIT if 'LONG' in value else LOSS if 'SHORT' in value else NEUTRAL}"


# ---------------------------------------------------------------------- the trader's own orders
MANUAL_ASK = "positions_manual_ask"
MANUAL_STATUS = {"done": "Done", "pending": "Queued", "working": "Working", "refused": "Refused",
                 "failed": "Failed"}


def _ask(kind: str, target: Any, label: str) -> None:
    st.session_state[MANUAL_ASK] = (kind, target, label)


def _forget_ask() -> None:
    st.session_state.pop(MANUAL_ASK, None)


def _carry_out(kind: str, target: Any, session_id: int) -> None:
    try:
        if kind == "close":
            outcome = service.close_position(db, settings, int(target))
        elif kind == "cancel":
            outcome = service.cancel_order(db, settings, int(target))
        else:
            outcome = service.flatten_agent(db, settings, session_id, str(target))
    except DeskError as exc:
        st.session_state[MANUAL_RESULT] = ("refused", str(exc))
        return
    st.session_state[MANUAL_RESULT] = (outcome.status, outcome.note)


MANUAL_RESULT = "positions_manual_result"
WHAT_HAPPENS = {
    "close": "sends a **reduce-only market order** for the whole position (slippage and the taker "
             "fee apply). Its stop and take-profit are cancelled once the close fills; if the "
             "close does not fill, the position keeps its stop.",
    "cancel": "cancels this resting order at the venue. A position's only stop cannot be "
              "cancelled (close the position instead); a cancelled take-profit is not placed "
              "again.",
    "flatten": "**pauses the agent** (it proposes nothing until you resume it) and closes every "
               "position it holds with reduce-only market orders.",
}


@st.dialog("Confirm your order", on_dismiss=_forget_ask)
def confirm_manual(kind: str, target: Any, label: str, session_id: int) -> None:
    st.markdown(f"**{label}**: this {WHAT_HAPPENS[kind]}")
    st.caption("If the engine is trading the session it carries this out on its next tick; "
               "otherwise it is done now, at the market the session last saw. Recorded in the "
               "CEO log as yours.")
    yes, no = st.columns(2)
    if yes.button("Confirm", type="primary", width="stretch"):
        _carry_out(kind, target, session_id)
        _forget_ask()
        st.rerun()
    if no.button("Cancel", width="stretch"):
        _forget_ask()
        st.rerun()


def _follow(key: str, choices: list[Any]) -> None:
    """Keep a picker on something that still exists: the first choice once the one picked has
    closed or filled, or once the first position or order appears."""
    if st.session_state.get(key) not in choices:
        st.session_state[key] = choices[0] if choices else None


def manual_control(session_id: int, status: str) -> None:
    """Close one position, cancel one resting order, flatten one agent (each asks first)."""
    st.subheader("Your orders")
    if MANUAL_RESULT in st.session_state:
        outcome, note = st.session_state.pop(MANUAL_RESULT)
        show = {"done": st.success, "pending": st.info, "working": st.info}.get(outcome, st.error)
        show(f"{MANUAL_STATUS.get(outcome, outcome)}: {note}")
    if status not in ("running", "paused", "halted"):
        st.caption(f"The session is {status}: nothing to close or cancel.")
        return
    positions = queries.open_positions(db, session_id)
    orders = queries.open_orders(db, session_id)
    c = st.columns(3, vertical_alignment="bottom")
    pos_labels = {int(r.id): f"#{int(r.id)} {r.symbol} {r.side.lower()} {r.qty:g} ({r.agent})"
                  for r in positions.itertuples()} if not positions.empty else {}
    _follow("manual_position", list(pos_labels))
    chosen = c[0].selectbox("Position", list(pos_labels), format_func=pos_labels.get,
                            key="manual_position", placeholder="no open position")
    if c[0].button("Close at market…", disabled=chosen is None, key="manual_close"):
        _ask("close", chosen, f"Close {pos_labels[chosen]}")
    resting = orders[orders["status"] == "NEW"] if not orders.empty else orders
    order_labels = {int(r.id): f"#{int(r.id)} {r.symbol} {PURPOSE_LABEL.get(r.purpose, r.purpose)} "
                               f"{r.qty:g} @ {price_text(r.stop_price, r.symbol)}"
                    for r in resting.itertuples()} if not resting.empty else {}
    _follow("manual_order", list(order_labels))
    picked = c[1].selectbox("Resting order", list(order_labels), format_func=order_labels.get,
                            key="manual_order", placeholder="no resting order")
    if c[1].button("Cancel order…", disabled=picked is None, key="manual_cancel"):
        _ask("cancel", picked, f"Cancel {order_labels[picked]}")
    names = queries.agent_names(db, session_id)
    agent = c[2].selectbox("Agent", names, key="manual_agent")
    if c[2].button("Flatten agent…", disabled=not names, key="manual_flatten"):
        _ask("flatten", agent, f"Flatten {agent}")
    if MANUAL_ASK in st.session_state:
        confirm_manual(*st.session_state[MANUAL_ASK], session_id)
    recent = queries.manual_orders(db, session_id, limit=10)
    if not recent.empty:
        st.dataframe(pd.DataFrame({
            "#": recent["id"], "Order": recent["kind"], "Target": recent["target_id"],
            "Status": recent["status"].map(lambda s: MANUAL_STATUS.get(s, s)),
            "What happened": recent["note"].fillna("waiting for the engine's next tick"),
            zoned("Asked"): shown_times(recent["created_at"]),
        }), hide_index=True, width="stretch", placeholder=MISSING)


# ---------------------------------------------------------------------- now
@st.fragment(run_every=refresh_every())
def holdings(session_id: int) -> None:
    st.subheader("Open positions")
    frame = queries.open_positions(db, session_id)
    if frame.empty:
        st.info("No open positions. When the CEO approves a proposal the position appears here, "
                "with the stop-loss it carries from the moment it opens.")
    else:
        total = float(frame["unrealized_pnl"].sum())
        st.markdown(f"{len(frame)} open · margin in use **{usd(float(frame['margin'].sum()))}** · "
                    f"unrealized PnL **{colored(usd(total, signed=True), total)}** at the engine's "
                    "last marks")
        shown = pd.DataFrame({
            "Agent": frame["agent"], "Symbol": frame["symbol"], "Side": frame["side"].map(side),
            "Qty": frame["qty"], "Entry": frame["entry_price"], "Mark": frame["mark_price"],
            "Unrealized PnL": frame["unrealized_pnl"], "Leverage": frame["leverage"],
            "Margin": frame["margin"], "Stop": frame["stop_price"],
            # numeric even when no position has one (trend and momentum rest a trailing stop)
            "Take-profit": frame["take_profit"].astype(float),
            "Liquidation": frame["liquidation_price"],
            zoned("Opened"): shown_times(frame["opened_at"]),
        })
        styled = (shown.style.map(_pnl_style, subset=["Unrealized PnL"])
                  .map(_side_style, subset=["Side"]))
        st.dataframe(tick_prices(styled, shown["Symbol"], PRICE_COLUMNS),
                     hide_index=True, width="stretch", placeholder=MISSING, column_config={
                         **{c: price_column(c) for c in PRICE_COLUMNS},
                         "Qty": number_column("Qty", QTY),
                         "Unrealized PnL": number_column("Unrealized PnL (USDT)", SIGNED_MONEY),
                         "Leverage": number_column("Leverage", LEVERAGE),
                         "Margin": number_column("Margin (USDT)", MONEY)})

    st.subheader("Open orders")
    orders = queries.open_orders(db, session_id)
    if orders.empty:
        st.caption("No resting orders. Every open position keeps a reduce-only stop-loss (and an "
                   "optional trailing stop and take-profit) resting at the venue; they are "
                   "listed here.")
        return
    unresolved = orders[orders["status"] != "NEW"]
    if not unresolved.empty:
        st.warning(f"{len(unresolved)} order(s) not yet confirmed by the venue "
                   "(PENDING/UNKNOWN): the engine asks the venue for their status, it never "
                   "resends them blindly.")
    shown = pd.DataFrame({
        "Agent": orders["agent"].fillna("Desk"), "Symbol": orders["symbol"], "Side": orders["side"],
        "Purpose": orders["purpose"].map(purpose),
        "Type": orders["type"].str.replace("_", " ").str.lower(),
        "Qty": orders["qty"], "Trigger price": orders["stop_price"],
        "Trail (%)": orders["callback_pct"].astype(float),
        "Activation": orders["activation_price"].astype(float),
        "Reduce-only": orders["reduce_only"].map({True: "yes", False: "no"}),
        "Status": orders["status"], zoned("Placed"): shown_times(orders["created_at"]),
        "Age": hours(orders["age_s"]),
    })
    st.dataframe(tick_prices(shown, shown["Symbol"], ["Trigger price", "Activation"]),
                 hide_index=True, width="stretch", placeholder=MISSING, column_config={
        "Qty": number_column("Qty", QTY),
        "Trigger price": price_column("Trigger price", help="Where a stop-loss or take-profit "
                                      "fires; a trailing stop's trigger moves at the venue"),
        "Trail (%)": number_column("Trail (%)", "%.1f", help="A trailing stop's callback: it "
                                   "fires this far (in % of price) behind the best price since "
                                   "it armed"),
        "Activation": price_column("Activation", help="The price that arms a trailing stop "
                                   "(empty: armed when placed)"),
        "Age": number_column("Age (h)", HOURS, help="Hours since the order was placed")})


def venue_holdings(session_id: int) -> None:
    """What the exchange itself holds in a live session, beside the desk's books."""
    account = queries.venue_account(settings, db, session_id)
    if account["mode"] != "live":
        return
    st.subheader("On the exchange (AsterDex)")
    if account["error"]:
        st.warning(account["error"])
        return
    st.markdown(f"Wallet **{usd(account['wallet_balance'])}** · available "
                f"**{usd(account['available_balance'])}** · unrealized PnL "
                f"**{colored(usd(account['unrealized_pnl'], signed=True), account['unrealized_pnl'])}**")
    if account["positions"].empty:
        st.caption("The exchange holds no position.")
    else:
        st.dataframe(account["positions"], hide_index=True, width="stretch", placeholder=MISSING)
    if not account["orders"].empty:
        st.dataframe(account["orders"], hide_index=True, width="stretch", placeholder=MISSING)


# ---------------------------------------------------------------------- history


def summary_row(s: dict[str, Any]) -> None:
    cells = [
        ("Trades", f"{s['trades']:,}"),
        ("Win rate", "–" if s["win_rate"] is None else pct(s["win_rate"] * 100)),
        ("Gross PnL", colored(usd(s["realized_pnl"], signed=True), s["realized_pnl"])),
        ("Fees", usd(s["fees"])),
        ("Funding", colored(usd(s["funding"], signed=True), s["funding"])),
        ("Net PnL", colored(usd(s["net_pnl"], signed=True), s["net_pnl"])),
    ]
    helps = {"Gross PnL": GROSS_HELP, "Net PnL": NET_HELP}
    for col, (label, value) in zip(st.columns(len(cells)), cells, strict=True):
        col.caption(label, help=helps.get(label))
        col.markdown(f"**{value}**")


def trade_table(frame: pd.DataFrame) -> Any:
    """The page of trades as numbers (formatted by ``trade_columns``), PnL and sides coloured."""
    shown = pd.DataFrame({
        zoned("Closed"): shown_times(frame["closed_at"]), "Agent": frame["agent"], "Symbol": frame["symbol"],
        "Side": frame["side"].map(side), "Leverage": frame["leverage"],
        "Entry": frame["entry_price"], "Exit": frame["exit_price"],
        "Net PnL": frame["net_pnl"],
        "Close reason": frame["close_reason"].map(lambda r: REASON_LABEL.get(r, r or "–")),
        "Held": hours(frame["duration_s"]), "Qty": frame["qty"], "Margin": frame["margin"],
        "Gross PnL": frame["realized_pnl"], "Fees": frame["fees"], "Funding": frame["funding"],
        zoned("Opened"): shown_times(frame["opened_at"]), "Trade #": frame["trade_id"],
    })
    styled = (shown.style.map(_pnl_style, subset=["Gross PnL", "Net PnL"])
              .map(_side_style, subset=["Side"]))
    return tick_prices(styled, shown["Symbol"], ["Entry", "Exit"])


def trade_columns(frame: pd.DataFrame) -> dict[str, Any]:
    """Headers with units and number formats for ``trade_table``."""
    return {
        "Leverage": number_column("Leverage", LEVERAGE),
        "Entry": price_column("Entry"), "Exit": price_column("Exit"),
        "Net PnL": number_column("Net PnL (USDT)", SIGNED_MONEY, help=NET_HELP),
        "Held": number_column("Held (h)", HOURS, help="Hours from entry to close"),
        "Qty": number_column("Qty", QTY), "Margin": number_column("Margin (USDT)", MONEY),
        "Gross PnL": number_column("Gross PnL (USDT)", SIGNED_MONEY, help=GROSS_HELP),
        "Fees": number_column("Fees (USDT)", MONEY),
        "Funding": number_column("Funding (USDT)", SIGNED_MONEY),
    }


@st.fragment(run_every=refresh_every())
def agent_equity(session_id: int, agent: str | None) -> None:
    """Each agent's equity over engine time (the history's agent filter narrows it to one),
    rebalances marked, as capital they move is not a trading result."""
    data = queries.agent_equity_curves(db, session_id, None if agent is None else [agent])
    curves = data["curves"]
    if curves.empty:
        st.caption("Equity by agent: the engine writes each agent's equity with every snapshot; "
                   "the curves appear after its first ticks.")
        return
    fig = go.Figure()
    for (name, key), part in curves.groupby(["agent", "agent_key"], sort=False):
        fig.add_trace(go.Scatter(
            x=chart_times(part["ts"]), y=part["equity"], mode="lines", name=name,
            line={"color": agent_color(key), "width": 1.8},
            customdata=list(zip(part["unrealized"], part["margin_used"], strict=True)),
            hovertemplate=f"<b>{name}</b><br>equity %{{y:,.2f}} USDT<br>unrealized "
                          "%{customdata[0]:+,.2f} · margin in use %{customdata[1]:,.2f}"
                          "<br>%{x|%Y-%m-%d %H:%M} " + zone_name() + "<extra></extra>"))
    if data["rebalances"]:
        lo, hi = float(curves["equity"].min()), float(curves["equity"].max())
        times = chart_times(pd.to_datetime(pd.Series(data["rebalances"]), unit="ms", utc=True))
        xs: list[Any] = [v for t in times for v in (t, t, None)]
        ys: list[Any] = [v for _ in times for v in (lo, hi, None)]
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", name="Rebalance",
                                 line={"color": NEUTRAL, "width": 1, "dash": "dot"},
                                 hovertemplate="rebalance %{x|%Y-%m-%d %H:%M} " + zone_name()
                                 + "<extra></extra>"))
    fig.update_layout(height=320, margin={"l": 10, "r": 10, "t": 30, "b": 10}, hovermode="closest",
                      yaxis_title="equity (USDT)", xaxis_title=f"engine time ({zone_name()})",
                      legend={"orientation": "h", "yanchor": "bottom", "y": 1.01, "x": 0})
    fig.update_yaxes(tickformat=",")
    st.markdown("**Equity by agent**" + (f" · {agent}" if agent else ""))
    st.plotly_chart(fig, width="stretch", config={"displaylogo": False}, key="agent_equity")
    st.caption("Each agent's capital plus its realized and unrealized PnL, fees and funding. A "
               "step at a dotted line is capital a rebalance moved, not a trade.")


@st.fragment(run_every=refresh_every())
def history(session_id: int, filters: dict[str, Any]) -> None:
    summary = queries.trade_summary(db, session_id, **filters)
    total = summary["trades"]
    everything = total if not any(v is not None for v in filters.values()) \
        else queries.trades_count(db, session_id)
    if everything == 0:
        st.info("No closed trades yet. Trades appear here when a position closes (stop-loss, "
                "take-profit, the agent's exit, the CEO or a session stop).")
        return
    summary_row(summary)
    if total == 0:
        st.info("No trades match these filters. Set a filter back to *All* or clear the dates.")
    else:
        offset = pager(total, page_size=PAGE_SIZE, key=PAGE_KEY, noun="trades",
                       order="newest close first")
        frame = queries.trades(db, session_id, **filters, limit=PAGE_SIZE, offset=offset)
        picked = st.dataframe(trade_table(frame), hide_index=True, width="stretch", height=560,
                              column_config=trade_columns(frame), placeholder=MISSING,
                              on_select="rerun", selection_mode="single-row", key="trades_pick")
        rows = picked.selection.rows if picked is not None else []
        if rows and rows[0] < len(frame):  # a clicked trade opens its chain below
            with st.container(border=True):
                trade_detail(session_id, int(frame["trade_id"].iloc[rows[0]]))
    left, right = st.columns(2)
    left.download_button(
        f"Download filtered ({total:,} trades)",
        data=lambda: queries.trades_csv(db, session_id, **filters),
        file_name=f"trades_session_{session_id}_filtered.csv", mime="text/csv",
        icon=":material/download:", on_click="ignore", disabled=total == 0,
        key="trades_csv_filtered")
    right.download_button(
        f"Download all trades ({everything:,})",
        data=lambda: queries.trades_csv(db, session_id),
        file_name=f"trades_session_{session_id}.csv", mime="text/csv",
        icon=":material/download:", on_click="ignore", key="trades_csv_all")


# --- open a trade and show its chain back to the LLM call -------------------------------
def _call_panel(title: str, call: dict[str, Any] | None, empty: str) -> None:
    st.markdown(f"**{title}**")
    if call is None:
        st.caption(empty)
        return
    latency = "–" if call["latency_ms"] is None else f"{call['latency_ms']:,.0f} ms"
    st.markdown(
        f"{call['provider']} · model `{call['model']}` · prompt `{call['prompt_version']}` · "
        f"{latency} · {call['input_tokens']:,} in / {call['output_tokens']:,} out tokens · "
        f"cost {call['cost_usd']:.6f} USD · {call['attempts']} attempt(s) · call #{call['id']}")
    if call["error"]:
        st.error(f"Failed: {call['error']}")
    if call["validation_errors"]:
        st.warning(f"Validation errors: {call['validation_errors']}")
    with st.expander("Prompt"):
        st.code(f"{call['system']}\n\n{call['prompt']}", language=None, wrap_lines=True)
    with st.expander("Raw reply"):
        st.code(call["raw_reply"] or "(empty)", language=None, wrap_lines=True)
    if call["parsed"] is not None:
        with st.expander("Parsed answer"):
            st.json(call["parsed"])


def fills_table(fills: pd.DataFrame, symbol: str) -> None:
    shown = pd.DataFrame({
        zoned("Time"): shown_times(fills["at"]), "Side": fills["side"], "Qty": fills["qty"],
        "Price": fills["price"], "Fee": fills["fee"], "Gross PnL": fills["realized_pnl"],
        "Liquidation": fills["liquidation"].map({True: "yes", False: "no"}),
        "Venue trade id": fills["venue_trade_id"], "Client order id": fills["client_order_id"],
    })
    st.dataframe(tick_prices(shown, symbol, ["Price"]), hide_index=True, width="stretch",
                 placeholder=MISSING, column_config={
        "Qty": number_column("Qty", QTY), "Price": price_column("Price"),
        "Fee": number_column("Fee (USDT)", MONEY),
        "Gross PnL": number_column("Gross PnL (USDT)", SIGNED_MONEY,
                                   help="What the fill closed on price, before fees and funding"),
    })


def orders_table(orders: pd.DataFrame, symbol: str) -> None:
    shown = pd.DataFrame({
        zoned("Placed"): shown_times(orders["at"]), "Purpose": orders["purpose"].map(purpose),
        "Side": orders["side"], "Type": orders["type"].str.replace("_", " ").str.lower(),
        "Qty": orders["qty"], "Trigger price": orders["stop_price"], "Status": orders["status"],
        "Filled qty": orders["executed_qty"], "Average fill": orders["avg_price"],
        "Error": orders["error"], "Order #": orders["id"], "Client order id": orders["client_order_id"],
    })
    st.dataframe(tick_prices(shown, symbol, ["Trigger price", "Average fill"]), hide_index=True,
                 width="stretch", placeholder=MISSING, column_config={
        "Qty": number_column("Qty", QTY), "Filled qty": number_column("Filled qty", QTY),
        "Trigger price": price_column("Trigger price", help="Where a stop-loss or take-profit fires"),
        "Average fill": price_column("Average fill price"),
    })


def changes_table(changes: dict[str, Any]) -> None:
    shown = pd.DataFrame([{"Field": CHANGE_LABEL.get(k, k.replace("_", " ")),
                           "Proposed": v[0], "Decided": v[1]} for k, v in changes.items()])
    st.dataframe(shown.astype({"Proposed": str, "Decided": str}), hide_index=True,
                 placeholder=MISSING)


def trade_candles(session_id: int, trade_id: int, key: str) -> None:
    """The trade's candles with its entry, exit, stop and take-profit, and its agent's studies."""
    try:
        chart = queries.trade_chart(settings, db, session_id, trade_id)
    except DeskError as exc:
        st.warning(f"Candles unavailable: {exc}")
        return
    if chart is None:
        return
    if chart.note:
        st.caption(chart.note)
    if chart.candles.empty:
        return
    labels = {v.study.key: v.study.label for v in chart.studies}
    default = [v.study.key for v in chart.studies if v.on_by_default]
    studies = st.pills("Indicators", list(labels), selection_mode="multi", default=default,
                       format_func=labels.__getitem__, key=f"{key}_studies_{trade_id}",
                       help="Computed by the agents' own code on these bars; on at first: the "
                            "lines this trade's agent reads on this interval.")
    t = chart.trades.iloc[0]
    fig = analysis_figure(chart, list(studies or []))
    end = t["exit_time"] if pd.notna(t["exit_time"]) else chart.candles["time"].iloc[-1]
    fig.add_vrect(x0=t["entry_time"], x1=end, fillcolor=agent_color(t["agent_key"]), opacity=0.08,
                  line_width=0, row=1, col=1)
    st.plotly_chart(fig, width="stretch", config={"displaylogo": False}, key=f"{key}_chart_{trade_id}")
    elsewhere = sorted({r for v in chart.studies for r in v.read_elsewhere})
    st.caption(f"{len(chart.candles)} {chart.interval} candles around the trade (the shaded span "
               "is the time it was open) · ▲/▼ entry, ✕ exit, dashed red the stop-loss and dashed "
               "green the take-profit as they rested at the venue; hover for the agent's reasoning."
               + (" The agent also reads " + "; ".join(
                   f"{v.study.label} ({', '.join(v.read_elsewhere)})" for v in chart.studies
                   if v.read_elsewhere) + ": open that interval on the Market page."
                  if elsewhere else ""))


def trade_detail(session_id: int, trade_id: int, key: str = "row") -> None:
    chain = queries.trade_chain(db, session_id, trade_id)
    if chain is None:
        st.info(f"No trade #{trade_id} in this session.")
        return
    pos = chain["position"]
    sym = pos["symbol"]
    net = pos["realized_pnl"] - pos["fees"] + pos["funding"]
    st.markdown(
        f"**Trade #{pos['id']}** · {pos['agent']} · {side(pos['side'])} {pos['symbol']} · "
        f"{pos['leverage']}x · entry {price_text(pos['entry_price'], sym)} → exit "
        f"{price_text(pos['exit_price'], sym)} · stop {price_text(pos['stop_price'], sym)} · "
        f"take-profit {price_text(pos['take_profit'], sym)} · "
        f"net PnL {colored(money(net, signed=True), net)} · {pos['status']}"
        + (f" ({REASON_LABEL.get(pos['close_reason'], pos['close_reason'])})" if pos["close_reason"] else ""))
    trade_candles(session_id, trade_id, key)
    st.markdown("**Fills**")
    fills_table(chain["fills"], sym)
    st.markdown("**Orders**")
    orders_table(chain["orders"], sym)
    d = chain["decision"]
    st.markdown("**CEO verdict**")
    if d is None:
        st.caption("No CEO decision recorded for this position (e.g. adopted in a reconciliation).")
    else:
        st.markdown(f"{d['verdict']} at {d['at']} · rules fired: "
                    f"{', '.join(d['rules']) or 'none'} · leverage {d['proposed_leverage']} → "
                    f"{d['final_leverage']}x · margin {money(d['proposed_margin'])} → "
                    f"{money(d['final_margin'])}")
        st.caption(d["reason"])
        if d["changes"]:
            changes_table(d["changes"])
        if chain["review_call"] is not None:
            _call_panel("CEO LLM review", chain["review_call"], "")
    p = chain["proposal"]
    st.markdown("**Proposal**")
    if p is None:
        st.caption("No proposal recorded.")
    else:
        st.markdown(f"{p['action']} {p['symbol']} at {p['at']} · {p['leverage']}x · margin "
                    f"{pct((p['margin_fraction'] or 0) * 100)} of equity · stop {price_text(p['stop_price'], p['symbol'])} "
                    f"· take-profit {price_text(p['take_profit'], p['symbol'])} · confidence {p['confidence']:.2f}")
        st.caption(p["reasoning"] or "")
    _call_panel("LLM call", chain["llm_call"],
                "Rule-based proposal: no model call behind this trade.")


def chain_picker(session_id: int) -> None:
    st.subheader("Trade detail: from fills back to the LLM call")
    trade_id = st.number_input("Trade #", min_value=1, step=1, value=None, key="chain_trade",
                               placeholder="a Trade # (or click a row of the table above)",
                               help="Fills and orders ← position ← CEO verdict ← proposal ← LLM call")
    if trade_id is not None:
        trade_detail(session_id, int(trade_id), key="pick")


st.title("Positions & trades")
session = session_or_stop(
    db, "its positions, resting orders and trade history will show here.")

sid = int(session["id"])
st.caption(f"{session['name']} · prices in USDT, times are the session's engine time, in "
           f"{zone_name()}.")
holdings(sid)
manual_control(sid, str(session["status"]))
venue_holdings(sid)

st.subheader("Trade history")
span = queries.trade_time_range(db, sid)
lo, hi = (span[0].date(), span[1].date()) if span else (None, None)
c = st.columns([1.3, 1, 1, 1.1, 1, 1])
agent = c[0].selectbox("Agent", [ALL, *queries.agent_names(db, sid)], key="tr_agent", on_change=_reset_page)
symbol = c[1].selectbox("Symbol", [ALL, *queries.session_symbols(db, sid)], key="tr_symbol",
                        on_change=_reset_page)
side_choice = c[2].selectbox("Side", [ALL, *queries.SIDES], key="tr_side", on_change=_reset_page)
reason = c[3].selectbox("Close reason", [ALL, *queries.CLOSE_REASONS], key="tr_reason",
                        on_change=_reset_page, format_func=lambda r: REASON_LABEL.get(r, r))
date_from = c[4].date_input("Closed from", value=None, min_value=lo, max_value=hi, key="tr_from",
                            on_change=_reset_page, help="UTC day, engine time")
date_to = c[5].date_input("Closed to", value=None, min_value=lo, max_value=hi, key="tr_to",
                          on_change=_reset_page, help="UTC day, included")
agent_equity(sid, queries.trade_filters(agent=agent)["agent"])
history(sid, queries.trade_filters(agent=agent, symbol=symbol, side=side_choice, close_reason=reason,
                                   date_from=date_from, date_to=date_to))
chain_picker(sid)

