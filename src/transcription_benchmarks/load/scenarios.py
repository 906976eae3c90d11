"""The scenarios of MLPerf Inference's LoadGen, against an endpoint, every request accounted for.

- single stream: one request at a time, the next sent when the last is answered; its latency
  distribution is what one user waits.
- offline: every request issued at once (up to `concurrency` in flight); throughput from the
  first issue to the last answer.
- server: Poisson arrivals at a target rate for a bounded time; latency counts from each
  request's arrival, so a request that waits in any queue (the server's or the client's) waits
  on the clock. The run holds its bound when p99 is within it and no request failed, came back
  wrong or went unanswered (MLPerf's Server validity, plus correctness).

Every answer is scored against the clip's reference (WER after the project's normaliser): an
answer further than `max_wer` is "wrong" and does not count as throughput. A request that gets
an error or no answer is "failed"; one still outstanding when the drain time ends is
"unanswered". All are bounded: in count (`requests`), in time (`duration_s` for issuing,
`drain_s` for answers) and per request (the client's timeout).
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from transcription_benchmarks.audio import find_test_audio, probe_audio, reference_for
from transcription_benchmarks.errors import InvalidOptionError
from transcription_benchmarks.load.result import ClipInfo, Outcome, RequestRecord
from transcription_benchmarks.load.targets import Answer, LoadTarget
from transcription_benchmarks.quality.metrics import error_rates

LATE_SEND_S = 0.05
"""A request sent this long after it was due means the client, not the server, fell behind."""


class LoadSettings(BaseModel):
    """How hard and how long a load run pushes; every scenario is bounded by these."""

    model_config = ConfigDict(extra="forbid")

    requests: int = Field(20, ge=1, le=10_000, description="single stream and offline: how many")
    concurrency: int | None = Field(
        None, ge=1, le=256, description="offline: most in flight (default: all at once)"
    )
    rate_rps: float | None = Field(
        None,
        gt=0,
        le=1000,
        description="server: arrivals per second (default: half the "
        "offline throughput measured in the same run)",
    )
    duration_s: float = Field(30.0, gt=0, le=3600, description="server: seconds of arrivals")
    max_in_flight: int = Field(64, ge=1, le=512, description="server: client threads")
    bound_s: float = Field(5.0, gt=0, description="the p99 latency bound (server, capacity)")
    max_wer: float = Field(0.2, ge=0, description="an answer further than this is wrong")
    seed: int = Field(0, description="the Poisson arrivals' random seed")
    timeout_s: float = Field(120.0, gt=0, description="the client's wait for one answer")
    drain_s: float | None = Field(
        None, gt=0, description="after issuing stops, the wait for answers (default: timeout_s)"
    )
    warmup: int = Field(1, ge=0, le=100, description="untimed requests before each target")
    trial_s: float = Field(20.0, gt=0, le=600, description="capacity: each trial's arrivals")
    max_trials: int = Field(6, ge=1, le=20, description="capacity: at most this many rates")
    tolerance: float = Field(
        0.15, gt=0, lt=1, description="capacity: stop when (failed - held) / failed is within"
    )
    start_rps: float | None = Field(
        None, gt=0, description="capacity: the first rate tried (default: offline throughput)"
    )

    @property
    def drain(self) -> float:
        return self.drain_s if self.drain_s is not None else self.timeout_s


@dataclass(frozen=True)
class Clip:
    """One audio file sent as it is on disk, with the reference its answers are scored by."""

    name: str
    audio: bytes
    duration_s: float
    reference: str

    @classmethod
    def of(cls, name: str | Path) -> Clip:
        path = find_test_audio(name)
        info = probe_audio(path)  # a file that does not decode is refused before any load
        reference = reference_for(path)
        if reference is None or not reference.text:
            raise InvalidOptionError(
                f"{path.name} has no reference transcript: every answer of a load run is "
                "checked against one (a catalogued test file, or <stem>.txt beside the audio)"
            )
        return cls(path.name, path.read_bytes(), info.duration_s, reference.text)

    @property
    def info(self) -> ClipInfo:
        return ClipInfo(
            name=self.name,
            duration_s=self.duration_s,
            bytes=len(self.audio),
            reference_words=len(self.reference.split()),
        )


def _record(
    clip: Clip,
    answer: Answer | None,
    *,
    due: float,
    sent: float | None,
    done: float | None,
    max_wer: float,
    trial: int | None,
) -> RequestRecord:
    if answer is None:
        return RequestRecord(
            clip=clip.name, trial=trial, due_s=due, sent_s=sent, status=0, outcome="unanswered",
            error="no answer before the drain time ended",
        )  # fmt: skip
    latency = done - due if done is not None else None
    if not answer.ok:
        return RequestRecord(
            clip=clip.name, trial=trial, due_s=due, sent_s=sent, latency_s=latency,
            status=answer.status, outcome="failed", error=answer.error,
        )  # fmt: skip
    wer = error_rates(answer.text or "", clip.reference).wer
    outcome: Outcome = "ok" if wer <= max_wer else "wrong"
    error = None if outcome == "ok" else f"WER {wer:.1%} > {max_wer:.0%}: {answer.text!r}"[:300]
    return RequestRecord(
        clip=clip.name, trial=trial, due_s=due, sent_s=sent, latency_s=latency,
        status=answer.status, outcome=outcome, wer=wer, error=error,
    )  # fmt: skip


def single_stream(
    target: LoadTarget, clips: Sequence[Clip], settings: LoadSettings
) -> list[RequestRecord]:
    """`settings.requests` requests, one at a time, cycling through the clips."""
    records = []
    start = time.perf_counter()
    for index in range(settings.requests):
        clip = clips[index % len(clips)]
        sent = time.perf_counter() - start
        answer = target.transcribe(clip.audio, clip.name)
        done = time.perf_counter() - start
        records.append(
            _record(clip, answer, due=sent, sent=sent, done=done, max_wer=settings.max_wer,
                    trial=None)
        )  # fmt: skip
    return records


def poisson_arrivals(rate_rps: float, duration_s: float, seed: int) -> list[float]:
    """Arrival times (seconds from the start) of a Poisson process at `rate_rps`, cut at
    `duration_s`; at least one, so a slow rate still sends a request."""
    rng = random.Random(seed)
    arrivals, t = [], 0.0
    while True:
        t += rng.expovariate(rate_rps)
        if t > duration_s:
            break
        arrivals.append(t)
    return arrivals or [0.0]


def open_loop(
    target: LoadTarget,
    clips: Sequence[Clip],
    due: Sequence[float],
    *,
    in_flight: int,
    settings: LoadSettings,
    trial: int | None = None,
) -> tuple[list[RequestRecord], list[str]]:
    """Issue request i at `due[i]` seconds (cycling through the clips) whatever came back
    before, at most `in_flight` at once; wait `settings.drain` for the last answers. Returns
    the records, in issue order, and warnings (a client that fell behind its schedule)."""
    start = time.perf_counter()

    def send(clip: Clip) -> tuple[float, Answer, float]:
        sent = time.perf_counter() - start
        answer = target.transcribe(clip.audio, clip.name)
        return sent, answer, time.perf_counter() - start

    pool = ThreadPoolExecutor(max_workers=in_flight, thread_name_prefix="load")
    futures = []
    try:
        for index, at in enumerate(due):
            if (delay := at - (time.perf_counter() - start)) > 0:
                time.sleep(delay)
            futures.append(pool.submit(send, clips[index % len(clips)]))
        wait(futures, timeout=settings.drain)
    finally:
        # Outstanding requests are recorded as unanswered below; their threads end with the
        # client's own timeout.
        pool.shutdown(wait=False, cancel_futures=True)
    records, late = [], 0
    for index, (at, future) in enumerate(zip(due, futures, strict=True)):
        clip = clips[index % len(clips)]
        if future.done() and not future.cancelled():
            sent, answer, done = future.result()
            late += sent - at > LATE_SEND_S
            records.append(
                _record(clip, answer, due=at, sent=sent, done=done,
                        max_wer=settings.max_wer, trial=trial)
            )  # fmt: skip
        else:
            records.append(
                _record(clip, None, due=at, sent=None, done=None,
                        max_wer=settings.max_wer, trial=trial)
            )  # fmt: skip
    warnings = []
    if late:
        warnings.append(
            f"{late} of {len(due)} requests were sent more than {LATE_SEND_S * 1000:.0f} ms "
            f"after they were due: the client ({in_flight} threads) fell behind, and their "
            "latency includes that wait"
        )
    return records, warnings


def offline(
    target: LoadTarget, clips: Sequence[Clip], settings: LoadSettings
) -> tuple[list[RequestRecord], list[str]]:
    """Every request due at once; throughput is the measure."""
    due = [0.0] * settings.requests
    in_flight = settings.concurrency or settings.requests
    return open_loop(target, clips, due, in_flight=in_flight, settings=settings)


def server(
    target: LoadTarget,
    clips: Sequence[Clip],
    settings: LoadSettings,
    rate_rps: float,
    *,
    duration_s: float | None = None,
    trial: int | None = None,
) -> tuple[list[RequestRecord], list[str]]:
    """Poisson arrivals at `rate_rps` for `duration_s` (default: the settings')."""
    due = poisson_arrivals(rate_rps, duration_s or settings.duration_s, settings.seed)
    return open_loop(
        target, clips, due, in_flight=settings.max_in_flight, settings=settings, trial=trial
    )
