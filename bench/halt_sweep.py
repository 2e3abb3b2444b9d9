"""Does the drawdown halt hold on every run? Backtests over random windows, CEO on.

    python bench/halt_sweep.py                     # 60 windows of the bundled data, seed 2
    python bench/halt_sweep.py --runs 200 --seed 7 --data ~/my-klines

Each run picks an interval (1h twice as often as 15m and 1m), a window inside that interval's
data, one to three symbols and a drawdown limit (15% twice as often as 5%, 3% and 2%, so most runs
halt), runs the full desk (five agents on rules, CEO on, paper venue) and reads the report's own
check: max drawdown within the limit plus the costs of the orders that closed the book. It prints
a line per run and the count that held; a run that did not hold prints the report's statement.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.backtest.params import INTERVAL_MS, build_params, day_of  # noqa: E402
from core.backtest.service import run_backtest  # noqa: E402
from core.config import Settings  # noqa: E402
from core.feeds.replay import load_replay_data  # noqa: E402
from core.store.db import open_database  # noqa: E402

DAY_MS = 86_400_000
SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")
LIMITS = (0.15, 0.15, 0.05, 0.03, 0.02)
MAX_DAYS = {"1h": 300, "15m": 120, "1m": 4}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=60)
    parser.add_argument("--seed", type=int, default=2)
    parser.add_argument("--data", type=Path, default=ROOT / "data" / "klines")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    spans = {}  # interval -> (first, last) whole days the three symbols share
    for interval in MAX_DAYS:
        opens = load_replay_data(args.data.resolve(), interval, SYMBOLS).open_ms
        first = (int(opens[0]) // DAY_MS + 1) * DAY_MS
        last = (int(opens[-1]) + INTERVAL_MS[interval]) // DAY_MS * DAY_MS
        spans[interval] = (first, last)
    held = 0
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'sweep.db'}"
        engine = open_database(url)
        for _ in range(args.runs):
            interval = rng.choice(("1h", "1h", "15m", "1m"))
            first, last = spans[interval]
            days = rng.randint(1, min(MAX_DAYS[interval], (last - first) // DAY_MS))
            start = rng.randrange(first, last - days * DAY_MS + 1, DAY_MS)
            symbols = rng.sample(SYMBOLS, rng.randint(1, 3))
            limit = rng.choice(LIMITS)
            settings = Settings(_env_file=None, replay_data_dir=args.data,  # type: ignore[call-arg]
                                database_url=url, drawdown_halt_pct=limit)
            began = time.perf_counter()
            params, data = build_params(start=day_of(start), end=day_of(start + (days - 1) * DAY_MS),
                                        data_dir=args.data, interval=interval, symbols=symbols,
                                        capital=100_000.0, ceo=True)
            check = run_backtest(engine, settings, params, data).report["drawdown_halt"]
            held += bool(check["held"])
            print(f"{'held' if check['held'] else 'NOT HELD':>8} · {interval:>3} {day_of(start)} "
                  f"+{days}d {','.join(symbols)} · limit {limit:.0%} · max DD "
                  f"{check['max_drawdown']:.2%} (allowance {check['allowance']:.2%}, "
                  f"{'halted' if check['halted'] else 'no halt'}) · "
                  f"{time.perf_counter() - began:.1f} s", flush=True)
            if not check["held"]:
                print(f"          {check['statement']}", flush=True)
        engine.dispose()
    print(f"the halt held on {held} of {args.runs} runs")


if __name__ == "__main__":
    main()
