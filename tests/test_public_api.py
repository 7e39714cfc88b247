"""The public surface is exactly ``__all__``, and every name in it resolves."""

from __future__ import annotations

import flexconn


def test_every_exported_name_exists() -> None:
    missing = [name for name in flexconn.__all__ if not hasattr(flexconn, name)]
    assert missing == []


def test_all_is_sorted_and_unique() -> None:
    assert len(set(flexconn.__all__)) == len(flexconn.__all__)
    assert list(flexconn.__all__) == sorted(flexconn.__all__, key=lambda n: (n[0].islower(), n))


def test_core_entry_points_are_public() -> None:
    for name in ("open_connection", "connect", "RestClient", "Credentials", "channels"):
        assert name in flexconn.__all__
    assert issubclass(flexconn.AuthenticationError, flexconn.FlexconnError)
