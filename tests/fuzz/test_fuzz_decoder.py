"""Bounded fuzz run of the Binance decoder (issue 15, "keep it from coming
back"): 250,000 mutated frames through ``decode_lines`` and 12,500 through
``decode()`` (CI: 1,000,000 and 50,000, ``HFTMM_FUZZ_LINES``), each against the json.loads + Decimal oracle, plus the corpus
replayed and a hypothesis-driven run that shrinks what it finds. A crash, a
hang (the watchdog), an exception other than DecodeError or any disagreement
fails it. The long run is ``python -m tests.fuzz.fuzz_decoder`` (README.md)."""
import faulthandler
import os
import random
import sys

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
from tests.fuzz import engine as fz  # noqa: E402 - the repository root first (pytest's importlib mode)

LINES = int(os.environ.get("HFTMM_FUZZ_LINES", "250000"))    # decoder inputs through decode_lines
DECODE_EVERY = 20           # and every 20th through decode()
BATCH = 10_000
HANG_SECONDS = 900          # no batch takes a second of that; only a hang trips it


def _seeds(rnd):
    return fz.sample_seeds(rnd, fz.capture_frames(max_bytes=3000), 3000) + fz.corpus_inputs("decoder")


def _report(run):
    lines = [f"{why}\n    input: {data!r}"[:800] for why, data in run.findings[:10]]
    return run.summary() + "\n" + "\n".join(lines)


def test_corpus_replays_clean():
    run = fz.Run()
    fz.replay_corpus(run)
    assert not run.findings, _report(run)
    assert run.decodes == len(fz.corpus_inputs("decoder")) * len(fz.DECODER_CONFIGS)


def test_mutated_decoder_inputs_agree_with_json_and_decimal():
    rnd = random.Random(15)
    mut = fz.Mutator(_seeds(rnd), rnd)
    pairs = fz.decoders()
    run = fz.Run()
    faulthandler.dump_traceback_later(HANG_SECONDS, exit=True)
    try:
        while run.lines < LINES:
            fz.fuzz_round(run, rnd, mut, pairs, BATCH, DECODE_EVERY)
            assert not run.findings, _report(run)
            faulthandler.dump_traceback_later(HANG_SECONDS, exit=True)
    finally:
        faulthandler.cancel_dump_traceback_later()
    # the figure is real: every input went through the decoder and the oracle
    assert run.lines == LINES and run.decodes == LINES // DECODE_EVERY
    print("\n" + run.summary())


_RND = random.Random(7)
_MUT = fz.Mutator(_seeds(_RND), _RND)
_PAIRS = fz.decoders()


@st.composite
def mutants(draw):
    """A seed and a short list of mutation operators, drawn by hypothesis (so a
    failure shrinks to few operators on a simple seed)."""
    seed = draw(st.sampled_from(_MUT.seeds[:400]))
    ops = draw(st.lists(st.sampled_from(_MUT.ops), max_size=4))
    rnd = random.Random(draw(st.integers(0, 2**32)))
    m = fz.Mutator([seed], rnd)
    frame = seed
    for op in ops:
        frame = getattr(m, op.__name__)(frame)
    return frame


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutants(), st.integers(0, len(fz.DECODER_CONFIGS) - 1))
def test_hypothesis_mutants_agree(frame, which):
    dec, twin = _PAIRS[which]
    why = fz.check_decode(dec, twin, frame)
    assert why is None, (why, frame)
    n, findings = fz.check_lines(dec, twin, [frame], random.Random(0))
    assert n == 1 and not findings, (findings, frame)
