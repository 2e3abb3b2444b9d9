"""How the CLI shows what it read: aligned tables, JSON, and CSV written where the user meant.

Why it exists apart from the commands: every command (the desk's and the backtest's) prints the
same way, and a path given on the command line is read from the folder the user ran ``./desk`` in.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from core.errors import ConfigError
from core.queries import utc_stamped


def table(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str]]) -> str:
    cells = [[h for _, h in columns]] + [[cell(r.get(k)) for k, _ in columns] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.2f}"
    return str(value)


def user_path(given: str) -> Path:
    """A path as the user meant it: relative to the folder they ran the command in (``./desk``
    changes to the project folder first and says where it was called from in DESK_CALLER_DIR)."""
    path = Path(given).expanduser()
    return path if path.is_absolute() else Path(os.environ.get("DESK_CALLER_DIR", ".")) / path


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str))


def write_frame(frame: pd.DataFrame, target: str | None, columns: Sequence[tuple[str, str]]) -> None:
    if target == "-":
        utc_stamped(frame).to_csv(sys.stdout, index=False)
    elif target:
        path = user_path(target)
        if not path.parent.is_dir():
            raise ConfigError(f"cannot write {target}: the folder {path.parent} does not exist")
        try:
            utc_stamped(frame).to_csv(path, index=False)
        except OSError as exc:
            raise ConfigError(f"cannot write {target}: {exc.strerror or exc}") from None
        print(f"wrote {len(frame)} rows to {path}")
    elif frame.empty:
        print("nothing yet")
    else:
        print(table(frame.astype(object).where(frame.notna(), None).to_dict("records"), columns))
