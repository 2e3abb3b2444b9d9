"""Which indicators each agent's rule reads, on which timeframe, and how a chart draws them.

The chart-analysis views promise a trader the numbers the agents acted on, so nothing here
restates a parameter: the columns an agent reads are the column tuples its strategy module
declares (``trend.signal_columns`` ...), and every threshold drawn on a panel (z-score ±2, RSI
30/70, ADX 20, the breakout volume multiple ...) is the value of the parameter the strategy
compares against, taken from the parameters the session runs with (``studies(params)``; the
module-level ``STUDIES`` are the defaults'). A session on other parameters sees its own lines.

A *study* is one thing a trader toggles on a chart: lines over the candles (EMA 20/50, the
Bollinger band at the mean-reversion entry width, the 20-bar range) or a panel under them
(z-score, RSI, ADX, ATR, ROC), with its threshold levels. ``derived_columns`` adds the few lines
that are a threshold applied to a feed column (band edges, the breakout volume), computed the way
the agent's comparison is.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.agents import mean_reversion, momentum, scalper, trend
from core.agents.desk_params import DeskParams
from core.agents.roster import BY_KEY

DEFAULTS = DeskParams.defaults()
# the arbitrage agent reads closes (its log spread over its lookback) and ATR14 for each leg's
# stop (stop_atr × atr_14); its module declares no column tuple
ARBITRAGE_COLUMNS = ("close", "atr_14")


def decision_interval(key: str, base_interval: str) -> str | None:
    """The timeframe an agent decides on: the scalper runs on the feed's fastest bars, every other
    agent on its roster timeframe (None for a key the roster does not know)."""
    if key == "scalper":
        return base_interval
    spec = BY_KEY.get(key)
    return spec.timeframe if spec is not None else None


def agent_reads(key: str, base_interval: str,
                params: DeskParams = DEFAULTS) -> dict[str, tuple[str, ...]]:
    """interval → the feed columns the agent's rule reads on it."""
    tf = decision_interval(key, base_interval)
    if tf is None:
        return {}
    reads: dict[str, tuple[str, ...]]
    if key == "trend":
        reads = {tf: trend.signal_columns(params.trend)}
        filt = params.trend.filter_interval
        reads[filt] = tuple(dict.fromkeys(reads.get(filt, ()) + trend.FILTER_COLUMNS))
        return reads
    columns = {"momentum": momentum.COLUMNS, "mean_reversion": mean_reversion.COLUMNS,
               "scalper": scalper.COLUMNS, "arbitrage": ARBITRAGE_COLUMNS}.get(key, ())
    return {tf: columns} if columns else {}


@dataclass(frozen=True, slots=True)
class Study:
    """One toggle on a chart: the feed columns it shows (``reads``: what an agent compares) and
    the lines it draws (``lines``, feed or derived columns), over the candles or in a panel."""

    key: str
    label: str
    panel: bool  # False: lines over the candles; True: a panel of its own under them
    reads: tuple[str, ...]
    lines: tuple[tuple[str, str], ...]  # (column, legend name)
    levels: tuple[tuple[float, str], ...] = ()  # horizontal lines in the study's own units
    scale: float = 1.0  # shown value = column × scale (ROC: a fraction shown in %)
    unit: str = ""
    help: str = ""


def studies(params: DeskParams = DEFAULTS) -> tuple[Study, ...]:
    """The chart's studies with the thresholds of ``params`` (a session's parameters)."""
    trend_, mr, mom, sc = params.trend, params.mean_reversion, params.momentum, params.scalper
    z = mr.z_entry
    return (
    Study("ema_20_50", "EMA 20/50", False, ("ema_20", "ema_50"),
          (("ema_20", "EMA 20"), ("ema_50", "EMA 50")),
          help=f"TrendMaster Alpha enters when EMA20 crosses EMA50 on its timeframe, confirmed by "
               f"{trend_.filter_interval} ADX14 ≥ {trend_.adx_min:g} and price on the cross's side of "
               f"the {trend_.filter_interval} EMA20; it exits when they cross back."),
    Study("bollinger", f"Bollinger 20 ±{z:g}σ", False, ("sma_20", "std_20"),
          (("bb_upper", f"SMA20 + {z:g}σ"), ("sma_20", "SMA 20"), ("bb_lower", f"SMA20 − {z:g}σ")),
          help=f"Mean Reversion Pro fades a close beyond the band (z-score ≤ −{z:g} or ≥ +{z:g}, "
               f"with RSI14 beyond {mr.rsi_oversold:g}/"
               f"{mr.rsi_overbought:g}) and takes profit at the SMA20."),
    Study("ema_5_13", "EMA 5/13", False, ("ema_5", "ema_13"),
          (("ema_5", "EMA 5"), ("ema_13", "EMA 13")),
          help="Lightning Scalper trades with the short-term trend: EMA5 above EMA13 for longs, "
               "below for shorts."),
    Study("range_20", "20-bar high/low", False, ("hh_20", "ll_20"),
          (("hh_20", "20-bar high"), ("ll_20", "20-bar low")),
          help=f"Momentum Hunter buys a close above the prior 20-bar high (sells below the low) on "
               f"volume above {mom.volume_multiple:g}× its 20-bar average with ROC10 agreeing."),
    Study("zscore", "z-score 20", True, ("zscore_20",), (("zscore_20", "z-score 20"),),
          levels=((z, f"+{z:g} short entry"), (0.0, "mean"), (-z, f"−{z:g} long entry")),
          help="How many standard deviations the close is from its 20-bar mean."),
    Study("rsi_14", "RSI 14", True, ("rsi_14",), (("rsi_14", "RSI 14"),),
          levels=((mr.rsi_overbought, "overbought"),
                  (mr.rsi_oversold, "oversold")),
          help="Mean Reversion Pro needs RSI14 beyond these levels to fade a stretch."),
    Study("rsi_7", "RSI 7", True, ("rsi_7",), (("rsi_7", "RSI 7"),),
          levels=((sc.rsi_short_trigger, "short trigger"),
                  (sc.rsi_long_trigger, "long trigger")),
          help="Lightning Scalper enters when RSI7 crosses back through these levels."),
    Study("adx", "ADX 14", True, ("adx_14",), (("adx_14", "ADX 14"),),
          levels=((trend_.adx_min, "trend filter"),),
          help=f"TrendMaster Alpha only follows a cross while the {trend_.filter_interval} ADX14 is "
               f"at least {trend_.adx_min:g}."),
    Study("atr", "ATR 14", True, ("atr_14",), (("atr_14", "ATR 14"),), unit="USDT",
          help=f"Stops and targets are ATR multiples: trend {trend_.stop_atr:g}/{trend_.tp_atr:g}, "
               f"momentum {mom.stop_atr:g}/{mom.tp_atr:g}, scalper "
               f"{sc.stop_atr:g}/{sc.tp_atr:g}."),
    Study("roc", "ROC 10", True, ("roc_10",), (("roc_10", "ROC 10"),), levels=((0.0, ""),),
          scale=100.0, unit="%",
          help="Momentum Hunter's rate of change over 10 bars: it must agree with a breakout, and "
               "the position is closed when it turns against it."),
)


VOLUME_READS = ("volume", "vol_sma_20")


def volume_study(params: DeskParams = DEFAULTS) -> Study:
    """The volume panel, with the breakout volume line at ``params``' multiple."""
    multiple = params.momentum.volume_multiple
    return Study("volume", "Volume", True, VOLUME_READS,
                 (("volume", "Volume"), ("volume_breakout", f"{multiple:g}× 20-bar average")),
                 unit="base asset",
                 help=f"Momentum Hunter needs a breakout bar's volume above {multiple:g}× the "
                      "average of the 20 bars before it.")


STUDIES = studies()  # the defaults' (a session's own: studies(its params))
BY_STUDY = {s.key: s for s in STUDIES}
VOLUME_STUDY = volume_study()
VOLUME_BREAKOUT_NAME = VOLUME_STUDY.lines[1][1]
DERIVED = ("bb_upper", "bb_lower", "volume_breakout")


def feed_columns() -> tuple[str, ...]:
    """Every feed column a chart reads (studies and the volume panel), once each."""
    cols = [c for s in STUDIES for c in s.reads]
    cols += [c for s in STUDIES for c, _ in s.lines if c not in DERIVED]
    return tuple(dict.fromkeys([*cols, *VOLUME_READS]))


def derived_columns(cols: dict[str, np.ndarray],
                    params: DeskParams = DEFAULTS) -> dict[str, np.ndarray]:
    """Thresholds the agents apply, as lines: the band edges (close beyond them ⇔ |z| ≥ z_entry)
    and the breakout volume (volume above it ⇔ ratio above volume_multiple)."""
    sma, std, z = cols["sma_20"], cols["std_20"], params.mean_reversion.z_entry
    return {
        "bb_upper": sma + z * std,
        "bb_lower": sma - z * std,
        "volume_breakout": params.momentum.volume_multiple * cols["vol_sma_20"],
    }


def study_readers(agents: list[tuple[str, str]], base_interval: str, interval: str,
                  params: DeskParams = DEFAULTS) -> dict[str, tuple[list[str], list[str]]]:
    """study key → (agents reading it on ``interval``, "agent on other interval" for the rest),
    for the session's agents as (key, name) on ``params``."""
    out: dict[str, tuple[list[str], list[str]]] = {}
    reads = [(name, agent_reads(key, base_interval, params)) for key, name in agents]
    for study in (*STUDIES, VOLUME_STUDY):
        here: list[str] = []
        elsewhere: list[str] = []
        for name, by_interval in reads:
            for tf, columns in by_interval.items():
                if set(study.reads) & set(columns):
                    (here if tf == interval else elsewhere).append(
                        name if tf == interval else f"{name} on {tf}")
        out[study.key] = (list(dict.fromkeys(here)), list(dict.fromkeys(elsewhere)))
    return out
