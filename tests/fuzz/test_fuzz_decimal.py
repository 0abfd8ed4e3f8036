"""Bounded fuzz run of the decimal parser (include/hftcore/decimal.h through
hftcore.decimal.Scale.parse): mutated prices and quantities of the real
captures, and counts near INT64_MAX written in scales with a mantissa > 1,
against Decimal division (tests.fuzz.engine.exact_units)."""
import os
import random
import sys

from hypothesis import given, settings
from hypothesis import strategies as st

from hftcore import decimal as hd

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
from tests.fuzz import engine as fz  # noqa: E402 - the repository root first (pytest's importlib mode)

INPUTS = 300_000


def test_decimal_parser_agrees_with_decimal():
    rnd = random.Random(25)
    texts = fz.capture_decimals(fz.capture_frames(max_bytes=None, per_source=3000))
    texts += [t for blob in fz.corpus_inputs("decimal") for t in blob.splitlines()]
    assert len(texts) > 1000
    run = fz.Run()
    while run.decimals < INPUTS:
        fz.decimal_round(run, rnd, texts, 10_000)
        assert not run.findings, run.findings[:10]
    assert run.decimals == INPUTS


@settings(max_examples=3000, deadline=None)
@given(st.text(alphabet="0123456789.-+e _\u0661\ud800", max_size=60) | st.binary(max_size=40),
       st.sampled_from(fz.SCALES))
def test_any_text_is_a_count_or_a_decimal_error(text, scale):
    sc = hd.Scale(scale)
    raw = text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass")
    assert fz.check_decimal(sc, scale, raw) is None
    try:
        units = sc.parse(text)          # str and bytes agree
    except hd.DecimalError as e:
        assert fz.check_decimal(sc, scale, raw) is None and e.code < 0
    else:
        assert sc.parse(raw) == units
