"""Research: tune the agents' parameters and see whether the tuning survives unseen data.

Start a study (an Optuna search over the chosen agents' parameters) or a walk-forward (tune on
each training window, judge on the unseen window after it); both run as their own command
(``core.service.start_study`` / ``start_walkforward``), so this page only reads their progress
from the database, like any study started from a terminal or another machine. A study shows its
best trials, Optuna's optimisation history and parameter importances, and the DSR and PBO of its
best; a walk-forward shows its out-of-sample headline, in-sample beside it, and its stitched
out-of-sample equity against the defaults and buy and hold. A chosen parameter set starts a paper
session after a confirmation that lists it.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from core import queries, service
from dashboard import get_runtime, run_action

runtime = get_runtime()
db = runtime.db
settings = runtime.settings
URL = settings.database_url

AGENTS = {"trend": "TrendMaster Alpha", "momentum": "Momentum Hunter",
          "mean_reversion": "Mean Reversion Pro", "scalper": "Lightning Scalper",
          "arbitrage": "Arbitrage Scanner"}
OBJECTIVES = ("sharpe", "sortino", "calmar", "return")
CHOSEN = "research_study"
LAYOUT: dict[str, Any] = {"height": 340, "margin": {"l": 10, "r": 10, "t": 40, "b": 10},
                          "hovermode": "x unified",
                          "legend": {"orientation": "h", "yanchor": "top", "y": -0.12, "x": 0}}


def _pct(v: float | None) -> str:
    return "–" if v is None else f"{v:+.2%}"


def _num(v: float | None, fmt: str = ".2f") -> str:
    return "–" if v is None else format(v, fmt)


# ---------------------------------------------------------------------- starting one
def request_form() -> None:
    known = sorted({*queries.recorded_symbols(settings.replay_data_dir), *settings.symbol_list})
    kind = st.radio("Run", ["Study", "Walk-forward"], horizontal=True, key="rs_kind",
                    help="A study searches one range (in-sample figures only). A walk-forward "
                         "tunes on each training window and reports on the unseen one after it.")
    with st.form("research_form", enter_to_submit=False):
        left, right = st.columns([2, 1])
        name = left.text_input("Name", max_chars=120, key="rs_name",
                               help="The study's key in the database; --join from a terminal "
                                    "adds workers to it.")
        agents = right.multiselect("Agents", list(AGENTS), default=["trend"],
                                   format_func=AGENTS.__getitem__, key="rs_agents")
        left, mid, right = st.columns(3)
        start = left.date_input("From", value=date(2025, 5, 1), format="YYYY-MM-DD")
        end = mid.date_input("To (inclusive)", value=date(2025, 10, 31), format="YYYY-MM-DD")
        interval = right.selectbox("Interval", ["1h", "15m", "1m"], index=0)
        left, mid, right = st.columns(3)
        symbols = left.multiselect("Symbols", known, default=list(settings.symbol_list),
                                   accept_new_options=True, key="rs_symbols")
        capital = mid.text_input("Capital (USDT)", value=f"{settings.default_capital:,.2f}",
                                 max_chars=40, key="rs_capital")
        data_dir = right.text_input("Data folder", value=str(settings.replay_data_dir))
        left, mid, right = st.columns(3)
        objective = left.selectbox("Objective", OBJECTIVES, index=0)
        trials = mid.number_input("Trials" + (" per window" if kind == "Walk-forward" else ""),
                                  min_value=1, max_value=10_000, value=50, step=10)
        workers = right.number_input("Worker processes", min_value=1, max_value=16, value=2)
        left, mid, right = st.columns(3)
        max_dd = left.number_input("Max drawdown % (0: none)", min_value=0.0, max_value=99.0,
                                   value=0.0, step=1.0,
                                   help="A trial that fell this far below its peak is infeasible.")
        min_trades = mid.number_input("Min trades (0: none)", min_value=0, value=0)
        seed = right.text_input("Seed (optional)", max_chars=12,
                                help="With one worker, the same seed reproduces the study.")
        ceo = st.toggle("CEO on", value=True)
        train = test = step = 0
        if kind == "Walk-forward":
            left, mid, right = st.columns(3)
            train = left.number_input("Train days", min_value=1, value=90)
            test = mid.number_input("Test days", min_value=1, value=30)
            step = right.number_input("Step days", min_value=1, value=30)
        submitted = st.form_submit_button(f"Start {kind.lower()}", type="primary")
    if not submitted:
        return
    if seed.strip() and not seed.strip().lstrip("-").isdigit():
        st.error(f"the seed must be a whole number, got {seed!r}")
        return

    def launch() -> Any:
        request = dict(
            agents=list(agents), start=str(start), end=str(end), interval=interval,
            symbols=[s.strip().upper() for s in symbols if s.strip()],
            capital=service.read_capital(capital), data_dir=data_dir.strip() or None,
            objective=objective, max_drawdown_pct=float(max_dd) or None,
            min_trades=int(min_trades) or None, seed=int(seed) if seed.strip() else None,
            ceo=bool(ceo))
        if kind == "Walk-forward":
            started = service.start_walkforward(settings, name=name, train_days=int(train),
                                                test_days=int(test), step_days=int(step),
                                                trials=int(trials), workers=int(workers),
                                                **request)
        else:
            started = service.start_study(settings, name=name, trials=int(trials),
                                          workers=int(workers), **request)
        st.session_state[CHOSEN] = started.name
        return started

    run_action(launch, done=f"{kind} started")


# ---------------------------------------------------------------------- reading them
def studies_table(rows: list[dict[str, Any]]) -> str | None:
    top = [r for r in rows if r["kind"] != "window"]
    if not top:
        st.info("No study yet: start one above, or from a terminal with `./desk optimize`.")
        return None
    frame = pd.DataFrame([{"name": r["name"], "kind": r["kind"],
                           "progress": f"{r['finished']}/{r['total']}"
                           + (" windows" if r["kind"] == "walkforward" else " trials"),
                           "best": r["best"], "agents": ", ".join(r["agents"]),
                           "range": f"{r['start']} → {r['end']}", "interval": r["interval"],
                           "objective": r["objective"]} for r in top])
    st.dataframe(frame, hide_index=True, width="stretch")
    names = [r["name"] for r in top]
    current = st.session_state.get(CHOSEN)
    return st.selectbox("Open", names, index=names.index(current) if current in names else 0,
                        key="rs_open")


def study_view(name: str) -> None:
    found = queries.research_study(URL, name)
    total = max(1, found["total"])
    st.progress(min(1.0, found["finished"] / total),
                text=f"{found['finished']} of {found['total']} trials finished · "
                     f"{found['running']} running")
    rep = found["report"]
    best = rep["best"]
    if best is None:
        st.info("No feasible trial yet.")
    else:
        sel = rep["selection"] or {}
        st.caption("In sample: the best trial was chosen on these very days. A walk-forward "
                   "tells whether it holds on days it has not seen.")
        cols = st.columns(5)
        cols[0].metric(f"Best {found['objective']}", _num(best["value"], ".3f"))
        cols[1].metric("Return", _pct(best["return"]))
        cols[2].metric("Max drawdown", _num(best["max_drawdown"], ".2%"))
        cols[3].metric("Deflated Sharpe", _num(sel.get("dsr"), ".3f"),
                       help=f"Probability that the true Sharpe beats the best of "
                            f"{sel.get('n_trials')} unskilled trials.")
        cols[4].metric("PBO", _num(sel.get("pbo"), ".2f"),
                       help="Probability of backtest overfitting (CSCV over the trials).")
    if found["top"]:
        st.subheader("Best trials")
        st.dataframe(pd.DataFrame([{**{k: v for k, v in t.items() if k != "params"},
                                    **t["params"]} for t in found["top"]]),
                     hide_index=True, width="stretch")
    charts = queries.study_charts(URL, name)
    for key, title in (("history", "Optimisation history"), ("importance", "Parameter importance")):
        if key in charts:
            st.plotly_chart(charts[key].update_layout(title=title), width="stretch",
                            key=f"rs_{key}")
    if best is not None:
        paper_button(best["params"], f"study {name}, trial {best['number']}")


def walkforward_view(name: str) -> None:
    found = queries.walkforward_report(URL, name)
    plan = found["plan"]
    total = max(1, plan.get("windows", 1))
    report = found["report"]
    if report is None:
        st.progress(min(1.0, found["windows_done"] / total),
                    text=f"{found['windows_done']} of {plan.get('windows')} windows done")
        for w in found["windows"]:
            st.write(f"Window {w['window']['index'] + 1}: tested {w['window']['test_start']} → "
                     f"{w['window']['test_end']}")
        return
    h = report["headline"]
    st.subheader("Out of sample (the headline)")
    cols = st.columns(6)
    cols[0].metric("Return", _pct(h["return"]))
    cols[1].metric("Sharpe", _num(h["sharpe"]))
    cols[2].metric("Deflated Sharpe", _num(h.get("dsr"), ".3f"))
    cols[3].metric("Max drawdown", _num(h["max_drawdown"], ".2%"))
    cols[4].metric("Fees", _num(h["fees"], ",.2f"))
    cols[5].metric("PBO (mean)", _num(h.get("pbo_mean"), ".2f"))
    oos, ins = report["out_of_sample"], report["in_sample"]
    rows = [{"": label, "return": _pct(s["return"]), "Sharpe": _num(s["sharpe"]),
             "DSR": _num(s.get("dsr"), ".3f"), "max drawdown": _num(s["max_drawdown"], ".2%"),
             "fees": _num(s.get("fees"), ",.2f"), "trades": s.get("trades")}
            for label, s in (("tuned, out of sample", oos["tuned"]),
                             ("defaults, out of sample", oos["default"]),
                             ("buy and hold", oos["buy_and_hold"]))]
    rows.append({"": "in sample (mean of windows)", "return": _pct(ins["return_mean"]),
                 "Sharpe": _num(ins["sharpe_mean"]), "DSR": _num(ins["dsr_mean"], ".3f"),
                 "max drawdown": "–", "fees": "–", "trades": None})
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
    curve = report["curve"]
    ts = pd.to_datetime(curve["day_ms"], unit="ms", utc=True)
    fig = go.Figure()
    for key, label, style in (("tuned", "Tuned (out of sample)", {"width": 2}),
                              ("default", "Defaults (out of sample)", {"width": 1}),
                              ("buy_and_hold", "Buy & hold", {"width": 1, "dash": "dot"})):
        fig.add_trace(go.Scatter(x=ts, y=curve[key], name=label, line=style))
    fig.update_layout(title="Stitched out-of-sample equity (USDT)", **LAYOUT)
    st.plotly_chart(fig, width="stretch", key="rs_wf_curve")
    st.subheader("Windows")
    st.dataframe(pd.DataFrame([{k: v for k, v in w.items() if k != "params"}
                               for w in report["windows"]]), hide_index=True, width="stretch")
    st.caption(report["conventions"])
    last = report["windows"][-1] if report["windows"] else None
    if last is not None and last["params"]:
        paper_button(last["params"], f"walk-forward {name}, last window's best")


# ---------------------------------------------------------------------- paper session
PAPER = "research_paper"  # (values, source) while the confirmation is open


def _forget_paper() -> None:
    st.session_state.pop(PAPER, None)


@st.dialog("Start a paper session with these parameters?", on_dismiss=_forget_paper)
def confirm_paper(values: dict[str, Any], source: str) -> None:
    st.write(f"From {source}. Every other parameter keeps the strategy file's value; the "
             "session stores exactly what it runs with.")
    st.dataframe(pd.DataFrame([{"parameter": k, "value": str(v)} for k, v in values.items()]),
                 hide_index=True, width="stretch")
    capital = st.text_input("Capital (USDT)", value=f"{settings.default_capital:,.2f}",
                            key="rs_paper_capital")
    yes, no = st.columns(2)
    if yes.button("Start paper session", type="primary", key="rs_paper_go") and run_action(
            lambda: service.start_paper_with_params(db, settings, values=values,
                                                    capital=service.read_capital(capital)),
            done="Paper session created: the Session page follows it"):
        _forget_paper()
        st.rerun()
    if no.button("Cancel", key="rs_paper_cancel"):
        _forget_paper()
        st.rerun()


def paper_button(values: dict[str, Any], source: str) -> None:
    if st.button("Start a paper session with these parameters…", key="rs_paper"):
        st.session_state[PAPER] = (values, source)


st.title("Research")
with st.expander("Start a study or a walk-forward", expanded=False):
    request_form()
all_studies = queries.research_studies(URL)
chosen = studies_table(all_studies)
if chosen is not None:
    row = next(r for r in all_studies if r["name"] == chosen)
    view = walkforward_view if row["kind"] == "walkforward" else study_view
    if not row["done"]:  # follow a running search; a finished one is drawn once
        view = st.fragment(run_every=5)(view)
    view(chosen)
if st.session_state.get(PAPER):
    confirm_paper(*st.session_state[PAPER])
