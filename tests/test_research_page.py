"""The Research page through AppTest: the empty state, a study's report and Optuna charts, a
walk-forward's out-of-sample report, a refused request, and a study started from the form that
runs in its own process."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import Engine
from streamlit.testing.v1 import AppTest

from core import queries
from core.research import study as studies
from core.research.trial import StudySpec
from core.research.walkforward import run_walkforward
from tests.conftest import APP, PROJECT_ROOT, make_settings

PAGE = "views/research.py"
DATA = str(PROJECT_ROOT / "data" / "klines")
SPEC = StudySpec(agents=("trend",), start="2025-10-01", end="2025-10-08", interval="1h",
                 symbols=("BTCUSDT", "ETHUSDT"), capital=100_000.0, data_dir=DATA, seed=3)


def page() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=90)
    at.switch_page(PAGE)
    return at.run()


def clean(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def test_empty_page_says_how_to_start(db: Engine) -> None:
    at = page()
    clean(at)
    assert any("No study yet" in i.value for i in at.info)


def test_study_and_walkforward_reports(db: Engine, app_env: str) -> None:
    settings = make_settings(database_url=app_env)
    studies.create(app_env, "tuned trend", SPEC, 5)
    assert studies.run_workers(settings, "tuned trend", 1)
    report = run_walkforward(settings, "wf trend", SPEC, train=3, test=2, step=2, trials=3,
                             workers=1)
    assert report is not None and report["plan"]["windows"] == 2
    at = page()
    clean(at)
    at.selectbox(key="rs_open").set_value("tuned trend").run()
    clean(at)
    labels = [m.label for m in at.metric]
    assert "Deflated Sharpe" in labels and "PBO" in labels
    assert at.get("plotly_chart")  # Optuna's optimisation history (and importances)
    assert any("In sample" in c.value for c in at.caption)
    # a paper session on the best trial's parameters, after a confirmation that lists them
    best = queries.research_study(app_env, "tuned trend")["report"]["best"]
    at.button(key="rs_paper").click().run()
    clean(at)
    shown = at.dataframe[-1].value
    assert set(shown["parameter"]) == set(best["params"])
    at.button(key="rs_paper_go").click().run()
    clean(at)
    session = queries.latest_session(db)
    assert session is not None and session["mode"] == "paper", [e.value for e in at.error]
    stored = queries.session_params(db, session["id"]).flat()
    assert all(stored[k] == v for k, v in best["params"].items())
    at.selectbox(key="rs_open").set_value("wf trend").run()
    clean(at)
    assert any("Out of sample" in s.value for s in at.subheader)
    headline = {m.label: m.value for m in at.metric}
    assert headline["Return"] == f"{report['headline']['return']:+.2%}"
    # the windows' own studies are not listed as studies of their own
    assert "wf trend · window 1" not in at.selectbox(key="rs_open").options


def test_refused_request_says_why(db: Engine) -> None:
    at = page()
    at.text_input(key="rs_name").set_value("no agents")
    at.multiselect(key="rs_agents").set_value([])
    at.button[0].click().run()
    clean(at)
    assert any("agent" in e.value for e in at.error)
    assert queries.research_studies(db.url.render_as_string(hide_password=False)) == []


@pytest.mark.slow
def test_a_study_started_from_the_form_runs_in_its_own_process(db: Engine, app_env: str) -> None:
    at = page()
    at.text_input(key="rs_name").set_value("from the page")
    at.date_input[0].set_value(SPEC.start)
    at.date_input[1].set_value("2025-10-04")
    at.number_input[0].set_value(2)  # trials
    at.number_input[1].set_value(1)  # workers
    at.button[0].click().run()
    clean(at)
    assert not at.error, [e.value for e in at.error]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        rows = queries.research_studies(app_env)
        if rows and rows[0]["done"]:
            break
        time.sleep(1)
    assert rows[0]["name"] == "from the page" and rows[0]["finished"] == 2


def test_a_study_not_finished_shows_its_progress(db: Engine, app_env: str) -> None:
    studies.create(app_env, "waiting", SPEC, 3)
    at = page()
    clean(at)
    assert any("0 of 3 trials finished" in str(p.proto) for p in at.get("progress"))
    assert any("No feasible trial yet" in i.value for i in at.info)
