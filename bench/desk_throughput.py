"""Ticks per second of the full desk: 5 agents, 3 symbols, CEO rules and reviews, paper venue,
persistence on every tick (each tick commits, as it does in paper trading).

    python bench/desk_throughput.py                      # one year of 15m bars on SQLite
    python bench/desk_throughput.py --postgres           # the same on the local PostgreSQL too
    python bench/desk_throughput.py --ticks 5000         # a shorter run

It creates a throwaway database (a SQLite file in a temp folder; a fresh PostgreSQL database that it
drops afterwards), replays from 2025-05-08 (a week of 15m warm-up after the data starts) through
the end of the bundled data, and prints wall time, ticks per second and what the desk did.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import create_engine, text  # noqa: E402

from core import queries, service  # noqa: E402
from core.config import Settings  # noqa: E402
from core.desk.scheduler import EngineDriver  # noqa: E402
from core.store.db import open_database  # noqa: E402

PG_ADMIN = "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"


def run(url: str, ticks: int) -> dict[str, object]:
    settings = Settings(_env_file=None, database_url=url, replay_interval="15m",  # type: ignore[call-arg]
                        replay_start="2025-05-08", bars_per_tick=1)
    engine = open_database(url)
    session_id = service.create_session(engine, settings).id
    driver = EngineDriver(settings, engine)
    started = time.perf_counter()
    done = driver.run_ticks(ticks)
    elapsed = time.perf_counter() - started
    driver.stop()
    status = queries.session_status(engine, session_id)["session"]
    engine.dispose()
    return {"ticks": done, "seconds": elapsed, "ticks_per_s": done / elapsed, "status": status}


def report(label: str, result: dict[str, object]) -> None:
    s = result["status"]
    assert isinstance(s, dict)
    days = result["ticks"] * 15 / 60 / 24  # type: ignore[operator]
    print(f"{label:>10}: {result['ticks']:,} ticks ({days:,.0f} days of 15m bars) in "
          f"{result['seconds']:.1f} s = {result['ticks_per_s']:,.0f} ticks/s")
    print(f"{'':>10}  engine time {s['engine_time']} · trades {s['closed_trades']:,} · orders "
          f"{s['orders']:,} · fills {s['fills']:,} · verdicts {s['verdicts']} · equity "
          f"{s['equity']:,.2f} · max drawdown {s['max_drawdown_pct']:.2f}%")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ticks", type=int, default=40_000, help="stops earlier at the data's end")
    parser.add_argument("--postgres", action="store_true", help="also run on the local PostgreSQL")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        report("SQLite", run(f"sqlite:///{Path(tmp) / 'bench.db'}", args.ticks))
    if args.postgres:
        name = f"desk_bench_{uuid.uuid4().hex[:8]}"
        admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            report("PostgreSQL", run(PG_ADMIN.rsplit("/", 1)[0] + f"/{name}", args.ticks))
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()


if __name__ == "__main__":
    main()
