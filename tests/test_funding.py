"""Recorded funding history: the loader refuses bad files with their line, the paper venue settles
at the recorded times and rates (hand-computed payments from a small CSV), falls back to the
configured constant where there is no history, and the replay's market view shows the recorded
rate."""

from __future__ import annotations

import shutil
from decimal import Decimal as D
from pathlib import Path

import pytest

from core.backtest.params import build_params
from core.config import PROJECT_ROOT
from core.errors import ConfigError, FeedError
from core.exchanges.paper import PaperExchange
from core.exchanges.symbols import default_filters
from core.feeds.replay import ReplayFeed, load_replay_data
from core.funding import FundingHistory, load_funding, read_funding
from core.models import Bar, MarketStep, OrderRequest, OrderSide, OrderType

DATA = PROJECT_ROOT / "data" / "klines"
ETH = "ETHUSDT"
H = 3_600_000
T0 = 1_748_736_000_000  # 2025-06-01 00:00 UTC
CONSTANT = 0.0001

# the fixture: 00:00, an extra 04:00 event, 08:00, 16:00, then no row for 2025-06-02 00:00 (a gap:
# 16 h between rows), and 08:00 that day
FIXTURE = f"""funding_time_ms,rate
{T0},0.0003
{T0 + 4 * H},0.0001
{T0 + 8 * H},-0.0005
{T0 + 16 * H},0.0010
{T0 + 32 * H},0.0002
"""


def write(folder: Path, symbol: str, text: str) -> Path:
    path = folder / f"{symbol}-funding.csv"
    path.write_text(text)
    return path


# ------------------------------------------------------------------------------------ the loader
def test_the_bundled_history_loads_with_its_documented_coverage() -> None:
    history = load_funding(DATA, ("BTCUSDT", "ETHUSDT", "SOLUSDT"))
    rows = {s: len(f.times) for s, f in history.series.items()}
    assert rows == {"BTCUSDT": 2553, "ETHUSDT": 2553, "SOLUSDT": 1362}
    sol = history.series["SOLUSDT"]
    assert sol.periods == ((1_738_368_000_000, 1_777_564_800_000),)  # 2025-02-01 → 2026-04-30 16:00
    assert history.covers("SOLUSDT", 1_738_368_000_000)
    assert not history.covers("SOLUSDT", 1_738_368_000_000 - 8 * H)
    assert not history.covers("XRPUSDT", T0)  # no file: no history


@pytest.mark.parametrize(("text", "line", "what"), [
    ("time,rate\n1,2\n", 1, "the header must be funding_time_ms,rate"),
    ("", 1, "the header must be"),
    ("funding_time_ms,rate\n", None, "no funding rows"),
    (f"funding_time_ms,rate\n{T0},0.0001\n{T0},0.0002\n", 3, f"duplicate funding time {T0}"),
    (f"funding_time_ms,rate\n{T0 + H},0.0001\n{T0},0.0002\n", 3, "is earlier than the line before"),
    (f"funding_time_ms,rate\n{T0},0.0001\n{T0 + H},abc\n", 3, "rate 'abc' is not a number"),
    (f"funding_time_ms,rate\n{T0},nan\n", 2, "is not a finite number"),
    (f"funding_time_ms,rate\n{T0},0.01\n{T0 + H},0.05\n", 3, "rate 0.05 is beyond ±0.03"),
    (f"funding_time_ms,rate\n{T0}.5,0.0001\n", 2, "is not whole epoch milliseconds"),
    ("funding_time_ms,rate\n1700000000,0.0001\n", 2, "is not between 2009 and 2100"),
    (f"funding_time_ms,rate\n{T0},0.0001,7\n", 2, "3 fields, expected 2"),
    (f"funding_time_ms,rate\n{T0},0.0001\n\n{T0 + H},0.0001\n", 3, "empty line"),
])
def test_a_bad_funding_file_is_refused_with_its_file_and_line(tmp_path: Path, text: str,
                                                              line: int | None, what: str) -> None:
    path = write(tmp_path, ETH, text)
    with pytest.raises(FeedError) as exc:
        read_funding(path, ETH)
    message = str(exc.value)
    assert message.startswith(f"{path}: ") and what in message
    if line is not None:
        assert f": line {line}: " in message


def test_a_backtest_on_a_folder_with_a_bad_funding_file_is_refused_before_it_runs(
        tmp_path: Path) -> None:
    shutil.copy(DATA / "ETHUSDT-1h.csv", tmp_path / "ETHUSDT-1h.csv")
    path = write(tmp_path, ETH, f"funding_time_ms,rate\n{T0},0.0001\n{T0 + 8 * H},1e-2%\n")
    with pytest.raises(ConfigError, match=rf"^{path.resolve()}: line 3: rate '1e-2%' is not a number"):
        build_params(start="2025-06-01", end="2025-06-03", data_dir=tmp_path, interval="1h",
                     symbols=[ETH], capital=10_000)


def test_coverage_splits_at_a_gap_and_names_what_it_does_not_cover(tmp_path: Path) -> None:
    series = read_funding(write(tmp_path, ETH, FIXTURE), ETH)
    assert series.periods == ((T0, T0 + 16 * H), (T0 + 32 * H, T0 + 32 * H))
    history = FundingHistory({ETH: series})
    assert history.uncovered(ETH, T0 - 10 * H, T0 + 40 * H) == [
        (T0 - 10 * H, T0), (T0 + 16 * H, T0 + 32 * H), (T0 + 32 * H, T0 + 40 * H)]
    assert history.uncovered("BTCUSDT", T0, T0 + H) == [(T0, T0 + H)]
    assert history.settlement(ETH, T0 + 4 * H) == (0.0001, True)
    assert history.settlement(ETH, T0 + 12 * H) == (None, True)  # covered, no event then
    assert history.settlement(ETH, T0 + 24 * H) == (None, False)  # in the gap


# ------------------------------------------------------------------------------ the settlement
def hourly_venue(history: FundingHistory | None) -> PaperExchange:
    return PaperExchange(None, "acct", filters=default_filters([ETH]), taker_fee=0.0005,
                         slippage_bps=10, funding_rate=CONSTANT, interval_ms=H,
                         opening_balance=D("10000"), funding_history=history)


def hour(ex: PaperExchange, open_ms: int, price: float) -> list[tuple[int, float, D]]:
    """One closed 1h bar at ``price``; the feed offers a rate of its own, which a venue with a
    history must not use."""
    events = ex.sync(MarketStep(open_ms + H, {ETH: [Bar(open_ms, price, price, price, price, 1.0)]},
                                {ETH: price}, {ETH: 0.0042}))
    return [(p.ts_ms, p.rate, p.amount) for p in events.funding]


def market(ex: PaperExchange, cid: str, side: OrderSide, qty: str, *, reduce: bool = False) -> None:
    ex.place_order(OrderRequest(cid, ETH, side, OrderType.MARKET, D(qty), reduce_only=reduce))


def test_the_venue_settles_the_recorded_times_and_rates_and_the_constant_outside(
        tmp_path: Path) -> None:
    write(tmp_path, ETH, FIXTURE)
    ex = hourly_venue(load_funding(tmp_path, [ETH]))
    start = T0 - 9 * H  # 2025-05-31 15:00
    ex.sync(MarketStep(start, {ETH: []}, {ETH: 2000.0}, {ETH: None}))
    market(ex, "long", OrderSide.BUY, "1")  # long 1 ETH from 15:00
    opens = {T0 + 8 * H: 2100.0, T0 + 32 * H: 1900.0}
    paid: list[tuple[int, float, D]] = []
    for i in range(42):  # 15:00 … 08:00 the next day
        open_ms = start + i * H
        if open_ms == T0 + 10 * H:  # 10:00: flat, then short 2 ETH between two settlements
            market(ex, "close", OrderSide.SELL, "1", reduce=True)
            market(ex, "short", OrderSide.SELL, "2")
        paid += hour(ex, open_ms, opens.get(open_ms, 2000.0))
    assert paid == [
        (T0 - 8 * H, CONSTANT, D("-0.2")),    # 16:00 before the history: −1 × 2000 × 0.0001
        (T0, 0.0003, D("-0.6")),              # recorded: −1 × 2000 × 0.0003
        (T0 + 4 * H, 0.0001, D("-0.2")),      # a recorded time off the 8 h grid settles too
        (T0 + 8 * H, -0.0005, D("1.05")),     # negative rate: the long receives 1 × 2100 × 0.0005
        # the short opened at 10:00 pays nothing for 08:00, and 12:00 is no funding time
        (T0 + 16 * H, 0.0010, D("4")),        # the short receives 2 × 2000 × 0.0010
        (T0 + 24 * H, CONSTANT, D("0.4")),    # in the gap: the constant, 2 × 2000 × 0.0001
        (T0 + 32 * H, 0.0002, D("0.76")),     # recorded again: 2 × 1900 × 0.0002
    ]


def test_a_position_opened_inside_a_funding_bar_pays_nothing_for_that_funding_time(
        tmp_path: Path) -> None:
    """A live-clocked tick at 08:20 opens a short; the 08:00 bar closes later: the short was not
    held at 08:00, so it pays nothing then, and the next recorded time (16:00) settles."""
    write(tmp_path, ETH, FIXTURE)
    ex = hourly_venue(load_funding(tmp_path, [ETH]))
    ex.sync(MarketStep(T0 + 8 * H + 1_200_000, {ETH: []}, {ETH: 2000.0}, {ETH: None}))
    market(ex, "short", OrderSide.SELL, "2")
    paid = [p for i in range(8, 17) for p in hour(ex, T0 + i * H, 2000.0)]
    assert paid == [(T0 + 16 * H, 0.0010, D("4"))]


def test_without_a_history_the_venue_settles_the_feeds_rate_on_its_grid() -> None:
    ex = hourly_venue(None)
    ex.sync(MarketStep(T0 - H, {ETH: []}, {ETH: 2000.0}, {ETH: None}))
    market(ex, "short", OrderSide.SELL, "1")
    paid = [p for i in range(9) for p in hour(ex, T0 + i * H, 2000.0)]
    assert paid == [(T0, 0.0042, D("8.4")), (T0 + 8 * H, 0.0042, D("8.4"))]


# ------------------------------------------------------------------------------- the view
def test_the_replay_shows_the_last_recorded_rate_and_the_feeds_own_where_there_is_none(
        tmp_path: Path) -> None:
    data = load_replay_data(DATA, "15m", ("BTCUSDT", "SOLUSDT"))
    btc = read_funding(DATA / "BTCUSDT-funding.csv", "BTCUSDT")
    at = btc.times.index(1_760_140_800_000)  # 2025-10-11 00:00
    feed = ReplayFeed(data, start_ms=btc.times[at] + 2 * H)  # 02:00: the 00:00 rate is current
    assert feed.funding_rate("BTCUSDT") == btc.rates[at]
    assert feed.ticker("BTCUSDT").funding_rate == btc.rates[at]
    assert feed.current().funding_rates["BTCUSDT"] == btc.rates[at]
    feed.seek(btc.times[at + 1])  # 08:00 exactly: the rate settled at 08:00
    assert feed.funding_rate("BTCUSDT") == btc.rates[at + 1]
    # no SOL history before 2025-02-01 in the 1h data: nothing on record, or the feed's own rate
    shutil.copy(DATA / "SOLUSDT-1h.csv", tmp_path / "SOLUSDT-1h.csv")
    write(tmp_path, "SOLUSDT", f"funding_time_ms,rate\n{T0},0.0003\n")
    early = load_replay_data(tmp_path, "1h", ("SOLUSDT",))
    assert ReplayFeed(early, start_ms=T0 - H).funding_rate("SOLUSDT") is None
    assert ReplayFeed(early, start_ms=T0 - H, funding_rate=CONSTANT).funding_rate("SOLUSDT") == CONSTANT
    assert ReplayFeed(early, start_ms=T0 + H).funding_rate("SOLUSDT") == 0.0003
    assert ReplayFeed(early, start_ms=T0 + 8 * H).funding_rate("SOLUSDT") is None  # no later row


def test_a_replay_sessions_log_says_where_funding_falls_back(tmp_path: Path) -> None:
    from core import queries, service
    from core.store.db import open_database
    from tests.conftest import make_settings

    url = f"sqlite:///{tmp_path / 'desk.db'}"
    engine = open_database(url)
    settings = make_settings(database_url=url, replay_interval="1h", replay_start="2024-06-01")
    sid = service.create_session(engine, settings).id
    reasons = queries.ceo_log(engine, sid)["reason"].tolist()
    assert ("funding: Binance's recorded rates for BTCUSDT, ETHUSDT, SOLUSDT; the configured "
            "0.0100% every 8 h where there is none: SOLUSDT 2024-06-01 00:00 UTC → 2025-02-01 "
            "00:00 UTC.") in reasons
    engine.dispose()
