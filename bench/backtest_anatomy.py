"""Where the desk's backtest time goes, and how fast one engine could be at best.

    python bench/backtest_anatomy.py            # the SMA 10/20 BTC 1h run of backtest_vs_backtestingpy

Runs the same single-agent desk backtest as ``bench/backtest_vs_backtestingpy.py``, timing every
engine tick and, inside it, every call into storage (SQLAlchemy sessions and connections, the
driver, the flush of held rows). Ticks are split into those that sent orders and the quiet ones.
The last line is the ceiling of the one-engine design: backtesting.py's whole run against the
desk's order-sending ticks with their storage taken out, i.e. what the desk would reach if storage
were free and every quiet bar cost nothing. The timers add a little to every figure.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import backtest_vs_backtestingpy as versus  # noqa: E402
from sqlalchemy.engine.base import Connection  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from core import execution  # noqa: E402
from core.backtest import runner  # noqa: E402
from core.store.pending import PendingRows  # noqa: E402

STORAGE_CALLS = ((Connection, ("execute", "scalar", "exec_driver_sql")),
                 (Session, ("execute", "scalar", "commit", "connection")),
                 (PendingRows, ("flush",)))


@dataclass
class Timers:
    storage_s: float = 0.0
    orders: int = 0
    depth: int = 0
    ticks: list[tuple[float, float, bool]] = field(default_factory=list)  # (s, storage s, sent)

    def wrap_storage(self, call: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            if self.depth:  # nested inside another storage call: counted there
                return call(*args, **kwargs)
            self.depth += 1
            began = time.perf_counter()
            try:
                return call(*args, **kwargs)
            finally:
                self.storage_s += time.perf_counter() - began
                self.depth -= 1
        return timed

    def wrap_submit(self, call: Callable[..., Any]) -> Callable[..., Any]:
        def counted(*args: Any, **kwargs: Any) -> Any:
            self.orders += 1
            return call(*args, **kwargs)
        return counted

    def wrap_tick(self, call: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            storage, orders, began = self.storage_s, self.orders, time.perf_counter()
            try:
                return call(*args, **kwargs)
            finally:
                self.ticks.append((time.perf_counter() - began, self.storage_s - storage,
                                   self.orders > orders))
        return timed


def instrument(timers: Timers) -> None:
    for owner, names in STORAGE_CALLS:
        for name in names:
            setattr(owner, name, timers.wrap_storage(getattr(owner, name)))
    execution.Execution.submit = timers.wrap_submit(execution.Execution.submit)  # type: ignore[method-assign]
    runner.run_cycle = timers.wrap_tick(runner.run_cycle)


def main() -> None:
    start, end = "2024-01-01", "2026-04-27"
    other = versus.run_backtesting_py(start, end)
    timers = Timers()
    instrument(timers)
    desk = versus.run_desk(start, end)
    print(f"desk run: {desk['bars']:,} bars in {desk['seconds']:.2f} s (timed), {desk['trades']} "
          f"trades; backtesting.py: {other['bars']:,} bars in {other['seconds']:.3f} s")
    busy = [t for t in timers.ticks if t[2]]
    quiet = [t for t in timers.ticks if not t[2]]
    for label, ticks in (("ticks that sent orders", busy), ("quiet ticks", quiet)):
        total, storage = sum(t[0] for t in ticks), sum(t[1] for t in ticks)
        print(f"{label:>23}: {len(ticks):,} · {total:.2f} s ({total / len(ticks) * 1e6:,.0f} µs each)"
              f" · storage {storage:.2f} s · the rest {total - storage:.2f} s "
              f"({(total - storage) / len(ticks) * 1e6:,.0f} µs each)")
    floor = sum(t[0] - t[1] for t in busy)
    print(f"{'one-engine ceiling':>23}: free storage and free quiet bars would still leave "
          f"{floor:.2f} s of order-sending ticks: at best {other['seconds'] / floor:.2f}x "
          f"backtesting.py's speed")


if __name__ == "__main__":
    main()
