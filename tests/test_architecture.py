"""The dependency directions of DESIGN.md section 2, checked statically with ``ast``.

- no module under ``core/`` imports ``streamlit``, bar the one UI helper ``core/ui.py``;
- pages (``views/*.py``, ``app.py``) never import adapters, the store, the engine or SQLAlchemy:
  they read through ``core.queries`` and write intents through ``core.service`` (and ``core.ui``);
- ``core/risk.py`` is pure: from the project it imports ``core.models`` only (``core.config`` is
  allowed under ``TYPE_CHECKING``), and from outside only the standard library;
- every module under ``core/`` says in a docstring why it exists.

Imports anywhere in a file count (inside functions too), since a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

from core.config import PROJECT_ROOT

CORE = PROJECT_ROOT / "core"
UI_HELPER = CORE / "ui.py"
PAGE_FORBIDDEN = (
    "core.exchanges", "core.feeds", "core.llm", "core.store", "sqlalchemy", "core.engine",
)
RISK_PROJECT_ALLOWED = {"core.models"}
RISK_TYPE_CHECKING_ALLOWED = {"core.models", "core.config"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PROJECT_ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(tree: ast.AST, module: str, *, is_package: bool = False) -> set[str]:
    """Every module a file imports, absolute, including ``from pkg import submodule`` as
    ``pkg.submodule`` (a name that is not a module only adds a harmless extra entry)."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                package = module.split(".") if is_package else module.split(".")[:-1]
                base_parts = package[: len(package) - (node.level - 1)]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names if alias.name != "*")
    found.discard("")
    return found


def _parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _imports_of(path: Path) -> set[str]:
    return imported_modules(_parse(path), _module_name(path), is_package=path.name == "__init__.py")


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def core_files() -> list[Path]:
    return sorted(CORE.rglob("*.py"))


def page_files() -> list[Path]:
    pages = sorted((PROJECT_ROOT / "views").rglob("*.py"))
    return [PROJECT_ROOT / "app.py", *pages]


def test_pages_live_outside_a_pages_folder() -> None:
    """A ``pages/`` folder makes Streamlit serve its scripts by URL without running app.py, which
    would skip the password gate; pages live in ``views/`` and are served by st.navigation only."""
    assert not (PROJECT_ROOT / "pages").exists()
    assert len(page_files()) == 7  # app.py and the six pages, the Backtest page among them


def test_no_streamlit_under_core_except_the_ui_helper() -> None:
    offenders = {
        str(p.relative_to(PROJECT_ROOT)): sorted(m for m in _imports_of(p) if _within(m, "streamlit"))
        for p in core_files() if p != UI_HELPER
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_pages_go_through_service_queries_and_ui() -> None:
    offenders: dict[str, list[str]] = {}
    for path in page_files():
        bad = sorted(m for m in _imports_of(path) if any(_within(m, f) for f in PAGE_FORBIDDEN))
        if bad:
            offenders[str(path.relative_to(PROJECT_ROOT))] = bad
    assert offenders == {}, "pages must read via core.queries and write via core.service"


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def test_risk_depends_on_models_only() -> None:
    tree = _parse(CORE / "risk.py")
    type_checking: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.body:
                type_checking |= imported_modules(child, "core.risk")
    runtime = imported_modules(tree, "core.risk") - type_checking

    def not_allowed(names: set[str], allowed: set[str]) -> set[str]:
        # ``from core.models import Proposal`` yields core.models and core.models.Proposal;
        # ``from core import models`` yields core (the package itself, harmless) and core.models
        project = {n for n in names if _within(n, "core") and n != "core"}
        return {n for n in project if not any(_within(n, a) for a in allowed)}

    assert not_allowed(runtime, RISK_PROJECT_ALLOWED) == set(), \
        "core/risk.py may import only core.models from the project"
    assert not_allowed(type_checking, RISK_TYPE_CHECKING_ALLOWED) == set(), \
        "core/risk.py may import only core.models (and core.config for type hints)"
    outside = {n.split(".")[0] for n in runtime | type_checking if not _within(n, "core")}
    assert outside - set(sys.stdlib_module_names) == set(), \
        "core/risk.py is pure rules: no third-party imports (no I/O, no database, no HTTP)"


def test_every_core_module_has_a_docstring() -> None:
    # An empty ``__init__.py`` only marks a package; it has nothing to explain.
    missing = [
        str(p.relative_to(PROJECT_ROOT)) for p in core_files()
        if ast.get_docstring(_parse(p)) is None
    ]
    assert missing == []


@pytest.mark.parametrize(
    ("source", "module", "expected"),
    [
        ("import streamlit as st", "core.x", {"streamlit"}),
        ("def f():\n    from streamlit.runtime import exists", "core.x", {"streamlit.runtime"}),
        ("from core import store, queries", "pages.p", {"core.store", "core.queries"}),
        ("from ..store.db import open_database", "core.agents.x", {"core.store.db"}),
        ("from . import models", "core.risk", {"core.models"}),
    ],
)
def test_import_collector(source: str, module: str, expected: set[str]) -> None:
    """The checks above are only as good as this collector ."""
    assert expected <= imported_modules(ast.parse(source), module)
