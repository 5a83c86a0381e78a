"""core.resilience alone: the breaker's states and listeners, the TTL cache's expiry and LRU, equal jitter."""

from __future__ import annotations

import random

import pytest

from core.resilience import BreakerState, CircuitBreaker, TtlCache, equal_jitter


class Clock:
    """A clock tests move by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_breaker_opens_after_consecutive_failures_and_a_success_resets_the_count() -> None:
    clock = Clock()
    breaker = CircuitBreaker(failures=3, reset_s=2.0, clock=clock)
    breaker.failure()
    breaker.failure()
    breaker.success()  # not consecutive any more
    breaker.failure()
    breaker.failure()
    assert breaker.state == "closed" and breaker.allow()
    breaker.failure()
    assert breaker.state == "open" and not breaker.allow()
    assert breaker.opens == 1


def test_breaker_half_open_allows_one_trial_and_a_failed_trial_reopens() -> None:
    clock = Clock()
    breaker = CircuitBreaker(failures=2, reset_s=2.0, clock=clock)
    breaker.failure()
    breaker.failure()
    clock.now += 1.9
    assert breaker.state == "open" and not breaker.allow()
    clock.now += 0.1
    assert breaker.state == "half_open"
    assert breaker.allow() and not breaker.allow(), "one trial at a time"
    breaker.failure()
    assert breaker.state == "open" and not breaker.allow()
    clock.now += 2.0  # the cool-down starts again from the failed trial
    assert breaker.allow()
    breaker.success()
    assert breaker.state == "closed" and breaker.allow() and breaker.allow()
    assert breaker.opens == 1, "a failed trial re-opens; it is not a new opening"


def test_breaker_listener_sees_every_change_once() -> None:
    clock = Clock()
    seen: list[tuple[BreakerState, BreakerState]] = []
    breaker = CircuitBreaker(failures=1, reset_s=1.0, clock=clock, on_change=lambda o, n: seen.append((o, n)))
    breaker.success()  # closed -> closed: no event
    breaker.failure()
    breaker.failure()  # open -> open: no event
    clock.now += 1.0
    breaker.allow()
    breaker.success()
    assert seen == [("closed", "open"), ("open", "half_open"), ("half_open", "closed")]


def test_breaker_rejects_nonsense_thresholds() -> None:
    with pytest.raises(ValueError):
        CircuitBreaker(failures=0, reset_s=1.0, clock=Clock())


def test_ttl_cache_expires_per_entry_and_drops_the_least_recently_used() -> None:
    clock = Clock()
    cache: TtlCache[str, int | None] = TtlCache(max_entries=2, ttl=10.0, clock=clock)
    cache.put("a", 1)
    cache.put("gone", None, ttl=1.0)  # a cached "not found" with its own, shorter TTL
    assert cache.get("gone") == (True, None)
    clock.now += 1.0
    assert cache.get("gone") == (False, None)
    cache.put("b", 2)
    assert cache.get("a") == (True, 1)  # "a" is now the most recently used
    cache.put("c", 3)
    assert cache.get("b") == (False, None) and cache.get("a") == (True, 1) and len(cache) == 2
    clock.now += 10.0
    assert cache.get("a") == (False, None)


def test_ttl_cache_of_size_or_ttl_zero_stores_nothing() -> None:
    clock = Clock()
    off: TtlCache[int, int] = TtlCache(max_entries=0, ttl=10.0, clock=clock)
    off.put(1, 1)
    no_ttl: TtlCache[int, int] = TtlCache(max_entries=5, ttl=0.0, clock=clock)
    no_ttl.put(1, 1)
    assert off.get(1) == (False, None) and no_ttl.get(1) == (False, None)


def test_equal_jitter_stays_between_half_and_the_whole_capped_delay() -> None:
    rng = random.Random(7)
    for attempt, cap in [(1, 0.1), (2, 0.2), (3, 0.4), (4, 0.8), (5, 1.0), (9, 1.0)]:
        delays = [equal_jitter(attempt, 0.1, 1.0, rng) for _ in range(200)]
        assert min(delays) >= cap / 2 and max(delays) <= cap
        assert max(delays) - min(delays) > cap / 4, "jitter spreads clients out"
    with pytest.raises(ValueError):
        equal_jitter(0, 0.1, 1.0, rng)
