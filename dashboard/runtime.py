"""The dashboard's per-process runtime: the settings, the database and, when ``ENGINE_IN_APP``
is on, one engine driver started with it; Streamlit's release hook stops the engine (and frees
its lease) when the resource is dropped. The database lease still guards against a second
engine elsewhere."""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st
from sqlalchemy import Engine

from core.config import Settings, get_settings
from core.desk.scheduler import EngineDriver
from core.store.db import open_database


@dataclass
class Runtime:
    settings: Settings
    db: Engine
    driver: EngineDriver | None

    def close(self) -> None:
        if self.driver is not None:
            self.driver.stop()
        self.db.dispose()


def _release(runtime: Runtime) -> None:
    runtime.close()


@st.cache_resource(show_spinner=False, on_release=_release)
def get_runtime() -> Runtime:
    settings = get_settings()
    db = open_database(settings.database_url)
    driver = None
    if settings.engine_in_app:
        driver = EngineDriver(settings, db)
        driver.start()
    return Runtime(settings, db, driver)
