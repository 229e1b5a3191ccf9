"""Reads made once per batch (the data-exchange API checks 1,000 filings a call): inside `batch_reads()`, a check
function's read of something that cannot change during the batch — the forbidden words of a province, say — is
made on first use and kept until the block ends. Outside such a block every read goes to the database as usual.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

T = TypeVar("T")
_MEMO: ContextVar[dict[Hashable, Any] | None] = ContextVar("batch_reads", default=None)


@contextmanager
def batch_reads() -> Iterator[None]:
    token = _MEMO.set({})
    try:
        yield
    finally:
        _MEMO.reset(token)


def memoised(key: Hashable, load: Callable[[], T]) -> T:
    """`load()`, made once per batch for this key (every time outside a batch)."""
    memo = _MEMO.get()
    if memo is None:
        return load()
    if key not in memo:
        memo[key] = load()
    return memo[key]
