"""The timing boundary and its statistics.

Stats follows pytest-benchmark's small Stats class and pyperf's "unstable" warning: the median
is what speed is computed from, and a spread above 10 % of the mean is flagged rather than hidden.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from functools import cache
from math import ceil, comb, floor
from typing import TypeVar

from pydantic import BaseModel, Field

T = TypeVar("T")

UNSTABLE_RELATIVE_STDEV = 0.10


class Stats(BaseModel):
    """The timed runs as measured; every statistic is derived from them when asked, never stored
    beside them (where a copy could disagree with the runs)."""

    runs_s: list[float] = Field(min_length=1, description="timed runs, seconds, in order")
    warmup_s: list[float] = Field(default_factory=list, description="untimed warm-up runs, seconds")
    runs_j: list[float] | None = Field(
        None, description="GPU energy of each timed run, joules (NVML); None where not reported"
    )

    @classmethod
    def from_runs(
        cls,
        runs: list[float],
        warmup: list[float] | None = None,
        energy: list[float] | None = None,
    ) -> Stats:
        if not runs:
            raise ValueError("no timed runs")
        return cls(runs_s=runs, warmup_s=warmup or [], runs_j=energy)

    @property
    def median_j(self) -> float | None:
        """The median timed run's energy, joules; None where the GPU did not report it."""
        return statistics.median(self.runs_j) if self.runs_j else None

    @property
    def median(self) -> float:
        return statistics.median(self.runs_s)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.runs_s)

    @property
    def min(self) -> float:
        return min(self.runs_s)

    @property
    def max(self) -> float:
        return max(self.runs_s)

    @property
    def stdev(self) -> float:
        return statistics.stdev(self.runs_s) if len(self.runs_s) > 1 else 0.0

    @property
    def relative_stdev(self) -> float:
        return self.stdev / self.mean if self.mean else 0.0

    @property
    def unstable(self) -> bool:
        return self.relative_stdev > UNSTABLE_RELATIVE_STDEV

    def stability_warning(self) -> str | None:
        if not self.unstable:
            return None
        return (
            f"unstable timing: the standard deviation is {self.relative_stdev:.0%} of the mean "
            f"(min {self.min:.3f} s, max {self.max:.3f} s); close other workloads or raise repeats"
        )

    def describe(self) -> str:
        spread = f" ±{self.relative_stdev:.0%}" if len(self.runs_s) > 1 else ""
        return f"{len(self.runs_s)} x median {self.median:.3f} s{spread}"


class Latency(BaseModel):
    """Percentiles of per-request (or per-utterance) seconds: a sequential dataset run's
    utterances, an endpoint load run's requests."""

    p50_s: float
    p90_s: float
    p99_s: float
    max_s: float

    @classmethod
    def of(cls, times: list[float]) -> Latency:
        ordered = sorted(times)
        # statistics.quantiles needs two points; with one, every percentile is that time.
        if len(ordered) < 2:
            return cls(p50_s=ordered[0], p90_s=ordered[0], p99_s=ordered[0], max_s=ordered[0])
        cuts = statistics.quantiles(ordered, n=100, method="inclusive")
        return cls(p50_s=cuts[49], p90_s=cuts[89], p99_s=cuts[98], max_s=ordered[-1])


def rank_test_p(a: list[float], b: list[float]) -> float:
    """Two-sided p-value of the Mann-Whitney U test that `a` and `b` come from one distribution.

    Written here, as asv's _stats.py does, rather than importing scipy (tens of MB) for one
    function: the exact null distribution of U by the recurrence
    N(m, n, u) = N(m - 1, n, u - n) + N(m, n - 1, u), which is what small run counts (5 to 20 a
    side) need. Ties count half, and the tails are taken at floor/ceil of a half-integer U, so
    ties make the test more conservative, never less."""
    m, n = len(a), len(b)
    if not m or not n:
        raise ValueError("the rank test needs runs on both sides")
    u = sum((x > y) + 0.5 * (x == y) for x in a for y in b)

    @cache
    def ways(m: int, n: int, u: int) -> int:
        if u < 0 or u > m * n:
            return 0
        if m == 0 or n == 0:
            return 1 if u == 0 else 0
        return ways(m - 1, n, u - n) + ways(m, n - 1, u)

    total = comb(m + n, m)
    lower = sum(ways(m, n, k) for k in range(floor(u) + 1)) / total
    upper = sum(ways(m, n, k) for k in range(ceil(u), m * n + 1)) / total
    return min(1.0, 2 * min(lower, upper))


def time_runs(
    run: Callable[[], T],
    *,
    warmup: int,
    repeats: int,
    synchronize: Callable[[], None] | None = None,
    energy: Callable[[], float | None] | None = None,
) -> tuple[Stats, T]:
    """Call `run` warmup + repeats times; time each call end to end. Returns stats and the last output.

    `synchronize` (torch.cuda.synchronize where CUDA is in use) is called before the clock starts
    and before it stops, so queued GPU work is charged to the run that queued it. `energy` (a
    running total in joules, EnergyMeter.read) is read at the same boundary; a run where either
    reading is None leaves the energy of every run None.
    """
    sync = synchronize or (lambda: None)
    read_energy = energy or (lambda: None)
    warmup_times: list[float] = []
    timed: list[float] = []
    joules: list[float | None] = []
    output: T
    for index in range(warmup + repeats):
        sync()
        before = read_energy()
        start = time.perf_counter()
        output = run()
        sync()
        elapsed = time.perf_counter() - start
        after = read_energy()
        (warmup_times if index < warmup else timed).append(elapsed)
        if index >= warmup:
            joules.append(after - before if after is not None and before is not None else None)
    measured = [j for j in joules if j is not None]
    runs_j = measured if joules and len(measured) == len(joules) else None
    return Stats.from_runs(timed, warmup_times, runs_j), output
