"""Soak: two redundant feeds against the simulator for N minutes, with faults.

Phase "one": every fault kind (skips, duplicates, reorders, malformed frames,
delays, dropped / silent / shut-down connections) on endpoint 0 only; the other
feed is clean. Expected: 0 messages and 0 update ids lost, 0 resyncs, the book
equal to the simulator's ground truth, and the loss figures' denominators equal
to what the simulator published.

Phase "both": message faults (skip, duplicate, malformed) on both endpoints.
Expected: every message withheld from both feeds is a detected hole, and the
figures equal the simulator's independent count exactly (holes, ids lost,
messages received).

    python benchmarks/soak_feeds.py --minutes 10 --phase one
    python benchmarks/soak_feeds.py --minutes 2 --phase both --market usdm

Prints a progress line every 30 s and a JSON summary; exits 1 if a check fails.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))

from hftmm.data_ingestion import BinanceConnector  # noqa: E402
from hftmm.simulator import ExchangeSimulator, Fault, FaultConfig, SyntheticSource  # noqa: E402
from hftmm.synthetic import SyntheticConfig  # noqa: E402
from test_connector import caught_up, quiesce  # noqa: E402
from test_redundant_feeds import _truth_lost  # noqa: E402


def faults(phase: str, seconds: float, seed: int) -> FaultConfig:
    if phase == "one":
        rates = {"skip": 3e-3, "duplicate": 2e-3, "reorder": 1e-3, "malformed": 1e-3, "delay": 5e-4,
                 "drop_connection": 5e-5, "silent": 2e-5, "server_shutdown": 1e-5}
        # and a scripted connection fault every 20 s, in turn
        kinds = ("drop_connection", "silent", "server_shutdown")
        script = [Fault(kinds[i % 3], at_time_s=10.0 + 20.0 * i, **({"seconds": 2.0} if i % 3 == 1 else {}))
                  for i in range(int(seconds // 20))]
        return FaultConfig(seed=seed, rates=rates, script=script, endpoints=(0,))
    return FaultConfig(seed=seed, rates={"skip": 5e-3, "duplicate": 2e-3, "malformed": 1e-3}, after_message=50)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--phase", choices=("one", "both"), default="one")
    ap.add_argument("--market", choices=("spot", "usdm"), default="spot")
    ap.add_argument("--speed", type=float, default=10.0, help="market time per wall second")
    ap.add_argument("--seed", type=int, default=7)
    a = ap.parse_args()
    seconds = a.minutes * 60.0
    src = SyntheticSource(SyntheticConfig(seed=a.seed, book_levels=400), speed=a.speed)
    sim = ExchangeSimulator(market=a.market, source=src, faults=faults(a.phase, seconds, a.seed),
                            ping_interval_s=5.0, pong_timeout_s=30.0, extra_ports=1).start(paused=True)
    conn = BinanceConnector("BTCUSDT", market=a.market, rest_url=sim.rest_url, ws_urls=sim.ws_urls, feeds=2,
                            watchdog_s=1.5, trade_watchdog_s=1.5, backoff_initial_s=0.05, backoff_max_s=0.5,
                            snapshot_limit=5000 if a.market == "spot" else 1000).start()
    t0 = time.monotonic()
    try:
        while not all(c.connected.is_set() for c in conn._conns) and time.monotonic() - t0 < 30:
            time.sleep(0.01)
        sim.resume()
        t0 = time.monotonic()
        nxt = t0 + 30.0
        while time.monotonic() - t0 < seconds:
            time.sleep(0.5)
            if time.monotonic() >= nxt:
                nxt += 30.0
                st = conn.statistics()
                el = time.monotonic() - t0
                print(f"[{el:6.0f}s / {seconds:.0f}s, ETA {seconds - el:5.0f}s] depth msgs "
                      f"{st['messages_received']:,} ({st['messages_received'] / el:,.0f}/s), lost "
                      f"{st['messages_lost']}, ids lost {st['ids_lost']}, resyncs {st['resyncs']}, reconnects "
                      f"{st['reconnects']}, feed dups {st['feed_duplicates']:,}, feeds up {conn.feeds_up()}",
                      flush=True)
        sim.pause()
        sim.wait_idle(30.0)
        synced = caught_up(conn, sim, timeout=120.0)
        quiesce(conn)
        st = conn.statistics()
        n, (U, _u, pu) = sim.depth_published()
        ids = sim.last_update_id - (U - 1 if a.market == "spot" else pu)
        ss = sim.stats()
        lid, bt, bq, at, aq = sim.ground_truth()
        with conn._lock:
            cb, _ = conn.book.levels(0)
            ca, _ = conn.book.levels(1)
            book_ok = conn.sync.last_update_id == lid and list(cb) == list(bt) and list(ca) == list(at)
        out = {"phase": a.phase, "market": a.market, "minutes": a.minutes, "speed": a.speed,
               "published": n, "ids_published": ids, "faults": ss["faults"],
               "connections_accepted": ss["connections_accepted"],
               **{k: st[k] for k in ("messages_received", "messages_lost", "messages_expected", "message_loss_rate",
                                     "ids_lost", "ids_expected", "id_loss_rate", "gaps", "resyncs", "reconnects",
                                     "feed_duplicates", "feed_holds", "feed_fills", "feed_unfilled",
                                     "ticker_checks", "ticker_mismatches", "malformed")},
               "feeds": [{k: f[k] for k in ("name", "messages_lost", "messages_expected", "ids_lost", "first",
                                            "feed_duplicates")} for f in st["feeds"]],
               "synced_at_end": synced, "book_equals_ground_truth": book_ok}
        checks = {"synced": synced, "book": book_ok, "no_ticker_mismatch": st["ticker_mismatches"] == 0}
        if a.phase == "one":
            checks.update(no_loss=st["messages_lost"] == 0 and st["ids_lost"] == 0,
                          no_resync=st["resyncs"] == 0 and st["gaps"] == 0,
                          expected_exact=st["messages_expected"] == n and st["ids_expected"] == ids,
                          faults_injected=sum(ss["faults"].values()) > 0)
        else:
            holes, ids_lost, lost = _truth_lost(sim, a.market)
            out.update(truth_holes=holes, truth_ids_lost=ids_lost, truth_messages_lost=lost)
            checks.update(holes_exact=st["messages_lost"] == holes, ids_exact=st["ids_lost"] == ids_lost,
                          received_exact=st["messages_received"] == n - lost,
                          ids_expected_exact=st["ids_expected"] == ids,
                          every_gap_detected=holes == 0 or st["resyncs"] >= 1)
        out["checks"] = checks
        out["ok"] = all(checks.values())
        print(json.dumps(out, indent=1, default=str))
        return 0 if out["ok"] else 1
    finally:
        conn.stop()
        sim.stop()


if __name__ == "__main__":
    sys.exit(main())
