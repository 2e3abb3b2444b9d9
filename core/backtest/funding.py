"""The backtest report's funding section: what each agent paid and received, and where the rates
came from.

Funding settles from the funding rates recorded beside the candles (core/funding.py); where a
symbol has no history for part of the range the paper venue falls back to the configured constant.
A report that mixed the two silently would pass an invented cost off as a recorded one, so this
section counts the settlements of each kind and names the symbols and periods of the fallback.
Pure functions over the run's funding payments, like core/backtest/report.py.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from core.models import ms_to_dt

NO_AGENT = "(no agent)"


@dataclass(frozen=True, slots=True)
class Payment:
    """One funding settlement booked on a position: ``amount`` > 0 was received."""

    agent: str | None
    symbol: str
    amount: float
    ts_ms: int
    from_history: bool


def _when(ms: int) -> str:
    return f"{ms_to_dt(ms):%Y-%m-%d %H:%M} UTC"


def _sums(payments: Sequence[Payment]) -> dict[str, Any]:
    paid = -sum(p.amount for p in payments if p.amount < 0)
    received = sum(p.amount for p in payments if p.amount > 0)
    return {"paid": paid, "received": received, "net": received - paid,
            "settlements": len(payments),
            "from_history": sum(1 for p in payments if p.from_history),
            "from_fallback": sum(1 for p in payments if not p.from_history)}


def funding_section(*, payments: Sequence[Payment], agents: Sequence[str],
                    symbols: Sequence[str], history: Mapping[str, tuple[int, int] | None],
                    uncovered: Mapping[str, Sequence[tuple[int, int]]], fallback_rate: float,
                    interval_hours: int) -> dict[str, Any]:
    """``history``: each symbol's first and last recorded funding time (None: no file);
    ``uncovered``: the spans of the run's range each symbol's history does not cover, where the
    venue settled at ``fallback_rate`` every ``interval_hours``."""
    per_agent = [{"agent": name, **_sums([p for p in payments if p.agent == name])}
                 for name in agents]
    orphans = [p for p in payments if p.agent is None or p.agent not in agents]
    if orphans:
        per_agent.append({"agent": NO_AGENT, **_sums(orphans)})
    per_symbol = []
    for symbol in symbols:
        span = history.get(symbol)
        per_symbol.append({
            "symbol": symbol,
            "history_from_ms": span[0] if span else None, "history_to_ms": span[1] if span else None,
            **_sums([p for p in payments if p.symbol == symbol])})
    periods = []
    for symbol in symbols:
        for lo, hi in uncovered.get(symbol, ()):
            periods.append({
                "symbol": symbol, "from_ms": lo, "to_ms": hi, "from": _when(lo), "to": _when(hi),
                "settlements": sum(1 for p in payments if p.symbol == symbol
                                   and not p.from_history and lo <= p.ts_ms <= hi)})
    out = {**_sums(payments), "fallback_rate": fallback_rate, "interval_hours": interval_hours,
           "per_agent": per_agent, "per_symbol": per_symbol, "fallback_periods": periods}
    out["statement"] = statement(out)
    return out


def statement(section: Mapping[str, Any]) -> str:
    """One paragraph for the CLI, the CSV's notes and the session's log."""
    n, hist, fall = section["settlements"], section["from_history"], section["from_fallback"]
    money = (f"Funding: paid {section['paid']:,.2f} USDT, received {section['received']:,.2f} "
             f"(net {section['net']:+,.2f}) over {n:,} settlement{'s' if n != 1 else ''}")
    rate = (f"the configured {section['fallback_rate']:.4%} every {section['interval_hours']} h")
    periods = section["fallback_periods"]
    if not periods:
        return f"{money}, all at Binance's recorded rates (funding history covers the whole range)."
    where = "; ".join(f"{p['symbol']} {p['from']} → {p['to']} ({p['settlements']:,} settled)"
                      for p in periods)
    return (f"{money}: {hist:,} at Binance's recorded rates, {fall:,} at {rate} where the data has "
            f"no funding history: {where}.")
