"""Symbol filters: the venue's tick, step, min-notional and leverage rules per symbol.

Orders are rounded and checked against these before they reach a venue, and the paper exchange
rejects exactly what the real one would. ``default_filters`` gives offline defaults (the paper venue
needs no network); ``parse_exchange_info`` reads the live ``GET /fapi/v1/exchangeInfo`` reply.
exchangeInfo carries no leverage bracket, so leverage and maintenance margin come from the defaults
(the live client may refine them from ``/fapi/v1/leverageBracket``).
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from core.models import SymbolFilters


def _filters(
    symbol: str,
    tick: str,
    step: str,
    min_qty: str,
    max_qty: str,
    max_leverage: int,
    maint: str,
    min_notional: str = "5",
) -> SymbolFilters:
    return SymbolFilters(
        symbol=symbol,
        tick_size=Decimal(tick),
        step_size=Decimal(step),
        min_qty=Decimal(min_qty),
        max_qty=Decimal(max_qty),
        min_notional=Decimal(min_notional),
        max_leverage=max_leverage,
        maint_margin_rate=Decimal(maint),
    )


KNOWN_FILTERS: dict[str, SymbolFilters] = {
    "BTCUSDT": _filters("BTCUSDT", "0.1", "0.001", "0.001", "1000", 125, "0.004"),
    "ETHUSDT": _filters("ETHUSDT", "0.01", "0.001", "0.001", "10000", 100, "0.005"),
    "SOLUSDT": _filters("SOLUSDT", "0.01", "0.01", "0.01", "100000", 75, "0.005"),
}


def generic_filters(symbol: str) -> SymbolFilters:
    """Conservative rules for a symbol we know nothing about (fine ticks, low leverage)."""
    return _filters(symbol, "0.0001", "0.001", "0.001", "1000000", 20, "0.01")


def default_filters(symbols: Iterable[str]) -> dict[str, SymbolFilters]:
    """Offline filters for ``symbols``: the known defaults, or the generic rules."""
    return {s: KNOWN_FILTERS.get(s) or generic_filters(s) for s in (x.upper() for x in symbols)}


def parse_exchange_info(payload: dict[str, Any]) -> dict[str, SymbolFilters]:
    """Filters of every symbol in an exchangeInfo reply (PRICE_FILTER, LOT_SIZE, MARKET_LOT_SIZE,
    MIN_NOTIONAL).

    Numbers arrive as strings and are read as ``Decimal``; a missing filter keeps the default
    value for that field. Leverage and maintenance margin rate come from the offline defaults.
    """
    out: dict[str, SymbolFilters] = {}
    for entry in payload.get("symbols", []):
        symbol = str(entry["symbol"]).upper()
        base = KNOWN_FILTERS.get(symbol) or generic_filters(symbol)
        by_type = {f.get("filterType"): f for f in entry.get("filters", [])}
        price = by_type.get("PRICE_FILTER", {})
        lot = by_type.get("LOT_SIZE", {})
        market_lot = by_type.get("MARKET_LOT_SIZE", {})
        notional = by_type.get("MIN_NOTIONAL", {})
        out[symbol] = SymbolFilters(
            symbol=symbol,
            tick_size=_dec(price.get("tickSize"), base.tick_size),
            step_size=_dec(lot.get("stepSize"), base.step_size),
            min_qty=_dec(lot.get("minQty"), base.min_qty),
            max_qty=_dec(lot.get("maxQty"), base.max_qty),
            min_notional=_dec(
                notional.get("notional", notional.get("minNotional")), base.min_notional
            ),
            max_leverage=base.max_leverage,
            maint_margin_rate=base.maint_margin_rate,
            min_price=_dec(price.get("minPrice"), Decimal(0)),
            market_step_size=_maybe(market_lot.get("stepSize")),
            market_min_qty=_maybe(market_lot.get("minQty")),
            market_max_qty=_maybe(market_lot.get("maxQty")),
        )
    return out


def _maybe(raw: object) -> Decimal | None:
    """An optional filter value: None when absent or zero."""
    if raw is None:
        return None
    value = Decimal(str(raw))
    return value if value > 0 else None


def _dec(raw: object, default: Decimal) -> Decimal:
    """A filter value as Decimal; absent or zero ("0" disables a rule) keeps the default."""
    if raw is None:
        return default
    value = Decimal(str(raw))
    return value if value > 0 else default
