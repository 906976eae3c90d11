"""One load run: the chosen scenarios against one target, each a LoadResult.

Scenarios run in a fixed order, so later ones can start from what earlier ones found: the
server scenario's default rate is half the offline throughput, the capacity search starts at
the offline throughput (the most the endpoint took when nothing waited). A local target's
server RSS is read before and after each scenario; the client's fingerprint goes with every
result.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from transcription_benchmarks.errors import InvalidOptionError
from transcription_benchmarks.load import scenarios as sc
from transcription_benchmarks.load.capacity import cost, search_capacity
from transcription_benchmarks.load.result import (
    SCENARIOS,
    BadInputAnswer,
    Capacity,
    LoadFigures,
    LoadResult,
    RequestRecord,
    Scenario,
)
from transcription_benchmarks.load.servers import server_memory
from transcription_benchmarks.load.targets import LoadTarget
from transcription_benchmarks.measure.environment import fingerprint
from transcription_benchmarks.quality.metrics import error_rates
from transcription_benchmarks.report.prices import PriceTable

ORDER: tuple[Scenario, ...] = ("bad-input", "single-stream", "offline", "server", "capacity")


class Pricing:
    """Where capacity is priced: an instance type in a region of a price table, and the daily
    volume to size for."""

    def __init__(
        self,
        prices: PriceTable,
        instance_type: str,
        region: str,
        daily_audio_hours: float | None = None,
        peak_to_average: float = 1.0,
    ) -> None:
        if prices.hourly(instance_type, region) is None:
            known = ", ".join(sorted(prices.regions.get(region, {}))) or "none"
            raise InvalidOptionError(
                f"the price table (as of {prices.as_of}) has no price for {instance_type} in "
                f"{region}; it knows: {known}"
            )
        if peak_to_average < 1:
            raise InvalidOptionError(f"peak_to_average must be >= 1, got {peak_to_average}")
        self.prices = prices
        self.instance_type = instance_type
        self.region = region
        self.daily_audio_hours = daily_audio_hours
        self.peak_to_average = peak_to_average


def _rss(target: LoadTarget) -> tuple[float | None, dict[str, float]]:
    if not target.info.local:
        return None, {}
    memory = server_memory(target.info.location)
    return (memory.rss_mb, memory.by_name) if memory else (None, {})


def probe_bad_input(
    target: LoadTarget, check: sc.Clip, max_wer: float
) -> tuple[list[BadInputAnswer], bool]:
    """Each bad request the target's protocol allows, and its answer; then whether a good
    request (`check`) is still answered correctly (within `max_wer`)."""
    answers = []
    for label, send in target.bad_requests().items():
        answer = send()
        answers.append(BadInputAnswer(label=label, status=answer.status, message=answer.error))
    after = target.transcribe(check.audio, check.name)
    still = after.ok and error_rates(after.text or "", check.reference).wer <= max_wer
    answers.append(
        BadInputAnswer(label=f"{check.name} after them", status=after.status, message=after.error)
    )
    return answers, still


def _capacity(
    target: LoadTarget,
    clips: Sequence[sc.Clip],
    settings: sc.LoadSettings,
    start_rps: float,
    pricing: Pricing | None,
) -> tuple[list[RequestRecord], list[str], Capacity]:
    """The capacity search: server trials of settings.trial_s each, every request kept."""
    records: list[RequestRecord] = []
    warnings: list[str] = []
    durations = {clip.name: clip.duration_s for clip in clips}

    def run_at(rate: float, trial: int) -> LoadFigures:
        got, said = sc.server(
            target, clips, settings, rate, duration_s=settings.trial_s, trial=trial
        )
        records.extend(got)
        warnings.extend(f"trial {trial} ({rate:.3g} rps): {w}" for w in said)
        return LoadFigures.of(got, durations, rate_rps=rate, bound_s=settings.bound_s)

    capacity = search_capacity(
        run_at,
        start_rps=start_rps,
        bound_s=settings.bound_s,
        max_trials=settings.max_trials,
        tolerance=settings.tolerance,
    )
    if capacity.sustained_rps is not None:
        # The offered audio rate that held: what one instance carries around the clock.
        mean_clip_s = sum(clip.duration_s for clip in clips) / len(clips)
        capacity.audio_s_per_s = capacity.sustained_rps * mean_clip_s
        if pricing is not None:
            capacity.cost = cost(
                capacity.audio_s_per_s,
                pricing.prices,
                pricing.instance_type,
                pricing.region,
                daily_audio_hours=pricing.daily_audio_hours,
                peak_to_average=pricing.peak_to_average,
            )
    if not capacity.converged:
        warnings.append(
            f"the search did not converge in {settings.max_trials} trials: the sustained rate "
            "is the highest that held, not within the tolerance"
        )
    return records, warnings, capacity


def run_load(
    target: LoadTarget,
    clips: Sequence[sc.Clip],
    scenarios: Sequence[Scenario] = ("single-stream", "offline", "server"),
    settings: sc.LoadSettings | None = None,
    *,
    pricing: Pricing | None = None,
    on_result: Callable[[LoadResult], None] | None = None,
) -> list[LoadResult]:
    """Run `scenarios` (in ORDER) against `target`; `on_result` sees each result as soon as it
    is made (the CLI appends it to the results file: a later failure loses nothing)."""
    settings = settings or sc.LoadSettings()
    unknown = [s for s in scenarios if s not in SCENARIOS]
    if unknown or not scenarios:
        raise InvalidOptionError(
            f"unknown scenario(s) {unknown or '(none given)'}; choose from {', '.join(SCENARIOS)}"
        )
    if not clips:
        raise InvalidOptionError("a load run needs at least one audio file")
    environment = fingerprint()
    for _ in range(settings.warmup):  # first-request costs (lazy loads, caches) are not load
        target.transcribe(clips[0].audio, clips[0].name)
    results: list[LoadResult] = []
    offline_rps: float | None = None
    for scenario in [s for s in ORDER if s in scenarios]:
        before, _ = _rss(target)
        warnings: list[str] = []
        records: list[RequestRecord] = []
        extra: dict = {}
        run_settings = settings.model_dump()
        if scenario == "bad-input":
            answers, still = probe_bad_input(target, clips[0], settings.max_wer)
            extra = {"bad_input": answers, "still_serving": still}
        elif scenario == "single-stream":
            records = sc.single_stream(target, clips, settings)
        elif scenario == "offline":
            records, warnings = sc.offline(target, clips, settings)
        elif scenario == "server":
            rate = settings.rate_rps or (offline_rps / 2 if offline_rps else None)
            if rate is None:
                raise InvalidOptionError(
                    "the server scenario needs a rate: --rate, or the offline scenario in the "
                    "same run (its throughput halved)"
                )
            run_settings["rate_rps"] = rate
            records, warnings = sc.server(target, clips, settings, rate)
        else:  # capacity
            start = settings.start_rps or offline_rps
            if start is None:
                raise InvalidOptionError(
                    "the capacity search needs a start rate: --start-rps, or the offline "
                    "scenario in the same run"
                )
            run_settings["start_rps"] = start
            records, warnings, capacity = _capacity(target, clips, settings, start, pricing)
            extra = {"capacity": capacity}
        after, by_name = _rss(target)
        result = LoadResult(
            target=target.info,
            scenario=scenario,
            settings=run_settings,
            clips=[clip.info for clip in clips],
            requests=records,
            server_rss_before_mb=before,
            server_rss_after_mb=after,
            server_processes=by_name,
            environment=environment,
            warnings=warnings,
            **extra,
        )
        if scenario == "offline" and result.figures is not None:
            offline_rps = result.figures.throughput_rps or None
        results.append(result)
        if on_result is not None:
            on_result(result)
    return results
