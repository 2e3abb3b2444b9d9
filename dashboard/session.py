"""What the pages share about the session on screen: which one is shown (the sidebar's picker,
``?session=N``), the sidebar itself, button actions and their outcomes, paging and refresh."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import streamlit as st
from sqlalchemy import Engine

from core import queries
from core.desk.context import ACTIVE_SESSION
from core.errors import DeskError
from core.models import ms_to_dt
from dashboard.formatting import colored, status_label
from dashboard.runtime import Runtime

REFRESH_SECONDS = 15
ACTIVE = ACTIVE_SESSION  # the statuses an engine still ticks
PICKER = "session_picker"  # the sidebar selectbox's widget key
CHOSEN = "session_chosen"  # the tab's explicit choice (None: follow the latest session)
SESSION_PARAM = "session"  # ?session=N in the URL reopens a chosen session
PICKER_SIZE = 50  # sessions listed in the picker, newest first


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
    # a link's id: ASCII digits within a 64-bit id, anything else is no choice
    return int(raw) if raw.isascii() and raw.isdigit() and int(raw) < 2**63 else None


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
                  help="Pause this to read tables (and the sidebar) without them moving under "
                       "you.")
        # on the pages' own clock: paused with them, so the sidebar's equity never runs ahead
        # of a page the trader froze to read
        st.fragment(run_every=refresh_every())(_sidebar_status)(runtime)


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
