"""Reconnect backoff and heartbeat validation."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flexconn.config import Heartbeat, ReconnectPolicy


def test_first_retry_is_immediate() -> None:
    assert ReconnectPolicy().delay(0, random.Random(1)) == 0.0


@given(attempt=st.integers(min_value=1, max_value=200), seed=st.integers())
def test_full_jitter_stays_within_capped_exponential(attempt: int, seed: int) -> None:
    policy = ReconnectPolicy(initial_delay=0.1, multiplier=2.0, max_delay=5.0)
    delay = policy.delay(attempt, random.Random(seed))
    assert 0.0 <= delay <= min(5.0, 0.1 * 2.0 ** (attempt - 1))


def test_jitter_spreads_delays() -> None:
    policy = ReconnectPolicy(initial_delay=1.0, max_delay=100.0)
    rng = random.Random(7)
    delays = {round(policy.delay(5, rng), 6) for _ in range(50)}
    assert len(delays) > 40
    assert max(delays) <= 16.0


def test_heartbeat_rejects_interval_beyond_idle_limit() -> None:
    with pytest.raises(ValueError, match="60 s"):
        Heartbeat(interval=60)
    with pytest.raises(ValueError, match="positive"):
        Heartbeat(timeout=0)
