"""Helpers shared by the chaos tests: task and channel leak checks."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from typing import Any

import trio

from flexconn.feeds import Feed


def all_tasks() -> set[trio.lowlevel.Task]:
    """Every task in the run, from the root down."""
    found: set[trio.lowlevel.Task] = set()
    stack = [trio.lowlevel.current_root_task()]
    while stack:
        task = stack.pop()
        if task is None:
            continue
        found.add(task)
        for nursery in task.child_nurseries:
            stack.extend(nursery.child_tasks)
    return found


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
