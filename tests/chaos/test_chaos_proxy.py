"""The chaos proxy on its own: bytes through it, and each fault as a TCP peer sees it.

The target is a plain TCP echo server; the client is a plain trio socket stream, so these tests
check the proxy's TCP behaviour (RST versus FIN, half-open stalls, fragmented writes, latency,
refusals) rather than any WebSocket library's reaction to it. Every test runs on trio's MockClock
(``autojump_clock``): stalls, delays and refusal windows are mock time.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import trio
import trio.testing
from helpers import all_tasks, wait_until
from hypothesis import given
from hypothesis import strategies as st

from flexconn.sim.chaos import (
    DEFAULT_MIX,
    ChaosProxy,
    ChaosSchedule,
    Fault,
    FaultKind,
    ScheduledFault,
    _deal,
    open_chaos_proxy,
    serve_chaos_proxy,
)

HOST = "127.0.0.1"


class Echo:
    """A TCP echo server that records how each of its connections ended."""

    def __init__(self) -> None:
        self.endings: list[str] = []
        self.port = 0

    async def handle(self, stream: trio.SocketStream) -> None:
        try:
            while data := await stream.receive_some(65536):
                await stream.send_all(data)
            self.endings.append("eof")
        except trio.BrokenResourceError:
            self.endings.append("reset")


@asynccontextmanager
async def echo_and_proxy(**options: object) -> AsyncIterator[tuple[Echo, ChaosProxy]]:
    echo = Echo()
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(trio.serve_tcp, echo.handle, 0)
        echo.port = listeners[0].socket.getsockname()[1]
        async with open_chaos_proxy(HOST, echo.port, **options) as proxy:  # type: ignore[arg-type]
            yield echo, proxy
        nursery.cancel_scope.cancel()


async def connect(proxy: ChaosProxy) -> trio.SocketStream:
    return await trio.open_tcp_stream(proxy.host, proxy.port)


async def receive_exactly(stream: trio.SocketStream, size: int) -> tuple[bytes, int]:
    """``size`` bytes, and how many reads it took."""
    data = b""
    reads = 0
    while len(data) < size:
        chunk = await stream.receive_some(size - len(data))
        assert chunk, "connection closed early"
        data += chunk
        reads += 1
    return data, reads


async def test_bytes_pass_unchanged_both_ways_and_are_counted(
    autojump_clock: trio.testing.MockClock,
) -> None:
    payload = bytes(range(256)) * 400
    async with echo_and_proxy() as (echo, proxy):
        stream = await connect(proxy)
        await stream.send_all(payload)
        echoed, _ = await receive_exactly(stream, len(payload))
        assert echoed == payload
        await stream.send_eof()
        assert await stream.receive_some(10) == b""  # the target's FIN is passed on
        await stream.aclose()
        await wait_until(lambda: proxy.statistics().open_connections == 0)
        stats = proxy.statistics()
        assert (stats.accepted, stats.bytes_up, stats.bytes_down) == (1, len(payload), len(payload))
        assert echo.endings == ["eof"]


async def test_reset_sends_rst_to_both_peers(autojump_clock: trio.testing.MockClock) -> None:
    async with echo_and_proxy() as (echo, proxy):
        stream = await connect(proxy)
        await stream.send_all(b"hello")
        await receive_exactly(stream, 5)
        applied = proxy.reset()
        assert applied.connections == 1
        with pytest.raises(trio.BrokenResourceError):  # ECONNRESET, not a clean EOF
            await stream.receive_some(10)
        await wait_until(lambda: echo.endings == ["reset"])
        assert proxy.statistics().reset == 1
        # new connections work at once
        again = await connect(proxy)
        await again.send_all(b"again")
        assert (await receive_exactly(again, 5))[0] == b"again"
        await again.aclose()


async def test_a_reset_from_one_peer_is_passed_on_as_a_reset(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with echo_and_proxy() as (echo, proxy):
        stream = await connect(proxy)
        await stream.send_all(b"x")
        await receive_exactly(stream, 1)
        stream.socket.setsockopt(trio.socket.SOL_SOCKET, trio.socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")
        await stream.aclose()
        await wait_until(lambda: echo.endings == ["reset"])


async def test_stall_is_half_open_until_it_ends_then_everything_flows(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with echo_and_proxy() as (_, proxy):
        stream = await connect(proxy)
        await stream.send_all(b"before")
        await receive_exactly(stream, 6)
        assert proxy.stall().connections == 1
        await stream.send_all(b"during")
        with trio.move_on_after(0.3) as waited:
            await stream.receive_some(10)
        assert waited.cancelled_caught, "a stalled link forwarded data"
        assert proxy.statistics().open_connections == 1  # nothing was closed
        proxy.resume()
        assert (await receive_exactly(stream, 6))[0] == b"during"
        await stream.aclose()


async def test_timed_stall_ends_by_itself(autojump_clock: trio.testing.MockClock) -> None:
    async with echo_and_proxy() as (_, proxy):
        stream = await connect(proxy)
        await stream.send_all(b"linked")  # a round trip: the link to the target exists
        await receive_exactly(stream, 6)
        assert proxy.stall(30).connections == 1
        start = trio.current_time()
        await stream.send_all(b"held")
        assert (await receive_exactly(stream, 4))[0] == b"held"
        assert trio.current_time() - start == pytest.approx(30, abs=0.5)
        await stream.aclose()


async def test_fragment_splits_writes_but_keeps_every_byte_in_order(
    autojump_clock: trio.testing.MockClock,
) -> None:
    payload = bytes(range(256)) * 16
    async with echo_and_proxy(seed=5) as (_, proxy):
        stream = await connect(proxy)
        proxy.fragment(10, max_chunk=64, max_pause=0.0005)
        writes_before = proxy.statistics().writes
        await stream.send_all(payload)
        echoed, reads = await receive_exactly(stream, len(payload))
        assert echoed == payload
        # each direction wrote in pieces of at most 64 bytes: at least 64 writes each way
        assert proxy.statistics().writes - writes_before >= 2 * len(payload) // 64
        assert reads >= 8  # the pauses let the receiver see the fragments
        await stream.aclose()


async def test_delay_adds_latency_each_way(autojump_clock: trio.testing.MockClock) -> None:
    async with echo_and_proxy(seed=1) as (_, proxy):
        stream = await connect(proxy)
        proxy.delay(10, latency=0.1)
        start = trio.current_time()
        await stream.send_all(b"ping")
        await receive_exactly(stream, 4)
        # two hops, each held 50%..150% of the latency
        assert 0.1 <= trio.current_time() - start <= 0.3
        await stream.aclose()


async def test_refuse_resets_open_and_new_connections_for_its_window(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with echo_and_proxy() as (_, proxy):
        stream = await connect(proxy)
        await stream.send_all(b"a")
        await receive_exactly(stream, 1)
        assert proxy.refuse(5).connections == 1
        with pytest.raises(trio.BrokenResourceError):
            await stream.receive_some(1)
        assert proxy.refusing()
        refused = await connect(proxy)
        with pytest.raises(trio.BrokenResourceError):
            await refused.receive_some(1)
        assert proxy.statistics().refused == 1
        await trio.sleep(5)
        assert not proxy.refusing()
        fine = await connect(proxy)
        await fine.send_all(b"b")
        assert (await receive_exactly(fine, 1))[0] == b"b"
        await fine.aclose()


async def test_unreachable_target_resets_the_client(autojump_clock: trio.testing.MockClock) -> None:
    # a port nobody listens on: bind one, then close it
    probe = trio.socket.socket()
    await probe.bind((HOST, 0))
    port = probe.getsockname()[1]
    probe.close()
    async with open_chaos_proxy(HOST, port) as proxy:
        stream = await connect(proxy)
        with pytest.raises(trio.BrokenResourceError):
            await stream.receive_some(1)
        assert proxy.statistics().upstream_failures == 1


async def test_schedule_applies_each_fault_at_its_offset(
    autojump_clock: trio.testing.MockClock,
) -> None:
    schedule = ChaosSchedule(
        faults=(
            ScheduledFault(at=20, fault=Fault(kind=FaultKind.STALL, duration=3)),
            ScheduledFault(at=10, fault=Fault(kind=FaultKind.RESET)),
            ScheduledFault(at=30, fault=Fault(kind=FaultKind.REFUSE, duration=4)),
        )
    )
    assert schedule.end == 34
    async with echo_and_proxy(schedule=schedule) as (_, proxy):
        await proxy.wait_schedule_done()
        assert trio.current_time() - proxy.started_at == pytest.approx(34)
        assert [a.fault.kind for a in proxy.history] == [
            FaultKind.RESET,
            FaultKind.STALL,
            FaultKind.REFUSE,
        ]
        offsets = [a.at - proxy.started_at for a in proxy.history]
        assert offsets == pytest.approx([10, 20, 30])


async def test_serve_chaos_proxy_reports_itself_and_stops_when_cancelled(
    autojump_clock: trio.testing.MockClock,
) -> None:
    before = all_tasks()
    echo = Echo()
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(trio.serve_tcp, echo.handle, 0)
        port = listeners[0].socket.getsockname()[1]
        proxy = await nursery.start(serve_chaos_proxy, HOST, port)
        assert isinstance(proxy, ChaosProxy)
        assert proxy.ws_url == f"ws://{HOST}:{proxy.port}/v2/websocket"
        assert proxy.url("ws://127.0.0.1:1/v2/websocket?x=1") == (
            f"ws://{HOST}:{proxy.port}/v2/websocket?x=1"
        )
        stream = await connect(proxy)
        await stream.send_all(b"x")
        await receive_exactly(stream, 1)
        nursery.cancel_scope.cancel()
    assert all_tasks() == before


def test_random_schedule_is_reproducible_and_holds_the_mix() -> None:
    one = ChaosSchedule.random(seed=3, count=24, interval=1.0)
    assert one == ChaosSchedule.random(seed=3, count=24, interval=1.0)
    assert one != ChaosSchedule.random(seed=4, count=24, interval=1.0)
    assert len(one) == 24
    counts = one.counts()
    total = sum(DEFAULT_MIX.values())
    for kind, weight in DEFAULT_MIX.items():
        assert abs(counts[kind] - 24 * weight / total) < 1.5
    offsets = [item.at for item in one.faults]
    assert offsets == sorted(offsets)
    assert all(b - a >= 0.5 for a, b in itertools.pairwise(offsets))


@given(
    count=st.integers(min_value=0, max_value=200),
    weights=st.lists(st.floats(min_value=0, max_value=10), min_size=5, max_size=5).filter(
        lambda w: any(x > 0 for x in w)
    ),
)
def test_dealt_kinds_have_the_count_and_every_weighted_kind(
    count: int, weights: list[float]
) -> None:
    mix = dict(zip(FaultKind, weights, strict=True))
    kinds = _deal(mix, count)
    assert len(kinds) == count
    weighted = [kind for kind, weight in mix.items() if weight > 0]
    if count >= len(weighted):
        assert set(kinds) == set(weighted)
    assert all(mix[kind] > 0 for kind in kinds)


def test_faults_validate_their_numbers() -> None:
    with pytest.raises(ValueError, match="duration"):
        Fault(kind=FaultKind.STALL, duration=-1)
    with pytest.raises(ValueError, match="max_chunk"):
        Fault(kind=FaultKind.FRAGMENT, max_chunk=0)
    with pytest.raises(ValueError, match="interval"):
        ChaosSchedule.random(seed=1, count=3, interval=0)
    assert Fault(kind=FaultKind.STALL, duration=math.inf).duration == math.inf
    assert [k for k in FaultKind if k.disruptive] == [
        FaultKind.RESET,
        FaultKind.STALL,
        FaultKind.REFUSE,
    ]
