"""The token bucket obeys its rate at any call pattern."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from flexconn.ratelimit import TokenBucket


def test_burst_then_refill() -> None:
    bucket = TokenBucket(50, per=1.0)
    assert sum(bucket.try_take(0.0) for _ in range(60)) == 50
    assert bucket.delay(0.0) == 1 / 50
    assert bucket.try_take(0.02)
    assert not bucket.try_take(0.02)


def test_one_per_second_bucket_waits_a_second() -> None:
    bucket = TokenBucket(1)
    assert bucket.try_take(10.0)
    assert bucket.delay(10.0) == 1.0
    assert bucket.delay(10.5) == 0.5
    assert bucket.try_take(11.0)


@given(
    gaps=st.lists(st.floats(min_value=0, max_value=0.2), min_size=1, max_size=300),
    rate=st.integers(min_value=1, max_value=100),
)
def test_never_exceeds_rate_over_any_window(gaps: list[float], rate: int) -> None:
    bucket = TokenBucket(rate)
    now = 0.0
    taken: list[float] = []
    for gap in gaps:
        now += gap
        if bucket.try_take(now):
            taken.append(now)
    # In any window of length w at most capacity + rate * w tokens were taken.
    for i, start in enumerate(taken):
        in_window = [t for t in taken[i:] if t - start <= 1.0]
        assert len(in_window) <= rate + rate * 1.0 + 1e-9


def test_float_residue_never_reads_as_a_token_missing_for_an_instant() -> None:
    # 50 tokens per 1.02 s, refilled in awkward steps: the sums leave float residue.
    bucket = TokenBucket(50, per=1.02, capacity=45)
    now = 1000.0
    while bucket.try_take(now):
        pass
    for step in range(1, 400):
        now += 0.0204 / 3
        delay = bucket.delay(now)
        # Either a token is here, or the wait is a real interval a clock can move past.
        assert delay == 0 or delay > 1e-9, (step, delay)
        if delay == 0:
            assert bucket.try_take(now)
