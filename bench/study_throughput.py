"""Study throughput: trials per minute with 1 and 2 worker processes on SQLite and PostgreSQL,
for a one-year 1h study of one agent (trend, BTC/ETH/SOL, CEO on), and the wall time of a
100-trial study.

    python bench/study_throughput.py                 # 8 trials per configuration
    python bench/study_throughput.py --trials 20 --pg postgresql://postgres@127.0.0.1:5432/postgres

Each configuration is a fresh study in a throwaway store (a temporary SQLite file; a temporary
PostgreSQL database, dropped at the end). "wall" includes starting the worker processes and
loading the data; "steady" is trials per minute between the first trial's start and the last
one's end. The 100-trial wall time is measured when --trials is 100, otherwise estimated as the
start-up time plus 100 trials at the steady rate (and printed as an estimate).
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
from sqlalchemy.engine import make_url  # noqa: E402

from core.config import Settings  # noqa: E402
from core.research import study as studies  # noqa: E402
from core.research.trial import StudySpec  # noqa: E402

DATA = ROOT / "data" / "klines"
SPEC = StudySpec(agents=("trend",), start="2025-04-27", end="2026-04-26", interval="1h",
                 symbols=("BTCUSDT", "ETHUSDT", "SOLUSDT"), capital=100_000.0,
                 data_dir=str(DATA), seed=1)


def measure(url: str, workers: int, trials: int) -> tuple[float, float, float]:
    """(wall seconds, trials/min over the wall, steady trials/min)."""
    name = f"bench {workers}w {uuid.uuid4().hex[:6]}"
    settings = Settings(_env_file=None, database_url=url, replay_data_dir=DATA)  # type: ignore[call-arg]
    studies.create(url, name, SPEC, trials)
    began = time.perf_counter()
    studies.run_workers(settings, name, workers)
    wall = time.perf_counter() - began
    done = [t for t in studies.real_trials(studies.load(url, name))
            if t.datetime_start and t.datetime_complete]
    span = (max(t.datetime_complete for t in done)  # type: ignore[type-var]
            - min(t.datetime_start for t in done)).total_seconds()  # type: ignore[type-var]
    return wall, trials / wall * 60, len(done) / span * 60 if span > 0 else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--pg", default="postgresql+psycopg2://postgres@127.0.0.1:5432/postgres",
                        help="a PostgreSQL server to create a throwaway database on ('' skips)")
    args = parser.parse_args()
    backends: list[tuple[str, str]] = []
    tmp = tempfile.TemporaryDirectory()
    backends.append(("SQLite", f"sqlite:///{Path(tmp.name) / 'bench.db'}"))
    admin = None
    pg_name = f"desk_bench_{uuid.uuid4().hex[:10]}"
    if args.pg:
        admin = create_engine(args.pg, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{pg_name}"'))
        backends.append(("PostgreSQL", make_url(args.pg).set(database=pg_name)
                         .render_as_string(hide_password=False)))
    print(f"one-year 1h study of the trend agent on BTC/ETH/SOL ({SPEC.start} → {SPEC.end}), "
          f"{args.trials} trials per configuration")
    try:
        for label, url in backends:
            for workers in (1, 2):
                wall, rate, steady = measure(url, workers, args.trials)
                startup = max(0.0, wall - args.trials / steady * 60)
                hundred = startup + 100 / steady * 60
                what = "measured" if args.trials == 100 else "estimated"
                print(f"  {label:<10} {workers} worker{'s' if workers > 1 else ' '}: "
                      f"{args.trials} trials in {wall:5.1f} s = {rate:5.1f} trials/min "
                      f"(steady {steady:5.1f}/min, start-up {startup:4.1f} s) · 100 trials "
                      f"{hundred / 60:4.1f} min ({what})")
    finally:
        tmp.cleanup()
        if admin is not None:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)'))
            admin.dispose()


if __name__ == "__main__":
    main()
