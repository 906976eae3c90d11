"""The Pareto front: the items no other item beats on one objective while being at least as
good on all the others. Hand-written: a few objectives over a few dozen points need no library."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

Item = TypeVar("Item")


def non_dominated(
    items: Sequence[Item], objectives: Callable[[Item], tuple[float, ...]]
) -> list[Item]:
    """The items on the front, in the order given; every objective is minimised (negate one
    to maximise it)."""
    scored = [(item, objectives(item)) for item in items]
    return [
        item
        for item, mine in scored
        if not any(
            all(a <= b for a, b in zip(theirs, mine, strict=True)) and theirs != mine
            for _, theirs in scored
        )
    ]
