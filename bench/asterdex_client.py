"""What the AsterDex client costs per call, over real loopback HTTP against the fake venue.

    python bench/asterdex_client.py            # 300 calls per row
    python bench/asterdex_client.py --n 1000

Prints, per row, the median and 95th-percentile time of: signing alone (V1 HMAC, V3 EIP-712), a
public GET, a signed GET (V1 and V3), and a market order with its fills (POST order + GET
userTrades) and a resting stop (V1). The fake venue runs in the same process, so the figures are
client + loopback + venue overhead, not the internet; they show what signing adds, and that a desk
tick's handful of calls costs milliseconds, not the request weight budget.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from eth_account import Account  # noqa: E402

from core.exchanges.asterdex_client import AsterDexClient  # noqa: E402
from core.exchanges.asterdex_http import AsterHttp  # noqa: E402
from core.exchanges.asterdex_ratelimit import RateGate  # noqa: E402
from core.exchanges.asterdex_signing import V1Credentials, V3Credentials, sign_v1, sign_v3  # noqa: E402
from core.models import OrderRequest, OrderSide, OrderType  # noqa: E402
from tests.fake_venue import FakeVenue  # noqa: E402

KEY, SECRET = "k" * 64, "s" * 64
PK = "0x" + "11" * 32
SIGNER, USER = Account.from_key(PK).address, Account.from_key("0x" + "22" * 32).address


def measure(n: int, fn: Callable[[int], object]) -> tuple[float, float]:
    times = []
    for i in range(n):
        t = time.perf_counter()
        fn(i)
        times.append((time.perf_counter() - t) * 1000)
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.95) - 1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=300)
    n = parser.parse_args().n
    v1, v3 = V1Credentials(KEY, SECRET), V3Credentials(USER, SIGNER, PK)
    params = {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": Decimal("0.001")}
    rows: list[tuple[str, tuple[float, float]]] = []
    rows.append(("sign V1 (HMAC)", measure(n, lambda i: sign_v1(v1, params, timestamp_ms=i))))
    rows.append(("sign V3 (EIP-712)", measure(n, lambda i: sign_v3(v3, params, chain_id=1666, nonce=i))))
    with FakeVenue(api_key=KEY, api_secret=SECRET, v3_user=USER, v3_signer=SIGNER,
                   wallet=Decimal(10**9), weight_limit=10**9) as venue:
        venue.set_price("BTCUSDT", "60000")
        c1 = AsterDexClient(AsterHttp(venue.url, credentials=v1, gate=RateGate(weight_limit=10**9)))
        c3 = AsterDexClient(AsterHttp(venue.url, credentials=v3, gate=RateGate(weight_limit=10**9)))
        c1.exchange_info()
        rows.append(("public GET ticker/price", measure(n, lambda i: c1.price("BTCUSDT"))))
        rows.append(("signed GET balance, V1", measure(n, lambda i: c1.balances())))
        rows.append(("signed GET balance, V3", measure(n, lambda i: c3.balances())))
        rows.append(("market order + fills, V1", measure(n, lambda i: c1.place_order(OrderRequest(
            f"b{i}", "BTCUSDT", OrderSide.BUY if i % 2 else OrderSide.SELL, OrderType.MARKET,
            Decimal("0.001")))) ))
        rows.append(("stop order, V1", measure(n, lambda i: c1.place_order(OrderRequest(
            f"s{i}", "BTCUSDT", OrderSide.SELL, OrderType.STOP_MARKET, Decimal("0.001"),
            stop_price=Decimal("1000")), fetch_fills=False))))
        print(f"AsterDex client over loopback HTTP, {n} calls per row (ms)")
        print(f"{'call':<28}{'median':>9}{'p95':>9}")
        for name, (med, p95) in rows:
            print(f"{name:<28}{med:>9.2f}{p95:>9.2f}")
        print(f"venue requests served: {len(venue.requests)}; orders: {venue.placed_orders()}; "
              f"used weight reported: {c1.rate_state().used_weight}")


if __name__ == "__main__":
    main()
