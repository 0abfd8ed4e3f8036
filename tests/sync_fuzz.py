"""Adversarial streams for BookSync, checked against the exchange's true book.

An exchange model (a dict book; every level change has its own update id, spot
ids contiguous, USD-M ids with holes and the pu chain) produces the true
messages and the true book after every id. A faulty network delivers them with
drops, duplicates, reorders, corrupt ids (u far ahead or inside the next
message, U far ahead, u < U, a broken pu), crossing corrupt levels, stale, early
and corrupt-id snapshots. A client feeds every delivered message to
:class:`hftcore.sync.BookSync` and fetches a snapshot whenever it asks.

Checked after every call:

- **safety**: whenever the sync says ready, its book equals the true book of the
  message (or snapshot) that carried its ``last_update_id`` -- never a book that
  stopped following the stream;
- **liveness**: after the faults stop, a short clean stream brings it back to
  ready with exactly the exchange's book;
- **no false alarms**: on a fault-free stream it never resyncs, and it agrees
  step by step with :class:`DocClient`, an independent dict-book client written
  from Binance's documented procedure only.

``python -m tests.sync_fuzz --sequences N`` runs it outside pytest.
"""
from __future__ import annotations

import argparse
import random
import sys
import time
from typing import Optional

from hftcore.sync import OUTCOME_NAMES, BookSync

BIG = 10**12

_State = tuple  # (bid ticks, bid lots, ask ticks, ask lots), best first


def freeze(book: dict) -> _State:
    bids = sorted(((p, q) for (s, p), q in book.items() if s == 0), reverse=True)
    asks = sorted((p, q) for (s, p), q in book.items() if s == 1)
    return (tuple(p for p, _ in bids), tuple(q for _, q in bids), tuple(p for p, _ in asks), tuple(q for _, q in asks))


def sync_state(sync: BookSync) -> _State:
    b = sync.book
    bt, bq = b.levels(0)
    at, aq = b.levels(1)
    return (tuple(bt.tolist()), tuple(bq.tolist()), tuple(at.tolist()), tuple(aq.tolist()))


class Exchange:
    """The true book: messages of 1..4 level changes, one update id per change.
    Bids live at ticks 90..99 and asks at 101..110, so the true book never crosses."""

    def __init__(self, rng: random.Random, market: str) -> None:
        self.rng = rng
        self.market = market
        self.book: dict = {}
        self.next_id = rng.randint(1, 50)
        self.states: dict[int, _State] = {}   # update id -> true book after it
        self.msgs: list[tuple] = []           # (U, u, pu, bids, asks) as Binance sends them
        self.t0 = 1_700_000_000_000_000_000 + rng.randint(0, 10**12)
        self.time_of: dict[int, int] = {}     # true u of a message -> its exchange time (E), ns; 100 ms apart
        for side, lo in ((0, 90), (1, 101)):
            for px in rng.sample(range(lo, lo + 10), 3):
                self.book[(side, px)] = rng.randint(1, 9)
        self.last_u = self.next_id - 1
        self.states[self.last_u] = freeze(self.book)

    def message(self) -> tuple:
        rng = self.rng
        changed: dict = {}
        first = None
        for _ in range(rng.randint(1, 4)):
            side = rng.randint(0, 1)
            px = rng.randint(90, 99) if side == 0 else rng.randint(101, 110)
            qty = 0 if rng.random() < 0.3 else rng.randint(1, 9)
            if qty:
                self.book[(side, px)] = qty
            else:
                self.book.pop((side, px), None)
            changed[(side, px)] = qty
            uid = self.next_id
            self.next_id += 1 if self.market == "spot" else rng.randint(1, 4)
            self.states[uid] = freeze(self.book)
            first = uid if first is None else first
        u = uid
        bids = [(p, q) for (s, p), q in changed.items() if s == 0]
        asks = [(p, q) for (s, p), q in changed.items() if s == 1]
        msg = (first, u, self.last_u if self.market == "usdm" else None, bids, asks)
        self.last_u = u
        self.time_of[u] = self.t0 + len(self.msgs) * 100_000_000
        self.msgs.append(msg)
        return msg

    def snapshot_ids(self, upto_msg: int) -> list[int]:
        """Ids a snapshot taken while message `upto_msg` is the newest may carry
        (any change id of that message, or its u)."""
        U, u = self.msgs[upto_msg][0], self.msgs[upto_msg][1]
        return [i for i in range(U, u + 1) if i in self.states]


class DocClient:
    """Binance's documented procedure, written from the docs alone, on a dict book:
    buffer; snapshot L; too old if L (+1 on spot) < first buffered U; drop u <= L
    (USD-M: u < L); first event U <= L+1 <= u (USD-M: U <= L <= u); then spot
    U == book id + 1, USD-M pu == book id, else restart."""

    def __init__(self, market: str) -> None:
        self.market = market
        self.ready = False
        self.first = False
        self.book: dict = {}
        self.book_id: Optional[int] = None
        self.buffer: list[tuple] = []

    def _apply(self, msg: tuple) -> bool:
        U, u, pu, bids, asks = msg
        L = self.book_id
        if self.first:
            if (u <= L) if self.market == "spot" else (u < L):
                return True
            ok = (U <= L + 1 <= u) if self.market == "spot" else (U <= L <= u)
        else:
            if u <= L:
                return True
            ok = (U == L + 1) if self.market == "spot" else (pu == L)
        if not ok:
            return False
        for side, levels in ((0, bids), (1, asks)):
            for px, q in levels:
                if q:
                    self.book[(side, px)] = q
                else:
                    self.book.pop((side, px), None)
        self.book_id = u
        self.first = False
        return True

    def on_depth(self, msg: tuple) -> None:
        if not self.ready:
            self.buffer.append(msg)
            return
        if not self._apply(msg):
            self.ready = False
            self.buffer = [msg]

    def on_snapshot(self, L: int, state: _State) -> None:
        if self.ready or (self.buffer and ((L + 1 < self.buffer[0][0]) if self.market == "spot"
                                           else (L < self.buffer[0][0]))):
            return
        bt, bq, at, aq = state
        self.book = {**{(0, p): q for p, q in zip(bt, bq)}, **{(1, p): q for p, q in zip(at, aq)}}
        self.book_id, self.ready, self.first = L, True, True
        buf, self.buffer = self.buffer, []
        for i, msg in enumerate(buf):
            if not self._apply(msg):
                self.ready = False
                self.buffer = buf[i:]
                return


FAULTS = ("drop", "dup", "dup_later", "reorder", "u_ahead", "u_inside", "U_ahead", "u_below_U", "pu_wrong",
          "crossing_level", "huge_span")
SNAP_FAULTS = ("stale", "early", "L_ahead", "L_huge")
CORRUPT = ("u_ahead", "u_inside", "U_ahead", "u_below_U", "pu_wrong", "crossing_level", "huge_span")


class Failure(AssertionError):
    pass


def run_sequence(seed: int, n_faulty: int = 12, n_clean: int = 20, fault_rate: float = 0.35,
                 faults: bool = True, trace: bool = False) -> dict:
    """One adversarial sequence; raises :class:`Failure` on a violated property.
    Returns counts of what happened."""
    rng = random.Random(seed)
    market = "spot" if rng.random() < 0.5 else "usdm"
    ex = Exchange(rng, market)
    sync = BookSync(market=market, max_buffer=rng.choice([4, 64, 100_000]) if faults else 100_000)
    # the receive clock: an offset from the exchange's (either sign), latency, and in some
    # sequences a consumer that falls behind (a backlog that grows, as on a busy machine)
    offset = rng.randint(-2_000_000_000, 2_000_000_000)
    slow = rng.random() < 0.3
    lag = [0]
    clock = {"local": 0}
    doc = DocClient(market) if not faults else None
    # what each delivered id claims to be: claimed u -> true states it may stand for
    claims: dict[int, set] = {}
    # ids that only a corrupt message claimed -> that message's true u. Until a newer
    # message arrives nothing can tell such a message from a true one (an old message
    # whose false u straddles the snapshot is applied, stale levels and all): that
    # window is allowed, no more
    fake: dict[int, int] = {}
    newest = [-1]       # the newest true u delivered so far
    stats = {"steps": 0, "ready_checks": 0, "faults": 0, "snapshots": 0, "unverifiable": 0}

    def claim(u: int, state: _State) -> None:
        claims.setdefault(u, set()).add(state)

    def check(what: str) -> None:
        stats["steps"] += 1
        if sync.ready:
            stats["ready_checks"] += 1
            got = sync_state(sync)
            if got not in claims.get(sync.last_update_id, ()):
                if fake.get(sync.last_update_id, -2) >= newest[0]:
                    stats["unverifiable"] += 1
                    return
                raise Failure(f"seed {seed} ({market}): ready at u={sync.last_update_id} after {what} "
                              f"but the book is not the true book there: {got}")
        if doc is not None:
            if doc.ready != sync.ready:
                raise Failure(f"seed {seed} ({market}): ready {sync.ready} but the documented client says "
                              f"{doc.ready} after {what}")
            if doc.ready and (doc.book_id != sync.last_update_id or freeze(doc.book) != sync_state(sync)):
                raise Failure(f"seed {seed} ({market}): book differs from the documented client after {what}")

    def deliver(msg: tuple, true_u: int, corrupt: bool = False) -> None:
        U, u, pu, bids, asks = msg
        newest[0] = max(newest[0], true_u)
        if corrupt:
            fake[u] = true_u
        if not corrupt or u not in ex.states:
            # a message whose ids lie still carries the true levels up to its true end
            claim(u, ex.states[true_u])
        exch = ex.time_of[true_u]
        if slow:
            lag[0] += rng.randint(0, 150_000_000)
        local = max(clock["local"] + 1000, exch + offset + rng.randint(1_000_000, 30_000_000) + lag[0])
        clock["local"] = local
        out = sync.on_depth_arrays(U, u, pu, [p for p, _ in bids], [q for _, q in bids],
                                   [p for p, _ in asks], [q for _, q in asks], local, exch)
        if trace:
            print(f"depth U={U} u={u} pu={pu} true_u={true_u} corrupt={corrupt} -> {OUTCOME_NAMES[out]} "
                  f"ready={sync.ready} id={sync.last_update_id} buffered={sync.buffered_events}")
        if doc is not None:
            doc.on_depth(msg)
        check(f"depth {U}..{u}")

    def maybe_snapshot(j: int, faulty: bool) -> None:
        if not sync.needs_snapshot or rng.random() < 0.3:
            return
        stats["snapshots"] += 1
        kind = rng.choice(SNAP_FAULTS) if faulty and rng.random() < 0.3 else "ok"
        # the REST snapshot is taken while message j (or a little later) is the exchange's newest
        k = max(0, min(len(ex.msgs) - 1, j + rng.randint(-1, 2)))
        if kind == "stale":
            k = max(0, j - rng.randint(3, 8))
        elif kind == "early":
            k = min(len(ex.msgs) - 1, j + rng.randint(3, 6))
        L = rng.choice(ex.snapshot_ids(k))
        state = ex.states[L]
        if kind == "L_ahead":
            L += rng.randint(10**4, 10**6)
        elif kind == "L_huge":
            L += BIG
        claim(L, state)
        bt, bq, at, aq = state
        clock["local"] += rng.randint(1_000_000, 50_000_000)
        snap_exch = ex.time_of[ex.msgs[k][1]] if market == "usdm" else 0
        out = sync.on_snapshot_arrays(L, list(bt), list(bq), list(at), list(aq), clock["local"], snap_exch)
        if trace:
            print(f"snapshot L={L} ({kind}) -> {OUTCOME_NAMES[out]} ready={sync.ready} id={sync.last_update_id}")
        if doc is not None:
            doc.on_snapshot(L, state)
        check(f"snapshot {L} ({kind})")

    # the exchange runs a few messages ahead of what is delivered
    for _ in range(n_faulty + n_clean + 8):
        ex.message()
    pending: list[tuple[int, tuple, int]] = []   # (deliver at step, msg, true u) for late duplicates
    step = 0
    for j in range(n_faulty + n_clean):
        msg = ex.msgs[j]
        true_u = msg[1]
        faulty = faults and j < n_faulty
        kind = rng.choice(FAULTS) if faulty and rng.random() < fault_rate else "ok"
        U, u, pu, bids, asks = msg
        out = [msg]
        if kind != "ok":
            stats["faults"] += 1
        if kind == "drop":
            out = []
        elif kind == "dup":
            out = [msg, msg]
        elif kind == "dup_later":
            pending.append((step + rng.randint(1, 4), msg, true_u))
        elif kind == "reorder" and j + 1 < n_faulty:
            # the next message overtakes this one: deliver it now, this one after it
            nxt = ex.msgs[j + 1]
            ex.msgs[j + 1] = msg
            out = [nxt]
            true_u = nxt[1]
        elif kind == "u_ahead":
            out = [(U, u + rng.randint(1, 10**6), pu, bids, asks)]
        elif kind == "u_inside":
            nxt = ex.msgs[j + 1]
            if nxt[1] > nxt[0]:
                out = [(U, rng.randint(nxt[0], nxt[1] - 1), pu, bids, asks)]
        elif kind == "U_ahead":
            out = [(U + rng.randint(10**3, BIG), u + BIG + 10**3, pu, bids, asks)]
        elif kind == "u_below_U":
            out = [(U, U - rng.randint(1, 5), pu, bids, asks)]
        elif kind == "pu_wrong" and market == "usdm" and U - pu > 1:
            # an id no message ends at (between the true pu and U): a pu equal to some
            # earlier u would silently hide a lost message from any client
            out = [(U, u, rng.randint(pu + 1, U - 1), bids, asks)]
        elif kind == "crossing_level" and ex.states[u][0]:
            # an ask at or below the true best bid: the book crosses
            out = [(U, u, pu, bids, asks + [(ex.states[u][0][0] - rng.randint(0, 2), 5)])]
        elif kind == "huge_span":
            out = [(U, U + 10**9 + rng.randint(0, 10**6), pu, bids, asks)]
        if trace and kind != "ok":
            print(f"fault {kind} on message {U}..{u}")
        for m in out:
            deliver(m, true_u, corrupt=kind in CORRUPT and m is not msg)
            step += 1
        for item in [p for p in pending if p[0] <= step]:
            pending.remove(item)
            deliver(item[1], item[2])
        maybe_snapshot(j, faulty)
    # liveness: after the clean stretch (snapshots served on demand) the book is the exchange's
    last = ex.msgs[n_faulty + n_clean - 1][1]
    for extra in range(40):
        if sync.ready and sync.last_update_id == last:
            break
        # keep the stream going and serve every snapshot request
        j = n_faulty + n_clean + extra
        if j >= len(ex.msgs):
            ex.message()
        msg = ex.msgs[j]
        deliver(msg, msg[1])
        last = msg[1]
        if sync.needs_snapshot:
            L = ex.snapshot_ids(j)[-1]
            claim(L, ex.states[L])
            bt, bq, at, aq = ex.states[L]
            clock["local"] += 1_000_000
            sync.on_snapshot_arrays(L, list(bt), list(bq), list(at), list(aq), clock["local"],
                                    ex.time_of[msg[1]] if market == "usdm" else 0)
            check("recovery snapshot")
    if not (sync.ready and sync.last_update_id == last and sync_state(sync) == ex.states[last]):
        raise Failure(f"seed {seed} ({market}): not back on the exchange's book after the faults stopped "
                      f"(ready={sync.ready}, u={sync.last_update_id}, exchange u={last}, {sync.stats()})")
    if not faults and sync.resyncs:
        raise Failure(f"seed {seed} ({market}): {sync.resyncs} resyncs on a fault-free stream")
    return stats


def run_many(n: int, seed0: int = 0, faults: bool = True, **kw) -> dict:
    total = {"sequences": 0, "steps": 0, "ready_checks": 0, "faults": 0, "snapshots": 0, "unverifiable": 0}
    for i in range(n):
        st = run_sequence(seed0 + i, faults=faults, **kw)
        total["sequences"] += 1
        for k, v in st.items():
            total[k] += v
    return total


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description="BookSync against adversarial streams and the true book")
    ap.add_argument("--sequences", type=int, default=1_000_000, help="number of sequences")
    ap.add_argument("--seed", type=int, default=int(time.time()), help="first seed (sequence i uses seed + i)")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    try:
        tot = run_many(args.sequences, args.seed)
    except Failure as exc:
        print(f"FAIL: {exc}", file=sys.stderr)
        return 1
    print(f"{tot} in {time.perf_counter() - t0:.1f} s (seeds {args.seed}..{args.seed + args.sequences - 1})")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
