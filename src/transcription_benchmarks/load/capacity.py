"""Capacity: the highest Poisson arrival rate an endpoint holds within a p99 bound, and what
that costs.

The search is bounded (`max_trials` server runs of `trial_s` each). From a start rate it
doubles while the bound holds and halves while it does not, until it has a rate that held
and one that failed; then it bisects between them until they are within `tolerance` of each
other. The answer is the highest rate that held (a lower bound on the true capacity: Poisson
noise can fail a rate near it), with every trial kept.

Written here rather than taken from a library: MLPerf's LoadGen finds a Server rate by the
same kind of bounded search in C++, and what matters is that each trial is an ordinary server
scenario whose requests are all recorded.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from transcription_benchmarks.load.result import Capacity, CapacityTrial, Cost, LoadFigures
from transcription_benchmarks.report.prices import PriceTable


def search_capacity(
    run_at: Callable[[float, int], LoadFigures],
    *,
    start_rps: float,
    bound_s: float,
    max_trials: int,
    tolerance: float,
) -> Capacity:
    """Call `run_at(rate, trial)` for at most `max_trials` rates; the capacity names the trial
    whose rate is the sustained one (None when no rate held)."""
    held_rate, failed_rate = 0.0, math.inf
    best: int | None = None
    trials: list[CapacityTrial] = []
    rate = start_rps
    converged = False
    for trial in range(max_trials):
        result = run_at(rate, trial)
        held = bool(result.bound_held)
        trials.append(
            CapacityTrial(
                rate_rps=rate,
                held=held,
                requests=result.requests,
                p99_s=result.latency.p99_s if result.latency else None,
                errors=result.errors,
            )
        )
        if held and rate > held_rate:
            held_rate, best = rate, trial
        if not held:
            failed_rate = min(failed_rate, rate)
        if held_rate > 0 and failed_rate < math.inf:
            if (failed_rate - held_rate) / failed_rate <= tolerance:
                converged = True
                break
            rate = (held_rate + failed_rate) / 2
        elif failed_rate < math.inf:
            rate = failed_rate / 2
        else:
            rate = held_rate * 2
    return Capacity(
        bound_s=bound_s,
        sustained_rps=held_rate or None,
        sustained_trial=best,
        converged=converged,
        lowest_failed_rps=failed_rate if failed_rate < math.inf else None,
        trials=trials,
    )


def cost(
    audio_s_per_s: float,
    prices: PriceTable,
    instance_type: str,
    region: str,
    *,
    daily_audio_hours: float | None = None,
    peak_to_average: float = 1.0,
) -> Cost | None:
    """What audio costs on `instance_type` at the sustained rate (None when the table has no
    price for it). An instance at capacity transcribes `audio_s_per_s` audio hours per hour.
    For a daily volume, the instances needed to carry its peak (the average rate times
    `peak_to_average`) and the cost per audio hour once their idle time is paid for too."""
    hourly = prices.hourly(instance_type, region)
    if hourly is None or audio_s_per_s <= 0:
        return None
    out = Cost(
        instance_type=instance_type,
        region=region,
        hourly=hourly,
        currency=prices.currency,
        prices_as_of=prices.as_of,
        per_audio_hour=hourly / audio_s_per_s,
        peak_to_average=peak_to_average,
    )
    if daily_audio_hours is not None and daily_audio_hours > 0:
        peak_audio_s_per_s = daily_audio_hours / 24 * peak_to_average
        instances = max(1, math.ceil(peak_audio_s_per_s / audio_s_per_s))
        daily = instances * hourly * 24
        out = out.model_copy(
            update={
                "daily_audio_hours": daily_audio_hours,
                "instances": instances,
                "daily_cost": daily,
                "per_audio_hour_at_volume": daily / daily_audio_hours,
            }
        )
    return out
