"""Signing tests: every expected value is computed here by hand with hmac/hashlib/base64."""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import pickle

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from flexconn.auth import (
    Credentials,
    NonceGenerator,
    RestSigner,
    format_rest_timestamp,
    parse_rest_timestamp,
    rest_headers,
    rest_message,
    rest_signature,
    ws_login_data,
    ws_login_signature,
)
from flexconn.sim.signatures import verify_rest_signature, verify_ws_login

SECRET = "s3cr3t-DO-NOT-SHOW"
CREDS = Credentials("key-123", SECRET)


def by_hand(secret: str, message: str) -> str:
    mac = hmac.new(secret.encode(), message.encode(), hashlib.sha256)
    return base64.b64encode(mac.digest()).decode()


# --- Credentials ------------------------------------------------------------------------------


def test_secret_never_shown() -> None:
    for text in (repr(CREDS), str(CREDS), f"{CREDS}", f"{CREDS!r}", format(CREDS, "")):
        assert SECRET not in text
        assert "key-123" in text
    signer = RestSigner(CREDS)
    assert SECRET not in repr(signer)
    assert SECRET not in f"{signer}"


def test_secret_not_in_exceptions() -> None:
    with pytest.raises(ValueError) as info:
        Credentials("", SECRET)
    assert SECRET not in str(info.value)
    assert SECRET not in repr(info.value)
    with pytest.raises(ValueError) as info:
        Credentials(SECRET, "")
    assert str(info.value) == "api_secret must be a non-empty string"
    with pytest.raises(attrs.exceptions.FrozenInstanceError) as frozen:
        CREDS.api_secret = "x"  # type: ignore[misc]
    assert SECRET not in str(frozen.value)


def test_secret_not_in_exception_notes_of_container() -> None:
    # A credentials object inside an error's args renders via repr, which hides the secret.
    err = RuntimeError("failed with", CREDS)
    assert SECRET not in str(err)
    assert SECRET not in repr(err)


def test_credentials_equality_and_pickle_round_trip() -> None:
    assert Credentials("key-123", SECRET) == CREDS
    assert Credentials("key-123", "other") != CREDS
    assert pickle.loads(pickle.dumps(CREDS)) == CREDS


# --- WebSocket login --------------------------------------------------------------------------


def test_ws_login_signature_matches_hand_computation() -> None:
    expected = by_hand(SECRET, "1592491803978GET/auth/self/verify")
    assert ws_login_signature(SECRET, 1592491803978) == expected
    assert ws_login_signature(SECRET, "1592491803978") == expected


def test_ws_login_data_fields() -> None:
    data = ws_login_data(CREDS, timestamp_ms=1592491803978)
    assert data == {
        "apiKey": "key-123",
        "timestamp": "1592491803978",
        "signature": by_hand(SECRET, "1592491803978GET/auth/self/verify"),
    }


def test_ws_login_data_uses_clock_in_ms() -> None:
    data = ws_login_data(CREDS, clock=lambda: 1592491803.9789)
    assert data["timestamp"] == "1592491803978"
    assert data["signature"] == by_hand(SECRET, "1592491803978GET/auth/self/verify")


def test_verify_ws_login() -> None:
    sig = by_hand(SECRET, "1700000000000GET/auth/self/verify")
    assert verify_ws_login(SECRET, "1700000000000", sig)
    assert not verify_ws_login(SECRET, "1700000000001", sig)
    assert not verify_ws_login("other", "1700000000000", sig)
    assert not verify_ws_login(SECRET, "1700000000000", "")


# --- REST -------------------------------------------------------------------------------------


def test_rest_timestamp_format_is_utc_seconds() -> None:
    assert format_rest_timestamp(1588260030.999) == "2020-04-30T15:20:30"
    assert parse_rest_timestamp("2020-04-30T15:20:30") == 1588260030.0
    assert parse_rest_timestamp("2020-04-30T15:20:30.250000") == pytest.approx(1588260030.25)
    for bad in ("2020-04-30 15:20:30", "1588260030", "2020-04-30T15:20:30.x", ""):
        with pytest.raises(ValueError):
            parse_rest_timestamp(bad)


def test_rest_message_layout_for_get_with_query() -> None:
    msg = rest_message(
        timestamp="2020-04-30T15:20:30",
        nonce=123,
        verb="get",
        host="v2stgapi.coinflex.com",
        path="/v2/positions",
        body="instrumentID=BTC-USD-SWAP-LIN",
    )
    assert msg == (
        "2020-04-30T15:20:30\n123\nGET\nv2stgapi.coinflex.com\n/v2/positions\n"
        "instrumentID=BTC-USD-SWAP-LIN"
    )


def test_rest_signature_without_body_ends_with_newline() -> None:
    expected = by_hand(SECRET, "2020-04-30T15:20:30\n123\nGET\nv2stgapi.coinflex.com\n/v2/orders\n")
    got = rest_signature(
        SECRET,
        timestamp="2020-04-30T15:20:30",
        nonce="123",
        verb="GET",
        host="v2stgapi.coinflex.com",
        path="/v2/orders",
    )
    assert got == expected


def test_rest_headers_for_post_body() -> None:
    body = '{"instrumentId":"BTC-USD-SWAP-LIN","qtyDeliver":"0.1"}'
    headers = rest_headers(
        CREDS,
        timestamp="2021-03-10T01:02:03",
        nonce=7,
        verb="POST",
        host="127.0.0.1:8080",
        path="/v2.1/delivery/orders",
        body=body,
    )
    message = f"2021-03-10T01:02:03\n7\nPOST\n127.0.0.1:8080\n/v2.1/delivery/orders\n{body}"
    assert headers == {
        "Content-Type": "application/json",
        "AccessKey": "key-123",
        "Timestamp": "2021-03-10T01:02:03",
        "Signature": by_hand(SECRET, message),
        "Nonce": "7",
    }
    assert SECRET not in repr(headers)


def test_verify_rest_signature_accepts_only_the_signed_request() -> None:
    fields = {
        "timestamp": "2021-03-10T01:02:03",
        "nonce": "9",
        "verb": "DELETE",
        "host": "h",
        "path": "/v2/cancel/orders",
        "body": "{}",
    }
    sig = by_hand(SECRET, "2021-03-10T01:02:03\n9\nDELETE\nh\n/v2/cancel/orders\n{}")
    assert verify_rest_signature(SECRET, sig, **fields)
    for key, other in [("nonce", "10"), ("path", "/v2/cancel/orders/BTC-USD"), ("body", "")]:
        assert not verify_rest_signature(SECRET, sig, **{**fields, key: other})
    assert not verify_rest_signature("wrong", sig, **fields)


@given(
    secret=st.text(min_size=1),
    nonce=st.integers(min_value=0),
    path=st.text(),
    body=st.text(),
)
def test_rest_signature_invariant(secret: str, nonce: int, path: str, body: str) -> None:
    sig = rest_signature(
        secret,
        timestamp="2021-01-01T00:00:00",
        nonce=nonce,
        verb="post",
        host="x",
        path=path,
        body=body,
    )
    expected = by_hand(secret, f"2021-01-01T00:00:00\n{nonce}\nPOST\nx\n{path}\n{body}")
    assert sig == expected
    assert verify_rest_signature(
        secret,
        sig,
        timestamp="2021-01-01T00:00:00",
        nonce=str(nonce),
        verb="POST",
        host="x",
        path=path,
        body=body,
    )


# --- nonces and the signer --------------------------------------------------------------------


def test_nonce_strictly_increasing_even_when_clock_stalls_or_goes_back() -> None:
    times = iter([1000.0, 1000.0, 1000.0, 999.0, 1000.5, 1000.5])
    gen = NonceGenerator(clock=lambda: next(times))
    assert [gen() for _ in range(6)] == [
        1_000_000,
        1_000_001,
        1_000_002,
        1_000_003,
        1_000_500,
        1_000_501,
    ]


@given(st.lists(st.floats(min_value=0, max_value=4e9), min_size=1, max_size=50))
def test_nonce_monotonic_for_any_clock(times: list[float]) -> None:
    it = iter(times)
    gen = NonceGenerator(clock=lambda: next(it))
    values = [gen() for _ in times]
    assert all(b > a for a, b in itertools.pairwise(values))


def test_signer_headers() -> None:
    signer = RestSigner(CREDS, clock=lambda: 1588260030.5, nonces=iter([41, 42]).__next__)
    first = signer.headers("GET", "v2stgapi.coinflex.com", "/v2/trades/BTC-USD", "limit=3")
    assert first["Timestamp"] == "2020-04-30T15:20:30"
    assert first["Nonce"] == "41"
    assert first["Signature"] == by_hand(
        SECRET, "2020-04-30T15:20:30\n41\nGET\nv2stgapi.coinflex.com\n/v2/trades/BTC-USD\nlimit=3"
    )
    assert signer.headers("GET", "h", "/p")["Nonce"] == "42"
