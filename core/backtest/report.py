"""The backtest report: pure functions over a run's closed trades, equity curve, CEO log and the
symbols' closes. No I/O, so a test can recompute every figure by hand.

Conventions (stated in the report itself, ``CONVENTIONS``):
- returns are simple; total return = final equity / initial capital − 1;
- CAGR = (final / initial) ** (1 / years) − 1 with years = range length / 365 days (crypto trades
  every day);
- max drawdown = the largest fall of equity below its running peak, on the equity curve (one point
  per bar, after the bar's orders, starting from the initial capital);
- Sharpe = mean / standard deviation (sample, ddof=1) of the per-bar returns of the equity curve,
  times √(bars per year) with 365 × 24 h per year and a zero risk-free rate; Sortino = mean /
  downside deviation (root mean square of the negative returns, zeros elsewhere) × the same root;
- a trade's result is net: realized PnL − fees + funding (funding > 0 was received); profit factor
  = gross winning / gross losing results (None without losses); win rate = winners / trades;
- exposure = the share of bars ending with at least one open position, and the average gross
  notional / equity;
- the annualised figures (CAGR, Sharpe, Sortino) are given only for ranges of at least 90 days
  (``MIN_ANNUAL_DAYS``): a week's gain or a month's noise annualises to absurd figures, so a
  shorter report leaves them out and says why (``annualised``);
- per agent the same from its own closed trades (capital moved by rebalances is not a result):
  return = its net result / its initial capital, max drawdown on its closed-trade curve (initial
  capital + cumulative results in closing order), Sharpe and Sortino from daily results / initial
  capital × √365, exposure = share of the range with a position open.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import numpy as np

from core.models import ms_to_dt

YEAR_MS = 365 * 86_400_000
DAY_MS = 86_400_000
CURVE_POINTS = 500

CONVENTIONS = (
    "Simple returns. CAGR over 365-day years. CAGR, Sharpe and Sortino only for ranges of 90 days "
    "or more. Max drawdown on the "
    "per-bar equity curve. Sharpe and Sortino from per-bar returns, annualised by √(bars in 365 days of 24 h), zero risk-free rate "
    "(per agent: daily results on its initial capital, × √365). Trade results are net of fees "
    "and funding. Exposure: share of bars with a position open; average gross notional / equity."
)


@dataclass(frozen=True, slots=True)
class Trade:
    agent: str
    symbol: str
    side: str
    opened_ms: int
    closed_ms: int
    realized_pnl: float
    fees: float
    funding: float
    exit_qty: float
    exit_price: float
    close_reason: str

    @property
    def net(self) -> float:
        return self.realized_pnl - self.fees + self.funding


@dataclass(frozen=True, slots=True)
class CurvePoint:
    ts_ms: int
    equity: float
    gross_notional: float


@dataclass(frozen=True, slots=True)
class Decision:
    kind: str
    verdict: str | None
    rules: str
    changes: dict[str, Any] | None
    ts_ms: int = 0


# ---------------------------------------------------------------------------------------- figures
def max_drawdown(values: Sequence[float]) -> float:
    """Largest fall below the running peak, as a fraction (0 when it never fell)."""
    peak, worst = -math.inf, 0.0
    for v in values:
        peak = max(peak, v)
        if peak > 0:
            worst = max(worst, 1 - v / peak)
    return worst


MIN_ANNUAL_DAYS = 90


def annualised(span_ms: int) -> dict[str, Any]:
    """Whether a range is long enough for annual figures, and the sentence that says so."""
    days = span_ms / DAY_MS
    shown = days >= MIN_ANNUAL_DAYS
    why = ("" if shown else f"CAGR, Sharpe and Sortino need a range of {MIN_ANNUAL_DAYS} days or "
           f"more; this one covers {days:,.1f} days, which would annualise to misleading figures.")
    return {"shown": shown, "days": days, "min_days": MIN_ANNUAL_DAYS, "why": why}


def cagr(initial: float, final: float, span_ms: int) -> float | None:
    if initial <= 0 or span_ms < MIN_ANNUAL_DAYS * DAY_MS:
        return None
    if final <= 0:
        return -1.0
    try:
        return (final / initial) ** (YEAR_MS / span_ms) - 1
    except OverflowError:  # a short range of big gains has no meaningful annual figure
        return None


def sharpe(returns: Sequence[float], periods_per_year: float) -> float | None:
    if len(returns) < 2:
        return None
    arr = np.asarray(returns, dtype=float)
    sd = float(arr.std(ddof=1))
    if sd == 0 or not math.isfinite(sd):
        return None
    return float(arr.mean()) / sd * math.sqrt(periods_per_year)


def sortino(returns: Sequence[float], periods_per_year: float) -> float | None:
    if len(returns) < 2:
        return None
    arr = np.asarray(returns, dtype=float)
    downside = math.sqrt(float(np.mean(np.minimum(arr, 0.0) ** 2)))
    if downside == 0:
        return None
    return float(arr.mean()) / downside * math.sqrt(periods_per_year)


def trade_stats(trades: Sequence[Trade]) -> dict[str, Any]:
    nets = [t.net for t in trades]
    won = sum(n for n in nets if n > 0)
    lost = -sum(n for n in nets if n < 0)
    return {
        "trades": len(trades),
        "wins": sum(1 for n in nets if n > 0),
        "win_rate": (sum(1 for n in nets if n > 0) / len(nets)) if nets else None,
        "profit_factor": (won / lost) if lost > 0 else None,
        "net_pnl": sum(nets),
        "fees": sum(t.fees for t in trades),
        "funding_paid": -sum(t.funding for t in trades),
        "avg_trade": (sum(nets) / len(nets)) if nets else None,
    }


def portfolio(initial: float, start_ms: int, end_ms: int, interval_ms: int,
              curve: Sequence[CurvePoint], trades: Sequence[Trade]) -> dict[str, Any]:
    equity = [initial] + [p.equity for p in curve]
    returns = [b / a - 1 if a > 0 else 0.0 for a, b in pairwise(equity)]
    per_year = YEAR_MS / interval_ms
    final = equity[-1]
    exposed = [p for p in curve if p.gross_notional > 0]
    annual = annualised(end_ms - start_ms)["shown"]
    out = {
        "initial_capital": initial,
        "final_equity": final,
        "total_return": final / initial - 1,
        "cagr": cagr(initial, final, end_ms - start_ms),
        "max_drawdown": max_drawdown(equity),
        "sharpe": sharpe(returns, per_year) if annual else None,
        "sortino": sortino(returns, per_year) if annual else None,
        "exposure_time": len(exposed) / len(curve) if curve else 0.0,
        "avg_gross_exposure": (sum(p.gross_notional / p.equity for p in curve if p.equity > 0)
                               / len(curve)) if curve else 0.0,
    }
    out.update(trade_stats(trades))
    return out


def agent_figures(name: str, initial: float, start_ms: int, end_ms: int,
                  trades: Sequence[Trade]) -> dict[str, Any]:
    mine = sorted((t for t in trades if t.agent == name), key=lambda t: (t.closed_ms, t.opened_ms))
    stats = trade_stats(mine)
    curve = [initial]
    for t in mine:
        curve.append(curve[-1] + t.net)
    days = max(1, math.ceil((end_ms - start_ms) / DAY_MS))
    daily = [0.0] * days
    for t in mine:
        daily[min(days - 1, max(0, (t.closed_ms - start_ms) // DAY_MS))] += t.net
    daily_returns = [d / initial for d in daily] if initial > 0 else []
    held = _union_ms([(max(t.opened_ms, start_ms), min(t.closed_ms, end_ms)) for t in mine])
    annual = annualised(end_ms - start_ms)["shown"]
    return {
        "agent": name,
        "initial_capital": initial,
        "total_return": stats["net_pnl"] / initial if initial > 0 else None,
        "cagr": cagr(initial, initial + stats["net_pnl"], end_ms - start_ms),
        "max_drawdown": max_drawdown(curve),
        "sharpe": sharpe(daily_returns, 365) if annual else None,
        "sortino": sortino(daily_returns, 365) if annual else None,
        "exposure_time": held / (end_ms - start_ms) if end_ms > start_ms else 0.0,
        **stats,
    }


def _union_ms(spans: list[tuple[int, int]]) -> int:
    total, cur_start, cur_end = 0, None, None
    for a, b in sorted(s for s in spans if s[1] > s[0]):
        if cur_end is None or a > cur_end:
            if cur_end is not None and cur_start is not None:
                total += cur_end - cur_start
            cur_start, cur_end = a, b
        else:
            cur_end = max(cur_end, b)
    if cur_end is not None and cur_start is not None:
        total += cur_end - cur_start
    return total


def ceo_stats(decisions: Sequence[Decision]) -> dict[str, Any]:
    trades = [d for d in decisions if d.kind == "trade"]
    rejected_by: Counter[str] = Counter()
    modified_by: Counter[str] = Counter()
    for d in trades:
        rules = [r for r in d.rules.split(",") if r]
        if d.verdict == "reject" and rules:
            rejected_by[rules[-1]] += 1  # the rule that vetoed
        elif d.verdict == "modify":
            modified_by.update(rules)
    kinds = Counter(d.kind for d in decisions)
    return {
        "approvals": sum(1 for d in trades if d.verdict == "approve"),
        "modifications": sum(1 for d in trades if d.verdict == "modify"),
        "rejections": sum(1 for d in trades if d.verdict == "reject"),
        "rejections_by_rule": dict(rejected_by.most_common()),
        "modifications_by_rule": dict(modified_by.most_common()),
        "pauses": kinds.get("pause", 0),
        "resumes": kinds.get("resume", 0),
        "rebalances": kinds.get("rebalance", 0),
        "halts": kinds.get("halt", 0),
    }


def halt_check(*, ceo: bool, limit: float, max_dd: float, decisions: Sequence[Decision],
               trades: Sequence[Trade], closing_cost_rate: float,
               tick_sizes: dict[str, float] | None = None,
               end_ms: int | None = None) -> dict[str, Any]:
    """Did the drawdown halt hold? With the CEO on, max drawdown must stay within the limit plus
    the slippage and fees of the orders that closed the book at the halt: the halt's own closes
    and the stops that filled in the bar it fired in (slippage includes the rounding of their
    prices to the tick, at most one tick each). When it fired, the statement says when, and how
    long the desk then stayed flat (a halted session waits for a user; nobody acknowledges it in
    a backtest)."""
    if not ceo:
        return {"applies": False, "held": None, "limit": limit, "allowance": 0.0,
                "max_drawdown": max_dd,
                "statement": f"CEO off: no drawdown halt; max drawdown {max_dd:.2%}."}
    halts = [d for d in decisions if d.kind == "halt"]
    allowance, at_halt, halt_ms, when = 0.0, None, None, ""
    if halts:
        ticks = tick_sizes or {}
        halt_ms = halts[0].ts_ms
        cost = sum(t.exit_qty * (closing_cost_rate * t.exit_price + ticks.get(t.symbol, 0.0))
                   for t in trades if t.close_reason == "drawdown_halt"
                   or (t.close_reason == "stop_loss" and t.closed_ms == halt_ms))
        before = (halts[0].changes or {}).get("equity") or [0.0, 0.0]
        peak = float(before[0]) if before and before[0] else 0.0
        allowance = cost / peak if peak > 0 else 0.0
        at_halt = 1 - float(before[1]) / peak if peak > 0 and len(before) > 1 else None
        when = f" It fired on {ms_to_dt(halt_ms):%Y-%m-%d %H:%M} UTC"
        if end_ms is not None and end_ms - halt_ms >= DAY_MS / 10:
            when += (f"; the desk then stayed flat for the last {(end_ms - halt_ms) / DAY_MS:,.1f} "
                     "days of the range (a halted session waits for a user to acknowledge it)")
        when += "."
    held = max_dd <= limit + allowance + 1e-9
    bound = f"the {limit:.0%} limit" + (f" + {allowance:.2%} slippage and fees of the closing orders"
                                        if halts else "")
    if halts and held:
        statement = (f"The drawdown halt held: it fired and max drawdown {max_dd:.2%} stayed within "
                     f"{bound}.{when}")
    elif held:
        statement = (f"The drawdown halt held: max drawdown {max_dd:.2%} stayed under {bound}; "
                     "it never had to fire.")
    else:
        where = (f"it fired at {at_halt:.2%}: the bar that crossed the limit (stops filled inside "
                 "it, prices gapped) went past it before the halt could act on the bar's close"
                 if at_halt is not None else "equity fell past the limit within one bar")
        statement = (f"The drawdown halt did NOT hold: max drawdown {max_dd:.2%} is beyond {bound}; "
                     f"{where}.{when}")
    return {"applies": True, "held": held, "limit": limit, "allowance": allowance,
            "max_drawdown": max_dd, "halted": bool(halts), "drawdown_at_halt": at_halt,
            "halted_ms": halt_ms, "statement": statement}


def buy_and_hold(initial: float, start_ms: int, end_ms: int, ts: Sequence[int],
                 closes: dict[str, Sequence[float]]) -> dict[str, dict[str, Any]]:
    """Each symbol bought with the whole capital at the first close and held (no fees)."""
    out = {}
    for symbol, series in closes.items():
        values = [initial * c / series[0] for c in series]
        out[symbol] = {
            "start_price": float(series[0]), "end_price": float(series[-1]),
            "total_return": float(series[-1] / series[0] - 1),
            "cagr": cagr(initial, values[-1], end_ms - start_ms),
            "max_drawdown": max_drawdown(values),
        }
    return out


def thin(ts: Sequence[int], columns: dict[str, Sequence[float]], points: int = CURVE_POINTS
         ) -> dict[str, list[float]]:
    """At most ``points`` evenly spaced samples (first and last kept) of aligned series."""
    n = len(ts)
    idx = list(range(n)) if n <= points else sorted({round(i * (n - 1) / (points - 1))
                                                     for i in range(points)})
    out: dict[str, list[float]] = {"ts_ms": [int(ts[i]) for i in idx]}
    for name, values in columns.items():
        out[name] = [float(values[i]) for i in idx]
    return out


def build_report(*, initial: float, start_ms: int, end_ms: int, interval_ms: int, ceo: bool,
                 halt_limit: float, closing_cost_rate: float, tick_sizes: dict[str, float],
                 curve: Sequence[CurvePoint],
                 trades: Sequence[Trade], agents: Sequence[tuple[str, float]],
                 decisions: Sequence[Decision], price_ts: Sequence[int],
                 closes: dict[str, Sequence[float]], agents_note: str) -> dict[str, Any]:
    summary = portfolio(initial, start_ms, end_ms, interval_ms, curve, trades)
    equity = [p.equity for p in curve]
    ts = [p.ts_ms for p in curve]
    running = np.maximum.accumulate(np.asarray([initial, *equity], dtype=float))[1:]
    drawdown = [float(1 - e / pk) if pk > 0 else 0.0 for e, pk in zip(equity, running, strict=True)]
    bench: dict[str, Sequence[float]] = {}
    if ts and price_ts:
        where = np.searchsorted(np.asarray(price_ts), np.asarray(ts), side="right") - 1
        where = np.clip(where, 0, len(price_ts) - 1)
        for symbol, series in closes.items():
            arr = np.asarray(series, dtype=float)
            bench[f"bh_{symbol}"] = list(initial * arr[where] / arr[0])
    return {
        "conventions": CONVENTIONS,
        "agents_model": agents_note,
        "ceo": ceo,
        "summary": summary,
        "annualised": annualised(end_ms - start_ms),
        "agents": [agent_figures(name, cap, start_ms, end_ms, trades) for name, cap in agents],
        "ceo_stats": ceo_stats(decisions),
        "drawdown_halt": halt_check(ceo=ceo, limit=halt_limit, max_dd=summary["max_drawdown"],
                                    decisions=decisions, trades=trades,
                                    closing_cost_rate=closing_cost_rate, tick_sizes=tick_sizes,
                                    end_ms=end_ms),
        "buy_and_hold": buy_and_hold(initial, start_ms, end_ms, price_ts, closes) if closes else {},
        "curve": thin(ts, {"equity": equity, "drawdown": drawdown, **bench}) if ts else {},
    }
