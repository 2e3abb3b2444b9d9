"""JSON-safe values out of what the read model returns.

The queries answer with pandas frames, numpy scalars and floats that may be NaN or infinite (a
ratio with nothing to divide by); a JSON answer must hold none of them (Starlette refuses NaN, and
a client's parser would choke on it). ``plain`` turns any of those, nested at any depth, into
JSON's own types, and ``records`` a frame into a list of rows.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd


def plain(value: Any) -> Any:
    """``value`` with every frame, numpy scalar, timestamp, Decimal and NaN/inf made JSON-safe."""
    if value is None or isinstance(value, bool | str | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, pd.DataFrame):
        return records(value)
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [plain(v) for v in value]
    if isinstance(value, np.ndarray | pd.Series):
        return [plain(v) for v in value.tolist()]
    if value is pd.NaT or value is pd.NA:
        return None
    if isinstance(value, np.generic):
        return plain(value.item())
    if isinstance(value, pd.Timestamp | datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return plain(float(value))
    return str(value)


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """A frame's rows as JSON objects, column names as keys, missing values as null."""
    columns = [str(c) for c in frame.columns]
    return [dict(zip(columns, (plain(v) for v in row), strict=True))
            for row in frame.itertuples(index=False, name=None)]
