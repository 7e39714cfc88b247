"""The session core without sockets: reply correlation, channel states, heartbeat verdicts."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from flexconn._session import (
    LOGIN,
    ChannelState,
    PongReceived,
    ReplyKey,
    ReplyKind,
    ReplySettled,
    SessionCore,
    UnsolicitedReply,
)
from flexconn.errors import ExchangeError
from flexconn.models.replies import ErrorReply, LoginReply, Pong, SubscribeReply, UnsubscribeReply
from flexconn.protocol.decode import decode

BOOK = "depthL25:BTC-USD-SWAP-LIN"
TICKER = "ticker:all"


def sub(channel: str) -> ReplyKey:
    return ReplyKey(ReplyKind.SUBSCRIBE, channel)


def unsub(channel: str) -> ReplyKey:
    return ReplyKey(ReplyKind.UNSUBSCRIBE, channel)


def acked(*channels: str) -> SubscribeReply:
    return SubscribeReply(success=True, channels=channels)


def refused(*channels: str, code: str = "20001") -> SubscribeReply:
    return SubscribeReply(success=False, channels=channels, code=code, message="no")


def connected(*channels: str) -> SessionCore:
    core = SessionCore()
    for channel in channels:
        core.want(channel)
    core.session_started(0.0)
    return core


def test_reply_keys_are_typed_values_and_print_as_the_wire_names() -> None:
    assert sub(BOOK) == ReplyKey(ReplyKind.SUBSCRIBE, BOOK)
    assert sub(BOOK) != unsub(BOOK)
    assert str(sub(BOOK)) == f"subscribe:{BOOK}"
    assert str(LOGIN) == "login"


def test_a_wanted_channel_is_requested_then_acked_and_stays_live_across_sockets() -> None:
    core = connected(BOOK)
    assert core.state_of(BOOK) is ChannelState.WANTED
    assert core.unacked() == [BOOK]
    assert core.subscribing([BOOK]) == [sub(BOOK)]
    assert core.state_of(BOOK) is ChannelState.REQUESTED
    assert core.receive_reply(acked(BOOK)) == [ReplySettled(key=sub(BOOK), error=None)]
    assert core.state_of(BOOK) is ChannelState.ACKED
    assert core.unacked() == []
    assert core.was_live(BOOK)
    core.session_lost()
    core.session_started(5.0)
    assert core.unacked() == [BOOK]  # to be resubscribed
    assert core.was_live(BOOK)  # and restarted with a marker


def test_a_refused_channel_is_forgotten_with_the_exchange_error() -> None:
    core = connected(BOOK, TICKER)
    core.subscribing([BOOK, TICKER])
    (event,) = core.receive_reply(refused(TICKER))
    assert isinstance(event, ReplySettled) and event.key == sub(TICKER)
    assert isinstance(event.error, ExchangeError) and event.error.code == "20001"
    assert core.state_of(TICKER) is None
    assert core.pending == (sub(BOOK),)


def test_a_failure_naming_no_channel_answers_the_oldest_command_of_its_kind() -> None:
    core = connected(BOOK, TICKER)
    core.expect(unsub("trade:BTC-USD"))
    core.subscribing([BOOK, TICKER])
    (event,) = core.receive_reply(refused())
    assert event == ReplySettled(key=sub(BOOK), error=event.error)  # type: ignore[union-attr]
    assert core.pending == (unsub("trade:BTC-USD"), sub(TICKER))


def test_a_bare_error_event_answers_the_oldest_command_of_any_kind() -> None:
    core = connected(BOOK)
    core.expect(LOGIN)
    core.subscribing([BOOK])
    (event,) = core.receive_reply(ErrorReply(code="20002", message="bad json"))
    assert isinstance(event, ReplySettled) and event.key == LOGIN
    assert core.pending == (sub(BOOK),)


def test_replies_nobody_waits_for_are_unsolicited() -> None:
    core = connected()
    (error,) = core.receive_reply(ErrorReply(code="20002", message="bad json"))
    assert isinstance(error, UnsolicitedReply) and error.detail == "error"
    (late,) = core.receive_reply(acked(BOOK))
    assert isinstance(late, UnsolicitedReply) and late.detail == f"subscribe:{BOOK}"
    (bare,) = core.receive_reply(refused())
    assert isinstance(bare, UnsolicitedReply) and bare.detail == "subscribe"
    order = decode(
        '{"event":"placeorder","submitted":true,"tag":"7","data":{"marketCode":"BTC-USD",'
        '"orderId":"1","clientOrderId":"5","side":"BUY","orderType":"LIMIT","quantity":"1",'
        '"price":"1","timeInForce":"GTC"}}'
    )
    (orphan,) = core.receive_reply(order)
    assert isinstance(orphan, UnsolicitedReply) and orphan.detail == "placeorder:7"


def test_login_settles_with_its_refusal_and_a_pong_is_an_event() -> None:
    core = connected()
    core.expect(LOGIN)
    (event,) = core.receive_reply(LoginReply(success=False, code="20001", message="bad"))
    assert isinstance(event, ReplySettled) and isinstance(event.error, ExchangeError)
    assert event.error.code == "20001"
    assert core.receive_reply(Pong()) == [PongReceived()]
    assert core.receive_reply(object()) == []


def test_forgetting_an_acked_channel_asks_for_an_unsubscribe_and_a_pending_one_does_not() -> None:
    core = connected(BOOK, TICKER)
    core.subscribing([BOOK, TICKER])
    core.receive_reply(acked(BOOK))
    assert core.forget(BOOK)
    assert not core.forget(TICKER)
    assert not core.was_live(BOOK)
    assert core.want(BOOK) and not core.want(BOOK)


def test_an_abandoned_command_no_longer_waits() -> None:
    core = connected(BOOK)
    core.subscribing([BOOK])
    assert core.abandon(sub(BOOK)) and not core.abandon(sub(BOOK))
    assert core.state_of(BOOK) is ChannelState.WANTED
    (late,) = core.receive_reply(UnsubscribeReply(success=True, channels=(BOOK,)))
    assert isinstance(late, UnsolicitedReply)


def test_the_heartbeat_forgives_traffic_after_the_ping_and_a_blocked_reader() -> None:
    core = connected()
    assert not core.ping_unanswered(delivering=False)  # no ping yet
    core.ping_sent(10.0)
    assert core.ping_unanswered(delivering=False)
    assert not core.ping_unanswered(delivering=True)
    core.frame_received(10.5)
    assert not core.ping_unanswered(delivering=False)
    core.ping_sent(20.0)
    assert core.ping_unanswered(delivering=False)
    core.session_started(30.0)
    assert not core.ping_unanswered(delivering=False)


_CHANNELS = [f"depthL25:M{i}" for i in range(5)]

_replies = st.lists(
    st.one_of(
        st.tuples(st.just("ack"), st.sampled_from(_CHANNELS)),
        st.tuples(st.just("refuse"), st.sampled_from(_CHANNELS)),
        st.tuples(st.just("bare"), st.none()),
        st.tuples(st.just("error"), st.none()),
    ),
    max_size=20,
)


@given(
    wanted=st.lists(st.sampled_from(_CHANNELS), min_size=1, unique=True),
    replies=_replies,
    lost=st.booleans(),
)
def test_any_interleaving_of_acks_and_failures_settles_every_waiter_exactly_once(
    wanted: list[str], replies: list[tuple[str, str | None]], lost: bool
) -> None:
    core = connected(*wanted)
    keys = core.subscribing(wanted)
    settled: list[ReplyKey] = []
    for what, channel in replies:
        if what == "ack":
            message: object = acked(channel or "")
        elif what == "refuse":
            message = refused(channel or "")
        elif what == "bare":
            message = refused()
        else:
            message = ErrorReply(code="20002", message="?")
        for event in core.receive_reply(message):
            assert isinstance(event, ReplySettled | UnsolicitedReply)
            if isinstance(event, ReplySettled):
                settled.append(event.key)
                assert event.key.channel is not None
                state = core.state_of(event.key.channel)
                assert state is (ChannelState.ACKED if event.error is None else None)
    assert len(settled) == len(set(settled))  # never twice
    assert set(settled) <= set(keys)
    remaining = core.session_lost() if lost else list(core.pending)
    assert sorted(map(str, settled + remaining)) == sorted(map(str, keys))  # each exactly once
    if lost:
        assert core.pending == ()
        assert all(core.state_of(c) is not ChannelState.REQUESTED for c in wanted)
    acknowledged = {k.channel for k in settled if core.state_of(k.channel or "")}
    assert {c for c in wanted if core.was_live(c)} == acknowledged
