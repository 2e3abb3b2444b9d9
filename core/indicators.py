"""Vectorised, causal indicators computed once per series.

Every column at index ``i`` depends only on bars ``0..i`` (rolling windows and EWMs look back only),
so a replay can compute a whole year once and serve row ``i`` at bar ``i`` without ever showing an
agent the future; a live feed calls the same function on its trailing window. ``tests`` check the
causality by recomputing on truncated series.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

COLUMNS: tuple[str, ...] = (
    "open", "high", "low", "close", "volume",
    "ema_5", "ema_13", "ema_20", "ema_50",
    "sma_20", "std_20", "zscore_20",
    "rsi_7", "rsi_14", "atr_14", "adx_14", "roc_10",
    "hh_20", "ll_20", "vol_sma_20",
)


def _rsi(close: pd.Series, n: int) -> pd.Series:
    delta = close.diff()
    gain = delta.clip(lower=0).ewm(alpha=1 / n, adjust=False, min_periods=n).mean()
    loss = (-delta.clip(upper=0)).ewm(alpha=1 / n, adjust=False, min_periods=n).mean()
    rs = gain / loss.replace(0, np.nan)
    rsi = 100 - 100 / (1 + rs)
    return rsi.where(loss != 0, 100.0).where(gain.notna())


def compute(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """Indicator arrays for an OHLCV frame (columns open, high, low, close, volume)."""
    o, h, lo, c, v = (frame[k].astype(float) for k in ("open", "high", "low", "close", "volume"))
    out: dict[str, pd.Series] = {"open": o, "high": h, "low": lo, "close": c, "volume": v}
    for n in (5, 13, 20, 50):
        out[f"ema_{n}"] = c.ewm(span=n, adjust=False, min_periods=n).mean()
    sma = c.rolling(20).mean()
    std = c.rolling(20).std(ddof=0)
    out["sma_20"] = sma
    out["std_20"] = std
    out["zscore_20"] = (c - sma) / std.replace(0, np.nan)
    out["rsi_7"] = _rsi(c, 7)
    out["rsi_14"] = _rsi(c, 14)

    prev_close = c.shift(1)
    tr = pd.concat([h - lo, (h - prev_close).abs(), (lo - prev_close).abs()], axis=1).max(axis=1)
    atr = tr.ewm(alpha=1 / 14, adjust=False, min_periods=14).mean()
    out["atr_14"] = atr
    up = h.diff()
    down = -lo.diff()
    plus_dm = up.where((up > down) & (up > 0), 0.0)
    minus_dm = down.where((down > up) & (down > 0), 0.0)
    plus_di = 100 * plus_dm.ewm(alpha=1 / 14, adjust=False, min_periods=14).mean() / atr
    minus_di = 100 * minus_dm.ewm(alpha=1 / 14, adjust=False, min_periods=14).mean() / atr
    dx = 100 * (plus_di - minus_di).abs() / (plus_di + minus_di).replace(0, np.nan)
    out["adx_14"] = dx.ewm(alpha=1 / 14, adjust=False, min_periods=14).mean()
    out["roc_10"] = c / c.shift(10) - 1.0
    out["hh_20"] = h.shift(1).rolling(20).max()
    out["ll_20"] = lo.shift(1).rolling(20).min()
    out["vol_sma_20"] = v.shift(1).rolling(20).mean()
    return {k: out[k].to_numpy(dtype=float, copy=True) for k in COLUMNS}


class Features:
    """Read access to one series' indicator row at a fixed bar index (and the bars before it)."""

    __slots__ = ("_cols", "index", "open_time_ms")

    def __init__(self, cols: dict[str, np.ndarray], index: int, open_time_ms: int) -> None:
        self._cols = cols
        self.index = index
        self.open_time_ms = open_time_ms

    def __getitem__(self, name: str) -> float:
        return float(self._cols[name][self.index])

    def prev(self, name: str, lag: int = 1) -> float:
        i = self.index - lag
        return float(self._cols[name][i]) if i >= 0 else float("nan")

    def window(self, name: str, n: int) -> np.ndarray:
        """The last ``n`` values up to and including this bar (fewer at the start)."""
        return self._cols[name][max(0, self.index - n + 1) : self.index + 1]

    def ready(self, *names: str) -> bool:
        """True when every named value is a finite number (the warm-up is over)."""
        return all(np.isfinite(self._cols[n][self.index]) for n in names)
