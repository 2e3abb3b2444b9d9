"""The read model shared by the CLI and the dashboard.

Aggregates are computed in SQL and long tables are paged (``limit``/``offset``), so a page stays fast
however long the history grows. Every list the dashboard filters (CEO log, trades) has one set of
filter arguments shared by its rows, its count, its summary and its CSV, so a download holds exactly
what the table shows; ``ceo_filters``/``trade_filters`` map the pages' selections to them. CSVs are
built in chunks from a streamed query. Unrealized PnL uses the marks the engine writes with every
tick; market views read the session's feed at the session's engine time.

Callers use this package as one module (``from core import queries``; ``queries.trades(...)``);
the code lives in ``common`` (shared helpers and constants), ``session`` (session and agent
state), ``ceo`` (the CEO log), ``trade_history`` (closed trades), ``market`` (the session's
feed) and ``chart`` (candles with the agents' indicators and marks; ``studies`` says which
indicators each agent reads) and ``agent_equity`` (per-agent equity curves) and ``alerts``
(the alert targets, masked, and the outbox with each delivery's outcome). Every name is re-exported here, the private helpers other modules use included (the CLI
formats times with ``queries._iso``). Re-exported constants are copies: to change one for a test,
patch it in the module that defines it (``core.queries.common.CSV_CHUNK``).
"""

from __future__ import annotations

from core.queries.agent_equity import AGENT_EQUITY_COLUMNS, agent_equity_curves
from core.queries.alerts import (
    ALERT_STATUSES,
    alert_counts,
    alert_targets,
    delivery_summary,
    recent_alerts,
)

# --- backtests
from core.queries.backtests import (
    AGENT_FIGURES,
    BUY_AND_HOLD_FIGURES,
    COMPARE_ROWS,
    COMPARE_SETUP,
    MAX_CANDLES,
    agent_table,
    backtest_candles,
    backtest_progress,
    backtest_run,
    backtest_runs,
    buy_and_hold_table,
    compare_runs,
    report_rows,
    run_range,
)
from core.queries.ceo import (
    ALLOCATION_KINDS,
    CEO_COLUMNS,
    CEO_KINDS,
    VERDICTS,
    _ceo_frame,
    _ceo_select,
    _ceo_where,
    allocation_changes,
    ceo_filters,
    ceo_kind_counts,
    ceo_log,
    ceo_log_count,
    ceo_log_csv,
    ceo_rules,
    ceo_verdict_counts,
    changed_fields,
)
from core.queries.chart import (
    LEVEL_COLUMNS,
    TRADE_MARK_COLUMNS,
    Chart,
    StudyView,
    chart_analysis,
    trade_chart,
)
from core.queries.common import (
    _ANY,
    CSV_CHUNK,
    _agent_ids,
    _chosen,
    _iso,
    _iso_column,
    _marks,
    _records,
    _stream_csv,
)
from core.queries.live import venue_account
from core.queries.llm import agent_llm_stats, session_llm, trade_chain
from core.queries.market import (
    CANDLE_COLUMNS,
    MARKER_COLUMNS,
    MARKET_COLUMNS,
    MAX_MARKERS,
    _session_feed,
    market_candles,
    market_overview,
)
from core.queries.session import (
    MANUAL_COLUMNS,
    agent_names,
    agent_stats,
    desk_session,
    engine_health,
    equity_curve,
    latest_session,
    list_sessions,
    manual_order,
    manual_orders,
    open_orders,
    open_positions,
    session_status,
    session_summary,
    session_symbols,
)
from core.queries.trade_history import (
    _TRADE_RAW,
    CLOSE_REASONS,
    SIDES,
    TRADE_COLUMNS,
    _trade_frame,
    _trade_select,
    _trade_where,
    day_start_ms,
    trade_filters,
    trade_summary,
    trade_time_range,
    trades,
    trades_count,
    trades_csv,
)

__all__ = [
    "AGENT_EQUITY_COLUMNS",
    "AGENT_FIGURES",
    "ALERT_STATUSES",
    "ALLOCATION_KINDS",
    "BUY_AND_HOLD_FIGURES",
    "CANDLE_COLUMNS",
    "CEO_COLUMNS",
    "CEO_KINDS",
    "CLOSE_REASONS",
    "COMPARE_ROWS",
    "COMPARE_SETUP",
    "CSV_CHUNK",
    "LEVEL_COLUMNS",
    "MANUAL_COLUMNS",
    "MARKER_COLUMNS",
    "MARKET_COLUMNS",
    "MAX_CANDLES",
    "MAX_MARKERS",
    "SIDES",
    "TRADE_COLUMNS",
    "TRADE_MARK_COLUMNS",
    "VERDICTS",
    "_ANY",
    "_TRADE_RAW",
    "Chart",
    "StudyView",
    "_agent_ids",
    "_ceo_frame",
    "_ceo_select",
    "_ceo_where",
    "_chosen",
    "_iso",
    "_iso_column",
    "_marks",
    "_records",
    "_session_feed",
    "_stream_csv",
    "_trade_frame",
    "_trade_select",
    "_trade_where",
    "agent_equity_curves",
    "agent_llm_stats",
    "agent_names",
    "agent_stats",
    "agent_table",
    "alert_counts",
    "alert_targets",
    "allocation_changes",
    "backtest_candles",
    "backtest_progress",
    "backtest_run",
    "backtest_runs",
    "buy_and_hold_table",
    "ceo_filters",
    "ceo_kind_counts",
    "ceo_log",
    "ceo_log_count",
    "ceo_log_csv",
    "ceo_rules",
    "ceo_verdict_counts",
    "changed_fields",
    "chart_analysis",
    "compare_runs",
    "day_start_ms",
    "delivery_summary",
    "desk_session",
    "engine_health",
    "equity_curve",
    "latest_session",
    "list_sessions",
    "manual_order",
    "manual_orders",
    "market_candles",
    "market_overview",
    "open_orders",
    "open_positions",
    "recent_alerts",
    "report_rows",
    "run_range",
    "session_llm",
    "session_status",
    "session_summary",
    "session_symbols",
    "trade_chain",
    "trade_chart",
    "trade_filters",
    "trade_summary",
    "trade_time_range",
    "trades",
    "trades_count",
    "trades_csv",
    "venue_account",
]
