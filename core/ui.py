"""The one module under core/ that knows Streamlit: the per-process runtime, the password gate,
the sidebar (with its session picker) and the small helpers every page shares (formatting,
colours, actions, refresh).

``get_runtime`` opens the database once per server process and, when ``ENGINE_IN_APP`` is on,
starts one engine driver with it; Streamlit's release hook stops the engine (and frees its lease)
when the resource is dropped. The database lease still guards against a second engine elsewhere.
Pages import this module, ``core.queries`` and ``core.service`` only.
"""

from __future__ import annotations

import hmac
import logging
import math
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import pandas as pd
import streamlit as st
from pandas.io.formats.style import Styler
from sqlalchemy import Engine

from core import queries
from core.config import Settings, get_settings
from core.desk.context import ACTIVE_SESSION
from core.desk.scheduler import EngineDriver
from core.errors import DeskError
from core.exchanges.symbols import KNOWN_FILTERS
from core.models import ms_to_dt
from core.store.db import open_database

log = logging.getLogger(__name__)

PROFIT = "#1f9d55"
LOSS = "#e03e3e"
NEUTRAL = "#8a8f98"
REFRESH_SECONDS = 15
ACTIVE = ACTIVE_SESSION  # the statuses an engine still ticks
PICKER = "session_picker"  # the sidebar selectbox's widget key
CHOSEN = "session_chosen"  # the tab's explicit choice (None: follow the latest session)
SESSION_PARAM = "session"  # ?session=N in the URL reopens a chosen session
PICKER_SIZE = 50  # sessions listed in the picker, newest first


@dataclass
class Runtime:
    settings: Settings
    db: Engine
    driver: EngineDriver | None

    def close(self) -> None:
        if self.driver is not None:
            self.driver.stop()
        self.db.dispose()


def _release(runtime: Runtime) -> None:
    runtime.close()


@st.cache_resource(show_spinner=False, on_release=_release)
def get_runtime() -> Runtime:
    settings = get_settings()
    db = open_database(settings.database_url)
    driver = None
    if settings.engine_in_app:
        driver = EngineDriver(settings, db)
        driver.start()
    return Runtime(settings, db, driver)


# ---------------------------------------------------------------------- access
_now = time.monotonic  # the throttle's clock (tests move it instead of sleeping)


class LoginThrottle:
    """Wrong dashboard passwords per client, for the whole server process: after ``free`` wrong
    guesses within ``window_s`` each further guess must wait twice as long as the one before
    (1 s, 2 s, 4 s … up to ``max_wait_s``), so guessing runs at a few tries an hour, not
    thousands a second. A right password clears the client's record."""

    def __init__(self, free: int = 3, window_s: float = 900.0, max_wait_s: float = 300.0,
                 clock: Callable[[], float] | None = None) -> None:
        self.free, self.window_s, self.max_wait_s = free, window_s, max_wait_s
        self.clock = clock or (lambda: _now())
        self._failures: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, client: str, now: float) -> list[float]:
        kept = [t for t in self._failures.get(client, []) if now - t < self.window_s]
        self._failures[client] = kept
        return kept

    def wait_s(self, client: str) -> float:
        """Seconds before ``client`` may try again (0: now)."""
        with self._lock:
            now = self.clock()
            recent = self._recent(client, now)
            if len(recent) < self.free:
                return 0.0
            wait = min(self.max_wait_s, 2.0 ** (len(recent) - self.free))
            return max(0.0, recent[-1] + wait - now)

    def failed(self, client: str) -> int:
        """Record a wrong guess; returns the client's wrong guesses within the window."""
        with self._lock:
            now = self.clock()
            recent = self._recent(client, now)
            recent.append(now)
            return len(recent)

    def succeeded(self, client: str) -> None:
        with self._lock:
            self._failures.pop(client, None)


@st.cache_resource
def login_throttle() -> LoginThrottle:
    return LoginThrottle()


def _client() -> str:
    """Who is guessing: the browser's address as the server sees it (behind a proxy that is the
    proxy, and every client shares one throttle: slower for all, never faster for anyone)."""
    try:
        address = st.context.ip_address
    except Exception:  # no browser context (tests, bare mode)
        address = None
    return address if isinstance(address, str) and address else "unknown address"


def password_gate(settings: Settings) -> None:
    """Stop the script (showing only a password box) until the dashboard password is entered;
    wrong guesses are logged (never the guess) and slowed down per client."""
    secret = settings.dashboard_password
    if secret is None or not secret.get_secret_value():
        return
    if st.session_state.get("authenticated"):
        return
    st.title("Agentic trading desk")
    with st.form("login"):
        entered = st.text_input("Password", type="password")
        submitted = st.form_submit_button("Enter")
    if submitted:
        throttle, client = login_throttle(), _client()
        wait = throttle.wait_s(client)
        if wait > 0:  # not even checked: a right guess in a locked window would still leak
            st.error(f"Too many wrong passwords: try again in {math.ceil(wait)} s.")
            st.stop()
        if hmac.compare_digest(entered.encode(), secret.get_secret_value().encode()):
            throttle.succeeded(client)
            st.session_state["authenticated"] = True
            st.rerun()
        count = throttle.failed(client)
        log.warning("dashboard: wrong password from %s (%d in the last %.0f min)", client, count,
                    throttle.window_s / 60)
        wait = throttle.wait_s(client)
        st.error("Wrong password." + (f" Wait {math.ceil(wait)} s before the next try."
                                      if wait > 0 else ""))
    st.stop()


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


# ---------------------------------------------------------------------- state and actions
def current_session(db: Engine) -> dict[str, Any] | None:
    """The session the dashboard shows: the one chosen in the sidebar (or by the link's
    ``?session=N``) while it still exists, else the active one, else the most recent."""
    chosen = _chosen_session_id()
    shown = queries.desk_session(db, chosen) if chosen is not None else None
    return shown or queries.latest_session(db)


def _chosen_session_id() -> int | None:
    """This browser tab's explicit choice; None means "follow the latest session"."""
    if CHOSEN in st.session_state:
        chosen: int | None = st.session_state[CHOSEN]
        return chosen
    raw = st.query_params.get(SESSION_PARAM, "")
    return int(raw) if raw.isdigit() else None


def follow_latest_session() -> None:
    """Forget the tab's choice, so the pages show the active (else the newest) session again,
    e.g. the one just created."""
    st.session_state[CHOSEN] = None
    if SESSION_PARAM in st.query_params:
        del st.query_params[SESSION_PARAM]


def _on_pick(db: Engine) -> None:
    picked = st.session_state[PICKER]
    latest = queries.latest_session(db)
    if latest is not None and picked == latest["id"]:
        follow_latest_session()  # picking the latest means following it, into the next session
    else:
        st.session_state[CHOSEN] = picked


def session_picker(db: Engine) -> None:
    """The sidebar's choice of session (paper and live, newest first; backtests have their own
    page), shown only when there is more than one; keeps the URL's ``?session=N`` in step so a
    link reopens the choice (``current_session`` then reads it)."""
    shown, chosen = current_session(db), _chosen_session_id()
    if shown is not None and chosen == shown["id"]:
        st.session_state[CHOSEN] = chosen  # a choice from the link outlives the link
        if st.query_params.get(SESSION_PARAM) != str(chosen):  # e.g. dropped by a page switch
            st.query_params[SESSION_PARAM] = str(chosen)
    else:
        if chosen is not None:  # a link (or an earlier choice) to what is not here: say so
            instead = f"; showing **{shown['name']}**" if shown is not None else ""
            st.warning(f"There is no paper or live session #{chosen} (removed, or a backtest: "
                       f"those open on the Backtest page){instead}.")
        follow_latest_session()  # nothing chosen, or the chosen session is gone
    if shown is None:
        return
    choices = queries.list_sessions(db, limit=PICKER_SIZE)
    if len(choices) > 1:
        if all(c["id"] != shown["id"] for c in choices):
            choices.append(shown)  # an old session opened by its link
        labels = {c["id"]: session_choice_label(c) for c in choices}
        st.session_state[PICKER] = shown["id"]
        st.selectbox("Session", list(labels), format_func=labels.__getitem__, key=PICKER,
                     on_change=_on_pick, args=(db,),
                     help=f"Browse an earlier session (the latest {PICKER_SIZE} are listed); "
                          "the pages show the running one by default.")


def session_choice_label(s: dict[str, Any]) -> str:
    """"Paper desk #3 · stopped · 2025-10-08 · id 12" (the day it started, engine time UTC):
    desk sessions are numbered apart from backtests in their names, so the name leads and the
    store's id (what ``--session`` and ``?session=`` take) comes last."""
    return (f"{s['name']} · {s['status']} · {ms_to_dt(s['created_ms']):%Y-%m-%d} · "
            f"id {s['id']}")


def session_or_stop(db: Engine, what_shows_here: str) -> dict[str, Any]:
    """The session a page shows; without one, say what the page will show and stop the script."""
    session = current_session(db)
    if session is None:
        st.info(f"No session yet. Create one on the Session page: {what_shows_here}",
                icon=":material/waving_hand:")
        st.page_link("views/session.py", label="Go to the Session page",
                     icon=":material/arrow_forward:")
        st.stop()
    return session


def run_action(action: Callable[..., Any], *args: Any, done: str | None = None, **kwargs: Any) -> bool:
    """Run a service command; show its outcome, or its refusal as a readable message."""
    try:
        outcome = action(*args, **kwargs)
    except DeskError as exc:
        st.error(str(exc))
        return False
    message = done or (getattr(outcome, "status", None) and f"Session is now {outcome.status}") or str(outcome)
    st.toast(message)
    return True


OUTCOME = "ui_outcome"  # a button callback's result, shown by the next run of the page


def act_in_callback(action: Callable[..., Any], *args: Any, done: str | None = None,
                    **kwargs: Any) -> None:
    """``run_action`` for a button callback: a callback may run in a fragment's rerun, where
    drawing anything is not supported (Streamlit warns and draws it in the wrong place), so the
    outcome is kept for ``show_outcome`` to draw in the page's own flow."""
    try:
        outcome = action(*args, **kwargs)
    except DeskError as exc:
        st.session_state[OUTCOME] = ("error", str(exc))
        return
    message = done or (getattr(outcome, "status", None) and f"Session is now {outcome.status}") or str(outcome)
    st.session_state[OUTCOME] = ("done", message)


def show_outcome() -> None:
    """Draw what the last button callback did (a toast) or why it was refused (an error)."""
    found = st.session_state.pop(OUTCOME, None)
    if found is None:
        return
    kind, message = found
    if kind == "error":
        st.error(message)
    else:
        st.toast(message)


def pager(total: int, *, page_size: int, key: str, noun: str, order: str) -> int:
    """A page selector with the total; returns the SQL offset of the chosen page."""
    pages = max(1, math.ceil(total / page_size))
    if st.session_state.get(key, 1) > pages:
        st.session_state[key] = pages
    left, right = st.columns([1, 5], vertical_alignment="bottom")
    page = int(left.number_input("Page", min_value=1, max_value=pages, step=1, key=key))
    offset = (page - 1) * page_size
    right.caption(f"Page {page:,} of {pages:,} · {noun} {offset + 1:,}–"
                  f"{min(total, offset + page_size):,} of {total:,}, {order}")
    return offset


def refresh_every() -> int | None:
    """Seconds between live refreshes, or None while the user paused refreshing."""
    return REFRESH_SECONDS if st.session_state.get("live_refresh", True) else None


def sidebar(runtime: Runtime) -> None:
    """The session picker, then the session's mode, equity and the engine's heartbeat, on every page."""
    with st.sidebar:
        session_picker(runtime.db)
        st.toggle("Live refresh (15 s)", value=True, key="live_refresh",
                  help="Pause this to read tables without them moving under you.")
        _sidebar_status(runtime)


@st.fragment(run_every=REFRESH_SECONDS)
def _sidebar_status(runtime: Runtime) -> None:
    # looked up on every refresh: a session created (or removed) from the CLI shows up by itself
    session = current_session(runtime.db)
    if session is None:
        st.info("No session yet — create one on the Session page.")
        return
    status = queries.session_summary(runtime.db, session["id"])
    mode = status["mode"].upper()
    if mode == "LIVE":
        st.error(f"**{mode}** — real money on AsterDex")
    else:
        st.success(f"**{mode}** — simulated venue, replayed real data")
    st.markdown(f"**{status['name']}** · {status_label(status['status'])}")
    st.markdown(f"Equity **{status['equity']:,.2f}** USDT  \n"
                + colored(f"{status['total_pnl']:+,.2f} USDT ({status['total_pnl_pct']:+.2f}%)",
                          status["total_pnl"]))
    engine_status(status)


def engine_status(summary: dict[str, Any], *, only_trouble: bool = False) -> None:
    """The engine's health in a word and a colour: calm while it trades, loud when it does not
    (``only_trouble``: say nothing while all is well or starting, for pages under the sidebar's
    status that show the session's own badge)."""
    level, text = queries.engine_health(summary)
    loud = {"failing": st.error, "down": st.warning, "stalled": st.warning}
    if not only_trouble:
        loud["starting"] = st.info
    if level in loud:
        loud[level](text)
    elif not only_trouble:
        st.caption(text)
    if summary["last_error"] and level != "failing":  # e.g. the replay finished
        st.caption(f"Engine: {summary['last_error']}")


# ---------------------------------------------------------------------- charts
# One look for every candle chart (the Market page's analysis and a trade opened from the
# history): candles over volume, the chosen studies' lines and panels, and per agent (one legend
# entry each, so a click hides an agent) its entries ▲/▼, exits ✕ (green win, red loss), stops
# (dashed red) and take-profits (dashed green) as they rested at the venue.
AGENT_COLORS = {"trend": "#3b82f6", "momentum": "#f59e0b", "mean_reversion": "#a855f7",
                "scalper": "#06b6d4", "arbitrage": "#ec4899"}
OUTLINE = "#f5f5f5"
LINE_COLORS = {"ema_20": "#eab308", "ema_50": "#8b5cf6", "sma_20": "#94a3b8", "bb_upper": "#94a3b8",
               "bb_lower": "#94a3b8", "ema_5": "#22d3ee", "ema_13": "#f472b6", "hh_20": "#a3a3a3",
               "ll_20": "#a3a3a3"}
DASHED = ("bb_upper", "bb_lower", "hh_20", "ll_20")
PRICE_HEIGHT, PANEL_HEIGHT = 420, 120


def agent_color(key: str | None) -> str:
    return AGENT_COLORS.get(key or "", NEUTRAL)


def _hover_text(text: Any, width: int = 80) -> str:
    import textwrap

    plain = text if isinstance(text, str) else ""
    safe = plain.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return "<br>".join(textwrap.wrap(safe, width)) or "no reasoning recorded"


def _agent_marks(fig: Any, chart: Any, agents: list[str] | None) -> None:
    import plotly.graph_objects as go

    span = chart.span_ms
    trades = chart.trades if agents is None else chart.trades[chart.trades["agent"].isin(agents)]
    if span is None or trades.empty:
        return
    lo, hi = span
    for (agent, key), part in trades.groupby(["agent", "agent_key"], sort=False):
        color, legend = agent_color(key), [True]

        def add(trace: Any, agent: str = str(agent), legend: list[bool] = legend) -> None:
            trace.update(legendgroup=agent, name=agent, showlegend=legend[0])
            legend[0] = False
            fig.add_trace(trace, row=1, col=1)

        entries = part[part["opened_ms"].between(lo, hi)]
        if not entries.empty:
            add(go.Scatter(
                x=entries["entry_time"], y=entries["entry_price"], mode="markers",
                marker={"symbol": ["triangle-up" if s == "LONG" else "triangle-down"
                                   for s in entries["side"]],
                        "size": 14, "color": color, "line": {"width": 1.5, "color": OUTLINE}},
                customdata=[[a, s, price_text(p, chart.symbol), lev, price_text(sl, chart.symbol), price_text(tp, chart.symbol),
                             v if isinstance(v, str) else "–",
                             _hover_text(r), i] for a, s, p, lev, sl, tp, v, r, i in zip(
                    entries["agent"], entries["side"], entries["entry_price"], entries["leverage"],
                    entries["stop_price"], entries["take_profit"], entries["verdict"],
                    entries["reasoning"], entries["trade_id"], strict=True)],
                hovertemplate="<b>%{customdata[0]}</b> · trade #%{customdata[8]}<br>%{customdata[1]} "
                              "entry at %{customdata[2]} USDT · %{customdata[3]}x<br>stop "
                              "%{customdata[4]} · take-profit %{customdata[5]} · CEO "
                              "%{customdata[6]}<br>%{x|%Y-%m-%d %H:%M} " + zone_name() + "<br><br>"
                              "%{customdata[7]}<extra></extra>"))
        exits = part[(part["status"] == "closed") & part["closed_ms"].between(lo, hi)
                     & part["exit_price"].notna()]
        if not exits.empty:
            pnl = exits["net_pnl"].astype(float)
            add(go.Scatter(
                x=exits["exit_time"], y=exits["exit_price"], mode="markers",
                marker={"symbol": "x", "size": 13, "color": [pnl_color(v) for v in pnl],
                        "line": {"width": 2, "color": color}},
                customdata=[[a, s, price_text(p, chart.symbol), CLOSE_REASON_LABEL.get(r, r or "–"), f"{v:+,.2f}", i]
                            for a, s, p, r, v, i in zip(
                    exits["agent"], exits["side"], exits["exit_price"], exits["close_reason"], pnl,
                    exits["trade_id"], strict=True)],
                hovertemplate="<b>%{customdata[0]}</b> · trade #%{customdata[5]}<br>%{customdata[1]} "
                              "exit at %{customdata[2]} USDT (%{customdata[3]})<br>net PnL "
                              "%{customdata[4]} USDT<br>%{x|%Y-%m-%d %H:%M} " + zone_name()
                              + "<extra></extra>"))
        levels = chart.levels[chart.levels["trade_id"].isin(part["trade_id"])]
        for kind, line_color, word in (("stop_loss", LOSS, "stop"), ("take_profit", PROFIT, "take-profit")):
            seg = levels[levels["kind"] == kind]
            if seg.empty:
                continue
            xs: list[Any] = []
            ys: list[Any] = []
            text: list[Any] = []
            for r in seg.itertuples():
                label = f"{agent} {word} {price_text(r.price, chart.symbol)} · trade #{r.trade_id} ({r.status.lower()})"
                xs += [r.from_time, r.to_time, None]
                ys += [r.price, r.price, None]
                text += [label, label, None]
            add(go.Scatter(x=xs, y=ys, mode="lines", text=text, hovertemplate="%{text}<extra></extra>",
                           line={"color": line_color, "width": 1.5, "dash": "dash"}))


def _in_display_zone(chart: Any) -> Any:
    """The chart with every time as wall-clock time of the display zone (a copy; UTC: as is)."""
    if zone_name() == "UTC":
        return chart
    import dataclasses

    def shifted(frame: pd.DataFrame, columns: tuple[str, ...]) -> pd.DataFrame:
        out = frame.copy()
        for column in columns:
            if column in out:
                out[column] = chart_times(out[column])
        return out

    return dataclasses.replace(
        chart, candles=shifted(chart.candles, ("time",)),
        trades=shifted(chart.trades, ("entry_time", "exit_time")),
        levels=shifted(chart.levels, ("from_time", "to_time")))


def analysis_figure(chart: Any, studies: list[str], agents: list[str] | None = None) -> Any:
    """The chart of a ``queries.Chart``: candles (with the chosen overlay studies and the agents'
    marks) over volume, then one panel per chosen panel study with its threshold levels."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    chart = _in_display_zone(chart)
    chosen = [v.study for v in chart.studies if v.study.key in studies]
    panels = [s for s in chosen if s.panel]
    heights = [PRICE_HEIGHT] + [PANEL_HEIGHT] * (1 + len(panels))
    fig = make_subplots(rows=len(heights), cols=1, shared_xaxes=True, vertical_spacing=0.025,
                        row_heights=heights)
    c = chart.candles
    fig.add_trace(go.Candlestick(
        x=c["time"], open=c["open"], high=c["high"], low=c["low"], close=c["close"],
        name=f"{chart.symbol} {chart.interval}", opacity=0.8,
        increasing={"line": {"color": PROFIT}, "fillcolor": PROFIT},
        decreasing={"line": {"color": LOSS}, "fillcolor": LOSS}), row=1, col=1)
    for study in (s for s in chosen if not s.panel):
        for col, name in study.lines:
            fig.add_trace(go.Scatter(
                x=c["time"], y=c[col], mode="lines", name=name, legendgroup=study.key,
                line={"color": LINE_COLORS.get(col, NEUTRAL), "width": 1.3,
                      "dash": "dash" if col in DASHED else "solid"},
                hovertemplate=f"{name} %{{y:,.2f}}<extra></extra>"), row=1, col=1)
    _agent_marks(fig, chart, agents)
    volume = chart.volume.study
    fig.add_trace(go.Bar(
        x=c["time"], y=c["volume"], name="Volume", showlegend=False, opacity=0.55,
        marker_color=[PROFIT if cl >= op else LOSS for op, cl in zip(c["open"], c["close"], strict=True)],
        hovertemplate="volume %{y:,.2f}<extra></extra>"), row=2, col=1)
    column, name = volume.lines[1]
    fig.add_trace(go.Scatter(x=c["time"], y=c[column], mode="lines", name=name, showlegend=False,
                             line={"color": NEUTRAL, "width": 1, "dash": "dot"},
                             hovertemplate=f"{name} %{{y:,.2f}}<extra></extra>"), row=2, col=1)
    fig.update_yaxes(title_text="Volume", row=2, col=1)
    for row, study in enumerate(panels, start=3):
        for col, name in study.lines:
            fig.add_trace(go.Scatter(
                x=c["time"], y=c[col] * study.scale, mode="lines", name=name, showlegend=False,
                line={"color": "#3b82f6", "width": 1.3},
                hovertemplate=f"{name} %{{y:,.2f}}{study.unit if study.unit == '%' else ''}"
                              "<extra></extra>"), row=row, col=1)
        for value, label in study.levels:
            fig.add_hline(y=value, row=row, col=1, line={"color": NEUTRAL, "width": 1, "dash": "dot"},
                          annotation_text=label, annotation_position="top left",
                          annotation_font_size=10)
        fig.update_yaxes(title_text=study.label + (" (%)" if study.unit == "%" else ""), row=row, col=1)
    fig.update_layout(
        height=sum(heights) + 60, margin={"l": 10, "r": 10, "t": 30, "b": 10},
        xaxis_rangeslider_visible=False, hovermode="closest",
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.01, "x": 0})
    fig.update_xaxes(gridcolor="rgba(128,128,128,0.15)")
    fig.update_xaxes(title_text=f"engine time ({zone_name()})", row=len(heights), col=1)
    fig.update_yaxes(gridcolor="rgba(128,128,128,0.15)")
    fig.update_yaxes(title_text="USDT", tickformat=",", row=1, col=1)
    return fig
