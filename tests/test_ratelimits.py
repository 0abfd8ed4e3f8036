import pytest

from hftmm.captures import read_exchange_info
from hftmm.execution import RateLimitBanned, RateLimiter

from pathlib import Path

NAUTILUS = Path(__file__).parent / "data" / "nautilus-samples" / "http_spot_market_exchange_info.json"

INFO = {"rateLimits": [
    {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 20},
    {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 5},
    {"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1, "limit": 8},
    {"rateLimitType": "RAW_REQUESTS", "interval": "MINUTE", "intervalNum": 5, "limit": 30},
]}


class FakeClock:
    def __init__(self, t=1_700_000_040.0):  # 1_700_000_040 is a minute boundary
        self.t = t

    def __call__(self):
        return self.t


def test_from_real_exchange_info():
    rl = RateLimiter.from_exchange_info(read_exchange_info(str(NAUTILUS)))
    got = {(l.kind, l.interval_num, l.interval): l.limit for l in rl.limits}
    assert got == {("REQUEST_WEIGHT", 1, "MINUTE"): 1200, ("ORDERS", 10, "SECOND"): 50,
                   ("ORDERS", 1, "DAY"): 160000, ("RAW_REQUESTS", 5, "MINUTE"): 6100}


def test_weight_window():
    clk = FakeClock()
    rl = RateLimiter.from_exchange_info(INFO, clock=clk)
    assert rl.acquire(weight=10) == 0
    clk.t += 30
    assert rl.acquire(weight=10) == 0
    assert rl.acquire(weight=1) == pytest.approx(30.0)   # window ends at the next minute
    assert rl.usage()["REQUEST_WEIGHT 1 MINUTE"] == (20, 20)  # refused request not counted
    clk.t += 30
    assert rl.acquire(weight=1) == 0
    assert rl.usage()["REQUEST_WEIGHT 1 MINUTE"] == (1, 20)
    with pytest.raises(ValueError):
        rl.acquire(weight=21)


def test_orders_windows_and_now_argument():
    rl = RateLimiter.from_exchange_info(INFO, clock=FakeClock())
    t = 1_700_000_040.0  # divisible by 10
    for _ in range(5):
        assert rl.acquire(weight=1, orders=1, now=t) == 0
    assert rl.acquire(weight=1, orders=1, now=t + 4) == pytest.approx(6.0)
    assert rl.acquire(weight=1, orders=0, now=t + 4) == 0   # non-order requests still go
    assert rl.acquire(weight=1, orders=1, now=t + 10) == 0  # new 10 s window
    assert rl.acquire(weight=1, orders=1, now=t + 20) == 0
    assert rl.acquire(weight=1, orders=1, now=t + 30) == 0
    wait = rl.acquire(weight=1, orders=1, now=t + 40)        # daily limit 8 reached
    day_end = (t // 86400 + 1) * 86400
    assert wait == pytest.approx(day_end - (t + 40))


def test_raw_requests_counted_per_request():
    info = {"rateLimits": [{"rateLimitType": "RAW_REQUESTS", "interval": "SECOND", "intervalNum": 1, "limit": 2}]}
    rl = RateLimiter.from_exchange_info(info, clock=FakeClock(100.0))
    assert rl.acquire(weight=0) == 0 and rl.acquire(weight=0) == 0
    assert rl.acquire(weight=0) == pytest.approx(1.0)


def test_headers():
    clk = FakeClock()
    rl = RateLimiter.from_exchange_info(INFO, clock=clk)
    rl.acquire(weight=2, orders=1)
    rl.settle(1)                      # its answer is in: the headers below count it
    rl.update_from_headers({"x-mbx-used-weight-1m": "18", "X-MBX-ORDER-COUNT-10S": "5",
                            "X-MBX-ORDER-COUNT-1D": "3", "X-MBX-USED-WEIGHT": "18", "Content-Type": "json"})
    u = rl.usage()
    assert u["REQUEST_WEIGHT 1 MINUTE"] == (18, 20)
    assert u["ORDERS 10 SECOND"] == (5, 5) and u["ORDERS 1 DAY"] == (3, 8)
    assert rl.acquire(weight=3) > 0
    assert rl.acquire(weight=1, orders=1) > 0
    # weight never goes down within a window; order count follows the server (fills decrement it)
    rl.update_from_headers({"X-MBX-USED-WEIGHT-1M": "5", "X-MBX-ORDER-COUNT-10S": "2"})
    u = rl.usage()
    assert u["REQUEST_WEIGHT 1 MINUTE"] == (18, 20) and u["ORDERS 10 SECOND"] == (2, 5)
    assert rl.acquire(weight=1, orders=1) == 0


def test_order_count_headers_add_the_orders_still_in_flight():
    """Two senders: the answer of the first carries the server's count, which does not
    hold the second (still in flight); taking it as is let the next order past the limit."""
    clk = FakeClock(100.0)
    info = {"rateLimits": [{"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 3}]}
    rl = RateLimiter.from_exchange_info(info, clock=clk)
    assert rl.acquire(orders=1) == 0 and rl.acquire(orders=1) == 0 and rl.acquire(orders=1) == 0
    assert rl.pending_orders == 3
    rl.settle(1)
    rl.update_from_headers({"X-MBX-ORDER-COUNT-10S": "1"})     # the server has seen one so far
    assert rl.usage()["ORDERS 10 SECOND"] == (3, 3)            # 1 + the 2 in flight
    assert rl.acquire(orders=1) > 0                            # the limit holds
    rl.settle(1)
    rl.settle(1)
    rl.update_from_headers({"X-MBX-ORDER-COUNT-10S": "2"})     # one was filled: the count went down
    assert rl.pending_orders == 0 and rl.usage()["ORDERS 10 SECOND"] == (2, 3)
    assert rl.acquire(orders=1) == 0
    rl.settle(5)
    assert rl.pending_orders == 0                              # never below zero


def test_429_for_the_order_count_pauses_only_orders():
    clk = FakeClock()
    rl = RateLimiter.from_exchange_info(INFO, clock=clk)
    rl.on_429(4, code=-1015)
    assert rl.acquire(weight=1, orders=1) == pytest.approx(4.0)
    assert rl.acquire(weight=1, orders=0) == 0                 # a cancel still goes out
    assert rl.pause_remaining() == 0 and rl.pause_remaining(orders=True) == pytest.approx(4.0)
    clk.t += 4
    assert rl.acquire(weight=1, orders=1) == 0
    rl.on_429(3, code=-1003)                                   # weight: everything waits
    assert rl.acquire(weight=1, orders=0) == pytest.approx(3.0) and rl.pause_remaining() == pytest.approx(3.0)


def test_429_and_418():
    clk = FakeClock()
    rl = RateLimiter.from_exchange_info(INFO, clock=clk)
    rl.on_429(5)
    assert rl.acquire() == pytest.approx(5.0)
    assert not rl.is_banned()
    clk.t += 5
    assert rl.acquire() == 0
    rl.on_418(120)
    assert rl.is_banned()
    with pytest.raises(RateLimitBanned):
        rl.check_banned()
    clk.t += 60
    assert rl.acquire() == pytest.approx(60.0)
    clk.t += 60
    assert not rl.is_banned()
    rl.check_banned()
    assert rl.acquire() == 0 and not rl.banned


def test_safety_fraction():
    rl = RateLimiter.from_exchange_info(INFO, clock=FakeClock(), safety=0.5)
    assert rl.acquire(weight=10) == 0
    assert rl.acquire(weight=1) > 0
