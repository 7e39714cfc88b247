"""A TCP chaos proxy: sits between a client and a server and breaks their connections on purpose.

Design note. The proxy works on bytes, below the WebSocket layer, so what it breaks is the real
stack: the client's TCP handling, its WebSocket library's framing and close handshake, and its
own liveness detection. (The simulator's :class:`~flexconn.sim.Faults` act inside the server and
cooperate with it; these do not.) Each accepted connection becomes a *link* to the target: two
*pumps*, one per direction, each a reader task and a writer task joined by a small memory
channel, so added latency delays bytes without throttling them. Faults:

* ``RESET``: every open link is closed with ``SO_LINGER`` 0, so both peers get a TCP RST.
* ``STALL``: the open links stop reading and writing without closing (a half-open connection, as
  when a NAT forgets a flow) for ``duration`` seconds, or until :meth:`ChaosProxy.resume`;
  then whatever was held is forwarded, and any close that happened meanwhile is noticed.
* ``FRAGMENT``: for ``duration`` seconds every write is split into small pieces with short
  pauses between them, so the receiver reads frames (and frame headers) in fragments.
* ``DELAY``: for ``duration`` seconds every chunk is held ``latency`` seconds (jittered,
  never reordered) before it is forwarded.
* ``REFUSE``: for ``duration`` seconds new connections are reset as soon as they are accepted;
  the open links are reset at the start, so a client must reconnect through the refusal.

A :class:`ChaosSchedule` lists faults at offsets from the proxy's start; the proxy applies them on
time, and :meth:`ChaosProxy.apply` (or the per-kind methods) applies one at once. All randomness
(schedules, fragment sizes, jitter) comes from seeded generators, so a seed reproduces a run.
Times are ``trio.current_time``.
"""

from __future__ import annotations

import logging
import math
import random
import socket
import struct
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager, suppress
from enum import StrEnum
from functools import partial
from urllib.parse import urlsplit, urlunsplit

import attrs
import trio

from flexconn._groups import unwrapped

__all__ = [
    "DEFAULT_MIX",
    "AppliedFault",
    "ChaosProxy",
    "ChaosSchedule",
    "ChaosStatistics",
    "Fault",
    "FaultKind",
    "ScheduledFault",
    "open_chaos_proxy",
    "serve_chaos_proxy",
]

log = logging.getLogger("flexconn.sim.chaos")

_READ_SIZE = 65536
#: Chunks queued per direction of a link between its reader and its writer.
_PIPE_CHUNKS = 64


class FaultKind(StrEnum):
    """What a fault does; see the module docstring."""

    RESET = "reset"
    STALL = "stall"
    FRAGMENT = "fragment"
    DELAY = "delay"
    REFUSE = "refuse"

    @property
    def disruptive(self) -> bool:
        """Whether the fault ends the connections it hits (a client must reconnect)."""
        return self in (FaultKind.RESET, FaultKind.STALL, FaultKind.REFUSE)


def _non_negative(_: object, attribute: attrs.Attribute[float], value: float) -> None:
    if value < 0 or math.isnan(value):
        raise ValueError(f"{attribute.name} must not be negative, got {value!r}")


@attrs.frozen(kw_only=True)
class Fault:
    """One fault to apply.

    Attributes:
        kind: what to do.
        duration: seconds the fault lasts (``STALL``, ``FRAGMENT``, ``DELAY``, ``REFUSE``);
            for ``STALL``, ``math.inf`` holds the links until :meth:`ChaosProxy.resume`.
        latency: ``DELAY``: seconds each chunk is held (each one jittered by +-50%).
        max_chunk: ``FRAGMENT``: the largest piece written at once, in bytes.
        max_pause: ``FRAGMENT``: the longest pause between two pieces, in seconds.
    """

    kind: FaultKind
    duration: float = attrs.field(default=0.0, validator=_non_negative)
    latency: float = attrs.field(default=0.05, validator=_non_negative)
    max_chunk: int = attrs.field(default=256)
    max_pause: float = attrs.field(default=0.0005, validator=_non_negative)

    @max_chunk.validator
    def _check_chunk(self, _: attrs.Attribute[int], value: int) -> None:
        if value < 1:
            raise ValueError(f"max_chunk must be at least 1, got {value}")


@attrs.frozen(kw_only=True)
class ScheduledFault:
    """A fault and when to apply it, in seconds after the proxy starts."""

    at: float = attrs.field(validator=_non_negative)
    fault: Fault


#: The default mix of a random schedule: relative weights of each kind.
DEFAULT_MIX: Mapping[FaultKind, float] = {
    FaultKind.RESET: 3,
    FaultKind.STALL: 2,
    FaultKind.FRAGMENT: 2,
    FaultKind.DELAY: 2,
    FaultKind.REFUSE: 1,
}


def _sorted_faults(items: tuple[ScheduledFault, ...]) -> tuple[ScheduledFault, ...]:
    return tuple(sorted(items, key=lambda item: item.at))


@attrs.frozen(kw_only=True)
class ChaosSchedule:
    """Faults at fixed offsets from the proxy's start (kept sorted by offset)."""

    faults: tuple[ScheduledFault, ...] = attrs.field(converter=_sorted_faults)

    def __len__(self) -> int:
        return len(self.faults)

    @property
    def end(self) -> float:
        """The offset at which the last fault's window is over."""
        return max((item.at + item.fault.duration for item in self.faults), default=0.0)

    def counts(self) -> dict[FaultKind, int]:
        """How many faults of each kind the schedule holds."""
        found = dict.fromkeys(FaultKind, 0)
        for item in self.faults:
            found[item.fault.kind] += 1
        return found

    @classmethod
    def random(
        cls,
        *,
        seed: int,
        count: int,
        interval: float,
        start: float | None = None,
        jitter: float = 0.25,
        mix: Mapping[FaultKind, float] = DEFAULT_MIX,
        stall: float = 2.0,
        refuse: float = 1.0,
        window: float = 1.0,
        latency: float = 0.05,
        max_chunk: int = 256,
        max_pause: float = 0.0005,
    ) -> ChaosSchedule:
        """A reproducible schedule of ``count`` faults about ``interval`` seconds apart.

        Every kind with a positive weight in ``mix`` appears at least once (when ``count``
        allows) and the rest follow the weights, in a shuffled order. Durations are the given
        values jittered by +-25%.

        Args:
            seed: the schedule is a pure function of its arguments.
            count: how many faults.
            interval: mean seconds between faults; the first comes at ``start`` (default: one
                interval in).
            jitter: each offset moves by up to this fraction of ``interval``.
            mix: relative weight of each kind.
            stall: mean ``STALL`` duration.
            refuse: mean ``REFUSE`` duration.
            window: mean ``FRAGMENT`` and ``DELAY`` duration.
            latency: ``DELAY`` latency.
            max_chunk: ``FRAGMENT`` piece size.
            max_pause: ``FRAGMENT`` pause.
        """
        if count < 0 or interval <= 0 or not 0 <= jitter < 0.5:
            raise ValueError("need count >= 0, interval > 0 and 0 <= jitter < 0.5")
        rng = random.Random(seed)
        kinds = _deal(mix, count)
        rng.shuffle(kinds)
        first = interval if start is None else start
        durations = {
            FaultKind.RESET: 0.0,
            FaultKind.STALL: stall,
            FaultKind.REFUSE: refuse,
            FaultKind.FRAGMENT: window,
            FaultKind.DELAY: window,
        }
        items = []
        for index, kind in enumerate(kinds):
            at = first + index * interval + rng.uniform(-jitter, jitter) * interval
            duration = durations[kind] * rng.uniform(0.75, 1.25)
            fault = Fault(
                kind=kind,
                duration=duration,
                latency=latency,
                max_chunk=max_chunk,
                max_pause=max_pause,
            )
            items.append(ScheduledFault(at=max(0.0, at), fault=fault))
        return cls(faults=tuple(items))


def _deal(mix: Mapping[FaultKind, float], count: int) -> list[FaultKind]:
    """``count`` kinds: one of each weighted kind first, the rest by largest remainder."""
    weighted = [(kind, float(weight)) for kind, weight in mix.items() if weight > 0]
    if not weighted:
        raise ValueError("the mix gives no kind a positive weight")
    kinds = [kind for kind, _ in weighted][:count]
    rest = count - len(kinds)
    total = sum(weight for _, weight in weighted)
    shares = [(kind, rest * weight / total) for kind, weight in weighted]
    whole = {kind: int(share) for kind, share in shares}
    short = rest - sum(whole.values())
    by_remainder = sorted(shares, key=lambda pair: pair[1] - int(pair[1]), reverse=True)
    for kind, _ in by_remainder[:short]:
        whole[kind] += 1
    for kind, n in whole.items():
        kinds.extend([kind] * n)
    return kinds


@attrs.frozen(kw_only=True)
class AppliedFault:
    """A fault the proxy applied: when (trio time), what, and how many open links it hit."""

    at: float
    fault: Fault
    connections: int


@attrs.frozen(kw_only=True)
class ChaosStatistics:
    """The proxy's counters.

    Attributes:
        accepted: connections accepted and linked to the target.
        refused: connections reset on accept during a ``REFUSE`` window.
        upstream_failures: connections reset because the target could not be reached.
        open_connections: links open now.
        reset: links closed by a ``RESET`` or ``REFUSE`` fault.
        stalled: links stalled by a ``STALL`` fault.
        bytes_up / bytes_down: bytes forwarded client-to-target / target-to-client.
        writes: socket writes made (fragmentation multiplies them).
        faults_applied: faults applied so far.
    """

    accepted: int
    refused: int
    upstream_failures: int
    open_connections: int
    reset: int
    stalled: int
    bytes_up: int
    bytes_down: int
    writes: int
    faults_applied: int


def _abort(stream: trio.SocketStream) -> None:
    """Make closing ``stream`` send a TCP RST instead of a FIN, where the platform allows."""
    with suppress(OSError):
        stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


class _Link:
    """One proxied connection: the client's stream, the target's, and a stall gate."""

    def __init__(self, client: trio.SocketStream, upstream: trio.SocketStream) -> None:
        self.client = client
        self.upstream = upstream
        self.cancel_scope = trio.CancelScope()
        self.aborted = False
        self._flowing = trio.Event()
        self._flowing.set()

    def abort(self) -> None:
        """Reset both sides now."""
        if not self.aborted:
            self.aborted = True
            _abort(self.client)
            _abort(self.upstream)
        self.cancel_scope.cancel()

    def stall(self) -> None:
        if self._flowing.is_set():
            self._flowing = trio.Event()

    def resume(self) -> None:
        self._flowing.set()

    async def gate(self) -> None:
        """Return at once while flowing; wait while stalled."""
        while not self._flowing.is_set():
            await self._flowing.wait()


class ChaosProxy:
    """A running chaos proxy: where to connect, and the switches to break things.

    Obtain one from :func:`open_chaos_proxy` or :func:`serve_chaos_proxy`. Every fault method is
    synchronous and returns at once; timed faults end by themselves.
    """

    def __init__(
        self,
        target_host: str,
        target_port: int,
        *,
        host: str,
        port: int,
        nursery: trio.Nursery,
        seed: int | None,
        connect_timeout: float,
    ) -> None:
        self.target_host = target_host
        self.target_port = target_port
        self.host = host
        self.port = port
        self.started_at = trio.current_time()
        self.history: list[AppliedFault] = []
        self._nursery = nursery
        self._rng = random.Random(seed)
        self._connect_timeout = connect_timeout
        self._links: set[_Link] = set()
        self._refuse_until = -math.inf
        self._fragment_until = -math.inf
        self._fragment = Fault(kind=FaultKind.FRAGMENT)
        self._delay_until = -math.inf
        self._latency = 0.0
        self._schedule_done = trio.Event()
        self._schedule_done.set()
        self._counters = dict.fromkeys(
            (
                "accepted",
                "refused",
                "upstream_failures",
                "reset",
                "stalled",
                "bytes_up",
                "bytes_down",
                "writes",
            ),
            0,
        )

    def __repr__(self) -> str:
        return (
            f"<ChaosProxy {self.host}:{self.port} -> {self.target_host}:{self.target_port} "
            f"links={len(self._links)}>"
        )

    # -- addresses -------------------------------------------------------------------------------

    @property
    def ws_url(self) -> str:
        """``ws://host:port/v2/websocket`` through the proxy (the exchange's WebSocket path)."""
        return f"ws://{self._netloc}/v2/websocket"

    def url(self, target_url: str) -> str:
        """``target_url`` with its host and port replaced by the proxy's (scheme and path kept)."""
        parts = urlsplit(target_url)
        return urlunsplit(parts._replace(netloc=self._netloc))

    @property
    def _netloc(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    # -- faults ----------------------------------------------------------------------------------

    def apply(self, fault: Fault) -> AppliedFault:
        """Apply ``fault`` now and record it in :attr:`history`."""
        now = trio.current_time()
        hit = len(self._links)
        if fault.kind is FaultKind.RESET:
            self._reset_all()
        elif fault.kind is FaultKind.STALL:
            self._stall_all(fault.duration)
        elif fault.kind is FaultKind.FRAGMENT:
            self._fragment = fault
            self._fragment_until = now + fault.duration
        elif fault.kind is FaultKind.DELAY:
            self._latency = fault.latency
            self._delay_until = now + fault.duration
        else:
            self._refuse_until = now + fault.duration
            self._reset_all()
        applied = AppliedFault(at=now, fault=fault, connections=hit)
        self.history.append(applied)
        log.info("chaos: %s for %.3gs on %d connections", fault.kind, fault.duration, hit)
        return applied

    def reset(self) -> AppliedFault:
        """Reset every open connection (TCP RST both ways)."""
        return self.apply(Fault(kind=FaultKind.RESET))

    def stall(self, seconds: float = math.inf) -> AppliedFault:
        """Make every open connection half-open for ``seconds`` (default: until :meth:`resume`)."""
        return self.apply(Fault(kind=FaultKind.STALL, duration=seconds))

    def resume(self) -> None:
        """End every stall now."""
        for link in list(self._links):
            link.resume()

    def fragment(
        self, seconds: float, *, max_chunk: int = 256, max_pause: float = 0.0005
    ) -> AppliedFault:
        """For ``seconds``, split every write into pieces of at most ``max_chunk`` bytes."""
        return self.apply(
            Fault(
                kind=FaultKind.FRAGMENT,
                duration=seconds,
                max_chunk=max_chunk,
                max_pause=max_pause,
            )
        )

    def delay(self, seconds: float, *, latency: float = 0.05) -> AppliedFault:
        """For ``seconds``, hold every chunk about ``latency`` seconds before forwarding it."""
        return self.apply(Fault(kind=FaultKind.DELAY, duration=seconds, latency=latency))

    def refuse(self, seconds: float) -> AppliedFault:
        """Reset the open connections, and new ones on accept, for ``seconds``."""
        return self.apply(Fault(kind=FaultKind.REFUSE, duration=seconds))

    def refusing(self) -> bool:
        """Whether new connections are being refused now."""
        return trio.current_time() < self._refuse_until

    def statistics(self) -> ChaosStatistics:
        c = self._counters
        return ChaosStatistics(
            accepted=c["accepted"],
            refused=c["refused"],
            upstream_failures=c["upstream_failures"],
            open_connections=len(self._links),
            reset=c["reset"],
            stalled=c["stalled"],
            bytes_up=c["bytes_up"],
            bytes_down=c["bytes_down"],
            writes=c["writes"],
            faults_applied=len(self.history),
        )

    async def wait_schedule_done(self) -> None:
        """Wait until the schedule's last fault has been applied and its window is over."""
        await self._schedule_done.wait()

    def _reset_all(self) -> None:
        for link in list(self._links):
            self._counters["reset"] += 1
            link.abort()

    def _stall_all(self, seconds: float) -> None:
        links = list(self._links)
        for link in links:
            self._counters["stalled"] += 1
            link.stall()
        if math.isfinite(seconds):
            self._nursery.start_soon(self._end_stall, links, seconds)

    async def _end_stall(self, links: list[_Link], seconds: float) -> None:
        await trio.sleep(seconds)
        for link in links:
            link.resume()

    async def _run_schedule(self, schedule: ChaosSchedule) -> None:
        try:
            for item in schedule.faults:
                await trio.sleep_until(self.started_at + item.at)
                self.apply(item.fault)
            await trio.sleep_until(self.started_at + schedule.end)
        finally:
            self._schedule_done.set()

    # -- forwarding ------------------------------------------------------------------------------

    async def _handle(self, client: trio.SocketStream) -> None:
        if self.refusing():
            self._counters["refused"] += 1
            _abort(client)
            await client.aclose()
            return
        try:
            with trio.fail_after(self._connect_timeout):
                upstream = await trio.open_tcp_stream(self.target_host, self.target_port)
        except (OSError, trio.TooSlowError) as exc:
            log.info("chaos: target unreachable (%s); resetting the client", exc)
            self._counters["upstream_failures"] += 1
            _abort(client)
            await client.aclose()
            return
        self._counters["accepted"] += 1
        link = _Link(client, upstream)
        self._links.add(link)
        try:
            with link.cancel_scope:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._pump, link, client, upstream, "bytes_up")
                    nursery.start_soon(self._pump, link, upstream, client, "bytes_down")
        finally:
            self._links.discard(link)
            for stream in (client, upstream):
                with suppress(OSError, trio.BrokenResourceError):
                    await stream.aclose()

    async def _pump(
        self, link: _Link, source: trio.SocketStream, sink: trio.SocketStream, counter: str
    ) -> None:
        send, receive = trio.open_memory_channel[tuple[float, bytes]](_PIPE_CHUNKS)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._read_side, link, source, send)
            nursery.start_soon(self._write_side, link, sink, receive, counter)

    async def _read_side(
        self,
        link: _Link,
        source: trio.SocketStream,
        send: trio.MemorySendChannel[tuple[float, bytes]],
    ) -> None:
        async with send:
            last = 0.0
            while True:
                await link.gate()
                try:
                    data = await source.receive_some(_READ_SIZE)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    link.abort()  # the peer reset: pass the reset on
                    return
                if not data:
                    return  # EOF: the writer forwards it once the queue drains
                await link.gate()  # a stall that began while we waited holds this chunk
                due = trio.current_time()
                if due < self._delay_until:
                    due += self._latency * self._rng.uniform(0.5, 1.5)
                last = max(last, due)  # jitter never reorders
                await send.send((last, data))

    async def _write_side(
        self,
        link: _Link,
        sink: trio.SocketStream,
        receive: trio.MemoryReceiveChannel[tuple[float, bytes]],
        counter: str,
    ) -> None:
        async with receive:
            try:
                async for due, data in receive:
                    await trio.sleep_until(due)
                    await link.gate()
                    for piece, pause in self._pieces(data):
                        await sink.send_all(piece)
                        self._counters["writes"] += 1
                        self._counters[counter] += len(piece)
                        if pause:
                            await trio.sleep(pause)
                await sink.send_eof()
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                link.abort()

    def _pieces(self, data: bytes) -> Iterator[tuple[bytes, float]]:
        if trio.current_time() >= self._fragment_until:
            yield data, 0.0
            return
        fault = self._fragment
        rng = self._rng
        offset = 0
        while offset < len(data):
            # A quarter of the pieces are tiny, so that frame headers get split too.
            size = rng.randint(1, min(8, fault.max_chunk))
            if rng.random() >= 0.25:
                size = rng.randint(1, fault.max_chunk)
            piece = data[offset : offset + size]
            offset += size
            yield piece, rng.uniform(0.0, fault.max_pause) if offset < len(data) else 0.0


async def serve_chaos_proxy(
    target_host: str,
    target_port: int,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    schedule: ChaosSchedule | None = None,
    seed: int | None = 0,
    connect_timeout: float = 5.0,
    task_status: trio.TaskStatus[ChaosProxy] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run a chaos proxy to ``target_host:target_port`` until cancelled.

    Reports the :class:`ChaosProxy` through ``task_status`` once it listens.

    Args:
        target_host: where to forward (a loopback address in tests).
        target_port: the target's port.
        host: the interface to listen on.
        port: the port to listen on (0: any free port).
        schedule: faults to apply at their offsets from now.
        seed: seeds fragment sizes and jitter; ``None`` for an unseeded run.
        connect_timeout: how long to wait for the target before resetting a new client.
    """
    listeners = await trio.open_tcp_listeners(port, host=host)
    bound = listeners[0].socket.getsockname()
    with unwrapped():
        async with trio.open_nursery() as nursery:
            proxy = ChaosProxy(
                target_host,
                target_port,
                host=host,
                port=int(bound[1]),
                nursery=nursery,
                seed=seed,
                connect_timeout=connect_timeout,
            )
            await nursery.start(
                partial(trio.serve_listeners, proxy._handle, listeners, handler_nursery=nursery)
            )
            if schedule is not None and schedule.faults:
                proxy._schedule_done = trio.Event()
                nursery.start_soon(proxy._run_schedule, schedule)
            log.info("chaos proxy on %s:%d -> %s:%d", host, proxy.port, target_host, target_port)
            task_status.started(proxy)


@asynccontextmanager
async def open_chaos_proxy(
    target_host: str,
    target_port: int,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    schedule: ChaosSchedule | None = None,
    seed: int | None = 0,
    connect_timeout: float = 5.0,
) -> AsyncIterator[ChaosProxy]:
    """Run a chaos proxy for the duration of the block; see :func:`serve_chaos_proxy`.

    Example::

        async with serve() as sim:
            host, port = urlsplit(sim.ws_url).hostname, urlsplit(sim.ws_url).port
            async with open_chaos_proxy(host, port, seed=7) as proxy:
                async with open_connection(proxy.url(sim.ws_url)) as conn:
                    proxy.reset()
    """
    with unwrapped():
        async with trio.open_nursery() as nursery:
            proxy: ChaosProxy = await nursery.start(
                partial(
                    serve_chaos_proxy,
                    target_host,
                    target_port,
                    host=host,
                    port=port,
                    schedule=schedule,
                    seed=seed,
                    connect_timeout=connect_timeout,
                )
            )
            try:
                yield proxy
            finally:
                nursery.cancel_scope.cancel()
