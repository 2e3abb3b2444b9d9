"""What every dashboard page shares; beside ``views/``, the only package that knows Streamlit.

It lives outside ``core`` so the engine never depends on the UI: it imports ``core``, nothing in
``core`` imports it (a contract in pyproject.toml).


- ``runtime``: the per-process runtime (settings, database, the in-app engine);
- ``login``: the password gate, with its per-client throttle of wrong guesses;
- ``formatting``: money, percentages, prices at their tick size, times in the display zone,
  table columns, colours;
- ``session``: the session on screen (sidebar, picker, ``?session=N``), button actions and their
  outcomes, paging and refresh;
- ``charts``: the chart analysis figure.

Pages import this package, ``core.queries`` and ``core.service`` only; this package may import
anything in ``core`` (the import-linter contracts in pyproject.toml say which).
"""

from __future__ import annotations

from dashboard.charts import agent_color, analysis_figure
from dashboard.formatting import (
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
    chart_times,
    colored,
    duration,
    hours,
    number_column,
    pct,
    pnl_color,
    price_column,
    price_decimals,
    price_text,
    shown_times,
    status_label,
    tick_prices,
    usd,
    zone_name,
    zoned,
)
from dashboard.login import LoginThrottle, login_throttle, password_gate
from dashboard.runtime import Runtime, get_runtime
from dashboard.session import (
    ACTIVE,
    act_in_callback,
    current_session,
    engine_status,
    follow_latest_session,
    pager,
    refresh_every,
    run_action,
    session_choice_label,
    session_or_stop,
    show_outcome,
    sidebar,
)

__all__ = [
    "ACTIVE", "CLOSE_REASON_LABEL", "GROSS_HELP", "HOURS", "LEVERAGE", "LOSS", "MISSING", "MONEY",
    "NEUTRAL", "PROFIT", "QTY", "SIGNED_MONEY", "LoginThrottle", "Runtime", "act_in_callback",
    "agent_color", "analysis_figure", "chart_times", "colored", "current_session", "duration",
    "engine_status", "follow_latest_session", "get_runtime", "hours", "login_throttle",
    "number_column", "pager", "password_gate", "pct", "pnl_color", "price_column",
    "price_decimals", "price_text", "refresh_every", "run_action", "session_choice_label",
    "session_or_stop", "show_outcome", "shown_times", "sidebar", "status_label", "tick_prices",
    "usd", "zone_name", "zoned",
]
