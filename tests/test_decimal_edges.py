"""hftcore.decimal at its edges, against decimal.Decimal itself (not the twin):
every plain decimal whose exact count of units fits int64 parses to that count,
and only a true overflow reports OVERFLOW (issue 15)."""
from decimal import Decimal, localcontext

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from hftcore import decimal as hd
from hftmm.reference import decimal as ref

INT64_MAX = 2**63 - 1


def exact(text: str, scale: str):
    """("ok", units) or ("err", code) straight from Decimal, for a text already
    known to be a plain decimal (digits, one optional '.', a digit somewhere)."""
    with localcontext() as ctx:
        ctx.prec = len(text) + 40
        ctx.Emax = ctx.prec + 10
        ctx.Emin = -ctx.Emax
        q = Decimal(text) / Decimal(scale)
        if q != q.to_integral_value():
            # precedence: a nonzero digit past the scale's decimals is NOT_MULTIPLE
            # before any range check; otherwise floor(q) > INT64_MAX is OVERFLOW
            frac = text.partition(".")[2]
            if frac[hd.Scale(scale).exponent:].strip("0"):
                return ("err", hd.DEC_NOT_MULTIPLE)
            return ("err", hd.DEC_OVERFLOW if int(q) > INT64_MAX else hd.DEC_NOT_MULTIPLE)
        n = int(q)
    return ("ok", n) if n <= INT64_MAX else ("err", hd.DEC_OVERFLOW)


def got(fn, text, scale):
    try:
        return ("ok", fn(text, scale))
    except (hd.DecimalError, ref.DecimalError) as e:
        return ("err", e.code)


@pytest.mark.parametrize("text, scale, units", [
    # the reproducer: value * 10**8 = 2.0e20 overflows, the count does not
    ("2036854775808", "0.00000025", 8147419103232000000),
    ("2305843009213.69395175", "0.00000025", 9223372036854775807),   # INT64_MAX units
    ("9223372036854775807", "9223372036854775807", 1),
    ("85070591730234615847396907784232501249", "9223372036854775807", INT64_MAX),  # INT64_MAX**2
    ("27670116110564327421", "3", INT64_MAX),
    ("0.000000000000000003", "0.000000000000000003", 1),
    ("27.670116110564327421", "0.000000000000000003", INT64_MAX),
    # leading zeros, bare dots, long exact fractions
    ("0" * 5000 + "1.5", "0.5", 3),
    ("1." + "0" * 5000, "1", 1),
    ("." + "0" * 300 + "0", "0.01", 0),
    ("0005.50", "0.5", 11),
    ("5.", "0.25", 20),
    (".25", "0.25", 1),
    ("12345678901234567.89000000000000000000000000", "0.01", 1234567890123456789),
])
def test_edges_parse_exactly(text, scale, units):
    assert hd.parse_units(text, scale) == units
    assert ref.parse_units(text, scale) == units
    assert exact(text, scale) == ("ok", units)


@pytest.mark.parametrize("text, scale, code", [
    ("2305843009213.69395200", "0.00000025", hd.DEC_OVERFLOW),   # INT64_MAX + 1 units
    ("85070591730234615856620279821087277056", "9223372036854775807", hd.DEC_OVERFLOW),  # (INT64_MAX+1) units
    ("85070591730234615847396907784232501250", "9223372036854775807", hd.DEC_NOT_MULTIPLE),
    ("27670116110564327424", "3", hd.DEC_OVERFLOW),
    ("1" + "0" * 5000, "0.5", hd.DEC_OVERFLOW),
    ("1.00000000000000000000001", "0.01", hd.DEC_NOT_MULTIPLE),
    ("-0", "1", hd.DEC_NEGATIVE),           # no sign at all, not even for zero
    ("-0.00", "0.01", hd.DEC_NEGATIVE),
    ("+1", "1", hd.DEC_SYNTAX),
    ("1e2", "1", hd.DEC_SYNTAX),            # Decimal reads 100; plain decimals only
    ("1_000", "1", hd.DEC_SYNTAX),          # Decimal reads 1000
    (" 1", "1", hd.DEC_SYNTAX),
    ("\u0661", "1", hd.DEC_SYNTAX),         # Decimal reads an Arabic-Indic 1
    ("Infinity", "1", hd.DEC_SYNTAX),
])
def test_edges_refused(text, scale, code):
    assert got(hd.parse_units, text, scale) == ("err", code)
    assert got(ref.parse_units, text, scale) == ("err", code)


scales = st.sampled_from(["0.00000025", "0.00000007", "3", "9223372036854775807", "0.000000000000000003",
                          "1234567.891", "0.01", "1", "0.5", "0.00000001", "4611686018427387904"])


@st.composite
def plain_decimals(draw):
    """Plain decimals near and far beyond the int64 range of the count."""
    scale = draw(scales)
    m = hd.Scale(scale)
    if draw(st.booleans()):
        # a count near INT64_MAX (or just over), written with random padding
        units = draw(st.one_of(st.integers(INT64_MAX - 10**6, INT64_MAX + 10**6),
                               st.integers(0, 2**64), st.integers(0, 2**70)))
        with localcontext() as ctx:
            ctx.prec = 100
            text = format(Decimal(units) * m.to_decimal(), "f")
        if draw(st.booleans()):
            text = (text if "." in text else text + ".") + "0" * draw(st.integers(0, 30))
        if draw(st.booleans()):
            text = "0" * draw(st.integers(0, 30)) + text
        if draw(st.booleans()) and units:
            # off by one digit at the end: usually not a multiple
            text += str(draw(st.integers(1, 9)))
    else:
        ip = draw(st.text(alphabet="0123456789", max_size=45))
        fp = draw(st.text(alphabet="0123456789", max_size=30))
        text = ip + ("." + fp if draw(st.booleans()) else "")
        if not any(c.isdigit() for c in text):
            text += "0"
    return text, scale


@settings(max_examples=4000, deadline=None)
@given(plain_decimals())
@example(("2036854775808", "0.00000025"))
@example(("2305843009213.693951749", "0.00000025"))
def test_parse_equals_exact_decimal_arithmetic(case):
    text, scale = case
    want = exact(text, scale)
    assert got(hd.parse_units, text, scale) == want
    assert got(ref.parse_units, text, scale) == want
    assert got(hd.parse_units, text.encode(), scale) == want


@settings(max_examples=2000, deadline=None)
@given(st.integers(0, INT64_MAX), scales)
def test_every_int64_count_round_trips(units, scale):
    text = hd.format_units(units, scale)
    assert hd.parse_units(text, scale) == units
    padded = "000" + text + ("000" if "." in text else ".000")
    assert hd.parse_units(padded, scale) == units and ref.parse_units(padded, scale) == units


@pytest.mark.parametrize("text, code", [("1\ud800", hd.DEC_SYNTAX), ("-\udfff", hd.DEC_NEGATIVE),
                                        ("\ud83d", hd.DEC_SYNTAX)])
def test_unencodable_text_is_a_decimal_error(text, code):
    # a str with a lone surrogate is not UTF-8: a DecimalError, not UnicodeEncodeError
    with pytest.raises(hd.DecimalError) as ei:
        hd.parse_units(text, "0.01")
    assert ei.value.code == code and ei.value.text == text
    with pytest.raises(hd.DecimalError):
        hd.parse_many(["1.00", text], "0.01")
    with pytest.raises(hd.DecimalError):
        hd.Scale("0.0" + text)
    assert got(ref.parse_units, text, "0.01") == ("err", code)
