"""Tests for the terminal status line (hftmm.live.status)."""
from __future__ import annotations

import io
from decimal import Decimal as D

import pytest

from hftmm.live.status import StatusLine, format_status

FULL = dict(symbol="BTCUSDT", mid=50000.05, spread=0.1, bid_quote=49999.9, ask_quote=50000.2,
            bid_qty=0.001, ask_qty=0.001, position=0.003, pnl=1.23, fees=0.02, risk_state="ok",
            order_rtt_ms=12.4, feed_latency_ms=3.0, feed_age_ms=40.0, fills=4, synced=1)


def test_full_line():
    assert format_status(FULL) == (
        "BTCUSDT mid 50000.05 spr 0.10 | bid 49999.90×0.001 ask 50000.20×0.001 | pos   +0.003 | "
        "pnl   +1.23 (fees 0.02) | risk ok | rtt  12ms feed 3ms | fills 4")


@pytest.mark.parametrize("status", [None, {}, {"mid": None}, {"mid": float("nan"), "pnl": float("inf")},
                                    {"mid": "abc", "fills": object(), "position": [1]}, "not a dict",
                                    {"risk_state": None, "kill_reason": None, "synced": None}])
def test_missing_values_show_dashes(status):
    line = format_status(status)
    assert line.startswith("- mid - spr -")
    assert "pos        -" in line and "pnl       - (fees -)" in line and "fills -" in line


def test_width_is_stable_for_ordinary_changes():
    a = format_status(FULL)
    b = format_status({**FULL, "position": -0.001, "pnl": -10.5, "order_rtt_ms": 250})
    assert abs(len(a) - len(b)) <= 1


def test_decimals_follow_the_price():
    line = format_status({**FULL, "mid": D("0.081234"), "spread": 0.00001, "bid_quote": 0.08123})
    assert "mid 0.0812340 spr 0.0000100" in line and "bid 0.0812300×" in line
    assert "mid 50000.1 " in format_status(FULL, price_decimals=1)
    # no mid: taken from the book top
    assert "mid 100.50" in format_status({"best_bid": 100.0, "best_ask": 101.0})


def test_position_signs_and_zero():
    assert "pos        0" in format_status({"position": 0.0})
    assert "pos   -0.025" in format_status({"position": D("-0.025")})
    assert "pos +1.23456789" in format_status({"position": 1.234567891})


def test_risk_states():
    killed = format_status({**FULL, "risk_state": "killed", "kill_reason": "daily loss 101.00 >= 100\n"})
    assert "risk KILLED: daily loss 101.00 >= 100 |" in killed
    long = format_status({**FULL, "risk_state": "killed", "kill_reason": "x" * 100})
    assert "x" * 39 + "…" in long and "x" * 41 not in long
    assert "risk paused (book not synced) |" in format_status(
        {**FULL, "risk_state": "paused", "risk_reasons": ["book not synced"]})
    assert "| UNSYNCED |" in format_status({**FULL, "synced": 0})
    assert "feed 3ms (age 2.5s)" in format_status({**FULL, "feed_age_ms": 2500})


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_tty_mode_rewrites_one_line():
    out, clk = io.StringIO(), Clock()
    sl = StatusLine(out, interval_s=1.0, tty=True, clock=clk, width=60)
    assert sl.update(FULL)
    clk.t += 0.5
    assert not sl.update(FULL)
    clk.t += 0.5
    assert sl.update({**FULL, "fills": 5})
    text = out.getvalue()
    assert "\n" not in text
    chunks = text.split("\r")[1:]
    assert len(chunks) == 2 and all(c.endswith("\x1b[K") and len(c) == 60 + 3 for c in chunks)
    sl.clear()
    assert out.getvalue().endswith("\r\x1b[K")
    sl.update(FULL, now=clk.t + 5)
    sl.close()
    assert out.getvalue().endswith("\x1b[K\n")
    sl.close()
    assert out.getvalue().count("\n") == 1


def test_pipe_mode_writes_full_lines_every_ten_intervals():
    out, clk = io.StringIO(), Clock()
    sl = StatusLine(out, interval_s=1.0, clock=clk)  # StringIO is not a tty
    assert not sl.tty
    written = []
    for _ in range(25):
        written.append(sl.update(FULL))
        clk.t += 1.0
    assert written.count(True) == 3  # t = 0, 10, 20
    lines = out.getvalue().splitlines()
    assert len(lines) == 3 and lines[0] == format_status(FULL)
    assert "\r" not in out.getvalue() and "\x1b" not in out.getvalue()
    sl.clear()
    sl.close()
    assert len(out.getvalue().splitlines()) == 3


def test_default_stream_is_stderr(capsys):
    sl = StatusLine(tty=False)
    sl.update({"symbol": "ETHUSDT"})
    assert capsys.readouterr().err.startswith("ETHUSDT mid -")
