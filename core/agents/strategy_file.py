"""The strategy file (``strategies.toml``): the agents' parameters a trader edits, read and written.

Why it exists: new sessions and backtests take their agents' parameters from one human-editable
file (setting ``STRATEGIES_FILE``), and a mistake in it must be found before any session runs on
it, with the file, the line, the parameter and the bound in the message. A key the file leaves out
takes its default; a key the desk does not know, a value outside its bound or of the wrong type,
a broken cross-field rule (a fast EMA not below the slow one ...), a TOML syntax error or a missing
file are refused. ``render`` writes a complete, commented file from a ``DeskParams`` (how the
shipped default and the Agents page's editor produce it), so the file and the models never drift.

Layout: one table per strategy (``[trend]`` ...) and one per roster entry (``[roster.trend]``),
exactly the flat keys of ``DeskParams`` (``trend.adx_min`` is ``adx_min`` under ``[trend]``).
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import tomllib
from pathlib import Path
from typing import Any

from core.agents.desk_params import AGENT_KEYS, DeskParams, field_info
from core.agents.params import bound_text
from core.errors import ConfigError, InvalidParams

__all__ = ["load", "parse", "render", "write"]

_HEADER = re.compile(r"^\s*\[\s*([A-Za-z0-9_.\s\"']+?)\s*\]\s*(#.*)?$")
_KEY = re.compile(r"^\s*([A-Za-z0-9_.\"'\s-]+?)\s*=")


def load(path: Path) -> DeskParams:
    """The parameters the file at ``path`` sets; ``ConfigError`` when it is missing or broken,
    ``InvalidParams`` (with ``line``) for a refused parameter."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"strategy file {path} not found (setting STRATEGIES_FILE; the "
                          "project ships strategies.toml with the default parameters)") from None
    except OSError as exc:
        raise ConfigError(f"strategy file {path} cannot be read: {exc}") from None
    return parse(text, str(path))


def parse(text: str, source: str = "strategies.toml") -> DeskParams:
    """Validate the file's text; ``source`` names it in messages."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None
    lines = _key_lines(text)
    merged = DeskParams.defaults().model_dump(mode="json")
    try:
        _merge(merged, data, ())
        return DeskParams.from_nested(merged)
    except InvalidParams as exc:
        line = _line_of(exc.parameter, lines)
        where = f"{source}, line {line}" if line is not None else source
        raise InvalidParams(f"{where}: {exc}", parameter=exc.parameter, value=exc.value,
                            bound=exc.bound, line=line) from None


def render(params: DeskParams) -> str:
    """A complete, commented strategy file for ``params`` (each value with its meaning, default
    and accepted range)."""
    defaults = DeskParams.defaults().flat()
    out = [
        "# The agents' parameters for NEW sessions and backtests (setting STRATEGIES_FILE).",
        "# A running session keeps the parameters it started with; every session and backtest",
        "# stores the exact values it ran with. Check an edit with `./desk strategies check`.",
        "# A key left out takes its default; an unknown key or a value outside its range is",
        "# refused with its line. Ranges: what the desk accepts (the optimiser searches inside).",
        "",
    ]
    flat = params.flat()
    for section in (*AGENT_KEYS, *(f"roster.{key}" for key in AGENT_KEYS)):
        out += [f"# {_section_title(section)}", f"[{section}]"]
        for flat_key, value in flat.items():
            if flat_key.rsplit(".", 1)[0] != section:
                continue
            field = field_info(flat_key)
            default = defaults[flat_key]
            note = f"{field.description}; {bound_text(field)}; default {_toml(default)}"
            out += [f"# {note}", f"{flat_key.rsplit('.', 1)[1]} = {_toml(value)}"]
        out.append("")
    return "\n".join(out)


def write(path: Path, params: DeskParams) -> None:
    """Replace the file with ``render(params)`` atomically (a reader never sees half a file)."""
    path = Path(path)
    text = render(params)
    parse(text, str(path))  # what is written must read back as the same parameters
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise ConfigError(f"strategy file {path} cannot be written: {exc}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise ConfigError(f"strategy file {path} cannot be written: {exc}") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# ---------------------------------------------------------------------------------- internals


_TITLES = {"trend": "TrendMaster Alpha (trend following)", "momentum": "Momentum Hunter (momentum)",
           "mean_reversion": "Mean Reversion Pro (mean reversion)",
           "scalper": "Lightning Scalper (scalping)",
           "arbitrage": "Arbitrage Scanner (statistical pair trading, not risk-free)"}


def _section_title(section: str) -> str:
    if section.startswith("roster."):
        key = section.split(".", 1)[1]
        return f"roster: {_TITLES[key].split(' (')[0]}'s capital share, risk level and model"
    return f"{_TITLES[section]}: strategy parameters"


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, int):
        return str(value)
    return json.dumps(str(value))


def _merge(into: dict[str, Any], given: dict[str, Any], path: tuple[str, ...]) -> None:
    """Lay the file's values over the defaults; an unknown key or a value where a table belongs
    (or the reverse) is refused here, naming the flat key."""
    for key, value in given.items():
        where = (*path, key)
        flat_key = ".".join(where)
        if key not in into:
            raise InvalidParams(f"unknown parameter {flat_key!r}", parameter=flat_key, value=value,
                                bound="a known parameter")
        if isinstance(into[key], dict):
            if not isinstance(value, dict):
                raise InvalidParams(f"{flat_key} must be a table ([{flat_key}]), not {value!r}",
                                    parameter=flat_key, value=value, bound="a table")
            _merge(into[key], value, where)
        elif isinstance(value, dict):
            raise InvalidParams(f"{flat_key} must be a value, not a table", parameter=flat_key,
                                value=value, bound=bound_text(field_info(flat_key)))
        else:
            into[key] = value


def _unquote(name: str) -> str:
    return ".".join(part.strip().strip("\"'") for part in name.split("."))


def _key_lines(text: str) -> dict[str, int]:
    """flat key (and table name) → its 1-based line in the file, for messages."""
    found: dict[str, int] = {}
    table = ""
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        header = _HEADER.match(line)
        if header is not None and not stripped.startswith("[["):
            table = _unquote(header.group(1))
            found.setdefault(table, number)
            continue
        key = _KEY.match(line)
        if key is not None:
            name = _unquote(key.group(1))
            found.setdefault(f"{table}.{name}" if table else name, number)
    return found


def _line_of(flat_key: str, lines: dict[str, int]) -> int | None:
    """The parameter's own line, else its table's (a value left out but refused by a
    cross-field rule), else none."""
    parts = flat_key.split(".")
    for n in range(len(parts), 0, -1):
        line = lines.get(".".join(parts[:n]))
        if line is not None:
            return line
    return None
