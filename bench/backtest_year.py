"""The full desk backtested over one year of 15m bars on three symbols: five agents on rules, CEO
on (and, with --no-ceo, off), paper venue, stored and reported like any run. Target: under 60 s.

    python bench/backtest_year.py                 # 2025-05-08 → the end of the bundled data
    python bench/backtest_year.py --no-ceo

The run goes into a throwaway SQLite file; the time covers everything (reading and validating the
CSVs, ticking in the private store, copying into the store, the report).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.backtest.params import build_params  # noqa: E402
from core.backtest.service import run_backtest  # noqa: E402
from core.cli.backtest import format_report  # noqa: E402
from core.config import Settings  # noqa: E402
from core.store.db import open_database  # noqa: E402

DATA = ROOT / "data" / "klines"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--from", dest="start", default="2025-05-08")
    parser.add_argument("--to", dest="end", default="2026-04-30")
    parser.add_argument("--no-ceo", action="store_true")
    args = parser.parse_args()
    settings = Settings(_env_file=None, replay_data_dir=DATA)  # type: ignore[call-arg]
    with tempfile.TemporaryDirectory() as tmp:
        engine = open_database(f"sqlite:///{Path(tmp) / 'bench.db'}")
        began = time.perf_counter()
        params, data = build_params(start=args.start, end=args.end, data_dir=DATA, interval="15m",
                                    symbols=["BTCUSDT", "ETHUSDT", "SOLUSDT"], capital=100_000.0,
                                    ceo=not args.no_ceo)
        result = run_backtest(engine, settings, params, data)
        seconds = time.perf_counter() - began
        engine.dispose()
    days = result.ticks * 15 / 60 / 24
    print(f"five agents, CEO {'off' if args.no_ceo else 'on'}, 3 symbols: {result.ticks:,} ticks "
          f"({days:,.0f} days of 15m bars, {result.ticks * 3:,} bars) in {seconds:.1f} s = "
          f"{result.ticks / seconds:,.0f} ticks/s, {result.ticks * 3 / seconds:,.0f} bars/s "
          f"({'under' if seconds < 60 else 'OVER'} the 60 s target)")
    phases = result.report["run"]["phases"]
    print(f"  load data and indicators {seconds - result.seconds:.1f} s · ticks "
          f"{phases['ticks']:.1f} s · report {phases['report']:.1f} s · save the run "
          f"{phases['save']:.1f} s")
    print(format_report(result.report))


if __name__ == "__main__":
    main()
