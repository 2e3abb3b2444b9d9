"""The layout's contracts (docs/architecture.md).

import-linter checks the contracts declared in ``pyproject.toml`` (no cycles, the layers, the pure
hard rules, venues apart from strategies, streamlit only in the UI, pages through queries and the
service), and a copy of the project with one bad import shows each contract can fail. What
import-linter cannot express is checked here with ``ast``: the ``app.py`` script's imports, the
hard rules importing nothing but the standard library from outside, and a docstring in every
module saying why it exists. Imports anywhere in a file count (inside functions too), since a lazy
import is still a dependency.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from core.config import PROJECT_ROOT

CORE = PROJECT_ROOT / "core"
PAGE_FORBIDDEN = (
    "core.desk", "core.exchanges", "core.feeds", "core.llm", "core.store", "core.backtest",
    "core.agents", "core.ceo", "sqlalchemy",
)
# the trailing-stop rules are part of the risk rules, kept in their own pure module
RISK_PROJECT_ALLOWED = {"core.models", "core.ceo.trailing"}
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
    pages = sorted(p for p in (PROJECT_ROOT / "views").rglob("*.py") if p.name != "__init__.py")
    return [PROJECT_ROOT / "app.py", *pages]


def test_pages_live_outside_a_pages_folder() -> None:
    """A ``pages/`` folder makes Streamlit serve its scripts by URL without running app.py, which
    would skip the password gate; pages live in ``views/`` and are served by st.navigation only."""
    assert not (PROJECT_ROOT / "pages").exists()
    assert len(page_files()) == 8  # app.py and the seven pages, Backtest and Research among them


def _lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """import-linter over ``root`` (a project folder with pyproject.toml), as ``lint-imports``."""
    return subprocess.run(
        [sys.executable, "-c", "import sys; from importlinter.cli import lint_imports_command as c;"
                               " sys.argv[0] = 'lint-imports'; c()", "--no-cache"],
        cwd=root, capture_output=True, text=True, timeout=300, check=False,
        env={**os.environ, "PYTHONPATH": str(root)},
    )


def test_the_layer_contracts_hold() -> None:
    """No import cycle at any depth, the layers, the pure rules, venues apart from strategies,
    nothing of the UI under core: every contract in pyproject.toml is kept."""
    result = _lint_imports(PROJECT_ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout and " kept" in result.stdout


@pytest.mark.parametrize(
    ("module", "added", "broken"),
    [
        # an upward import: the kernel reaching into the service it serves
        ("core/desk/ledger.py", "from core.service import create_session", "The desk's layers"),
        # a circle inside the kernel: execution importing the engine that drives it
        ("core/desk/execution.py", "import core.desk.engine", "No import cycles"),
        # the hard rules reading the store
        ("core/ceo/rules.py", "import sqlalchemy", "hard rules are pure"),
        # a venue that knows a strategy
        ("core/exchanges/paper.py", "from core.agents import trend", "Venues know nothing"),
        # a page reading the store directly
        ("views/ceo.py", "from core.store import tables", "Pages read through queries"),
        # the HTTP API driving the kernel itself instead of the service
        ("core/api/sessions.py", "from core.desk import engine", "The HTTP API reads through"),
        # ...or reaching into another interface
        ("core/api/app.py", "import core.cli", "The desk's layers"),
        # the engine reaching up into the dashboard
        ("core/desk/engine.py", "import dashboard", "The engine knows nothing of the UI"),
        # ...or importing streamlit itself
        ("core/queries/ceo.py", "import streamlit", "The engine knows nothing of the UI"),
    ],
)
def test_a_forbidden_import_breaks_the_contracts(tmp_path: Path, module: str, added: str,
                                                 broken: str) -> None:
    """The contracts are not vacuous: one bad import in a copy of the project breaks the one that
    forbids it."""
    for folder in ("core", "dashboard", "views"):
        shutil.copytree(PROJECT_ROOT / folder, tmp_path / folder,
                        ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(PROJECT_ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    target = tmp_path / module
    target.write_text(target.read_text(encoding="utf-8") + f"\n{added}  # noqa\n", encoding="utf-8")
    result = _lint_imports(tmp_path)
    assert result.returncode != 0, result.stdout
    failed = result.stdout.split("Broken contracts", 1)[-1]
    assert broken in failed, result.stdout


def test_the_app_script_goes_through_service_queries_and_ui() -> None:
    """``app.py`` is a script, not a package import-linter can see: its imports are checked here."""
    app = PROJECT_ROOT / "app.py"
    bad = sorted(m for m in _imports_of(app) if any(_within(m, f) for f in PAGE_FORBIDDEN))
    assert bad == [], "the app reads via core.queries and writes via core.service"


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def test_risk_depends_on_models_only() -> None:
    tree = _parse(CORE / "ceo" / "rules.py")
    type_checking: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.body:
                type_checking |= imported_modules(child, "core.ceo.rules")
    runtime = imported_modules(tree, "core.ceo.rules") - type_checking

    def not_allowed(names: set[str], allowed: set[str]) -> set[str]:
        # ``from core.models import Proposal`` yields core.models and core.models.Proposal;
        # ``from core import models`` yields core (the package itself, harmless) and core.models
        project = {n for n in names if _within(n, "core") and n != "core"}
        return {n for n in project if not any(_within(n, a) for a in allowed)}

    assert not_allowed(runtime, RISK_PROJECT_ALLOWED) == set(), \
        "core/ceo/rules.py may import only core.models (and core.ceo.trailing) from the project"
    trailing = imported_modules(_parse(CORE / "ceo" / "trailing.py"), "core.ceo.trailing")
    assert not_allowed(trailing, {"core.models"}) == set(), \
        "core/ceo/trailing.py may import only core.models from the project"
    assert {n.split(".")[0] for n in trailing if not _within(n, "core")} - set(
        sys.stdlib_module_names) == set(), "core/ceo/trailing.py: no third-party imports"
    assert not_allowed(type_checking, RISK_TYPE_CHECKING_ALLOWED) == set(), \
        "core/ceo/rules.py may import only core.models (and core.config for type hints)"
    outside = {n.split(".")[0] for n in runtime | type_checking if not _within(n, "core")}
    assert outside - set(sys.stdlib_module_names) == set(), \
        "core/ceo/rules.py is pure rules: no third-party imports (no I/O, no database, no HTTP)"


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
        ("from . import models", "core.x", {"core.models"}),
    ],
)
def test_import_collector(source: str, module: str, expected: set[str]) -> None:
    """The checks above are only as good as this collector ."""
    assert expected <= imported_modules(ast.parse(source), module)


def test_a_backtest_or_a_cli_command_never_loads_the_model_sdks_or_the_v3_signer() -> None:
    """They cost about 1.5 s of CPU at every start and neither a backtest nor the CLI's own
    commands call a model or sign with a V3 key; they load when a provider or signer is built."""
    probe = ("import sys, core.cli, core.backtest.runner, core.desk.runtime\n"
             "print(','.join(m for m in ('google.genai', 'openai', 'eth_account', 'eth_utils')"
             " if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], cwd=PROJECT_ROOT, capture_output=True,
                         text=True, timeout=300, check=True)
    assert out.stdout.strip() == ""
    built = ("import sys\nfrom core.exchanges.asterdex_signing import sign_v3_msg\n"
             "sign_v3_msg('0x' + '11' * 32, 'm', 1666)\nprint('eth_account' in sys.modules)")
    again = subprocess.run([sys.executable, "-c", built], cwd=PROJECT_ROOT, capture_output=True,
                           text=True, timeout=300, check=True)
    assert again.stdout.strip() == "True"
