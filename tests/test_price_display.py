"""Prices read as the venue quotes them: each row at its own symbol's tick size, whatever else
the table holds, and the column stays numeric so it sorts as numbers."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from dashboard import price_decimals, price_text, tick_prices


def test_known_symbols_use_their_tick_size() -> None:
    assert price_decimals("BTCUSDT") == 1  # tick 0.1
    assert price_decimals("ethusdt") == 2  # tick 0.01
    assert price_text(103754.5, "BTCUSDT") == "103,754.5"
    assert price_text(4318.05, "ETHUSDT") == "4,318.05"
    assert price_text(float("nan"), "BTCUSDT") == price_text(None, "BTCUSDT") == "–"


@pytest.mark.parametrize(("value", "shown"), [
    (0.00001234, "0.00001234"), (0.5123, "0.51230"), (12.3456, "12.346"), (45000.0, "45,000.00"),
])
def test_an_unknown_symbol_keeps_five_significant_figures(value: float, shown: str) -> None:
    assert price_text(value, "1000PEPEUSDT") == shown


def test_one_small_price_no_longer_sets_the_precision_of_a_whole_table() -> None:
    frame = pd.DataFrame({"Symbol": ["BTCUSDT", "PEPEUSDT", "ETHUSDT"],
                          "Entry": [103754.5, 0.00001234, 4318.05],
                          "Stop": [101000.0, math.nan, 4200.1]})
    text = tick_prices(frame, frame["Symbol"], ["Entry", "Stop"]).to_string(delimiter="|")
    rows = [line.split("|") for line in text.splitlines()[1:]]
    assert [r[2:] for r in rows] == [["103,754.5", "101,000.0"], ["0.00001234", "–"],
                                     ["4,318.05", "4,200.10"]]
    assert pd.api.types.is_float_dtype(frame["Entry"])  # the table still sorts as numbers


def test_one_symbol_for_a_whole_table() -> None:
    frame = pd.DataFrame({"Price": [103754.55, 99000.0]})
    text = tick_prices(frame, "BTCUSDT", ["Price"]).to_string(delimiter="|")
    assert [line.split("|")[1] for line in text.splitlines()[1:]] == ["103,754.6", "99,000.0"]
