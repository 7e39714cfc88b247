"""Helpers shared by the chaos tests: task and channel leak checks, and the exchange's truth
about order requests (:class:`ExchangeLedger`, :func:`check_outcomes`)."""

from __future__ import annotations

import gc
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from decimal import Decimal
from typing import Any

import attrs
import trio

from flexconn.connection import Connection
from flexconn.errors import (
    ExchangeError,
    FlexconnError,
    OrderAlreadyClosed,
    OrderNotApplied,
    OrderOutcomeUnknown,
)
from flexconn.feeds import Feed
from flexconn.models.enums import OrderStatus, Side
from flexconn.models.orders import LimitOrder
from flexconn.outbox import CancelAck, ModifyAck, PlaceAck
from flexconn.sim import Simulator
from flexconn.sim.engine import Engine
from flexconn.sim.orders import EngineReject
from flexconn.sim.orders import Order as SimOrder

Tracked = Feed[Any] | trio.MemorySendChannel[Any] | trio.MemoryReceiveChannel[Any]


def _channels_and_feeds() -> Iterator[Tracked]:
    for obj in gc.get_objects():
        if isinstance(obj, Feed | trio.MemorySendChannel | trio.MemoryReceiveChannel):
            yield obj


def open_channels(since: set[int]) -> list[str]:
    """Feeds and memory channels created after ``since`` (a set of ids) that are still open.

    A feed counts as open until its consumer closed it or the connection ended it; a memory
    channel while both of its ends are open.
    """
    gc.collect()
    leaks = []
    for obj in _channels_and_feeds():
        if id(obj) in since:
            continue
        if isinstance(obj, Feed):
            if not obj.closed and not obj._ended:
                leaks.append(f"feed {obj.channel}")
        else:
            stats = obj.statistics()
            if stats.open_send_channels and stats.open_receive_channels:
                leaks.append(repr(obj))
    return leaks


def channel_ids() -> set[int]:
    """Ids of the feeds and memory channels alive now (the baseline for :func:`open_channels`)."""
    gc.collect()
    return {id(obj) for obj in _channels_and_feeds()}


# --- the exchange's truth about order requests ---------------------------------------------------


@attrs.frozen(kw_only=True)
class EngineCommand:
    """One order command the engine ran for the watched account, and what it did.

    ``result`` is the order's state when the command was done (``None`` when the engine refused
    it, with ``code``). Cancels and modifies name their target in ``order_id``; places carry
    their ``client_order_id``; modifies and places their requested ``side``, ``price`` and
    ``quantity``.
    """

    kind: str  # "place", "modify" or "cancel"
    at: float  # trio time
    order_id: int | None
    client_order_id: int | None
    side: Side | None
    price: Decimal | None
    quantity: Decimal | None
    result: SimOrder | None
    code: str | None

    @property
    def applied(self) -> bool:
        return self.result is not None


class ExchangeLedger:
    """Every place, modify and cancel the simulator's engine runs for one account.

    :meth:`attach` wraps the engine's three command methods on the instance (whoever calls
    them: a live WebSocket session, one the client abandoned that is still reading its buffers,
    REST), so a request that reached the engine is never missed, however late it arrived.
    """

    def __init__(
        self, engine: Engine, account_id: str, clock: Callable[[], float] = trio.current_time
    ) -> None:
        self.engine = engine
        self.account_id = account_id
        self.clock = clock
        self.commands: list[EngineCommand] = []

    @classmethod
    def attach(cls, sim: Simulator) -> ExchangeLedger:
        """Record the simulator's engine, for its demo account."""
        return cls.watch(sim.exchange.engine, sim.demo_key.account_id)

    @classmethod
    def watch(
        cls, engine: Engine, account_id: str, clock: Callable[[], float] = trio.current_time
    ) -> ExchangeLedger:
        """Record ``engine``'s commands for ``account_id`` from now on (``clock`` stamps them)."""
        ledger = cls(engine, account_id, clock)
        place, modify, cancel = engine.place, engine.modify, engine.cancel

        def recorded_place(account_id: str, **kwargs: Any) -> SimOrder:
            return ledger._run(
                place,
                (account_id,),
                kwargs,
                kind="place",
                order_id=None,
                client_order_id=kwargs.get("client_order_id"),
                side=kwargs.get("side"),
                price=kwargs.get("price"),
                quantity=kwargs.get("quantity"),
            )

        def recorded_modify(
            account_id: str, market_code: str, order_id: int, **kwargs: Any
        ) -> SimOrder:
            return ledger._run(
                modify,
                (account_id, market_code, order_id),
                kwargs,
                kind="modify",
                order_id=order_id,
                client_order_id=None,
                side=kwargs.get("side"),
                price=kwargs.get("price"),
                quantity=kwargs.get("quantity"),
            )

        def recorded_cancel(account_id: str, market_code: str, order_id: int) -> SimOrder:
            return ledger._run(
                cancel,
                (account_id, market_code, order_id),
                {},
                kind="cancel",
                order_id=order_id,
                client_order_id=None,
                side=None,
                price=None,
                quantity=None,
            )

        # instance attributes shadow the methods for every caller of this engine
        engine.place = recorded_place  # type: ignore[method-assign]
        engine.modify = recorded_modify  # type: ignore[method-assign]
        engine.cancel = recorded_cancel  # type: ignore[method-assign]
        return ledger

    def _run(
        self,
        method: Callable[..., SimOrder],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        **fields: Any,
    ) -> SimOrder:
        watched = args[0] == self.account_id
        try:
            result = method(*args, **kwargs)
        except EngineReject as exc:
            if watched:
                self.commands.append(
                    EngineCommand(at=self.clock(), result=None, code=exc.code, **fields)
                )
            raise
        if watched:
            self.commands.append(EngineCommand(at=self.clock(), result=result, code=None, **fields))
        return result

    def final_states(self) -> dict[int, SimOrder]:
        """Every order of the account by id: its last state (open, or as it was finished)."""
        states = {o.order_id: o for o in self.engine.order_history(self.account_id)}
        states.update({o.order_id: o for o in self.engine.open_orders(self.account_id)})
        return states


@attrs.define(kw_only=True)
class OrderRequest:
    """One order request a scenario made, with what it asked and how it ended.

    ``order_id`` is the target of a cancel or modify; ``client_order_id`` a place's.
    ``side``/``price``/``quantity`` are a modify's requested changes. A request sent again after
    ``OrderNotApplied`` names the first one's label in ``origin`` (a place sent again needs a
    new client order id: the connection refuses to reuse one); the exchange must then hold at
    most one order from the two.
    """

    kind: str  # "place", "modify" or "cancel"
    label: str
    market_code: str
    order_id: int | None = None
    client_order_id: int | None = None
    side: Side | None = None
    price: Decimal | None = None
    quantity: Decimal | None = None
    origin: str | None = None
    outcomes: list[object] = attrs.Factory(list)
    started_at: float | None = None  # trio time the caller asked

    def key(self) -> tuple[object, ...]:
        """What identifies the request's commands at the engine (a scenario keeps a modify's
        target, price and quantity unique; the side is not part of it)."""
        if self.kind == "place":
            return ("place", self.client_order_id)
        if self.kind == "cancel":
            return ("cancel", self.order_id)
        return ("modify", self.order_id, self.price, self.quantity)

    def __str__(self) -> str:
        asked = ", ".join(
            f"{name}={value}"
            for name, value in (
                ("order_id", self.order_id),
                ("client_order_id", self.client_order_id),
                ("side", self.side),
                ("price", self.price),
                ("quantity", self.quantity),
            )
            if value is not None
        )
        again = f" sent again for [{self.origin}]" if self.origin is not None else ""
        return f"{self.kind}({asked}) [{self.label}]{again}"


def command_key(command: EngineCommand) -> tuple[object, ...]:
    if command.kind == "place":
        return ("place", command.client_order_id)
    if command.kind == "cancel":
        return ("cancel", command.order_id)
    return ("modify", command.order_id, command.price, command.quantity)


class Requests:
    """Makes order requests through a connection and records each one's outcome (exactly one)."""

    def __init__(self, market_code: str) -> None:
        self.market_code = market_code
        self.all: list[OrderRequest] = []

    async def _settle(self, request: OrderRequest, call: Awaitable[object]) -> object:
        request.started_at = trio.current_time()
        self.all.append(request)
        try:
            outcome: object = await call
        except FlexconnError as exc:
            outcome = exc
        request.outcomes.append(outcome)
        return outcome

    async def place(
        self, conn: Connection, order: LimitOrder, label: str, *, origin: str | None = None
    ) -> object:
        request = OrderRequest(
            kind="place",
            label=label,
            market_code=order.market_code,
            client_order_id=order.client_order_id,
            origin=origin,
        )
        return await self._settle(request, conn.place(order))

    async def modify(
        self,
        conn: Connection,
        order_id: int,
        label: str,
        *,
        side: Side | None = None,
        price: Decimal | None = None,
        quantity: Decimal | None = None,
        origin: str | None = None,
    ) -> object:
        request = OrderRequest(
            kind="modify",
            label=label,
            market_code=self.market_code,
            order_id=order_id,
            side=side,
            price=price,
            quantity=quantity,
            origin=origin,
        )
        call = conn.modify(order_id, self.market_code, side=side, price=price, quantity=quantity)
        return await self._settle(request, call)

    async def cancel(self, conn: Connection, order_id: int, label: str) -> object:
        request = OrderRequest(
            kind="cancel", label=label, market_code=self.market_code, order_id=order_id
        )
        return await self._settle(request, conn.cancel(self.market_code, order_id))


def already_closed(outcome: object) -> bool:
    """Whether ``outcome`` is the model's ``OrderAlreadyClosed``."""
    return isinstance(outcome, OrderAlreadyClosed)


def _confirmed(ack: object) -> bool:
    """Whether an ack is the confirmed stage (``confirmed=False`` is only given to callers who
    asked for the accepted stage); a place has one stage."""
    return not isinstance(ack, CancelAck | ModifyAck) or ack.confirmed


@attrs.frozen(kw_only=True)
class OutcomeSummary:
    """How a run's requests ended: outcome type counts per request kind."""

    counts: dict[str, int]
    requests: int
    engine_commands: int
    #: Engine commands that ran a second or more after the first request with their key was
    #: made: frames read late from a stalled socket, or sent again (a healthy command runs
    #: within milliseconds).
    late_commands: int = 0
    #: ``OrderOutcomeUnknown`` requests whose command the engine did apply (allowed by the
    #: model, but each is a caller left in doubt).
    unknown_applied: int = 0

    def __str__(self) -> str:
        parts = ", ".join(f"{name}={n}" for name, n in sorted(self.counts.items()))
        return (
            f"{self.requests} requests, {self.engine_commands} engine commands "
            f"({self.late_commands} late; {self.unknown_applied} unknown outcomes were "
            f"applied): {parts}"
        )


def describe(outcome: object) -> str:
    """An outcome in one short line: its type and what it claims."""
    name = "OrderAlreadyClosed" if already_closed(outcome) else type(outcome).__name__
    fields = []
    for attribute in ("order_id", "replaced_by", "confirmed", "close_reason", "source", "sent"):
        if hasattr(outcome, attribute):
            value = getattr(outcome, attribute)
            fields.append(f"{attribute}={getattr(value, 'value', value)}")
    if isinstance(outcome, ExchangeError):
        fields.append(f"code={outcome.code}")
    if isinstance(outcome, FlexconnError):
        fields.append(repr(str(outcome)))
    return f"{name}({', '.join(fields)})"


def describe_order(order: SimOrder | None) -> str:
    """An engine order in one short line."""
    if order is None:
        return "no such order"
    return (
        f"order {order.order_id} (client {order.client_order_id}) {order.status} "
        f"{order.side} {order.quantity}@{order.price} remaining {order.remaining}"
    )


def _outcome_name(request: OrderRequest, outcome: object) -> str:
    name = "OrderAlreadyClosed" if already_closed(outcome) else type(outcome).__name__
    if isinstance(outcome, OrderNotApplied):
        name += "(sent)" if outcome.sent else "(unsent)"
    if isinstance(outcome, ExchangeError) and not already_closed(outcome):
        name += f"[{outcome.code}]"
    return f"{request.kind}:{name}"


def check_outcomes(requests: Sequence[OrderRequest], ledger: ExchangeLedger) -> OutcomeSummary:
    """Every reported outcome against the engine's truth; raises listing every violation.

    Call it once the exchange is quiet: every stall resumed, every old connection's buffers
    read, and the recvWindow of every command sent long past (so a late frame had its chance).

    * one outcome per request, each a type of the outcome model;
    * no duplicate orders: at most one applied place per client order id, and at most one of
      its orders that was not amended away;
    * an ack has the engine command that earns it: a ``PlaceAck``'s ``order_id`` is the order
      the engine opened for that client order id; a confirmed ``CancelAck``'s order was closed
      ``CANCELED_BY_USER`` by a cancel of it; a confirmed ``ModifyAck`` matches a modify the
      engine applied with exactly the requested fields, ``replaced_by`` naming the engine's
      replacement (``None`` for an in-place change);
    * ``OrderAlreadyClosed`` names its order, which the engine shows closed, with its close
      status when it gives one;
    * ``OrderNotApplied``, a refusal and ``OrderAlreadyClosed`` claim the request did nothing:
      per request key, the engine applied no more commands than the acks and unknowns can
      account for (and a cancel that was sent is never "not applied").
    """
    violations: list[str] = []
    states = ledger.final_states()
    applied: dict[tuple[object, ...], list[EngineCommand]] = {}
    for command in ledger.commands:
        if command.applied:
            applied.setdefault(command_key(command), []).append(command)
    groups: dict[tuple[object, ...], list[OrderRequest]] = {}
    counts: dict[str, int] = {}
    for request in requests:
        if len(request.outcomes) != 1:
            outcomes = [describe(o) for o in request.outcomes]
            violations.append(f"{request}: {len(outcomes)} outcomes {outcomes}")
            continue
        groups.setdefault(request.key(), []).append(request)
        name = _outcome_name(request, request.outcomes[0])
        counts[name] = counts.get(name, 0) + 1

    # no duplicate orders
    for key, commands in applied.items():
        if key[0] == "place" and len(commands) > 1:
            ids = [c.result.order_id for c in commands if c.result is not None]
            violations.append(f"client order id {key[1]} placed {len(commands)} times: {ids}")
    by_cid: dict[int, list[SimOrder]] = {}
    for order in states.values():
        if order.client_order_id is not None:
            by_cid.setdefault(order.client_order_id, []).append(order)
    for cid, orders in by_cid.items():
        live = [o for o in orders if o.status is not OrderStatus.CANCELED_BY_AMEND]
        if len(live) > 1:
            violations.append(
                f"client order id {cid} has {len(live)} orders: {[describe_order(o) for o in live]}"
            )
    # a place and its resends are one order the caller wanted: the exchange holds at most one
    families: dict[str, list[OrderRequest]] = {}
    for request in requests:
        if request.kind == "place":
            families.setdefault(request.origin or request.label, []).append(request)
    for origin, family in families.items():
        made = [
            c.result.order_id
            for r in family
            for c in applied.get(r.key(), [])
            if c.result is not None
        ]
        if len(made) > 1:
            violations.append(
                f"duplicate orders {made} for one request [{origin}], sent {len(family)} times: "
                + "; ".join(f"{r} -> {describe(r.outcomes[0])}" for r in family if r.outcomes)
            )

    unknown_applied = 0
    for key, group in groups.items():
        done = applied.get(key, [])
        acks: list[OrderRequest] = []
        unknown = 0
        for request in group:
            outcome = request.outcomes[0]
            problem = _check_one(request, outcome, done, states)
            if problem is not None:
                violations.append(f"{request} -> {describe(outcome)}: {problem}")
            if isinstance(outcome, OrderOutcomeUnknown):
                unknown += 1
            elif isinstance(outcome, PlaceAck | CancelAck | ModifyAck):
                acks.append(request)
        if unknown:
            unknown_applied += min(unknown, max(0, len(done) - len(acks)))
        confirmed = [r for r in acks if _confirmed(r.outcomes[0])]
        if len(confirmed) > len(done):
            violations.append(
                f"{len(confirmed)} requests were confirmed by {len(done)} applied engine "
                f"command(s) {[_brief(c) for c in done]}: "
                + "; ".join(f"{r} -> {describe(r.outcomes[0])}" for r in confirmed)
            )
        if len(done) > len(acks) + unknown:
            claims = [
                f"{r} -> {describe(r.outcomes[0])}"
                for r in group
                if not isinstance(r.outcomes[0], PlaceAck | CancelAck | ModifyAck)
            ]
            violations.append(
                f"the engine applied {len(done)} command(s) {[_brief(c) for c in done]} "
                f"but these requests say theirs did nothing: {claims}"
            )
    first_asked: dict[tuple[object, ...], float] = {}
    for request in requests:
        if request.started_at is not None:
            key = request.key()
            first_asked[key] = min(first_asked.get(key, request.started_at), request.started_at)
    late = sum(
        1
        for command in ledger.commands
        if command.at >= first_asked.get(command_key(command), command.at) + 1.0
    )
    summary = OutcomeSummary(
        counts=counts,
        requests=len(requests),
        engine_commands=len(ledger.commands),
        late_commands=late,
        unknown_applied=unknown_applied,
    )
    if violations:
        raise AssertionError(
            f"{len(violations)} outcome(s) contradict the exchange ({summary}):\n  "
            + "\n  ".join(violations)
        )
    return summary


def _brief(command: EngineCommand) -> str:
    result = command.result
    made = f"-> order {result.order_id} {result.status}" if result is not None else command.code
    return f"{command.kind}@{command.at:.3f} {made}"


def _check_one(
    request: OrderRequest,
    outcome: object,
    done: list[EngineCommand],
    states: dict[int, SimOrder],
) -> str | None:
    """What is wrong with one request's outcome, or ``None``."""
    if isinstance(outcome, OrderOutcomeUnknown):
        return None
    if isinstance(outcome, OrderNotApplied):
        if request.kind == "cancel" and outcome.sent:
            return "a cancel that was sent is never 'not applied' (it has no recvWindow)"
        return None
    if isinstance(outcome, OrderAlreadyClosed):
        named = outcome.order_id
        reason = outcome.close_reason
        if request.kind == "place":
            return "a place cannot find its order already closed"
        if named != request.order_id:
            return f"names order {named}, the request was for {request.order_id}"
        state = states.get(request.order_id) if request.order_id is not None else None
        if state is None:
            return "the engine never had that order"
        if state.is_open:
            return f"the engine shows it open: {describe_order(state)}"
        if reason is not None and reason != state.status:
            return f"close_reason {reason} but the engine closed it {state.status}"
        return None
    if isinstance(outcome, ExchangeError):
        return None
    if isinstance(outcome, PlaceAck):
        if not isinstance(outcome.order_id, int):
            return "a PlaceAck without an order id"
        made = {c.result.order_id for c in done if c.result is not None}
        if outcome.order_id not in made:
            return f"the engine opened {sorted(made)} for client order id {request.client_order_id}"
        state = states.get(outcome.order_id)
        if state is None or state.client_order_id != request.client_order_id:
            return f"the engine's order {outcome.order_id} is {describe_order(state)}"
        return None
    if isinstance(outcome, CancelAck):
        if not _confirmed(outcome):
            return None
        if outcome.order_id != request.order_id:
            return f"acknowledges order {outcome.order_id}"
        if not done:
            state = states.get(outcome.order_id)
            return f"no cancel of it was applied; the engine has {describe_order(state)}"
        state = states.get(outcome.order_id)
        if state is None or state.status is not OrderStatus.CANCELED_BY_USER:
            return f"the engine has {describe_order(state)}"
        return None
    if isinstance(outcome, ModifyAck):
        if not _confirmed(outcome):
            return None
        if outcome.order_id != request.order_id:
            return f"acknowledges order {outcome.order_id}"
        if not done:
            state = states.get(request.order_id) if request.order_id is not None else None
            return f"the engine applied no such modify; it has {describe_order(state)}"
        replacements = set()
        for command in done:
            assert command.result is not None
            new = command.result.order_id
            replacements.add(None if new == request.order_id else new)
        if outcome.replaced_by not in replacements:
            return (
                f"replaced_by={outcome.replaced_by}, the engine's modify gave "
                f"{sorted(replacements, key=str)} (None: in place)"
            )
        if outcome.replaced_by is not None:
            old = states.get(request.order_id) if request.order_id is not None else None
            new_state = states.get(outcome.replaced_by)
            if old is None or old.status is not OrderStatus.CANCELED_BY_AMEND:
                return f"the replaced order is {describe_order(old)}"
            if new_state is None or new_state.client_order_id != old.client_order_id:
                return f"the replacement is {describe_order(new_state)}"
        return None
    return f"not an outcome of the model ({type(outcome).__name__})"


async def quiesce(sim: Simulator, *, past: float, live_connections: int = 1) -> None:
    """Let the exchange finish with every frame it will ever see, then return.

    Lifts every simulator fault (stalled connections resume and read what they buffered), waits
    ``past`` seconds (longer than every command's recvWindow and the clock-skew margin, so a
    late frame would be refused from now on), and waits (bounded) until only
    ``live_connections`` WebSocket connections remain: abandoned ones have read their buffers.
    """
    sim.faults.clear()
    await trio.sleep(past)
    with trio.move_on_after(30):
        while sim.faults.connection_count > live_connections:  # noqa: ASYNC110
            await trio.sleep(0.1)
    sim.faults.clear()
    await trio.sleep(0.5)


class VirtualWallClock:
    """Epoch time that moves with trio's clock, for runs on ``MockClock``.

    Installed over ``time.time`` and ``time.time_ns``, it gives the client (command timestamps,
    recvWindow arithmetic) and the simulator (its exchange clock, the recvWindow check) one
    clock that jumps with the mock clock, as a real wall clock runs with real time. Outside a
    trio run it is the real clock.
    """

    def __init__(self, real: Callable[[], float] = time.time) -> None:
        self._real = real
        self._offset: float | None = None

    def time(self) -> float:
        try:
            now = trio.current_time()
        except RuntimeError:
            return self._real()
        if self._offset is None:
            self._offset = self._real() - now
        return self._offset + now

    def time_ns(self) -> int:
        return int(self.time() * 1_000_000) * 1000
