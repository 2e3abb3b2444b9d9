"""The README's Troubleshooting section names only what exists: its commands run, its settings
are documented in .env.example, its rule ids are the CEO's, and its quoted messages are the ones
the desk prints. A renamed rule or setting fails here before it misleads a user."""

from __future__ import annotations

import re
from pathlib import Path

from core.ceo import rules
from core.cli import build_parser
from core.exchanges import asterdex, check
from core.exchanges.asterdex_http import AUTH_CODES

ROOT = Path(__file__).resolve().parents[1]


def _section() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index("## Troubleshooting\n")
    return text[start:text.index("\n## ", start + 1)]


def test_it_covers_what_users_hit_first() -> None:
    section = _section().lower()
    for symptom in ("signature invalid", "insufficient margin", "trading not allowed",
                    "not executing trades"):
        assert symptom in section, symptom


def test_settings_it_names_are_documented() -> None:
    documented = (ROOT / ".env.example").read_text(encoding="utf-8")
    named = set(re.findall(r"`([A-Z][A-Z0-9_]{3,})`", _section()))
    assert named, "no setting named"
    assert {n for n in named if f"{n}=" not in documented} == set()


def test_commands_it_gives_exist() -> None:
    commands = set(re.findall(r"`\./desk ([a-z-]+)", _section()))
    assert {"check-exchange", "engine", "agents"} <= commands
    choices = build_parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    assert commands <= set(choices)


def test_rule_ids_and_messages_are_the_desks() -> None:
    section = _section()
    ids = set(re.findall(r"`([a-z]+_[a-z_]+)`", section))
    assert ids and ids <= set(re.findall(r"[a-z_]+", rules.__doc__ or ""))
    assert "TRADING DISABLED for this key" in section
    assert "TRADING DISABLED for this key" in Path(check.__file__).read_text(encoding="utf-8")
    assert "hedge (dual-side) position mode" in Path(asterdex.__file__).read_text(encoding="utf-8")
    assert {-1022, -2014, -2015} <= AUTH_CODES
