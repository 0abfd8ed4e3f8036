"""Exact decimal text <-> integer units (ticks, lots). No float on the way in.

A scale is a tick size (PRICE_FILTER tickSize) or a lot size (LOT_SIZE stepSize)
given as text; ``units`` are int64 counts of that scale (ticks or lots).
"""
from decimal import Decimal
from typing import Sequence

import numpy as np
import numpy.typing as npt

DEC_OK: int
DEC_EMPTY: int          # no digits
DEC_SYNTAX: int         # not a plain decimal number (digits, at most one '.')
DEC_NEGATIVE: int       # leading '-' (also "-0")
DEC_OVERFLOW: int       # does not fit int64 units
DEC_NOT_MULTIPLE: int   # not a whole multiple of the scale
DEC_ZERO_SCALE: int     # a scale must be > 0
CODE_NAMES: dict[int, str]

class DecimalError(ValueError):
    """Refused decimal text. ``code``: HFT_DEC_* (negative int); ``name``: its
    short name ("NOT_MULTIPLE", ...); ``text``: the offending text."""
    code: int
    name: str
    text: str | None
    def __init__(self, message: str, code: int, text: str | None = ...) -> None: ...

def strerror(code: int) -> str: ...
def describe_error(code: int, text: str, scale_text: str | None = ...) -> str: ...

class Scale:
    """A tick/lot size: ``mantissa * 10**-exponent`` (trailing zeros stripped).

    Built from str, bytes, Decimal or int; floats are refused (TypeError)."""
    text: str  # canonical text, e.g. "0.01"
    def __init__(self, source: str | bytes | Decimal | int) -> None: ...
    @property
    def mantissa(self) -> int: ...
    @property
    def exponent(self) -> int: ...
    def to_decimal(self) -> Decimal: ...
    def parse(self, text: str | bytes) -> int:
        """Units (int64) of this scale in the decimal text."""
    def format(self, units: int) -> str:
        """Text of ``units * scale`` with exactly ``exponent`` decimals."""
    def to_float(self, units: int) -> float:
        """``units * scale`` as the nearest float (display / edges only)."""
    def parse_many(self, texts: Sequence[str | bytes]) -> npt.NDArray[np.int64]:
        """New int64 array of units."""

def parse_units(text: str | bytes, scale_text: str | bytes | Decimal | int | Scale) -> int:
    """Units of the scale in text: ``parse_units("61837.63000000", "0.01") == 6183763``."""
def format_units(units: int, scale_text: str | bytes | Decimal | int | Scale) -> str:
    """Text of units * scale: ``format_units(6183763, "0.01") == "61837.63"``."""
def parse_many(texts: Sequence[str | bytes], scale: str | bytes | Decimal | int | Scale) -> npt.NDArray[np.int64]:
    """New int64 array of units."""
