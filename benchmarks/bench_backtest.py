"""Backtest speed: the driver loop with the split components (exchange model,
trader, built-in market maker) on 5M synthetic events, beside the kernel of the
commit before the split (``HFTMM_BENCH_BASELINE``, default c54cb1d: the
monolithic replay kernel) built from this repository's history and run on the
same events in a subprocess of the same run; a fresh process's time to its first
event; peak memory of a ~50M-event run."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from hftcore import EVENT_DTYPE
from hftcore.synth import SyntheticMarket
from hftmm.backtesting import BacktestConfig
from hftmm.backtesting.engine import build_kernel

N_EVENTS = 5_000_000
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BASELINE = os.environ.get("HFTMM_BENCH_BASELINE", "c54cb1d")
#: no loss limits: the default config's kill switch would stop quoting early (the old kernel had none)
CONFIG = BacktestConfig(max_daily_loss=0.0, max_drawdown=0.0)


@pytest.fixture(scope="module")
def events(request):
    m = SyntheticMarket(seed=11)
    parts = [m.initial_snapshot()]
    n = len(parts[0])
    target = N_EVENTS if not request.config.getoption("benchmark_disable") else 200_000
    while n < target:
        parts.append(m.generate(600.0))
        n += len(parts[-1])
    return np.concatenate([p.view(np.uint8) for p in parts]).view(EVENT_DTYPE)[:target]


@pytest.mark.benchmark(group="backtest")
def test_replay_kernel(benchmark, events, bench_record):
    k = benchmark.pedantic(lambda kk: (kk.run(events), kk)[1], setup=lambda: ((build_kernel([CONFIG], "0.1", "0.001"),), {}),
                           rounds=5, iterations=1)
    c = k.counters(0)
    assert c["events"] == len(events) and c["fills"] > 0 and c["sent"] > 1000
    bench_record(benchmark, "replay", len(events))


_OLD = textwrap.dedent("""
    import json, sys, time
    import numpy as np
    from hftcore.backtest import ReplayKernel
    from hftmm.backtesting import BacktestConfig
    from hftmm.backtesting.engine import kernel_params
    ev = np.load(sys.argv[1])
    params, quote = kernel_params(BacktestConfig(), 0.1, 0.001)
    best = 1e9
    for _ in range(5):
        k = ReplayKernel(params, quote, 1)
        t = time.perf_counter()
        k.run(ev, 0, True)
        best = min(best, time.perf_counter() - t)
    print(json.dumps({"ns_per_event": best / len(ev) * 1e9, "fills": k.counters()["fills"]}))
""")


def _baseline_build(tmp: str) -> str | None:
    """The baseline commit's source tree, built in place (cached by commit)."""
    if shutil.which("git") is None:
        return None
    rev = subprocess.run(["git", "rev-parse", "--verify", "-q", BASELINE + "^{commit}"], cwd=ROOT,
                         capture_output=True, text=True)
    if rev.returncode != 0:
        return None
    sha = rev.stdout.strip()
    d = os.path.join(os.path.expanduser("~/.cache/hftmm-bench"), sha)
    if not os.path.exists(os.path.join(d, ".built")):
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
        arc = subprocess.run(["git", "archive", sha], cwd=ROOT, capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", d], input=arc, check=True)
        subprocess.run([sys.executable, "setup.py", "-q", "build_ext", "--inplace"], cwd=d, check=True,
                       capture_output=True)
        open(os.path.join(d, ".built"), "w").close()
    return os.path.join(d, "src")


@pytest.mark.benchmark(group="backtest")
def test_replay_kernel_vs_the_monolithic_baseline(benchmark, events, bench_results, tmp_path):
    if benchmark.disabled or "replay" not in bench_results:
        pytest.skip("benchmarks disabled")
    src = _baseline_build(str(tmp_path))
    new = bench_results["replay"]
    print(f"\nreplay kernel (split components): {1e3 / new:.1f}M events/s on {len(events):,} events; "
          f"load {os.getloadavg()[0]:.2f}")
    benchmark.extra_info["M_events_per_s"] = 1e3 / new
    if src is None:
        pytest.skip(f"baseline {BASELINE} not in this repository's history")
    path = str(tmp_path / "ev.npy")
    np.save(path, events)
    out = benchmark.pedantic(lambda: subprocess.run([sys.executable, "-c", _OLD, path], capture_output=True, text=True,
                                                    env={**os.environ, "PYTHONPATH": src}, check=True),
                             rounds=1, iterations=1)
    old = json.loads(out.stdout.strip().splitlines()[-1])["ns_per_event"]
    print(f"baseline {BASELINE} (monolithic kernel): {1e3 / old:.1f}M events/s; split / baseline "
          f"throughput {old / new:.2f}")
    benchmark.extra_info.update(baseline_M_events_per_s=1e3 / old, ratio=old / new)
    assert 1e3 / new >= 10          # target 20M/s; the floor leaves room for a busy machine
    assert old / new >= 0.8         # the split costs no more than noise


_FRESH = textwrap.dedent("""
    import time, json, sys
    t0 = time.perf_counter()
    from hftmm.backtesting import BacktestConfig, BacktestEngine
    def hwm_mb():
        # VmHWM belongs to this address space (ru_maxrss would carry the parent's
        # high-water mark across exec)
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    first = []
    def cb(frac, events):
        if not first:
            first.append(time.perf_counter() - t0)
    cfg = BacktestConfig(start_date=sys.argv[1], end_date=sys.argv[2])
    r = BacktestEngine().run_backtest(cfg, progress=cb)
    print(json.dumps({"first_event_s": first[0], "events": r.events, "elapsed_s": r.elapsed_s,
                      "max_rss_mb": hwm_mb()}))
""")


def _fresh(start: str, end: str) -> dict:
    out = subprocess.run([sys.executable, "-c", _FRESH, start, end], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.benchmark(group="backtest-process")
def test_fresh_process_first_event_and_memory(benchmark):
    if benchmark.disabled:
        pytest.skip("benchmarks disabled (runs ~2 synthetic days in a subprocess)")
    res = benchmark.pedantic(_fresh, args=("2024-08-08", "2024-08-10"), rounds=1, iterations=1)
    benchmark.extra_info.update(res)
    print(f"\nfresh process: first event after {res['first_event_s']:.3f} s; {res['events']:,} events "
          f"in {res['elapsed_s']:.1f} s incl. generation; peak RSS {res['max_rss_mb']:.0f} MB")
    assert res["events"] >= 50_000_000
    assert res["max_rss_mb"] < 400
