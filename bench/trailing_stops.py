"""Trend and momentum over the bundled year, with and without a trailing stop, side by side.

    python bench/trailing_stops.py                      # the default grid, both strategies
    python bench/trailing_stops.py --only trend --grid 2:none,3:2

Each run is a real backtest of one agent alone (the others idle), CEO on, 100,000 USDT on BTC, ETH
and SOL 15m bars (2025-05-08 → 2026-04-30 by default), through the same engine, CEO rules and paper
venue as any backtest. A grid point ``C:A`` is a trailing stop ``C``×ATR14 wide (the venue's
callbackRate, in 0.1 % steps), armed ``A``×ATR14 in profit (``none``: armed at once); ``+tp`` keeps
the strategy's take-profit beside it (by default the trail replaces it). Printed per run: trades,
the agent's return on its allocation, its max drawdown (on the closed-trade curve), fees, and how
many exits each protective order made, and the desk's average gross exposure (notional over
equity): a trail wider than the hard stop makes the CEO lower leverage (its 5%-of-margin rule
applies to the trail's initial distance), so part of its effect is smaller positions. The first half and second half of the range are also run
for the baseline and for the chosen default, so a choice that only wins in one half shows it.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import select  # noqa: E402

from core.agents import momentum, trend  # noqa: E402
from core.agents.desk_params import DeskParams  # noqa: E402
from core.agents.roster import BY_KEY  # noqa: E402
from core.backtest.params import build_params  # noqa: E402
from core.backtest.service import run_backtest  # noqa: E402
from core.config import Settings  # noqa: E402
from core.store.db import open_database  # noqa: E402
from core.store.tables import PositionRow  # noqa: E402

DATA = ROOT / "data" / "klines"
SYMBOLS = ["BTCUSDT", "ETHUSDT", "SOLUSDT"]
KEYS = ("trend", "momentum")
CLASSES = {"trend": trend.TrendStrategy, "momentum": momentum.MomentumStrategy}
DEFAULT_GRID = ("1.5:none", "2:none", "3:none", "2:1", "3:1", "3:2", "4:2", "3:2+tp")
Point = tuple[float | None, float | None, bool]  # callback ATR, activation ATR, keep the TP


def parse_point(text: str) -> Point:
    keep = text.endswith("+tp")
    callback, _, activation = text.removesuffix("+tp").partition(":")
    return float(callback), None if activation in ("", "none") else float(activation), keep


def label(point: Point) -> str:
    callback, activation, keep = point
    if callback is None:
        return "no trail (TP)"
    armed = "at once" if activation is None else f"+{activation:g} ATR"
    return f"{callback:g} ATR, {armed}{' +TP' if keep else ''}"


def run_one(key: str, point: Point, start: str, end: str) -> dict[str, Any]:
    desk_params = DeskParams.defaults().with_values({
        f"{key}.trail_atr": point[0] or 0.0, f"{key}.trail_activation_atr": point[1] or 0.0,
        f"{key}.trail_replaces_tp": not point[2]})
    settings = Settings(_env_file=None, replay_data_dir=DATA)  # type: ignore[call-arg]
    spec = BY_KEY[key]
    with tempfile.TemporaryDirectory() as tmp:
        engine = open_database(f"sqlite:///{Path(tmp) / 'bench.db'}")
        params, data = build_params(start=start, end=end, data_dir=DATA, interval="15m",
                                    symbols=SYMBOLS, capital=100_000.0, ceo=True)
        result = run_backtest(engine, settings, params, data, strategies=[CLASSES[key](spec, desk_params.strategy(key))],
                              agent_params=desk_params,
                              agents_note=f"bench: {key} alone, {label(point)}")
        with engine.connect() as conn:
            reasons = Counter(r for (r,) in conn.execute(
                select(PositionRow.close_reason).where(PositionRow.status == "closed")))
        engine.dispose()
    agent = next(a for a in result.report["agents"] if a["agent"] == spec.name)
    return {"trades": agent["trades"], "return": agent["total_return"] or 0.0,
            "drawdown": agent["max_drawdown"] or 0.0, "fees": agent["fees"],
            "win_rate": agent["win_rate"], "reasons": reasons,
            "exposure": result.report["summary"]["avg_gross_exposure"]}


def show(key: str, point: Point, span: str, r: dict[str, Any]) -> None:
    reasons = ", ".join(f"{k} {v}" for k, v in sorted(r["reasons"].items()))
    win = f"{r['win_rate']:.0%}" if r["win_rate"] is not None else "–"
    print(f"{key:9} {span:12} {label(point):22} {r['trades']:6d} {r['return']:+8.2%} "
          f"{r['drawdown']:7.2%} {r['fees']:9,.2f} {win:>5} {r['exposure']:6.3f}  {reasons}",
          flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--from", dest="start", default="2025-05-08")
    parser.add_argument("--to", dest="end", default="2026-04-30")
    parser.add_argument("--mid", default="2025-11-03", help="where the two halves split")
    parser.add_argument("--only", choices=sorted(KEYS))
    parser.add_argument("--grid", help="comma-separated C:A[+tp] points (default: a small grid)")
    parser.add_argument("--halves", action="store_true",
                        help="also run each half of the range for the baseline and the default")
    args = parser.parse_args()
    grid = [parse_point(p) for p in (args.grid.split(",") if args.grid else DEFAULT_GRID)]
    print(f"{'strategy':9} {'range':12} {'trailing stop':22} {'trades':>6} {'return':>8} "
          f"{'max dd':>7} {'fees':>9} {'win':>5} {'expo':>6}  exits by")
    for key in [args.only] if args.only else list(KEYS):
        shipped = DeskParams.defaults().strategy(key)
        chosen: Point = (shipped.trail_atr or None, shipped.trail_activation_atr or None,  # type: ignore[attr-defined]
                         not shipped.trail_replaces_tp)  # type: ignore[attr-defined]
        baseline: Point = (None, None, True)
        for point in [baseline, *grid]:
            show(key, point, "year", run_one(key, point, args.start, args.end))
        if args.halves:
            mid_end = args.mid  # the first half ends the day before --mid starts
            for point in dict.fromkeys([baseline, chosen]):
                show(key, point, "1st half", run_one(key, point, args.start, _day_before(mid_end)))
                show(key, point, "2nd half", run_one(key, point, mid_end, args.end))


def _day_before(day: str) -> str:
    from datetime import date, timedelta
    return (date.fromisoformat(day) - timedelta(days=1)).isoformat()


if __name__ == "__main__":
    main()
