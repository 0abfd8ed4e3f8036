"""Long fuzz run of the Binance decoder and the decimal parser.

    python -m tests.fuzz.fuzz_decoder --minutes 60                # atheris if installed, else the built-in mutator
    python -m tests.fuzz.fuzz_decoder --minutes 60 --engine builtin
    python -m tests.fuzz.fuzz_decoder --minutes 60 --native       # atheris + a coverage-instrumented decoder (clang)

Every input goes through the decoder (``decode`` and ``decode_lines``) or the
decimal parser and through the json.loads + Decimal oracle (tests/fuzz/engine.py);
a crash, a hang (libFuzzer's -timeout; the built-in engine's watchdog), another
exception than DecodeError/DecimalError or a disagreement stops the run with
exit status 1 and the input written to the work directory (default
/tmp/hftmm-fuzz). Findings become corpus files (tests/fuzz/corpus) and tests.

Engines:
* builtin: the structure-aware mutator of engine.py over the real captures
  and the corpus, in batches through decode_lines (the bounded CI run, with
  time instead of a count);
* atheris (``pip install atheris``): libFuzzer's coverage-guided mutation,
  seeded with the corpus and capture frames, with a JSON dictionary
  (json.dict). Coverage comes from the oracle's Python code (instrumented),
  which branches where the decoder does; with ``--native`` also from the
  decoder itself, rebuilt with ``clang -fsanitize=fuzzer-no-link`` into the
  work directory and run under atheris's libFuzzer preload
  (``asan_with_fuzzer.so``). Needs clang (``apt-get install clang``).
"""
from __future__ import annotations

import argparse
import faulthandler
import os
import random
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def _parse(argv):
    ap = argparse.ArgumentParser(prog="python -m tests.fuzz.fuzz_decoder", description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=10.0, help="how long to run (default 10)")
    ap.add_argument("--engine", choices=("auto", "atheris", "builtin"), default="auto")
    ap.add_argument("--native", action="store_true", help="atheris with a clang-instrumented decoder")
    ap.add_argument("--workdir", default="/tmp/hftmm-fuzz", help="corpus growth, findings, native build")
    ap.add_argument("--seed", type=int, default=None, help="builtin engine: random seed (default: time)")
    ap.add_argument("--jobs", type=int, default=1, help="atheris: libFuzzer -jobs/-workers")
    ap.add_argument("--native-child", action="store_true", help=argparse.SUPPRESS)
    return ap.parse_args(argv)


# ------------------------------------------------------------------ builtin engine
def run_builtin(args) -> int:
    from tests.fuzz import engine as fz

    seed = args.seed if args.seed is not None else int(time.time())
    rnd = random.Random(seed)
    frames = fz.capture_frames(max_bytes=20000)
    mut = fz.Mutator(fz.sample_seeds(rnd, frames, 20000) + fz.corpus_inputs("decoder"), rnd)
    texts = fz.capture_decimals(frames[:20000]) + [t for b in fz.corpus_inputs("decimal") for t in b.splitlines()]
    pairs = fz.decoders()
    run = fz.Run()
    fz.replay_corpus(run)
    end = time.monotonic() + args.minutes * 60
    last = time.monotonic()
    print(f"builtin engine, seed {seed}, {len(mut.seeds)} seeds, {args.minutes:g} min", flush=True)
    while time.monotonic() < end and not run.findings:
        faulthandler.dump_traceback_later(600, exit=True)      # a batch never takes this long: a hang
        fz.fuzz_round(run, rnd, mut, pairs, 10_000, 20)
        fz.decimal_round(run, rnd, texts, 2_000)
        if time.monotonic() - last > 30:
            print("  " + run.summary(), flush=True)
            last = time.monotonic()
    faulthandler.cancel_dump_traceback_later()
    print(run.summary())
    if run.findings:
        paths = fz.dump_finding(run, os.path.join(args.workdir, "findings"))
        for why, data in run.findings[:10]:
            print(f"FINDING: {why}\n  input: {data!r}"[:1000])
        print("inputs written:", *paths, sep="\n  ")
        return 1
    return 0


# ------------------------------------------------------------------ atheris engine
def _seed_dir(workdir: str) -> str:
    """A libFuzzer input directory: the corpus and a spread of capture frames."""
    from tests.fuzz import engine as fz

    d = os.path.join(workdir, "seeds")
    os.makedirs(d, exist_ok=True)
    rnd = random.Random(1)
    for i, f in enumerate(fz.sample_seeds(rnd, fz.capture_frames(max_bytes=4000), 400)):
        with open(os.path.join(d, f"capture-{i:04d}"), "wb") as fh:
            fh.write(bytes([i % 256]) + f)          # first byte: the decoder configuration
    for p in fz.corpus_files("decoder"):
        shutil.copy(p, os.path.join(d, "corpus-" + os.path.basename(p)))
    for p in fz.corpus_files("decimal"):
        with open(p, "rb") as fh:
            for j, t in enumerate(fh.read().splitlines()):
                with open(os.path.join(d, f"decimal-{j:03d}"), "wb") as out:
                    out.write(b"\xff" + t)          # first byte 0xff..: a decimal input
    return d


def run_atheris(args) -> int:
    import atheris

    with atheris.instrument_imports(include=["hftmm.reference", "tests.fuzz.engine"]):
        from hftmm.reference import binance as rb  # noqa: F401 - instrumented for coverage
        from hftmm.reference import decimal as rdec  # noqa: F401
        from tests.fuzz import engine as fz
    import hftcore.binance as hb
    from hftcore import decimal as hd

    pairs = fz.decoders()
    scales = [(hd.Scale(s), s) for s in fz.SCALES]
    rnd = random.Random(0)
    print("decoder:", hb.__file__, flush=True)

    def one_input(data: bytes) -> None:
        if not data:
            return
        sel, body = data[0], data[1:]
        if sel >= 0xF0:
            sc, st = scales[sel % len(scales)]
            why = fz.check_decimal(sc, st, body)
        else:
            dec, twin = pairs[sel % len(pairs)]
            frame: bytes | str = body
            if sel & 0x40:
                try:
                    frame = body.decode("utf-8")
                except UnicodeDecodeError:
                    pass
            why = fz.check_decode(dec, twin, frame)
            if why is None and not sel & 0x40:
                _, findings = fz.check_lines(dec, twin, [body], rnd)
                why = "; ".join(findings) or None
        if why is not None:
            raise AssertionError(why)

    work = os.path.join(args.workdir, "corpus")
    os.makedirs(work, exist_ok=True)
    seeds = _seed_dir(args.workdir)
    argv = [sys.argv[0], f"-max_total_time={int(args.minutes * 60)}", "-timeout=10", "-rss_limit_mb=4096",
            f"-dict={os.path.join(HERE, 'json.dict')}", f"-artifact_prefix={args.workdir}/", "-max_len=8192",
            "-print_final_stats=1", work, seeds]
    if args.jobs > 1:
        argv[1:1] = [f"-jobs={args.jobs}", f"-workers={args.jobs}"]
    atheris.Setup(argv, one_input)
    atheris.Fuzz()          # exits the process: 0 when the time is up, non-zero on a finding
    return 0


def build_native(workdir: str) -> str:
    """hftcore rebuilt with clang -fsanitize=fuzzer-no-link into workdir/native;
    returns the directory to put first on PYTHONPATH."""
    clang = shutil.which("clang")
    if clang is None:
        raise SystemExit("--native needs clang (apt-get install clang)")
    lib = os.path.join(workdir, "native")
    env = dict(os.environ, CC=clang, LDSHARED=f"{clang} -shared", CFLAGS="-fsanitize=fuzzer-no-link -g")
    subprocess.run([sys.executable, "setup.py", "-q", "build_ext", "--build-lib", lib, "--build-temp",
                    os.path.join(workdir, "native-build"), "--force"], cwd=ROOT, env=env, check=True)
    for name in os.listdir(os.path.join(ROOT, "src", "hftcore")):
        if name.endswith(".py"):
            shutil.copy(os.path.join(ROOT, "src", "hftcore", name), os.path.join(lib, "hftcore", name))
    return lib


def main(argv=None) -> int:
    args = _parse(sys.argv[1:] if argv is None else argv)
    os.makedirs(args.workdir, exist_ok=True)
    engine = args.engine
    if engine == "auto":
        try:
            import atheris  # noqa: F401
            engine = "atheris"
        except ImportError:
            engine = "builtin"
    if args.native and not args.native_child:
        import atheris

        lib = build_native(args.workdir)
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([lib, ROOT, os.environ.get("PYTHONPATH", "")]),
                   LD_PRELOAD=os.path.join(atheris.path(), "asan_with_fuzzer.so"),
                   ASAN_OPTIONS="detect_leaks=0:allocator_may_return_null=1")
        cmd = [sys.executable, "-m", "tests.fuzz.fuzz_decoder", "--native-child", "--engine", "atheris",
               "--minutes", str(args.minutes), "--workdir", args.workdir, "--jobs", str(args.jobs)]
        return subprocess.call(cmd, cwd=ROOT, env=env)
    if engine == "atheris":
        return run_atheris(args)
    return run_builtin(args)


if __name__ == "__main__":
    sys.exit(main())
