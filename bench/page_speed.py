"""How long each dashboard page takes to render as the history grows.

    python bench/page_speed.py                 # 2,000 and 200,000 closed trades side by side
    python bench/page_speed.py --trades 50000 --decisions 250000

For each size it builds a SQLite store with one real session (a few hundred engine ticks) plus the
given number of closed trades, CEO decisions (1,000,000 by default for the large store) and an
hour of equity snapshots per trade, then renders every page with Streamlit's AppTest (the whole
server-side script run, which is what a browser waits for) and prints the median of 3 runs.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import insert, select  # noqa: E402

PAGES = ["views/session.py", "views/agents.py", "views/ceo.py", "views/positions.py",
         "views/market.py"]
CHUNK = 50_000


def seed(url: str, trades: int, decisions: int) -> None:
    from core import service
    from core.config import Settings
    from core.desk.scheduler import EngineDriver
    from core.store.db import open_database
    from core.store.tables import AGENTS, CEO_DECISIONS, EQUITY_SNAPSHOTS, POSITIONS

    settings = Settings(_env_file=None, database_url=url, replay_start="2025-09-01",  # type: ignore[call-arg]
                        bars_per_tick=1)
    engine = open_database(url)
    session_id = service.create_session(engine, settings).id
    driver = EngineDriver(settings, engine)
    driver.run_ticks(300)
    driver.stop()
    with engine.connect() as conn:
        agents = [(r.id, r.name) for r in conn.execute(select(AGENTS.c.id, AGENTS.c.name))]
    rng = random.Random(1)
    symbols = ["BTCUSDT", "ETHUSDT", "SOLUSDT"]
    start = 1_700_000_000_000
    with engine.begin() as conn:
        rows = []
        for i in range(trades):
            agent_id, _ = agents[i % len(agents)]
            opened = start + i * 900_000
            entry = rng.uniform(20, 100_000)
            pnl = rng.gauss(0, 50)
            rows.append({
                "session_id": session_id, "agent_id": agent_id, "symbol": symbols[i % 3],
                "side": "LONG" if i % 2 else "SHORT", "status": "closed", "quantity": 0.0,
                "entry_price": entry, "leverage": 5, "margin": 1000.0, "stop_distance": 0.01,
                "stop_price": entry * 0.99, "take_profit": None, "opened_ms": opened,
                "closed_ms": opened + 3_600_000, "exit_price": entry * 1.001, "exit_qty": 0.1,
                "realized_pnl": pnl, "fees": 1.0, "funding": -0.1,
                "close_reason": rng.choice(["stop_loss", "take_profit", "agent"]),
            })
            if len(rows) == CHUNK:
                conn.execute(insert(POSITIONS), rows)
                rows = []
        if rows:
            conn.execute(insert(POSITIONS), rows)
        rows = []
        for i in range(decisions):
            agent_id, _ = agents[i % len(agents)]
            verdict = ("approve", "modify", "reject")[i % 3]
            rows.append({
                "session_id": session_id, "agent_id": agent_id, "ts_ms": start + i * 60_000,
                "kind": "trade", "symbol": symbols[i % 3], "verdict": verdict,
                "rules": "stop_width" if verdict == "modify" else ("symbol_owner" if verdict == "reject" else ""),
                "changes": json.dumps({"leverage": [10, 5]}) if verdict == "modify" else None,
                "reason": "synthetic decision for the page-speed benchmark",
                "proposed_leverage": 10, "final_leverage": 5 if verdict != "reject" else None,
                "proposed_margin": 3000.0, "final_margin": 2500.0 if verdict != "reject" else None,
            })
            if len(rows) == CHUNK:
                conn.execute(insert(CEO_DECISIONS), rows)
                rows = []
        if rows:
            conn.execute(insert(CEO_DECISIONS), rows)
        snaps = [{
            "session_id": session_id, "agent_id": None, "ts_ms": start + i * 3_600_000,
            "equity": 100_000 + rng.gauss(0, 1000), "unrealized": 0.0, "margin_used": 0.0,
            "gross_notional": 0.0, "drawdown_pct": abs(rng.gauss(0, 0.02)),
        } for i in range(min(trades, 50_000))]
        for i in range(0, len(snaps), CHUNK):
            conn.execute(insert(EQUITY_SNAPSHOTS), snaps[i:i + CHUNK])
    engine.dispose()


def render_times(url: str, runs: int = 3) -> dict[str, float]:
    import logging

    import streamlit as st
    from streamlit.testing.v1 import AppTest

    logging.getLogger("streamlit").setLevel(logging.ERROR)

    from core.config import get_settings

    os.environ["DATABASE_URL"] = url
    os.environ["ENGINE_IN_APP"] = "false"
    os.environ.pop("DASHBOARD_PASSWORD", None)
    get_settings.cache_clear()
    st.cache_resource.clear()
    times: dict[str, list[float]] = {p: [] for p in PAGES}
    for _ in range(runs + 1):  # the first round warms caches (replay data, compiled statements)
        for page in PAGES:
            at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
            if page != PAGES[0]:
                at.switch_page(page)
            started = time.perf_counter()
            at.run()
            elapsed = time.perf_counter() - started
            if at.exception:
                raise RuntimeError(f"{page} raised: {at.exception[0].value}")
            times[page].append(elapsed)
    return {p: statistics.median(t[1:]) for p, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trades", type=int, nargs="*", default=[2_000, 200_000])
    parser.add_argument("--decisions", type=int, nargs="*", default=[20_000, 1_000_000])
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for trades, decisions in zip(args.trades, args.decisions, strict=True):
            url = f"sqlite:///{Path(tmp) / f'pages_{trades}.db'}"
            t0 = time.perf_counter()
            seed(url, trades, decisions)
            print(f"seeded {trades:,} trades and {decisions:,} CEO decisions in "
                  f"{time.perf_counter() - t0:.0f} s", flush=True)
            results[(trades, decisions)] = render_times(url)
    sizes = list(results)
    header = "page".ljust(22) + "".join(f"{t:>12,} trades / {d:>9,} decisions" for t, d in sizes)
    print(header)
    for page in PAGES:
        print(page.ljust(22) + "".join(f"{results[s][page]:>36.3f} s" for s in sizes))


if __name__ == "__main__":
    main()
