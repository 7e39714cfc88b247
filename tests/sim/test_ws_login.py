"""Login: the documented success and failure replies and every login error code."""

from __future__ import annotations

import time

import pytest
from conftest import Client, connect, login_request

from flexconn.sim import ApiKey, Simulator


def _now_ms() -> int:
    return int(time.time() * 1000)


async def test_login_success_reply_has_the_documented_shape(sim: Simulator, client: Client) -> None:
    await client.send(login_request(sim.demo_key, tag=1))
    reply = await client.recv()
    assert list(reply) == ["event", "success", "tag", "timestamp"]
    assert reply["event"] == "login"
    assert reply["success"] is True
    assert reply["tag"] == "1"
    assert isinstance(reply["timestamp"], str) and reply["timestamp"].isdigit()


async def test_string_tag_is_echoed_and_a_missing_tag_is_omitted(sim: Simulator) -> None:
    async with connect(sim) as first:
        await first.send(login_request(sim.demo_key, tag="abc"))
        assert (await first.recv())["tag"] == "abc"
    async with connect(sim) as second:
        await second.send(login_request(sim.demo_key, tag=None))
        reply = await second.recv()
        assert reply["success"] is True
        assert "tag" not in reply


def _failure(reply: dict[str, object], code: str, message: str) -> None:
    assert list(reply) == ["event", "success", "code", "message", "tag", "timestamp"]
    assert reply["event"] == "login"
    assert reply["success"] is False
    assert reply["code"] == code
    assert reply["message"] == message
    assert reply["tag"] == "7"


async def test_second_login_is_refused_with_20005(sim: Simulator, trader: Client) -> None:
    await trader.send(login_request(sim.demo_key, tag=7))
    _failure(await trader.recv(), "20005", "Already logged in")


async def test_unknown_api_key_is_20025(client: Client) -> None:
    stranger = ApiKey(api_key="nope", api_secret="secret", account_id="x")
    await client.send(login_request(stranger, tag=7))
    _failure(await client.recv(), "20025", "API key is invalid")


async def test_wrong_signature_is_20000(sim: Simulator, client: Client) -> None:
    request = login_request(sim.demo_key, tag=7)
    request["data"]["signature"] = "AAAA" + request["data"]["signature"][4:]
    await client.send(request)
    _failure(await client.recv(), "20000", "Signature is invalid")


async def test_secret_of_another_key_is_20000(sim: Simulator, client: Client) -> None:
    forged = ApiKey(
        api_key=sim.demo_key.api_key, api_secret=sim.read_only_key.api_secret, account_id="1001"
    )
    await client.send(login_request(forged, tag=7))
    _failure(await client.recv(), "20000", "Signature is invalid")


async def test_missing_timestamp_is_20023(sim: Simulator, client: Client) -> None:
    request = login_request(sim.demo_key, tag=7)
    del request["data"]["timestamp"]
    await client.send(request)
    _failure(await client.recv(), "20023", "timestamp is required")


@pytest.mark.parametrize("offset_ms", [-31_000, 31_000])
async def test_timestamp_outside_the_window_is_20024(
    sim: Simulator, client: Client, offset_ms: int
) -> None:
    await client.send(login_request(sim.demo_key, tag=7, timestamp_ms=_now_ms() + offset_ms))
    _failure(await client.recv(), "20024", "timestamp exceeds the threshold")


async def test_timestamp_inside_the_window_is_accepted(sim: Simulator, client: Client) -> None:
    await client.send(login_request(sim.demo_key, timestamp_ms=_now_ms() - 25_000))
    assert (await client.recv())["success"] is True


async def test_tag_longer_than_32_is_20034(sim: Simulator, client: Client) -> None:
    await client.send(login_request(sim.demo_key, tag="x" * 33))
    reply = await client.recv()
    assert reply["code"] == "20034"
    assert reply["message"] == "The size of tag must be less than 32"
    assert reply["tag"] == "x" * 33


async def test_tag_of_exactly_32_is_accepted(sim: Simulator, client: Client) -> None:
    await client.send(login_request(sim.demo_key, tag="y" * 32))
    reply = await client.recv()
    assert reply["success"] is True
    assert reply["tag"] == "y" * 32


async def test_injected_login_failure_is_reported_then_login_works(
    sim: Simulator, client: Client
) -> None:
    sim.faults.fail_next("login", "20001")
    await client.send(login_request(sim.demo_key, tag=7))
    _failure(await client.recv(), "20001", "Operation failed, please contact system administrator")
    async with connect(sim) as again:
        await again.login(sim.demo_key)
