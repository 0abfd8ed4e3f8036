"""Reference twin of hftcore.decimal: exact decimal text <-> integer units with
``decimal.Decimal`` and plain ints. Slow, obviously right.

Same rules and the same error precedence as include/hftcore/decimal.h. The
accepted syntax is the plain decimal (ASCII digits with at most one '.', no
sign, no exponent); an accepted text gives exactly ``Decimal(text) / scale``:

  empty string                                   EMPTY
  leading '-' (also "-0")                        NEGATIVE
  any other char outside [0-9.], or a 2nd '.'    SYNTAX
  no digit at all (".")                          EMPTY
  a nonzero digit beyond the scale's decimals    NOT_MULTIPLE
  floor(value / scale) > 2**63 - 1               OVERFLOW
  value / scale not a whole number               NOT_MULTIPLE
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, Inexact, localcontext

INT64_MAX = 2**63 - 1
MAX_EXPONENT = 18

# same numeric codes as the C header
EMPTY = -1
SYNTAX = -2
NEGATIVE = -3
OVERFLOW = -4
NOT_MULTIPLE = -5
ZERO_SCALE = -6

CODE_NAMES = {
    EMPTY: "EMPTY",
    SYNTAX: "SYNTAX",
    NEGATIVE: "NEGATIVE",
    OVERFLOW: "OVERFLOW",
    NOT_MULTIPLE: "NOT_MULTIPLE",
    ZERO_SCALE: "ZERO_SCALE",
}

_PLAIN = re.compile(r"[0-9]*\.?[0-9]*\Z")


class DecimalError(ValueError):
    """Refused decimal text; ``code`` and ``name`` as in hftcore.decimal.DecimalError."""

    def __init__(self, message: str, code: int, text: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.name = CODE_NAMES[code]
        self.text = text


def _check_syntax(text: str) -> None:
    if text == "":
        raise DecimalError('"" has no digits', EMPTY, text)
    if text.startswith("-"):
        raise DecimalError(f'"{text}" is negative', NEGATIVE, text)
    if not text.isascii() or not _PLAIN.match(text):
        raise DecimalError(f'"{text}" is not a plain decimal number', SYNTAX, text)
    if not any(c.isdigit() for c in text):
        raise DecimalError(f'"{text}" has no digits', EMPTY, text)


def _as_str(text: str | bytes) -> str:
    return text.decode("utf-8", "backslashreplace") if isinstance(text, bytes) else text


@dataclass(frozen=True)
class Scale:
    """mantissa * 10**-exponent, trailing zeros stripped."""

    mantissa: int
    exponent: int

    @classmethod
    def from_str(cls, text: str | bytes) -> "Scale":
        text = _as_str(text)
        _check_syntax(text)
        d = Decimal(text if text != "." else "0")
        if d == 0:
            raise DecimalError(f'"{text}" is zero', ZERO_SCALE, text)
        sign, digits, exp = d.normalize().as_tuple()
        if exp >= 0:
            mantissa, exponent = int("".join(map(str, digits))) * 10**exp, 0
        else:
            mantissa, exponent = int("".join(map(str, digits))), -exp
        if exponent > MAX_EXPONENT or mantissa > INT64_MAX:
            raise DecimalError(f'"{text}" is out of range', OVERFLOW, text)
        return cls(mantissa, exponent)

    @property
    def value(self) -> Decimal:
        return Decimal(self.mantissa).scaleb(-self.exponent)

    def __str__(self) -> str:
        return format_units(1, self)


def _scale(scale: "Scale | str | bytes") -> Scale:
    return scale if isinstance(scale, Scale) else Scale.from_str(scale)


def parse_units(text: str | bytes, scale: "Scale | str | bytes") -> int:
    """Number of scale units in the decimal text (see the module docstring)."""
    sc = _scale(scale)
    text = _as_str(text)
    _check_syntax(text)
    with localcontext() as ctx:
        # exact at any length: enough digits for the whole text, and Inexact trapped
        ctx.prec = len(text) + MAX_EXPONENT + 2
        ctx.Emax = ctx.prec + 10
        ctx.Emin = -ctx.Emax
        ctx.traps[Inexact] = True
        value = Decimal(text if text != "." else "0")
        scaled = value.scaleb(sc.exponent)  # value * 10**exponent, exact
        if scaled != scaled.to_integral_value():
            raise DecimalError(f'"{text}" is not a whole multiple of {sc}', NOT_MULTIPLE, text)
        n = int(scaled)
    q, r = divmod(n, sc.mantissa)
    if q > INT64_MAX:
        raise DecimalError(f'"{text}" is out of the int64 range in units of {sc}', OVERFLOW, text)
    if r:
        raise DecimalError(f'"{text}" is not a whole multiple of {sc}', NOT_MULTIPLE, text)
    return q


def format_units(units: int, scale: "Scale | str | bytes") -> str:
    """Text of units * scale with exactly `exponent` decimals (none if 0)."""
    sc = _scale(scale)
    n = int(units) * sc.mantissa
    sign = "-" if n < 0 else ""
    digits = str(abs(n)).rjust(sc.exponent + 1, "0")
    if sc.exponent == 0:
        return sign + digits
    return f"{sign}{digits[:-sc.exponent]}.{digits[-sc.exponent:]}"
