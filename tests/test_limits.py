"""Limits: prompt cap, turn cap and the sliding-window rate limiter, on a fake clock."""

import threading
from dataclasses import replace

import pytest

from routellm_demo.config import load_config
from routellm_demo.limits import Limits, LimitError, RateLimiter, check_prompt, check_turns


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


def test_prompt_cap_says_how_much_to_cut():
    assert check_prompt("x" * 10, 10) == "x" * 10
    with pytest.raises(LimitError) as err:
        check_prompt("x" * 12, 10)
    assert err.value.kind == "prompt_too_long" and "limit is 10" in str(err.value) and "by 2 characters" in str(err.value)
    for blank in ("", "  \n", None):
        with pytest.raises(LimitError) as err:
            check_prompt(blank, 10)
        assert err.value.kind == "empty_prompt"


def test_turn_cap():
    check_turns(2, 3)
    with pytest.raises(LimitError, match="reached 3 turns") as err:
        check_turns(3, 3)
    assert err.value.kind == "too_many_turns"


def test_sliding_window_counts_the_last_window_only():
    clock = Clock()
    rl = RateLimiter(3, 60, clock=clock)
    for _ in range(3):
        rl.hit("s")
        clock.t += 10
    with pytest.raises(LimitError) as err:
        rl.hit("s")  # t=1030: the events at 1000, 1010, 1020 are all within 60 s
    assert err.value.kind == "rate_limited" and err.value.retry_after == pytest.approx(30)
    assert "Try again in 30 s" in str(err.value) and "3 per minute" in str(err.value)
    rl.hit("other")  # keys are independent
    clock.t = 1060.5  # the first event slid out of the window
    rl.hit("s")
    with pytest.raises(LimitError):
        rl.hit("s")
    assert rl.remaining("other") == 2


def test_refused_hits_are_not_counted_and_idle_keys_are_forgotten():
    clock = Clock()
    rl = RateLimiter(1, 60, clock=clock)
    rl.hit("s")
    for _ in range(5):
        with pytest.raises(LimitError):
            rl.hit("s")
    clock.t += 60.001
    rl.hit("s")  # refusals did not extend the wait
    for i in range(100):
        rl.hit(f"k{i}")
    clock.t += 200
    rl.hit("new")
    assert len(rl) == 1


def test_thread_safe_under_contention():
    rl = RateLimiter(50, 60)
    ok, refused = [], []
    lock = threading.Lock()

    def worker():
        for _ in range(20):
            try:
                rl.hit("shared")
                with lock:
                    ok.append(1)
            except LimitError:
                with lock:
                    refused.append(1)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(ok) == 50 and len(refused) == 110


def test_limits_from_config_check_length_and_turns_before_spending_quota():
    cfg = replace(load_config(environ={}), max_prompt_chars=20, max_turns=2, requests_per_minute=2)
    clock = Clock()
    limits = Limits.from_config(cfg, clock=clock)
    with pytest.raises(LimitError, match="limit is 20"):
        limits.check_chat("s", "y" * 21, 0)
    with pytest.raises(LimitError, match="2 turns"):
        limits.check_chat("s", "ok", 2)
    with pytest.raises(LimitError, match="over 40 characters") as err:
        limits.check_chat("s", "ok", 1, history_chars=39)
    assert err.value.kind == "conversation_too_long"
    limits.check_chat("s", "ok", 0)
    limits.check_arena("s", "ok")  # chat and arena share the generation quota
    with pytest.raises(LimitError, match="Too many requests"):
        limits.check_chat("s", "ok", 1)
    limits.check_vote("s")  # votes have their own
    limits.check_vote("s")
    with pytest.raises(LimitError, match="Too many votes"):
        limits.check_vote("s")
    with pytest.raises(ValueError):
        RateLimiter(0)
