"""The events the desk alerts on, with their default severity and what each tells.

Why it exists: ALERT_URLS subscriptions, ALERT_KINDS_OFF and every writer refer to kinds by
name, so the one list lives here and every name is checked against it (a typo in a subscription
is a ``ConfigError``, never a target that silently hears nothing).
"""

from __future__ import annotations

from core.errors import ConfigError

SEVERITIES = ("info", "warning", "critical")

# kind: (default severity, what it tells)
KINDS: dict[str, tuple[str, str]] = {
    "session_created": ("info", "a session was created"),
    "session_paused": ("info", "the session was paused (no new trades)"),
    "session_resumed": ("info", "the session was resumed, or its drawdown halt acknowledged"),
    "session_stopped": ("info", "the session stopped with every position closed"),
    "session_halted": ("critical", "drawdown halt: everything closed, with the figures"),
    "agent_paused": ("warning", "the CEO paused an agent, and why"),
    "agent_resumed": ("info", "the CEO resumed an agent after its cooldown"),
    "trade_opened": ("info", "a position opened: agent, symbol, side, size, entry"),
    "trade_closed": ("info", "a position closed (agent, CEO, user, take-profit, halt, stop of "
                             "the session): PnL"),
    "trade_stopped": ("warning", "a position's stop filled: PnL"),
    "trade_liquidated": ("critical", "a position was liquidated: PnL"),
    "position_naked": ("warning", "a position was found without its stop, and for how long"),
    "engine_failing": ("critical", "the engine's ticks started failing"),
    "engine_recovered": ("info", "the engine's ticks complete again after failures"),
    "reconcile_changes": ("warning", "a live restart found the venue differing from the books"),
    "llm_budget_spent": ("warning", "the day's LLM budget is spent"),
    "backtest_finished": ("info", "a backtest finished (done, failed or interrupted)"),
    "study_finished": ("info", "a study or walk-forward finished (done or interrupted)"),
}


def rank(severity: str) -> int:
    """Order of severities: info < warning < critical."""
    return SEVERITIES.index(severity)


def check_severity(text: str, *, where: str) -> str:
    value = text.strip().lower()
    if value not in SEVERITIES:
        raise ConfigError(f"{where}: severity {text!r} is not one of {', '.join(SEVERITIES)}")
    return value


def parse_kinds(text: str, *, where: str) -> frozenset[str]:
    """Kinds from a comma-separated list: names, ``prefix_*`` wildcards, ``*`` for all, and
    ``-item`` to take some away again (``*,-trade_opened``). Empty means none."""
    chosen: set[str] = set()
    for raw in text.split(","):
        item = raw.strip().lower()
        if not item:
            continue
        drop = item.startswith("-")
        names = _expand(item[1:] if drop else item, where=where)
        if drop:
            chosen -= names
        else:
            chosen |= names
    return frozenset(chosen)


def _expand(item: str, *, where: str) -> set[str]:
    if item in ("*", "all"):
        return set(KINDS)
    if item.endswith("*"):
        names = {k for k in KINDS if k.startswith(item[:-1])}
    else:
        names = {item} if item in KINDS else set()
    if not names:
        raise ConfigError(f"{where}: no alert kind {item!r}; kinds are: {', '.join(KINDS)}")
    return names
