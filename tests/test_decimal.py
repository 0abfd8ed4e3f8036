"""hftcore.decimal (include/hftcore/decimal.h) against hand cases and its Decimal twin."""
from decimal import Decimal

import numpy as np
import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from hftcore import decimal as hd
from hftmm.reference import decimal as ref

INT64_MAX = 2**63 - 1


# ---------------------------------------------------------------- scales
@pytest.mark.parametrize(
    "text, mantissa, exponent",
    [
        ("0.01000000", 1, 2),
        ("0.5", 5, 1),
        ("1.00000000", 1, 0),
        ("10", 10, 0),
        ("0.00001000", 1, 5),
        ("0.25", 25, 2),
        ("1", 1, 0),
        ("0.00000001", 1, 8),
        ("10.0", 10, 0),
        ("1.5", 15, 1),
        ("100", 100, 0),
        (".1", 1, 1),
    ],
)
def test_scale_from_str(text, mantissa, exponent):
    s = hd.Scale(text)
    assert (s.mantissa, s.exponent) == (mantissa, exponent)
    assert ref.Scale.from_str(text) == ref.Scale(mantissa, exponent)
    assert hd.Scale(s.text) == s
    assert hd.Scale(text.encode()) == s


@pytest.mark.parametrize(
    "text, code",
    [
        ("0", hd.DEC_ZERO_SCALE),
        ("0.000", hd.DEC_ZERO_SCALE),
        ("-0.01", hd.DEC_NEGATIVE),
        ("abc", hd.DEC_SYNTAX),
        ("1e-2", hd.DEC_SYNTAX),
        ("", hd.DEC_EMPTY),
        (".", hd.DEC_EMPTY),
        ("0.0000000000000000001", hd.DEC_OVERFLOW),  # 19 decimals
        ("10000000000000000000", hd.DEC_OVERFLOW),  # mantissa > int64
    ],
)
def test_bad_scales(text, code):
    with pytest.raises(hd.DecimalError) as ei:
        hd.Scale(text)
    assert ei.value.code == code
    with pytest.raises(ref.DecimalError) as er:
        ref.Scale.from_str(text)
    assert er.value.code == code and er.value.name == ei.value.name


def test_scale_sources():
    assert hd.Scale(Decimal("0.0100")) == hd.Scale("0.01")
    assert hd.Scale(Decimal("1E-8")) == hd.Scale("0.00000001")
    assert hd.Scale(10) == hd.Scale("10")
    assert repr(hd.Scale("0.010")) == "Scale('0.01')"
    assert str(hd.Scale("0.5")) == "0.5"
    with pytest.raises(TypeError):
        hd.Scale(0.01)
    with pytest.raises(TypeError):
        hd.Scale(True)
    with pytest.raises(TypeError):
        hd.Scale([1])


# ---------------------------------------------------------------- parse
@pytest.mark.parametrize(
    "text, scale, units",
    [
        ("61837.63000000", "0.01", 6183763),
        ("61837.63", "0.01", 6183763),
        ("0.32329000", "0.00001", 32329),
        ("0.00000000", "0.00001", 0),
        ("100.5", "0.5", 201),
        ("100", "0.5", 200),
        ("0.75", "0.25", 3),
        ("120", "10", 12),
        ("120.000", "10", 12),
        ("7", "1", 7),
        ("7.", "1", 7),
        (".5", "0.5", 1),
        ("0000061837.63000000", "0.01", 6183763),
        ("92233720368547758.07", "0.01", INT64_MAX),
        ("9223372036854775807", "1", INT64_MAX),
        ("12345678.12345678", "0.00000001", 1234567812345678),
        ("7403.90", "0.01", 740390),
        ("25.35190000", "0.0001", 253519),
    ],
)
def test_parse_hand_cases(text, scale, units):
    assert hd.parse_units(text, scale) == units
    assert hd.parse_units(text.encode(), scale) == units
    assert ref.parse_units(text, scale) == units


@pytest.mark.parametrize(
    "text, scale, code",
    [
        ("", "0.01", hd.DEC_EMPTY),
        (".", "0.01", hd.DEC_EMPTY),
        ("-1.00", "0.01", hd.DEC_NEGATIVE),
        ("-0", "0.01", hd.DEC_NEGATIVE),
        ("-", "0.01", hd.DEC_NEGATIVE),
        ("+1.00", "0.01", hd.DEC_SYNTAX),
        ("1e5", "0.01", hd.DEC_SYNTAX),
        ("1E5", "1", hd.DEC_SYNTAX),
        (" 1", "1", hd.DEC_SYNTAX),
        ("1 ", "1", hd.DEC_SYNTAX),
        ("1.2.3", "0.01", hd.DEC_SYNTAX),
        ("..", "0.01", hd.DEC_SYNTAX),
        ("1,5", "0.1", hd.DEC_SYNTAX),
        ("0x10", "1", hd.DEC_SYNTAX),
        ("nan", "1", hd.DEC_SYNTAX),
        ("61837.635", "0.01", hd.DEC_NOT_MULTIPLE),
        ("61837.63000001", "0.01", hd.DEC_NOT_MULTIPLE),
        ("100.25", "0.5", hd.DEC_NOT_MULTIPLE),
        ("125", "10", hd.DEC_NOT_MULTIPLE),
        ("0.1", "0.25", hd.DEC_NOT_MULTIPLE),
        ("92233720368547758.08", "0.01", hd.DEC_OVERFLOW),
        ("9223372036854775808", "1", hd.DEC_OVERFLOW),
        ("99999999999999999999999", "1", hd.DEC_OVERFLOW),
        ("92233720368547758080", "10", hd.DEC_OVERFLOW),  # 10**exp stage overflows
        ("99999999999999999999.001", "0.01", hd.DEC_NOT_MULTIPLE),  # precedence
        ("99999999999999999999.1x", "0.01", hd.DEC_SYNTAX),
    ],
)
def test_parse_error_codes(text, scale, code):
    with pytest.raises(hd.DecimalError) as ei:
        hd.parse_units(text, scale)
    assert ei.value.code == code
    assert ei.value.text == text
    assert f'"{text}"' in str(ei.value)
    with pytest.raises(ref.DecimalError) as er:
        ref.parse_units(text, scale)
    assert er.value.code == code and er.value.name == ei.value.name


def test_error_message_names_the_problem():
    with pytest.raises(hd.DecimalError, match=r'"61837\.635" is not a whole multiple of 0\.01'):
        hd.parse_units("61837.635", "0.01000000")
    assert isinstance(hd.DecimalError("x", -1), ValueError)
    for code in hd.CODE_NAMES:
        assert hd.strerror(code) and hd.strerror(code) != hd.strerror(0)


def test_parse_many():
    a = hd.parse_many(["61837.63000000", b"0.01", "1"], "0.01")
    assert a.dtype == np.int64 and a.tolist() == [6183763, 1, 100]
    assert hd.parse_many([], "0.01").shape == (0,)
    with pytest.raises(hd.DecimalError, match="item 1"):
        hd.parse_many(["1", "1.001"], "0.01")
    with pytest.raises(TypeError):
        hd.parse_many([1.5], "0.01")


# ---------------------------------------------------------------- format
@pytest.mark.parametrize(
    "units, scale, text",
    [
        (6183763, "0.01", "61837.63"),
        (6183760, "0.01", "61837.60"),
        (201, "0.5", "100.5"),
        (200, "0.5", "100.0"),
        (12, "10", "120"),
        (3, "0.25", "0.75"),
        (0, "0.01", "0.00"),
        (0, "1", "0"),
        (-5, "0.01", "-0.05"),
        (-201, "0.5", "-100.5"),
        (INT64_MAX, "1", "9223372036854775807"),
        (-(2**63), "1", "-9223372036854775808"),
        (INT64_MAX, "0.25", "2305843009213693951.75"),  # product beyond 64 bits
        (-(2**63), "10", "-92233720368547758080"),
        (32329, "0.00001", "0.32329"),
    ],
)
def test_format_hand_cases(units, scale, text):
    assert hd.format_units(units, scale) == text
    assert ref.format_units(units, scale) == text


def test_to_float():
    assert hd.Scale("0.01").to_float(6183763) == 61837.63
    assert hd.Scale("0.5").to_float(201) == 100.5


# ---------------------------------------------------------------- properties
scales = st.sampled_from(
    ["0.01", "0.00001", "0.5", "0.25", "10", "1", "0.00000001", "0.1", "0.001",
     "0.0001", "5", "0.05", "1.5", "0.000000000000000001", "100",
     # mantissas > 1 with many decimals, up to the int64 limit: value * 10**exponent
     # overflows int64 long before the count of units does
     "0.00000025", "0.00000007", "1234567.891", "0.000000000000000003", "9223372036854775807"]
)

digit_text = st.text(alphabet="0123456789", min_size=0, max_size=24)


@st.composite
def decimal_texts(draw):
    """Plain decimals of every shape, plus near-misses that must be refused."""
    kind = draw(st.integers(0, 9))
    if kind <= 5:
        ip = draw(digit_text)
        fp = draw(digit_text)
        zeros = "0" * draw(st.integers(0, 10))
        if kind == 0:
            return ip
        return ip + "." + fp + zeros
    if kind == 6:
        # around the int64 boundary
        n = draw(st.integers(INT64_MAX - 1000, INT64_MAX + 1000)) * draw(
            st.sampled_from([1, 10, 100]))
        s = str(n)
        cut = draw(st.integers(0, len(s)))
        return s[:cut] + "." + s[cut:] if draw(st.booleans()) else s
    if kind == 7:
        return draw(st.text(alphabet="0123456789.-+eE x", max_size=20))
    if kind == 8:
        # Binance-like
        return f"{draw(st.integers(0, 9999999))}.{draw(st.integers(0, 99999999)):08d}"
    return draw(st.text(max_size=12))


def _result(fn, *args):
    try:
        return ("ok", fn(*args))
    except (hd.DecimalError, ref.DecimalError) as e:
        return ("err", e.code)


@settings(max_examples=3000, deadline=None)
@given(decimal_texts(), scales)
@example("92233720368547758.07", "0.01")
@example("92233720368547758.08", "0.01")
@example("9223372036854775807", "1")
@example("9223372036854775808", "1")
@example("4611686018427387903.5", "0.5")
@example("9223372036854775807.0", "0.5")
@example("9.223372036854775807", "0.000000000000000001")
@example("9.223372036854775808", "0.000000000000000001")
def test_parse_matches_decimal_twin(text, scale):
    assert _result(hd.parse_units, text, scale) == _result(ref.parse_units, text, scale)


@settings(max_examples=2000, deadline=None)
@given(st.integers(-(2**63), INT64_MAX), scales)
def test_format_matches_twin_and_round_trips(units, scale):
    text = hd.format_units(units, scale)
    assert text == ref.format_units(units, scale)
    if units >= 0:
        # every int64 count round-trips, also where units * mantissa is beyond int64
        # (issue 15: the quotient, not value * 10**exponent, has to fit)
        assert _result(hd.parse_units, text, scale) == ("ok", units)
        assert _result(ref.parse_units, text, scale) == ("ok", units)


@settings(max_examples=500, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 10**7), st.integers(0, 10**8 - 1)), max_size=30))
def test_parse_many_matches(pairs):
    texts = [f"{a}.{b:08d}" for a, b in pairs]
    got = hd.parse_many(texts, "0.00000001")
    assert got.tolist() == [ref.parse_units(t, "0.00000001") for t in texts]


@given(st.integers(0, 2**62), scales)
@settings(max_examples=500, deadline=None)
def test_trailing_zero_padding(units, scale):
    sc = hd.Scale(scale)
    assume(units * sc.mantissa <= INT64_MAX)
    text = sc.format(units)
    padded = text + ("" if "." in text else ".") + "0" * 17
    assert sc.parse(padded) == units
