# cython: language_level=3
"""The strategy core: one market maker for every driver (backtest, paper, live).

Sans-I/O. A driver feeds it market events (through the one book it keeps and the
callbacks below) and order reports; intents (new, cancel, replace) come out.

* :class:`Trader` -- a strategy's own view of its orders and every pre-trade
  limit, written once: the position limit holds with every order not known to be
  done filled (``max_lots``); no new order while the last second already holds
  ``max_sends`` (a new order and a replace count one, a cancel none -- as
  Binance counts ORDERS); nothing new while the book is invalid, while disabled
  (paused, killed); order size and notional bounds; loss limits (daily loss,
  drawdown as a fraction of the peak equity, absolute drawdown) that trip the
  kill switch. Open quantity per side is kept in O(1) whatever the number of
  orders. Reports (``on_report_c``: ack, fill, canceled, rejected) update it.
* :class:`Strategy` -- the interface: ``on_start``, ``on_book`` (after a
  complete book change), ``on_trade``, ``on_report`` (after the trader applied
  it), ``on_book_invalid``, ``on_timer`` (every ``timer_interval_ns``). A
  strategy reads ``self.book`` and acts through ``self.trader``. Subclass it in
  Cython (``cdef class MyStrategy(Strategy)`` overriding the ``*_c`` methods,
  from the installed wheel's .pxd files) for full speed, or in Python
  (``hftmm.strategy.Strategy``; wrapped by :class:`PyStrategy`).
* :class:`MarketMaker` -- the built-in Avellaneda-Stoikov / GLFT market maker:
  fair value (mid, micro-price, or a subclass's ``fair_value_c``), EWMA
  volatility, online A/k, requote interval and threshold, minimum order
  lifetime, inventory-aware sizing, and a fair share of the order-rate budget
  when it binds: a side without a working order comes first, then the side
  further from its target, ties alternate; a side that gets no budget keeps its
  working order rather than cancelling it (no side starves).

Units: prices in ticks, quantities in lots, times in ns, money in quote currency.
"""
cimport cython
cimport numpy as cnp
from libc.math cimport NAN, fabs
from libc.stdint cimport int64_t, INT64_MAX
from libc.stdlib cimport free, malloc, realloc
from libc.string cimport memset

from hftcore.book cimport BOOK_NO_ASK, BOOK_NO_BID, L2Book
from hftcore.exchange cimport RPT_ACK, RPT_CANCELED, RPT_FILL, RPT_REJECTED, XM_MARKET, XM_POST_ONLY, xm_report_t
from hftcore.quoting cimport (compute_quote_fv, quote_out_t, quote_params_init, quote_params_set_intensity,
                              quote_params_t, QUOTE_FAIR_MICRO)
from hftcore.volatility cimport (ewma_vol_init, ewma_vol_sigma, ewma_vol_t, ewma_vol_update, intensity_fit,
                                 intensity_free, intensity_init, intensity_on_trade, intensity_t)

import numpy as np

cnp.import_array()

NEW = INTENT_NEW
CANCEL = INTENT_CANCEL
REPLACE = INTENT_REPLACE
INTENT_DTYPE = np.dtype([("ts", "<i8"), ("kind", "<i4"), ("side", "<i4"), ("flags", "<i4"), ("_pad", "<i4"),
                         ("id", "<i8"), ("cancel_id", "<i8"), ("px", "<i8"), ("lots", "<i8")])
REFUSALS = {REFUSED_NONE: None, REFUSED_DISABLED: "disabled", REFUSED_INVALID: "book invalid",
            REFUSED_RATE: "rate limit", REFUSED_POSITION: "position limit", REFUSED_SIZE: "order size",
            REFUSED_SLOTS: "too many orders"}
KILL_REASONS = {KILL_NONE: None, KILL_DAILY_LOSS: "max_daily_loss", KILL_DRAWDOWN: "max_drawdown",
                KILL_DRAWDOWN_ABS: "max_drawdown_abs", KILL_EXTERNAL: "external"}
STATES = {TR_FREE: "done", TR_PENDING: "pending", TR_OPEN: "open", TR_CANCELING: "canceling"}

cdef int64_t NS_PER_DAY = 86_400 * 1_000_000_000
cdef int64_t SLOT_BITS = 16
cdef int64_t SLOT_MASK = (1 << 16) - 1


cdef int _nomem() except -1 with gil:
    raise MemoryError("hftcore.strategy: out of memory")


def trader_limits(tick_size, lot_size, max_lots=0, max_sends=0, min_lots=1, max_order_lots=0, min_notional=0.0,
                  max_daily_loss=0.0, max_drawdown=0.0, max_drawdown_abs=0.0, capital=10_000.0,
                  flatten_on_kill=True, max_notional=0.0):
    """The trader's limits as a dict (lots, quote currency, fractions; <= 0: none)."""
    return dict(tick_size=float(tick_size), lot_size=float(lot_size), max_lots=int(max_lots),
                max_sends=int(max_sends), min_lots=int(min_lots), max_order_lots=int(max_order_lots),
                min_notional=float(min_notional), max_daily_loss=float(max_daily_loss),
                max_drawdown=float(max_drawdown), max_drawdown_abs=float(max_drawdown_abs), capital=float(capital),
                flatten_on_kill=bool(flatten_on_kill), max_notional=float(max_notional))


@cython.final
cdef class Trader:
    """A strategy's orders and pre-trade limits (see the module doc). ``limits``:
    :func:`trader_limits`."""

    def __cinit__(self, *args, **kwargs):
        self.orders = NULL
        self.free_slots = NULL
        self.work[0] = self.work[1] = NULL
        self.out = NULL
        self.sends = NULL

    def __init__(self, dict limits not None):
        cdef int s
        L = limits
        self.lim.tick_size = L["tick_size"]
        self.lim.lot_size = L["lot_size"]
        self.lim.max_lots = L.get("max_lots", 0)
        self.lim.max_sends = L.get("max_sends", 0)
        self.lim.min_lots = max(1, L.get("min_lots", 1))
        self.lim.max_order_lots = L.get("max_order_lots", 0)
        self.lim.min_notional = L.get("min_notional", 0.0)
        self.lim.max_daily_loss = L.get("max_daily_loss", 0.0)
        self.lim.max_drawdown = L.get("max_drawdown", 0.0)
        self.lim.max_drawdown_abs = L.get("max_drawdown_abs", 0.0)
        self.lim.capital = L.get("capital", 10_000.0)
        self.lim.flatten_on_kill = 1 if L.get("flatten_on_kill", True) else 0
        self.lim.max_notional = L.get("max_notional", 0.0)
        if not (self.lim.tick_size > 0 and self.lim.lot_size > 0):
            raise ValueError("tick_size and lot_size must be > 0")
        if self.lim.max_sends > 1_000_000:
            raise ValueError("max_sends must be <= 1000000 (or <= 0: no limit)")
        self.cap_slots = 16
        self.orders = <tr_order_t*>malloc(self.cap_slots * sizeof(tr_order_t))
        self.free_slots = <int*>malloc(self.cap_slots * sizeof(int))
        for s in range(2):
            self.cap_work[s] = 8
            self.work[s] = <int*>malloc(8 * sizeof(int))
        self.cap_out = 64
        self.out = <intent_t*>malloc(self.cap_out * sizeof(intent_t))
        if self.lim.max_sends > 0:
            self.sends = <int64_t*>malloc(self.lim.max_sends * sizeof(int64_t))
        if self.orders == NULL or self.free_slots == NULL or self.work[0] == NULL or self.work[1] == NULL \
                or self.out == NULL or (self.lim.max_sends > 0 and self.sends == NULL):
            raise MemoryError()
        self.book_valid = True
        self.enabled = True
        self.cap_lots = -1
        self.seq = 1
        self._day = -1
        self.last_pnl = NAN
        self.kill_ns = -1

    def __dealloc__(self):
        free(self.orders)
        free(self.free_slots)
        free(self.work[0])
        free(self.work[1])
        free(self.out)
        free(self.sends)

    # ------------------------------------------------------------ bookkeeping
    cdef tr_order_t* get_c(self, int64_t oid) noexcept nogil:
        cdef int64_t slot = oid & SLOT_MASK
        if oid <= 0 or slot >= self.n_slots:
            return NULL
        if self.orders[slot].id != oid or self.orders[slot].state == TR_FREE:
            return NULL
        return &self.orders[slot]

    cdef int _work(self, int side, int slot) except -1 nogil:
        cdef int* w
        if self.n_work[side] == self.cap_work[side]:
            w = <int*>realloc(self.work[side], 2 * self.cap_work[side] * sizeof(int))
            if w == NULL:
                return _nomem()
            self.work[side] = w
            self.cap_work[side] *= 2
        self.work[side][self.n_work[side]] = slot
        self.n_work[side] += 1
        return 0

    cdef void _unwork(self, int side, int slot) noexcept nogil:
        cdef int i, n = self.n_work[side]
        for i in range(n):
            if self.work[side][i] == slot:
                # keep the order of sending (the oldest first)
                while i + 1 < n:
                    self.work[side][i] = self.work[side][i + 1]
                    i += 1
                self.n_work[side] = n - 1
                return

    cdef void _release(self, int slot, int64_t now) noexcept nogil:
        cdef tr_order_t* o = &self.orders[slot]
        if o.state == TR_PENDING or o.state == TR_OPEN:
            self._unwork(o.side, slot)
        self.olots[o.side] -= o.qty - o.filled
        self.lifetime_sum_ns += now - o.created_ns
        self.lifetime_count += 1
        o.state = TR_FREE
        self.free_slots[self.n_free] = slot
        self.n_free += 1

    cdef int _intent(self, int64_t ts, int kind, int side, int flags, int64_t oid, int64_t cancel_id,
                     int64_t px, int64_t lots) except -1 nogil:
        cdef intent_t* it
        if self.n_out == self.cap_out:
            it = <intent_t*>realloc(self.out, 2 * self.cap_out * sizeof(intent_t))
            if it == NULL:
                return _nomem()
            self.out = it
            self.cap_out *= 2
        it = &self.out[self.n_out]
        it.ts = ts
        it.kind = kind
        it.side = side
        it.flags = flags
        it._pad = 0
        it.id = oid
        it.cancel_id = cancel_id
        it.px = px
        it.lots = lots
        self.n_out += 1
        return 0

    cdef void _sent_now(self, int64_t now) noexcept nogil:
        cdef int64_t m = self.lim.max_sends
        if m <= 0:
            return
        if self.sends_n < m:
            self.sends[(self.sends_head + self.sends_n) % m] = now
            self.sends_n += 1
        else:
            self.sends[self.sends_head] = now
            self.sends_head = (self.sends_head + 1) % m

    # ------------------------------------------------------------ limits
    cdef int64_t room_c(self, int side) noexcept nogil:
        """Lots a new order on ``side`` may have so that the position limit holds even
        if every order not known to be done fills (INT64_MAX: no limit); ``cap_lots``
        (a portfolio's share, >= 0) bounds it the same way (0: only what reduces
        the position)."""
        cdef int64_t room, c
        if self.lim.max_lots <= 0:
            room = INT64_MAX
        elif side == 0:
            room = self.lim.max_lots - self.position - self.olots[0]
        else:
            room = self.lim.max_lots + self.position - self.olots[1]
        if self.cap_lots >= 0:
            c = (self.cap_lots - self.position - self.olots[0] if side == 0
                 else self.cap_lots + self.position - self.olots[1])
            if c < room:
                room = c
        return room

    cdef int64_t budget_c(self, int64_t now) noexcept nogil:
        """New orders (or replaces) the order-rate limit allows at ``now``. The sends
        older than a second leave the ring here (amortised O(1): the ring is in
        sending order), so the cost does not grow with the limit."""
        cdef int64_t m = self.lim.max_sends
        if m <= 0:
            return INT64_MAX
        while self.sends_n and self.sends[self.sends_head] <= now - 1_000_000_000:
            self.sends_head = (self.sends_head + 1) % m
            self.sends_n -= 1
        return m - self.sends_n

    cdef int64_t _admit(self, int side, int64_t px, int64_t lots, int64_t now, bint replacing) noexcept nogil:
        """The lots a new order may have (0: refused; ``last_refusal`` says why)."""
        cdef int64_t room, nl
        cdef int64_t m = self.lim.max_sends
        if not self.enabled:
            self.last_refusal = REFUSED_DISABLED
            self.refused_disabled += 1
            return 0
        if not self.book_valid:
            self.last_refusal = REFUSED_INVALID
            self.refused_invalid += 1
            return 0
        if m > 0 and self.sends_n == m and self.sends[self.sends_head] > now - 1_000_000_000:
            self.last_refusal = REFUSED_RATE
            self.refused_rate += 1
            return 0
        room = self.room_c(side)
        if lots > room:
            lots = room
        if self.lim.max_notional > 0 and px > 0:
            # |position| with every open order filled, at this order's price, within max_notional
            nl = <int64_t>(self.lim.max_notional / (<double>px * self.lim.tick_size * self.lim.lot_size))
            room = (nl - self.position - self.olots[0]) if side == 0 else (nl + self.position - self.olots[1])
            if lots > room:
                lots = room
        if lots <= 0:
            self.last_refusal = REFUSED_POSITION
            self.refused_position += 1
            return 0
        if self.lim.max_order_lots > 0 and lots > self.lim.max_order_lots:
            lots = self.lim.max_order_lots
        if lots < self.lim.min_lots or (self.lim.min_notional > 0 and <double>px * self.lim.tick_size
                                         * <double>lots * self.lim.lot_size < self.lim.min_notional):
            self.last_refusal = REFUSED_SIZE
            self.refused_size += 1
            return 0
        self.last_refusal = REFUSED_NONE
        return lots

    cdef int64_t _open(self, int side, int64_t px, int64_t lots, int flags, int64_t now) except -1 nogil:
        cdef int slot, cap
        cdef tr_order_t* o
        cdef tr_order_t* no
        cdef int* fs
        if self.n_free:
            self.n_free -= 1
            slot = self.free_slots[self.n_free]
        else:
            if self.n_slots > SLOT_MASK:
                self.last_refusal = REFUSED_SLOTS
                self.refused_slots += 1
                return 0
            if self.n_slots == self.cap_slots:
                cap = 2 * self.cap_slots
                no = <tr_order_t*>realloc(self.orders, cap * sizeof(tr_order_t))
                if no == NULL:
                    return _nomem()
                self.orders = no
                fs = <int*>realloc(self.free_slots, cap * sizeof(int))
                if fs == NULL:
                    return _nomem()
                self.free_slots = fs
                self.cap_slots = cap
            slot = self.n_slots
            self.n_slots += 1
        o = &self.orders[slot]
        o.id = (self.seq << SLOT_BITS) | slot
        self.seq += 1
        o.side = side
        o.state = TR_PENDING
        o.flags = flags
        o.px = px
        o.qty = lots
        o.filled = 0
        o.created_ns = now
        self.olots[side] += lots
        if not (flags & XM_MARKET):
            self._work(side, slot)     # a market order (the flatten) is no working quote
        self._sent_now(now)
        self.sent += 1
        self.sent_lots += lots
        return o.id

    cdef int64_t new_c(self, int side, int64_t px, int64_t lots, int flags, int64_t now) except -1 nogil:
        """A new order (side 0 buy / 1 sell, price [ticks], size [lots], XM_POST_ONLY)
        within the limits; its id, or 0 when refused (``last_refusal``)."""
        cdef int64_t oid
        lots = self._admit(side, px, lots, now, False)
        if lots <= 0:
            return 0
        oid = self._open(side, px, lots, flags, now)
        if oid:
            self._intent(now, INTENT_NEW, side, flags, oid, 0, px, lots)
        return oid

    cdef int cancel_c(self, int64_t oid, int64_t now) except -1 nogil:
        """Cancel a live order (1), or nothing when it is done or already being cancelled (0)."""
        cdef tr_order_t* o = self.get_c(oid)
        if o == NULL or (o.state != TR_PENDING and o.state != TR_OPEN):
            return 0
        self._unwork(o.side, <int>(oid & SLOT_MASK))
        o.state = TR_CANCELING
        self.cancels += 1
        self._intent(now, INTENT_CANCEL, o.side, o.flags, oid, 0, o.px, o.qty - o.filled)
        return 1

    cdef int64_t replace_c(self, int64_t oid, int64_t px, int64_t lots, int64_t now) except -1 nogil:
        """Cancel ``oid`` and send a new order on its side in one request (counted as
        one order). Its id, or 0 when the new leg is refused: then nothing was done
        (``last_refusal`` says why; the caller decides what the old order becomes)."""
        cdef tr_order_t* o = self.get_c(oid)
        cdef int side, flags
        cdef int64_t nid
        if o == NULL or (o.state != TR_PENDING and o.state != TR_OPEN):
            return 0
        side = o.side
        flags = o.flags
        lots = self._admit(side, px, lots, now, True)
        if lots <= 0:
            return 0
        self._unwork(side, <int>(oid & SLOT_MASK))
        o.state = TR_CANCELING
        nid = self._open(side, px, lots, flags, now)
        if nid == 0:
            o.state = TR_OPEN          # (no slot left: nothing was done)
            self._work(side, <int>(oid & SLOT_MASK))
            return 0
        self.replaces += 1
        self.cancels += 1
        self._intent(now, INTENT_REPLACE, side, flags, nid, oid, px, lots)
        return nid

    cdef int cancel_all_c(self, int64_t now) except -1 nogil:
        cdef int s, n = 0
        for s in range(2):
            while self.n_work[s]:
                n += self.cancel_c(self.orders[self.work[s][0]].id, now)
        return n

    cdef int n_working_c(self, int side) noexcept nogil:
        return self.n_work[side]

    cdef tr_order_t* working_c(self, int side, int i) noexcept nogil:
        """The i-th live, not cancelling order on ``side`` (the oldest first)."""
        return &self.orders[self.work[side][i]]

    # ------------------------------------------------------------ reports, risk
    cdef int on_report_c(self, const xm_report_t* r) except -1 nogil:
        """Apply an exchange report (unknown ids are ignored: 0; applied: 1)."""
        cdef tr_order_t* o = self.get_c(r.id)
        cdef int slot
        if o == NULL:
            return 0
        slot = <int>(r.id & SLOT_MASK)
        if r.kind == RPT_ACK:
            if o.state == TR_PENDING:
                o.state = TR_OPEN
        elif r.kind == RPT_FILL:
            o.filled += r.lots
            self.olots[o.side] -= r.lots
            self._book_fill(o.side, r.px, r.lots, r.fee)
            if o.state == TR_PENDING:
                o.state = TR_OPEN
            if r.leaves <= 0 or o.filled >= o.qty:
                self._release(slot, r.ts)
        elif r.kind == RPT_CANCELED or r.kind == RPT_REJECTED:
            if r.kind == RPT_REJECTED:
                self.rejects += 1
            self._release(slot, r.ts)
        return 1

    cdef double funding_c(self, double mark_price, double rate) noexcept nogil:
        """A futures funding payment at ``mark_price`` (price units) and ``rate``: the
        position pays position x lot x mark x rate (longs pay a positive rate, shorts
        receive it). Returns what was paid (quote; < 0: received)."""
        cdef double paid
        if self.position == 0 or rate == 0.0 or not (mark_price > 0):
            return 0.0
        paid = <double>self.position * self.lim.lot_size * mark_price * rate
        self.cash -= paid
        self.funding += paid
        self.fundings += 1
        return paid

    cdef void _book_fill(self, int side, int64_t px, int64_t lots, double fee) noexcept nogil:
        """A fill into position, cash and fees (``side`` 0 buy / 1 sell, ``px`` ticks)."""
        cdef double notional = <double>px * self.lim.tick_size * <double>lots * self.lim.lot_size
        if side == 0:
            self.position += lots
            self.cash -= notional
        else:
            self.position -= lots
            self.cash += notional
        self.cash -= fee
        self.fees += fee
        self.fills += 1

    cdef int foreign_fill_c(self, int side, int64_t px, int64_t lots, double fee) except -1 nogil:
        """A fill of an order this trader did not place (an earlier session's order,
        adopted and being cancelled): position and cash move as for its own fills;
        no open order of its own changes. ``side`` 0 buy / 1 sell, ``px`` ticks."""
        if lots <= 0:
            return 0
        self._book_fill(side, px, lots, fee)
        return 1

    cdef int mark_c(self, int64_t now, double mid_price) except -1 nogil:
        """Mark the known position at ``mid_price`` (price units): the PnL, and the
        loss limits (the daily loss from the PnL at the last 00:00 UTC, the drawdown
        from the peak) -- a breach trips the kill switch."""
        cdef double pnl, peak_equity
        cdef int64_t day
        if not (mid_price > 0):
            return 0
        if self._inherited:
            # a position held before the session enters at the first mark
            self.cash -= <double>self._inherited * self.lim.lot_size * mid_price
            self._inherited = 0
        pnl = self.cash + <double>self.position * self.lim.lot_size * mid_price
        day = now // NS_PER_DAY
        if not self._marked:
            self._marked = True
            self._day, self._day_start_pnl, self._peak_pnl = day, pnl, pnl
        elif day > self._day:
            self._day, self._day_start_pnl = day, self.last_pnl
        self.last_pnl = pnl
        if pnl > self._peak_pnl:
            self._peak_pnl = pnl
        if self.killed:
            return 0
        if self.lim.max_daily_loss > 0 and self._day_start_pnl - pnl >= self.lim.max_daily_loss:
            return self.kill_c(KILL_DAILY_LOSS, now)
        peak_equity = self.lim.capital + self._peak_pnl
        if self.lim.max_drawdown > 0 and (peak_equity <= 0 or
                                          (self._peak_pnl - pnl) / peak_equity >= self.lim.max_drawdown):
            return self.kill_c(KILL_DRAWDOWN, now)
        if self.lim.max_drawdown_abs > 0 and self._peak_pnl - pnl >= self.lim.max_drawdown_abs:
            return self.kill_c(KILL_DRAWDOWN_ABS, now)
        return 0

    cdef int kill_c(self, int reason, int64_t now) except -1 nogil:
        """The kill switch: sticky; cancel everything, send nothing new, and (with
        ``flatten_on_kill``) close the known position with a market order."""
        cdef bint first = not self.killed
        if first:
            self.killed = True
            self.kill_reason = reason
            self.kill_ns = now
        self.enabled = False
        self.cancel_all_c(now)
        if first and self.lim.flatten_on_kill:
            self.flatten_c(now)
        return 0

    cdef int64_t flatten_c(self, int64_t now) except -1 nogil:
        """A market order that brings the known position to 0 (reduce-only: no limit
        applies). Its id, or 0 when flat."""
        cdef int64_t lots = self.position if self.position > 0 else -self.position
        cdef int side = 1 if self.position > 0 else 0
        cdef int64_t oid
        if lots == 0:
            return 0
        oid = self._open(side, 0, lots, XM_MARKET, now)
        if oid:
            self._intent(now, INTENT_NEW, side, XM_MARKET, oid, 0, 0, lots)
        return oid

    cdef int set_book_valid_c(self, bint valid, int64_t now) except -1 nogil:
        """The book became invalid (cancel every working order, send nothing new) or
        valid again."""
        self.book_valid = valid
        if not valid:
            self.cancel_all_c(now)
        return 0

    # ------------------------------------------------------------ Python API
    def new(self, int side, int64_t px, int64_t lots, bint post_only=True, now=None):
        """A new order: side 0 buy / 1 sell, price [ticks], size [lots]; its id, or 0
        when a limit refused it (``refusal``). ``now`` [ns]: the driver's clock."""
        if side != 0 and side != 1:
            raise ValueError(f"side must be 0 (buy) or 1 (sell), got {side}")
        if lots <= 0:
            raise ValueError(f"lots must be > 0, got {lots}")
        return self.new_c(side, px, lots, XM_POST_ONLY if post_only else 0, self.now if now is None else now)

    def cancel(self, int64_t oid, now=None):
        """Cancel a live order; False when it is done or already being cancelled."""
        return bool(self.cancel_c(oid, self.now if now is None else now))

    def replace(self, int64_t oid, int64_t px, int64_t lots, now=None):
        """Move an order to a new price / size in one request; the new id, or 0."""
        if lots <= 0:
            raise ValueError(f"lots must be > 0, got {lots}")
        return self.replace_c(oid, px, lots, self.now if now is None else now)

    def cancel_all(self, now=None):
        return self.cancel_all_c(self.now if now is None else now)

    def working(self, int side):
        """[(id, price [ticks], lots, filled lots)] of the live, not cancelling orders on a side."""
        cdef int i
        cdef tr_order_t* o
        out = []
        for i in range(self.n_work[side & 1]):
            o = self.working_c(side & 1, i)
            out.append((o.id, o.px, o.qty, o.filled))
        return out

    def order(self, int64_t oid):
        """An order as a dict (None when done / unknown)."""
        cdef tr_order_t* o = self.get_c(oid)
        if o == NULL:
            return None
        return {"id": o.id, "side": o.side, "state": STATES[o.state], "px": o.px, "qty": o.qty,
                "filled": o.filled, "created_ns": o.created_ns, "post_only": bool(o.flags & XM_POST_ONLY)}

    def room(self, int side):
        return self.room_c(side & 1)

    def budget(self, now=None):
        return self.budget_c(self.now if now is None else now)

    def open_lots(self, int side):
        """Lots of the orders on ``side`` not known to be done."""
        return self.olots[side & 1]

    def on_report(self, int64_t ts, int64_t oid, int kind, int64_t px=0, int64_t lots=0, int64_t leaves=0,
                  double fee=0.0, bint taker=False):
        """A report from outside (a live gateway): kind ACK / FILL / CANCELED / REJECTED."""
        cdef xm_report_t r
        cdef tr_order_t* o = self.get_c(oid)
        r.ts, r.id, r.kind, r.px, r.lots, r.leaves, r.fee = ts, oid, kind, px, lots, leaves, fee
        r.side = o.side if o != NULL else 0
        r.taker = 1 if taker else 0
        return bool(self.on_report_c(&r))

    def take_intents(self):
        """The intents since the last call, as an INTENT_DTYPE array."""
        cdef cnp.ndarray a = np.empty(self.n_out, dtype=INTENT_DTYPE)
        cdef Py_ssize_t i
        cdef intent_t* it
        for i in range(self.n_out):
            it = &self.out[i]
            a[i] = (it.ts, it.kind, it.side, it.flags, 0, it.id, it.cancel_id, it.px, it.lots)
        self.n_out = 0
        return a

    def mark(self, int64_t now, double mid_price):
        self.mark_c(now, mid_price)

    def kill(self, now=None, flatten=None):
        """Trip the kill switch from outside (the operator, the live risk manager);
        ``flatten``: close the position too (None: the ``flatten_on_kill`` limit)."""
        cdef int keep = self.lim.flatten_on_kill
        if flatten is not None:
            self.lim.flatten_on_kill = 1 if flatten else 0
        self.kill_c(KILL_EXTERNAL, self.now if now is None else now)
        self.lim.flatten_on_kill = keep

    def flatten(self, now=None):
        """A market order closing the known position (0 when flat)."""
        return self.flatten_c(self.now if now is None else now)

    def pause(self, bint paused, now=None):
        """Stop sending (and cancel every order) while ``paused``; resume after (not when killed)."""
        if paused:
            self.enabled = False
            self.cancel_all_c(self.now if now is None else now)
        else:
            self.enabled = not self.killed

    def set_book_valid(self, bint valid, now=None):
        self.set_book_valid_c(valid, self.now if now is None else now)

    def apply_funding(self, double mark_price, double rate):
        """Pay (or receive) funding: position x lot x ``mark_price`` (price units) x ``rate``
        out of cash, as a USD-M perpetual does at each funding time. Returns the quote paid."""
        return self.funding_c(mark_price, rate)

    def foreign_fill(self, int side, int64_t px, int64_t lots, double fee=0.0):
        """Take in a fill of an order this trader did not place (``side`` 0 buy / 1 sell,
        ``px`` ticks, ``lots``, ``fee`` quote): e.g. an earlier session's order that
        filled before its cancel landed. The limits count it at once."""
        return self.foreign_fill_c(side, px, lots, fee)

    def inherit_position(self, int64_t lots):
        """Start from a position held before this session (a restart: the account's
        balance minus its baseline): the limits count it at once; the PnL takes it
        in at the first mark, so it is no gain or loss of the session."""
        self.position = lots
        self._inherited = lots

    @property
    def daily_loss(self):
        """Today's loss so far (quote currency; >= 0 is a loss), from the PnL at the last 00:00 UTC."""
        return 0.0 if not self._marked else self._day_start_pnl - self.last_pnl

    @property
    def drawdown(self):
        """Peak PnL minus the last marked PnL, quote currency."""
        return 0.0 if not self._marked else self._peak_pnl - self.last_pnl

    @property
    def refusal(self):
        """Why the last order was refused (None: it was not)."""
        return REFUSALS[self.last_refusal]

    @property
    def kill_reason_name(self):
        return KILL_REASONS[self.kill_reason]

    @property
    def limits(self):
        L = self.lim
        return dict(tick_size=L.tick_size, lot_size=L.lot_size, max_lots=L.max_lots, max_sends=L.max_sends,
                    min_lots=L.min_lots, max_order_lots=L.max_order_lots, min_notional=L.min_notional,
                    max_daily_loss=L.max_daily_loss, max_drawdown=L.max_drawdown,
                    max_drawdown_abs=L.max_drawdown_abs, capital=L.capital,
                    flatten_on_kill=bool(L.flatten_on_kill), max_notional=L.max_notional)

    def counters(self):
        return {"sent": self.sent, "replaces": self.replaces, "cancels": self.cancels, "fills": self.fills,
                "rejects": self.rejects, "sent_lots": self.sent_lots, "refused_disabled": self.refused_disabled,
                "refused_invalid": self.refused_invalid, "refused_rate": self.refused_rate,
                "refused_position": self.refused_position, "refused_size": self.refused_size,
                "refused_slots": self.refused_slots, "lifetime_sum_ns": self.lifetime_sum_ns,
                "lifetime_count": self.lifetime_count, "killed": bool(self.killed),
                "kill_reason": KILL_REASONS[self.kill_reason], "kill_ns": self.kill_ns,
                "funding": self.funding, "fundings": self.fundings}


cdef class Strategy:
    """The strategy interface (see the module doc). The driver sets ``trader`` and
    ``book`` before ``on_start``; every callback gets the driver's clock [ns]."""

    def __cinit__(self, *args, **kwargs):
        self.last_sigma = NAN
        self.last_reservation = NAN

    cdef int on_start_c(self, int64_t now) except -1 nogil:
        return 0

    cdef int on_book_c(self, int64_t now) except -1 nogil:
        return 0

    cdef int on_trade_c(self, int64_t now, int side, int64_t px, int64_t qty) except -1 nogil:
        return 0

    cdef int on_report_c(self, int64_t now, const xm_report_t* r) except -1 nogil:
        return 0

    cdef int on_book_invalid_c(self, int64_t now) except -1 nogil:
        return 0

    cdef int on_timer_c(self, int64_t now) except -1 nogil:
        return 0


def market_maker_params(tick_size, lot_size, order_lots, model="as", gamma=0.1, xi=None, k=10.0, A=5.0,
                        horizon_s=30.0, rolling=False, fair_value="mid", min_spread=0.0, max_inventory=float("inf"),
                        price_band=0.2, requote_interval_ns=100_000_000, requote_threshold=1, min_lifetime_ns=0,
                        inventory_sizing=False, post_only=True, vol_half_life_s=60.0, estimate_intensity=True,
                        intensity_window_s=600.0, intensity_fit_ns=10_000_000_000, prior_sigma=0.0):
    """The market maker's parameters as a dict (ticks, lots, ns; gamma per price x base unit,
    k per price unit, A per second, max_inventory and min_spread in base / price units;
    prior_sigma: the relative volatility per sqrt(s) assumed until the EWMA has a
    return, 0: no quote before it)."""
    return dict(tick_size=float(tick_size), lot_size=float(lot_size), order_lots=int(order_lots), model=model,
                gamma=float(gamma), xi=float(gamma if xi is None else xi), k=float(k), A=float(A),
                horizon_s=float(horizon_s), rolling=bool(rolling), fair_value=fair_value,
                min_spread=float(min_spread), max_inventory=float(max_inventory), price_band=float(price_band),
                requote_interval_ns=int(requote_interval_ns), requote_threshold=int(requote_threshold),
                min_lifetime_ns=int(min_lifetime_ns), inventory_sizing=bool(inventory_sizing),
                post_only=bool(post_only), vol_half_life_s=float(vol_half_life_s),
                estimate_intensity=bool(estimate_intensity), intensity_window_s=float(intensity_window_s),
                intensity_fit_ns=int(intensity_fit_ns), prior_sigma=float(prior_sigma))


cdef class MarketMaker(Strategy):
    """The built-in Avellaneda-Stoikov / GLFT market maker (see the module doc).
    ``params``: :func:`market_maker_params`. Subclass it in Cython and override
    ``fair_value_c`` (ticks) to quote around your own fair value."""

    def __cinit__(self, *args, **kwargs):
        self.volp = &self.vol
        self.intenp = &self.inten
        self.inten_ok = False

    def __init__(self, dict params not None):
        p = params
        if p["model"] not in ("as", "glft"):
            raise ValueError(f"model must be 'as' or 'glft', got {p['model']!r}")
        if p["fair_value"] not in ("mid", "micro"):
            raise ValueError(f"fair_value must be 'mid' or 'micro', got {p['fair_value']!r}")
        if quote_params_init(&self.qp, 0 if p["model"] == "as" else 1, p["gamma"], p["xi"],
                             p["order_lots"] * p["lot_size"], p["k"], p["A"], p["horizon_s"],
                             1 if p["rolling"] else 0, 0 if p["fair_value"] == "mid" else 1, p["tick_size"],
                             p["min_spread"], p["max_inventory"]) != 0:
            raise ValueError(f"invalid quoting parameters: {p}")
        if not (p["price_band"] > 0):
            raise ValueError(f"price_band must be > 0, got {p['price_band']!r}")
        self.qp.price_band = p["price_band"]
        self.order_lots = p["order_lots"]
        if self.order_lots <= 0:
            raise ValueError("order_lots must be > 0")
        self.requote_interval_ns = p["requote_interval_ns"]
        self.requote_threshold = p["requote_threshold"]
        self.min_lifetime_ns = p["min_lifetime_ns"]
        self.inventory_sizing = p["inventory_sizing"]
        self.post_only = p["post_only"]
        self.vol_half_life_s = p["vol_half_life_s"]
        self.estimate_intensity = p["estimate_intensity"]
        self.intensity_window_s = p["intensity_window_s"]
        self.intensity_fit_ns = p["intensity_fit_ns"]
        ewma_vol_init(&self.vol, self.vol_half_life_s)
        self.vol_owner = True
        self.inten_owner = self.estimate_intensity
        if self.estimate_intensity:
            if intensity_init(&self.inten, self.intensity_window_s, self.qp.tick_size, 50, 20) != 0:
                raise MemoryError()
            self.inten_ok = True
        self.last_mid_ticks = NAN
        self.last_served = 1
        self.prior_sigma = p.get("prior_sigma", 0.0)

    def __dealloc__(self):
        if self.inten_ok:
            intensity_free(&self.inten)

    def share_estimators(self, MarketMaker other not None):
        """Use ``other``'s volatility (same half-life) and intensity estimate (same
        window, refit and requote intervals too) instead of keeping equal copies: a
        sweep's strategies see the same events, so the estimates are the same. The
        owner must get every event before this one (it comes first in the pass)."""
        if other is self:
            return False
        shared = False
        if self.vol_owner and other.vol_owner and other.vol_half_life_s == self.vol_half_life_s:
            self.volp = &other.vol
            self.vol_owner = False
            shared = True
        if (self.estimate_intensity and self.inten_owner and other.inten_owner
                and other.vol_half_life_s == self.vol_half_life_s
                and other.intensity_window_s == self.intensity_window_s
                and other.intensity_fit_ns == self.intensity_fit_ns
                and other.requote_interval_ns == self.requote_interval_ns):
            self.intenp = &other.inten
            self.inten_owner = False
            shared = True
        return shared

    cdef double fair_value_c(self, int64_t bb, int64_t ba, int64_t bq, int64_t aq) noexcept nogil:
        """The fair value the quotes centre on, ticks: the mid, or the micro-price
        (bid x askQty + ask x bidQty) / (bidQty + askQty)."""
        cdef int64_t tot
        if self.qp.fair_value == QUOTE_FAIR_MICRO and bq >= 0 and aq >= 0:
            tot = bq + aq
            if tot > 0:
                return (<double>bb * <double>aq + <double>ba * <double>bq) / <double>tot
        return (<double>bb + <double>ba) * 0.5

    cdef int on_book_c(self, int64_t now) except -1 nogil:
        cdef int64_t bb = self.book.best_bid_c(), ba = self.book.best_ask_c()
        cdef double mid
        if bb == BOOK_NO_BID or ba == BOOK_NO_ASK:
            return 0
        mid = (<double>bb + <double>ba) * 0.5
        if mid != self.last_mid_ticks:
            self.last_mid_ticks = mid
            if self.vol_owner:
                ewma_vol_update(self.volp, now, mid)
        if now >= self.next_quote_ns:
            self.next_quote_ns = now + self.requote_interval_ns
            self.quote_c(now)
        return 0

    cdef int on_trade_c(self, int64_t now, int side, int64_t px, int64_t qty) except -1 nogil:
        cdef int64_t bb, ba
        if not self.inten_owner or not self.trader.book_valid:
            return 0
        bb = self.book.best_bid_c()
        ba = self.book.best_ask_c()
        if bb != BOOK_NO_BID and ba != BOOK_NO_ASK:
            intensity_on_trade(self.intenp, now, px, bb + ba)
        return 0

    cdef int64_t size_c(self, int side) noexcept nogil:
        """Lots of a new order: ``order_lots``, shrunk on the side that adds to the
        position in proportion to it when ``inventory_sizing`` (at least one lot)."""
        cdef int64_t lots = self.order_lots, m = self.trader.lim.max_lots
        cdef double adding
        if self.inventory_sizing and m > 0:
            adding = <double>self.trader.position / <double>m
            if side == 1:
                adding = -adding
            if adding > 0:
                if adding > 1.0:
                    adding = 1.0
                lots = <int64_t>(<double>lots * (1.0 - adding))
                if lots < 1:
                    lots = 1
        return lots

    cdef int compute_c(self, int64_t now, quote_out_t* out) except -1 nogil:
        """The quote for the book, the known position and the estimates now (1), or
        none (0: no book top, a crossed book, no volatility yet)."""
        cdef int64_t bb = self.book.best_bid_c(), ba = self.book.best_ask_c()
        cdef double sigma, q, rel
        if bb == BOOK_NO_BID or ba == BOOK_NO_ASK or bb >= ba:
            return 0
        if self.volp.count < 1 and not (self.prior_sigma > 0):
            return 0
        if self.estimate_intensity and now >= self.next_fit_ns:
            self.next_fit_ns = now + self.intensity_fit_ns
            if self.inten_owner:
                intensity_fit(self.intenp, now)   # (sharers fit at the same times: see share_estimators)
            if self.intenp.ready and self.intenp.k_per_tick > 0:
                quote_params_set_intensity(&self.qp, self.intenp.A, self.intenp.k_per_tick / self.qp.tick_size)
        rel = ewma_vol_sigma(self.volp) if self.volp.count >= 1 else self.prior_sigma
        sigma = rel * (<double>bb + <double>ba) * 0.5 * self.qp.tick_size
        self.last_sigma = sigma
        q = <double>self.trader.position * self.trader.lim.lot_size
        if compute_quote_fv(&self.qp, bb, ba, self.fair_value_c(bb, ba, self.book.best_bid_qty_c(),
                                                                 self.book.best_ask_qty_c()),
                            sigma, q, now, out) != 0:
            return 0
        self.last_reservation = out.reservation_price
        return 1

    cdef int quote_c(self, int64_t now) except -1 nogil:
        cdef quote_out_t out
        cdef int side, ok, k, first, n_need = 0
        cdef int64_t px, budget, nid
        cdef tr_order_t* w
        cdef int need[2]
        cdef int64_t want[2]
        cdef int64_t dist[2]
        cdef int64_t wid[2]
        if not self.compute_c(now, &out):
            return 0
        self.quotes += 1
        # what each side needs: 0 nothing, 1 a new order, 2 moving the working one
        for side in range(2):
            need[side] = 0
            wid[side] = 0
            dist[side] = 0
            ok = out.bid_ok if side == 0 else out.ask_ok
            px = out.bid_tick if side == 0 else out.ask_tick
            want[side] = px
            while self.trader.n_working_c(side) > 1:            # never two working orders a side
                self.trader.cancel_c(self.trader.working_c(side, 0).id, now)
            w = self.trader.working_c(side, 0) if self.trader.n_working_c(side) else NULL
            if not ok:
                if w != NULL:
                    self.trader.cancel_c(w.id, now)
                continue
            if w == NULL:
                need[side] = 1
            else:
                dist[side] = w.px - px if w.px > px else px - w.px
                if dist[side] >= self.requote_threshold and \
                        (self.min_lifetime_ns <= 0 or now - w.created_ns >= self.min_lifetime_ns):
                    need[side] = 2
                    wid[side] = w.id
            if need[side]:
                n_need += 1
        if n_need == 0:
            return 0
        # the order-rate budget: when it cannot serve both, a fair share
        first = 0
        budget = self.trader.budget_c(now)
        if n_need == 2 and budget < 2:
            self.budget_short += 1
            if need[0] != need[1]:
                first = 0 if need[0] == 1 else 1          # a side with nothing working first
            elif dist[0] != dist[1]:
                first = 0 if dist[0] > dist[1] else 1     # then the side further from its quote
            else:
                first = 1 - self.last_served              # else they take turns
        for k in range(2):
            side = first if k == 0 else 1 - first
            if not need[side]:
                continue
            if budget <= 0:
                break                                     # keeps its working order
            budget -= 1
            if n_need == 2:
                self.last_served = side
            if need[side] == 1:
                self.trader.new_c(side, want[side], self.size_c(side), XM_POST_ONLY if self.post_only else 0, now)
            else:
                nid = self.trader.replace_c(wid[side], want[side], self.size_c(side), now)
                if nid == 0 and self.trader.last_refusal != REFUSED_RATE:
                    self.trader.cancel_c(wid[side], now)            # it may not stay where the quote left it
        return 0

    # ------------------------------------------------------------ Python API
    def compute(self, int64_t now):
        """The quote now, without trading: (bid ticks, ask ticks, bid ok, ask ok,
        reservation price, spread, fair value [price units], sigma [price/sqrt(s)]),
        or None when there is none."""
        cdef quote_out_t out
        if not self.compute_c(now, &out):
            return None
        return (out.bid_tick, out.ask_tick, bool(out.bid_ok), bool(out.ask_ok), out.reservation_price,
                out.spread, out.fair_value, self.last_sigma)

    def on_book(self, int64_t now):
        """Tell it the book changed (its ``book``, at ``now`` [ns]), as a driver does."""
        self.on_book_c(now)

    def on_trade(self, int64_t now, int side, int64_t px, int64_t qty):
        self.on_trade_c(now, side, px, qty)

    @property
    def sigma(self):
        """The last quote's volatility, price units per sqrt(s)."""
        return self.last_sigma

    @property
    def intensity(self):
        """(A [1/s], k [1/price]) in use."""
        return self.qp.A, self.qp.k

    @property
    def vol_observations(self):
        return self.volp.count


cdef class PyStrategy(Strategy):
    """Runs a Python strategy object (``hftmm.strategy.Strategy``) in any driver:
    each callback takes the GIL and calls the object's method of the same name
    (``on_book(now)``, ``on_trade(now, side, px, qty)``, ``on_fill(now, id, side,
    px, lots)``, ``on_order_done(now, id, kind)``, ``on_book_invalid(now)``,
    ``on_timer(now)``, ``on_start(now)``) when it defines one."""

    def __init__(self, impl):
        self.impl = impl
        self.timer_interval_ns = int(round(float(getattr(impl, "timer_interval", 0.0) or 0.0) * 1e9))

    cdef int on_start_c(self, int64_t now) except -1 nogil:
        with gil:
            self.impl.trader = self.trader
            self.impl.book = self.book
            f = getattr(self.impl, "on_start", None)
            if f is not None:
                f(now)
        return 0

    cdef int on_book_c(self, int64_t now) except -1 nogil:
        with gil:
            f = getattr(self.impl, "on_book", None)
            if f is not None:
                f(now)
        return 0

    cdef int on_trade_c(self, int64_t now, int side, int64_t px, int64_t qty) except -1 nogil:
        with gil:
            f = getattr(self.impl, "on_trade", None)
            if f is not None:
                f(now, side, px, qty)
        return 0

    cdef int on_report_c(self, int64_t now, const xm_report_t* r) except -1 nogil:
        with gil:
            if r.kind == RPT_FILL:
                f = getattr(self.impl, "on_fill", None)
                if f is not None:
                    f(now, r.id, r.side, r.px, r.lots)
            if r.kind != RPT_ACK and (r.kind != RPT_FILL or r.leaves <= 0):
                f = getattr(self.impl, "on_order_done", None)
                if f is not None:
                    f(now, r.id, "filled" if r.kind == RPT_FILL else
                      ("canceled" if r.kind == RPT_CANCELED else "rejected"))
        return 0

    cdef int on_book_invalid_c(self, int64_t now) except -1 nogil:
        with gil:
            f = getattr(self.impl, "on_book_invalid", None)
            if f is not None:
                f(now)
        return 0

    cdef int on_timer_c(self, int64_t now) except -1 nogil:
        with gil:
            f = getattr(self.impl, "on_timer", None)
            if f is not None:
                f(now)
        return 0
