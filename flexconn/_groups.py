"""Exception-group helpers: one failure never reaches a caller wrapped in an ExceptionGroup.

A nursery wraps whatever its tasks raise in a group, even a lone exception. These helpers take
the group apart where a single error stands for it; anything else keeps the group intact.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["collapsed", "leaves", "sole", "unwrapped"]


def leaves(group: BaseExceptionGroup[BaseException]) -> Iterator[BaseException]:
    """Every exception inside ``group`` and its nested groups, depth first."""
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            yield from leaves(exc)
        else:
            yield exc


def sole(group: BaseExceptionGroup[BaseException]) -> BaseException | None:
    """The one exception inside (possibly nested) single-member groups, else ``None``."""
    inner: BaseException = group
    while isinstance(inner, BaseExceptionGroup):
        if len(inner.exceptions) != 1:
            return None
        inner = inner.exceptions[0]
    return inner


@contextmanager
def unwrapped() -> Iterator[None]:
    """Re-raise a lone exception out of the ExceptionGroup a nursery wraps it in."""
    try:
        yield
    except BaseExceptionGroup as group:
        found = list(leaves(group))
        if len(found) == 1:
            raise found[0] from None
        raise


@contextmanager
def collapsed(
    *, prefer: type[BaseException], among: type[BaseException] | tuple[type[BaseException], ...]
) -> Iterator[None]:
    """Collapse a group into the one error that stands for it.

    The first ``prefer`` leaf wins; otherwise, when every leaf is an ``among``, the first one
    stands for the group. A group holding anything else is raised intact.
    """
    try:
        yield
    except BaseExceptionGroup as group:
        found = list(leaves(group))
        preferred = [leaf for leaf in found if isinstance(leaf, prefer)]
        if preferred:
            raise preferred[0] from None
        if all(isinstance(leaf, among) for leaf in found):
            raise found[0] from None
        raise
