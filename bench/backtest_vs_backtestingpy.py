"""The desk's backtester against backtesting.py on the same data and the same rules.

    python bench/backtest_vs_backtestingpy.py            # all of the bundled BTC 1h data
    python bench/backtest_vs_backtestingpy.py --from 2025-01-01 --to 2025-12-31

Rules for both, long/flat: buy when SMA(10) crosses above SMA(20), close when it crosses below
(the crossover of backtesting.lib: previous bar on one side, this bar on the other). SMAs are
computed vectorised once per run in both.

The desk side is a real single-agent backtest: a bench-side strategy in the TrendMaster Alpha slot
(25% of 100,000 USDT, 1x, 95% of its equity as margin, a protective stop 50% away that never
triggers here) run through ``core.desk.engine.run_cycle`` with the paper venue (taker fee 0.04%,
slippage 2 bps, funding every 8 h) and the CEO OFF (the CEO's 5%-of-margin stop rule would veto a
50% stop at 1x): it stores the run (private store, copied into a temporary SQLite file) and builds
the full report, all inside the timing. backtesting.py runs ``FractionalBacktest`` with 25,000 of
cash, a 0.06% commission (fee + slippage) and trades at the next bar's open (its default); the
desk fills at the signal bar's close plus slippage. Both print bars per second and trade counts.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.agents.base import AgentView  # noqa: E402
from core.agents.roster import BY_KEY  # noqa: E402
from core.backtest.params import build_params, ticks_in  # noqa: E402
from core.backtest.service import run_backtest  # noqa: E402
from core.config import Settings  # noqa: E402
from core.models import Action, AgentDecision, Proposal  # noqa: E402
from core.store.db import open_database  # noqa: E402

DATA = ROOT / "data" / "klines"
SYMBOL = "BTCUSDT"
FAST, SLOW = 10, 20


def smas(close: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    s = pd.Series(close)
    return s.rolling(FAST).mean().to_numpy(), s.rolling(SLOW).mean().to_numpy()


class SmaCross:
    """Long/flat SMA 10/20 crossover as a desk strategy (the trend agent's slot)."""

    def __init__(self, close: np.ndarray) -> None:
        self.spec = BY_KEY["trend"]
        self.fast, self.slow = smas(close)

    def decide(self, view: AgentView) -> AgentDecision:
        f = view.market.features(SYMBOL, "1h")
        name = self.spec.name
        if f is None or f.index < 1:
            return AgentDecision(agent=name, note="warming up")
        i = f.index
        fast, slow, pf, ps = self.fast[i], self.slow[i], self.fast[i - 1], self.slow[i - 1]
        price = view.market.price(SYMBOL)
        if SYMBOL in view.positions:
            if pf > ps and fast < slow:
                return AgentDecision(agent=name, proposals=[Proposal(
                    agent=name, symbol=SYMBOL, action=Action.CLOSE, reasoning="SMA10 crossed below SMA20",
                    ref_price=price)])
            return AgentDecision(agent=name, note="holding")
        if pf < ps and fast > slow:
            return AgentDecision(agent=name, proposals=[Proposal(
                agent=name, symbol=SYMBOL, action=Action.OPEN_LONG, leverage=1, margin_fraction=0.95,
                stop_price=price * 0.5, reasoning="SMA10 crossed above SMA20", ref_price=price)])
        return AgentDecision(agent=name, note="no cross")


def run_desk(start: str, end: str) -> dict[str, float]:
    settings = Settings(_env_file=None, replay_data_dir=DATA)  # type: ignore[call-arg]
    with tempfile.TemporaryDirectory() as tmp:
        engine = open_database(f"sqlite:///{Path(tmp) / 'bench.db'}")
        began = time.perf_counter()
        params, data = build_params(start=start, end=end, data_dir=DATA, interval="1h",
                                    symbols=[SYMBOL], capital=100_000.0, ceo=False)
        strategy = SmaCross(data.get(SYMBOL, "1h").cols["close"])
        result = run_backtest(engine, settings, params, data, strategies=[strategy],  # type: ignore[list-item]
                              agents_note="bench: SMA 10/20 long/flat in the trend slot")
        seconds = time.perf_counter() - began
        engine.dispose()
    agent = next(a for a in result.report["agents"] if a["agent"] == strategy.spec.name)
    return {"bars": ticks_in(params, data), "seconds": seconds, "trades": agent["trades"],
            "return": agent["total_return"], "phases": result.report["run"]["phases"],
            "setup": seconds - result.seconds}


def run_backtesting_py(start: str, end: str) -> dict[str, float]:
    from backtesting import Strategy
    from backtesting.lib import FractionalBacktest, crossover

    frame = pd.read_csv(DATA / f"{SYMBOL}-1h.csv")
    frame.index = pd.to_datetime(frame["open_time_ms"], unit="ms", utc=True).dt.tz_localize(None)
    frame = frame.rename(columns=str.capitalize)[["Open", "High", "Low", "Close", "Volume"]]
    lo, hi = pd.Timestamp(start), pd.Timestamp(end) + pd.Timedelta(days=1)
    frame = frame[(frame.index >= lo - pd.Timedelta(hours=SLOW)) & (frame.index < hi)]

    class Cross(Strategy):
        def init(self) -> None:
            self.fast = self.I(lambda c: pd.Series(c).rolling(FAST).mean().to_numpy(), self.data.Close)
            self.slow = self.I(lambda c: pd.Series(c).rolling(SLOW).mean().to_numpy(), self.data.Close)

        def next(self) -> None:
            if crossover(self.fast, self.slow) and not self.position:
                self.buy(size=0.95)
            elif crossover(self.slow, self.fast) and self.position:
                self.position.close()

    began = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bt = FractionalBacktest(frame, Cross, cash=25_000, commission=0.0006,
                                finalize_trades=True)
        stats = bt.run()
    seconds = time.perf_counter() - began
    return {"bars": len(frame), "seconds": seconds, "trades": int(stats["# Trades"]),
            "return": float(stats["Return [%]"]) / 100}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--from", dest="start", default="2024-01-01")
    parser.add_argument("--to", dest="end", default="2026-04-27")
    args = parser.parse_args()
    desk = run_desk(args.start, args.end)
    other = run_backtesting_py(args.start, args.end)
    for label, r in (("desk", desk), ("backtesting.py", other)):
        print(f"{label:>15}: {r['bars']:,} bars in {r['seconds']:.2f} s = "
              f"{r['bars'] / r['seconds']:,.0f} bars/s · {r['trades']} trades · "
              f"return {r['return']:+.2%}")
    p = desk["phases"]
    print(f"{'desk phases':>15}: load data and indicators {desk['setup']:.2f} s · ticks "
          f"{p['ticks']:.2f} s · report {p['report']:.2f} s · save the run {p['save']:.2f} s")
    ratio = (desk["bars"] / desk["seconds"]) / (other["bars"] / other["seconds"])
    print(f"{'ratio':>15}: desk is {ratio:.2f}x the speed of backtesting.py "
          f"({'at least as fast' if ratio >= 1 else 'slower'}); trades {desk['trades']} vs "
          f"{other['trades']} ({abs(desk['trades'] - other['trades']) / max(1, other['trades']):.0%} apart)")


if __name__ == "__main__":
    main()
