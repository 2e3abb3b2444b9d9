"""The chart analysis figure: candles with the studies the agents read, volume, panels with
their thresholds, and each agent's entries, exits, stops and take-profits marked."""

from __future__ import annotations

from typing import Any

import pandas as pd

from dashboard.formatting import (
    CLOSE_REASON_LABEL,
    LOSS,
    NEUTRAL,
    PROFIT,
    chart_times,
    pnl_color,
    price_text,
    zone_name,
)

# ---------------------------------------------------------------------- charts
# One look for every candle chart (the Market page's analysis and a trade opened from the
# history): candles over volume, the chosen studies' lines and panels, and per agent (one legend
# entry each, so a click hides an agent) its entries ▲/▼, exits ✕ (green win, red loss), stops
# (dashed red) and take-profits (dashed green) as they rested at the venue.
AGENT_COLORS = {"trend": "#3b82f6", "momentum": "#f59e0b", "mean_reversion": "#a855f7",
                "scalper": "#06b6d4", "arbitrage": "#ec4899"}
OUTLINE = "#f5f5f5"
LINE_COLORS = {"ema_20": "#eab308", "ema_50": "#8b5cf6", "sma_20": "#94a3b8", "bb_upper": "#94a3b8",
               "bb_lower": "#94a3b8", "ema_5": "#22d3ee", "ema_13": "#f472b6", "hh_20": "#a3a3a3",
               "ll_20": "#a3a3a3"}
DASHED = ("bb_upper", "bb_lower", "hh_20", "ll_20")
PRICE_HEIGHT, PANEL_HEIGHT = 420, 120


def agent_color(key: str | None) -> str:
    return AGENT_COLORS.get(key or "", NEUTRAL)


def _hover_text(text: Any, width: int = 80) -> str:
    import textwrap

    plain = text if isinstance(text, str) else ""
    safe = plain.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return "<br>".join(textwrap.wrap(safe, width)) or "no reasoning recorded"


def _agent_marks(fig: Any, chart: Any, agents: list[str] | None) -> None:
    import plotly.graph_objects as go

    span = chart.span_ms
    trades = chart.trades if agents is None else chart.trades[chart.trades["agent"].isin(agents)]
    if span is None or trades.empty:
        return
    lo, hi = span
    for (agent, key), part in trades.groupby(["agent", "agent_key"], sort=False):
        color, legend = agent_color(key), [True]

        def add(trace: Any, agent: str = str(agent), legend: list[bool] = legend) -> None:
            trace.update(legendgroup=agent, name=agent, showlegend=legend[0])
            legend[0] = False
            fig.add_trace(trace, row=1, col=1)

        entries = part[part["opened_ms"].between(lo, hi)]
        if not entries.empty:
            add(go.Scatter(
                x=entries["entry_time"], y=entries["entry_price"], mode="markers",
                marker={"symbol": ["triangle-up" if s == "LONG" else "triangle-down"
                                   for s in entries["side"]],
                        "size": 14, "color": color, "line": {"width": 1.5, "color": OUTLINE}},
                customdata=[[a, s, price_text(p, chart.symbol), lev, price_text(sl, chart.symbol), price_text(tp, chart.symbol),
                             v if isinstance(v, str) else "–",
                             _hover_text(r), i] for a, s, p, lev, sl, tp, v, r, i in zip(
                    entries["agent"], entries["side"], entries["entry_price"], entries["leverage"],
                    entries["stop_price"], entries["take_profit"], entries["verdict"],
                    entries["reasoning"], entries["trade_id"], strict=True)],
                hovertemplate="<b>%{customdata[0]}</b> · trade #%{customdata[8]}<br>%{customdata[1]} "
                              "entry at %{customdata[2]} USDT · %{customdata[3]}x<br>stop "
                              "%{customdata[4]} · take-profit %{customdata[5]} · CEO "
                              "%{customdata[6]}<br>%{x|%Y-%m-%d %H:%M} " + zone_name() + "<br><br>"
                              "%{customdata[7]}<extra></extra>"))
        exits = part[(part["status"] == "closed") & part["closed_ms"].between(lo, hi)
                     & part["exit_price"].notna()]
        if not exits.empty:
            pnl = exits["net_pnl"].astype(float)
            add(go.Scatter(
                x=exits["exit_time"], y=exits["exit_price"], mode="markers",
                marker={"symbol": "x", "size": 13, "color": [pnl_color(v) for v in pnl],
                        "line": {"width": 2, "color": color}},
                customdata=[[a, s, price_text(p, chart.symbol), CLOSE_REASON_LABEL.get(r, r or "–"), f"{v:+,.2f}", i]
                            for a, s, p, r, v, i in zip(
                    exits["agent"], exits["side"], exits["exit_price"], exits["close_reason"], pnl,
                    exits["trade_id"], strict=True)],
                hovertemplate="<b>%{customdata[0]}</b> · trade #%{customdata[5]}<br>%{customdata[1]} "
                              "exit at %{customdata[2]} USDT (%{customdata[3]})<br>net PnL "
                              "%{customdata[4]} USDT<br>%{x|%Y-%m-%d %H:%M} " + zone_name()
                              + "<extra></extra>"))
        levels = chart.levels[chart.levels["trade_id"].isin(part["trade_id"])]
        for kind, line_color, word in (("stop_loss", LOSS, "stop"), ("take_profit", PROFIT, "take-profit")):
            seg = levels[levels["kind"] == kind]
            if seg.empty:
                continue
            xs: list[Any] = []
            ys: list[Any] = []
            text: list[Any] = []
            for r in seg.itertuples():
                label = f"{agent} {word} {price_text(r.price, chart.symbol)} · trade #{r.trade_id} ({r.status.lower()})"
                xs += [r.from_time, r.to_time, None]
                ys += [r.price, r.price, None]
                text += [label, label, None]
            add(go.Scatter(x=xs, y=ys, mode="lines", text=text, hovertemplate="%{text}<extra></extra>",
                           line={"color": line_color, "width": 1.5, "dash": "dash"}))


def _in_display_zone(chart: Any) -> Any:
    """The chart with every time as wall-clock time of the display zone (a copy; UTC: as is)."""
    if zone_name() == "UTC":
        return chart
    import dataclasses

    def shifted(frame: pd.DataFrame, columns: tuple[str, ...]) -> pd.DataFrame:
        out = frame.copy()
        for column in columns:
            if column in out:
                out[column] = chart_times(out[column])
        return out

    return dataclasses.replace(
        chart, candles=shifted(chart.candles, ("time",)),
        trades=shifted(chart.trades, ("entry_time", "exit_time")),
        levels=shifted(chart.levels, ("from_time", "to_time")))


def analysis_figure(chart: Any, studies: list[str], agents: list[str] | None = None) -> Any:
    """The chart of a ``queries.Chart``: candles (with the chosen overlay studies and the agents'
    marks) over volume, then one panel per chosen panel study with its threshold levels."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    chart = _in_display_zone(chart)
    chosen = [v.study for v in chart.studies if v.study.key in studies]
    panels = [s for s in chosen if s.panel]
    heights = [PRICE_HEIGHT] + [PANEL_HEIGHT] * (1 + len(panels))
    fig = make_subplots(rows=len(heights), cols=1, shared_xaxes=True, vertical_spacing=0.025,
                        row_heights=heights)
    c = chart.candles
    fig.add_trace(go.Candlestick(
        x=c["time"], open=c["open"], high=c["high"], low=c["low"], close=c["close"],
        name=f"{chart.symbol} {chart.interval}", opacity=0.8,
        increasing={"line": {"color": PROFIT}, "fillcolor": PROFIT},
        decreasing={"line": {"color": LOSS}, "fillcolor": LOSS}), row=1, col=1)
    for study in (s for s in chosen if not s.panel):
        for col, name in study.lines:
            fig.add_trace(go.Scatter(
                x=c["time"], y=c[col], mode="lines", name=name, legendgroup=study.key,
                line={"color": LINE_COLORS.get(col, NEUTRAL), "width": 1.3,
                      "dash": "dash" if col in DASHED else "solid"},
                hovertemplate=f"{name} %{{y:,.2f}}<extra></extra>"), row=1, col=1)
    _agent_marks(fig, chart, agents)
    volume = chart.volume.study
    fig.add_trace(go.Bar(
        x=c["time"], y=c["volume"], name="Volume", showlegend=False, opacity=0.55,
        marker_color=[PROFIT if cl >= op else LOSS for op, cl in zip(c["open"], c["close"], strict=True)],
        hovertemplate="volume %{y:,.2f}<extra></extra>"), row=2, col=1)
    column, name = volume.lines[1]
    fig.add_trace(go.Scatter(x=c["time"], y=c[column], mode="lines", name=name, showlegend=False,
                             line={"color": NEUTRAL, "width": 1, "dash": "dot"},
                             hovertemplate=f"{name} %{{y:,.2f}}<extra></extra>"), row=2, col=1)
    fig.update_yaxes(title_text="Volume", row=2, col=1)
    for row, study in enumerate(panels, start=3):
        for col, name in study.lines:
            fig.add_trace(go.Scatter(
                x=c["time"], y=c[col] * study.scale, mode="lines", name=name, showlegend=False,
                line={"color": "#3b82f6", "width": 1.3},
                hovertemplate=f"{name} %{{y:,.2f}}{study.unit if study.unit == '%' else ''}"
                              "<extra></extra>"), row=row, col=1)
        for value, label in study.levels:
            fig.add_hline(y=value, row=row, col=1, line={"color": NEUTRAL, "width": 1, "dash": "dot"},
                          annotation_text=label, annotation_position="top left",
                          annotation_font_size=10)
        fig.update_yaxes(title_text=study.label + (" (%)" if study.unit == "%" else ""), row=row, col=1)
    fig.update_layout(
        height=sum(heights) + 60, margin={"l": 10, "r": 10, "t": 30, "b": 10},
        xaxis_rangeslider_visible=False, hovermode="closest",
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.01, "x": 0})
    fig.update_xaxes(gridcolor="rgba(128,128,128,0.15)")
    fig.update_xaxes(title_text=f"engine time ({zone_name()})", row=len(heights), col=1)
    fig.update_yaxes(gridcolor="rgba(128,128,128,0.15)")
    fig.update_yaxes(title_text="USDT", tickformat=",", row=1, col=1)
    return fig
