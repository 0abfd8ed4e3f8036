"""Form choices and input parsing of the Backtesting page (no Streamlit)."""
from __future__ import annotations

import dataclasses
from typing import Any, Optional

from hftmm.backtesting import BacktestConfig

#: replay lengths offered: label -> synthetic seconds per day (None: whole days)
LENGTHS: dict[str, Optional[float]] = {
    "first 10 minutes": 600.0,
    "first hour": 3600.0,
    "first 6 hours": 21600.0,
    "whole day": None,
}

#: grid-search rows offered with their default values ("" = not swept)
GRID_PARAMS: dict[str, str] = {
    "gamma": "0.05, 0.1, 0.5",
    "time_horizon": "10, 30, 120",
    "min_spread": "",
    "order_size": "",
    "requote_threshold": "",
    "ewma_half_life": "",
}

_TYPES = {f.name: f.type for f in dataclasses.fields(BacktestConfig)}


def parse_values(name: str, text: str) -> list[Any]:
    """Comma-separated values of a BacktestConfig field, typed like the field
    (``int`` fields as ints, numbers as floats, anything else as text); each
    value is validated by building a config with it."""
    if name not in _TYPES:
        raise ValueError(f"{name}: not a BacktestConfig field")
    typ = str(_TYPES[name])
    out: list[Any] = []
    for part in text.split(","):
        p = part.strip()
        if not p:
            continue
        try:
            v: Any = int(p) if typ == "int" else float(p) if "float" in typ else p
        except ValueError:
            raise ValueError(f"{name}: {p!r} is not a number") from None
        fix = {}
        if name == "order_size":   # keep max_position >= order_size while checking
            fix["max_position"] = max(float(v), BacktestConfig.max_position)
        BacktestConfig(**{name: v, **fix})
        out.append(v)
    if not out:
        raise ValueError(f"{name}: no values")
    return out
