"""``python -m core check-exchange``: can this desk talk to AsterDex? Six checks, readable verdicts.

Why: before trusting a venue with money a user needs one command that says what works and what
does not, in words: server time (and the local clock's offset), exchange info, the BTC price, then
with keys the account, the positions (and the position mode the desk needs) and the open orders.
Public checks run without keys; private ones are *skipped* with the settings to set. Every check
runs even when an earlier one failed (each says why), and the exit code is 1 when any failed.
Secrets never print: messages come from the typed errors, which quote no key.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from core.config import Settings
from core.errors import ConfigError, DeskError
from core.exchanges.asterdex_client import (
    AsterDexClient,
    chain_id_from_settings,
    credentials_from_settings,
)
from core.exchanges.asterdex_http import AsterHttp
from core.exchanges.asterdex_ratelimit import RateGate

SKIP_NO_KEYS = ("skipped: no keys — set ASTERDEX_API_KEY/ASTERDEX_SECRET_KEY or the V3 wallet "
                "settings (ASTERDEX_USER, ASTERDEX_SIGNER, ASTERDEX_PRIVATE_KEY)")


@dataclass(frozen=True, slots=True)
class CheckResult:
    name: str
    status: str  # "pass", "fail" or "skip"
    detail: str
    elapsed_ms: int


def _run(name: str, fn: Callable[[], str]) -> CheckResult:
    started = time.perf_counter()
    try:
        detail, status = fn(), "pass"
    except DeskError as exc:
        detail, status = str(exc), "fail"
    except Exception as exc:  # a malformed reply: say what broke, keep checking
        detail, status = f"unexpected {type(exc).__name__}: {exc}", "fail"
    return CheckResult(name, status, detail, int((time.perf_counter() - started) * 1000))


def run_checks(client: AsterDexClient, *, symbol: str = "BTCUSDT",
               key_problem: str | None = None) -> list[CheckResult]:
    """The six checks against ``client``; ``key_problem`` explains unusable credentials."""

    def server_time() -> str:
        offset = client.sync_clock()
        server = datetime.fromtimestamp(client.http.now_ms() / 1000, tz=UTC)
        return (f"server time {server:%Y-%m-%d %H:%M:%S} UTC; local clock offset {offset:+d} ms "
                "(signed requests use server time)")

    def exchange_info() -> str:
        info = client.exchange_info(refresh=True)
        if symbol not in info.filters:
            raise DeskError(f"{len(info.filters)} symbols listed, but not {symbol}")
        f = info.filters[symbol]
        limit = info.weight_limit()
        return (f"{len(info.filters)} symbols; {symbol} {info.status.get(symbol, '?')}, tick "
                f"{f.tick_size}, step {f.step_size}, min notional {f.min_notional}; request weight "
                f"limit {limit if limit else 'not stated'}/min")

    def price() -> str:
        return f"{symbol} last price {client.price(symbol)}"

    def account() -> str:
        acct = client.account()
        trade = "trading enabled" if acct.can_trade else "TRADING DISABLED for this key"
        return (f"{client.auth_scheme} auth OK; wallet {acct.total_wallet_balance} USDT, available "
                f"{acct.available_balance}, unrealized {acct.total_unrealized_pnl}; {trade}")

    def positions() -> str:
        rows = [p for p in client.position_risk() if p.amount != 0]
        mode = "hedge mode (the desk needs one-way: switch it in the venue's settings)" \
            if client.get_position_mode() else "one-way mode"
        listed = ", ".join(f"{p.symbol} {p.amount:+} @ {p.entry_price}" for p in rows[:5])
        return f"{len(rows)} open position(s){': ' + listed if listed else ''}; {mode}"

    def open_orders() -> str:
        orders = client.open_orders()
        listed = ", ".join(f"{o.symbol} {o.type.value} {o.side.value} {o.quantity}" for o in orders[:5])
        return f"{len(orders)} open order(s){': ' + listed if listed else ''}"

    results = [_run("server time", server_time), _run("exchange info", exchange_info),
               _run(f"{symbol} price", price)]
    private = [("account", account), ("positions", positions), ("open orders", open_orders)]
    for name, fn in private:
        if client.has_credentials:
            results.append(_run(name, fn))
        else:
            results.append(CheckResult(name, "fail" if key_problem else "skip",
                                       key_problem or SKIP_NO_KEYS, 0))
    return results


def format_report(results: list[CheckResult], base_url: str) -> str:
    marks = {"pass": "PASS", "fail": "FAIL", "skip": "SKIP"}
    lines = [f"AsterDex at {base_url}"]
    width = max(len(r.name) for r in results)
    for r in results:
        lines.append(f"  {marks[r.status]}  {r.name.ljust(width)}  {r.detail}")
    failed = sum(r.status == "fail" for r in results)
    skipped = sum(r.status == "skip" for r in results)
    passed = len(results) - failed - skipped
    lines.append(f"{passed} passed, {failed} failed, {skipped} skipped")
    return "\n".join(lines)


def check_exchange(settings: Settings, *, as_json: bool = False, symbol: str = "BTCUSDT",
                   out: Callable[[str], None] = print, gate: RateGate | None = None) -> int:
    """Run the checks with the desk's settings, print the report; 0 if none failed, else 1.
    ``gate`` defaults to the process-wide rate gate."""
    key_problem = None
    try:
        credentials = credentials_from_settings(settings)
        chain_id = chain_id_from_settings(settings)
    except ConfigError as exc:
        credentials, key_problem, chain_id = None, str(exc), 1
    http = AsterHttp(settings.asterdex_base_url, credentials=credentials,
                     chain_id=chain_id,
                     recv_window_ms=settings.asterdex_recv_window_ms,
                     timeout_s=settings.asterdex_timeout_s, max_wait_s=settings.asterdex_max_wait_s,
                     gate=gate)
    with AsterDexClient(http, ws_url=settings.asterdex_ws_url) as client:
        results = run_checks(client, symbol=symbol.upper(), key_problem=key_problem)
        offset = client.clock_offset_ms
    if as_json:
        out(json.dumps({"base_url": settings.asterdex_base_url, "auth": http.auth_scheme,
                        "clock_offset_ms": offset, "ok": all(r.status != "fail" for r in results),
                        "checks": [asdict(r) for r in results]}, indent=2))
    else:
        out(format_report(results, settings.asterdex_base_url))
    return 1 if any(r.status == "fail" for r in results) else 0
