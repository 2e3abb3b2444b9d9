"""Optuna's studies live in the desk's database: beside the SQLite file, or in a schema of its
own on PostgreSQL (so neither alembic_version table reads the other's)."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from sqlalchemy import inspect, text

from core import queries
from core.errors import ConfigError
from core.research.storage import SCHEMA, open_storage, studies_exist, studies_url
from core.store.db import open_database

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _one_study(storage: optuna.storages.RDBStorage) -> None:
    study = optuna.create_study(study_name="s", storage=storage, direction="maximize")
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=3)


def test_sqlite_studies_sit_beside_the_desk(tmp_path: Path) -> None:
    desk_url = f"sqlite:///{tmp_path / 'desk.db'}"
    desk = open_database(desk_url)
    assert queries.research_studies(desk_url) == []  # reading creates nothing
    assert not (tmp_path / "desk.studies.db").exists() and not studies_exist(desk_url)
    _one_study(open_storage(desk_url))
    assert (tmp_path / "desk.studies.db").exists()
    # the desk's schema is untouched: no optuna table, its own alembic revision
    assert "trials" not in inspect(desk).get_table_names()
    open_database(desk_url).dispose()  # the desk still migrates
    again = optuna.load_study(study_name="s", storage=open_storage(desk_url))
    assert len(again.trials) == 3
    desk.dispose()


def test_in_memory_and_unknown_databases_are_refused() -> None:
    with pytest.raises(ConfigError, match="in-memory"):
        studies_url("sqlite://")
    with pytest.raises(ConfigError, match="unsupported"):
        studies_url("mysql://x@localhost/db")


@pytest.mark.postgres
def test_postgres_studies_share_the_desks_database(pg_url: str) -> None:
    desk = open_database(pg_url)
    assert queries.research_studies(pg_url) == [] and not studies_exist(pg_url)
    _one_study(open_storage(pg_url))
    _one_study_joined = optuna.load_study(study_name="s", storage=open_storage(pg_url))
    assert len(_one_study_joined.trials) == 3
    with desk.connect() as conn:
        tables = {r[0] for r in conn.execute(text(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = :s"),
            {"s": SCHEMA})}
        desk_rev = conn.execute(text("SELECT version_num FROM public.alembic_version")).scalar()
    assert {"studies", "trials", "alembic_version"} <= tables
    assert "trials" not in inspect(desk).get_table_names()  # public schema
    open_database(pg_url).dispose()  # the desk's migrations still see their own revision
    with desk.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM public.alembic_version")).scalar() == desk_rev
    desk.dispose()
