"""LoadResult: one scenario against one endpoint, as versioned data (kind "load").

Every request is kept (its clip, when it was due, when it was sent, its latency, status, WER and
error): the figures are computed from them when read, and nothing that failed is lost. A results file may
hold load results beside matrix rows and dataset results; `report.io.read_results` tells them
apart by `kind`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

from transcription_benchmarks.formats import CURRENT, upgrade
from transcription_benchmarks.load.targets import TargetInfo
from transcription_benchmarks.measure.environment import Environment
from transcription_benchmarks.measure.timer import Latency

SCHEMA_VERSION = CURRENT["LoadResult"]

Scenario = Literal["single-stream", "offline", "server", "capacity", "bad-input"]
SCENARIOS: tuple[Scenario, ...] = ("single-stream", "offline", "server", "capacity", "bad-input")
Outcome = Literal["ok", "wrong", "failed", "unanswered"]
"""ok: answered with the right text (WER within the bound); wrong: answered, text too far from
the reference; failed: an error status, or no answer (connection refused, timeout); unanswered:
still outstanding when the run's drain time ended."""

LATENCY_BOUNDARY = (
    "from when the request was due (its arrival time; for single stream, when it was sent) to "
    "when the whole answer was read, on the client"
)


class ClipInfo(BaseModel):
    name: str
    duration_s: float
    bytes: int
    reference_words: int


class RequestRecord(BaseModel):
    clip: str
    trial: int | None = Field(None, description="the capacity search's trial it belonged to")
    due_s: float = Field(description="seconds after the run's start when it was due")
    sent_s: float | None = Field(None, description="when the client sent it (None: never)")
    latency_s: float | None = Field(None, description="due to answer; None without an answer")
    status: int = Field(description="HTTP status; 0 for no answer")
    outcome: Outcome
    wer: float | None = None
    error: str | None = None


class LoadFigures(BaseModel):
    """What one scenario (or one capacity trial) measured: derived from its requests, never
    stored, so the figures cannot disagree with the requests they summarise."""

    requests: int = Field(description="requests issued")
    ok: int
    wrong: int
    failed: int
    unanswered: int
    wall_s: float = Field(description="from the first due time to the last answer")
    latency: Latency | None = Field(None, description="of answered requests (ok and wrong)")
    throughput_rps: float = Field(description="correct answers per second of wall time")
    audio_s_per_s: float = Field(description="seconds of audio answered correctly per second")
    arrival_rps: float | None = Field(None, description="the rate asked for (server scenario)")
    bound_s: float | None = Field(None, description="the p99 latency bound (server scenario)")
    bound_held: bool | None = Field(
        None,
        description="server scenario: p99 within the bound, and no failed, wrong or "
        "unanswered request",
    )
    statuses: dict[str, int] = Field(default_factory=dict, description="HTTP status -> count")

    @property
    def errors(self) -> int:
        """Requests that did not give a correct answer."""
        return self.wrong + self.failed + self.unanswered

    @classmethod
    def of(
        cls,
        records: Sequence[RequestRecord],
        durations: Mapping[str, float],
        *,
        rate_rps: float | None = None,
        bound_s: float | None = None,
    ) -> LoadFigures:
        """The figures of `records` (clip name -> seconds of audio in `durations`)."""
        counts = Counter(r.outcome for r in records)
        answered = [r.latency_s for r in records if r.outcome in ("ok", "wrong") and r.latency_s]
        ends = [r.due_s + r.latency_s for r in records if r.latency_s is not None]
        start = min((r.due_s for r in records), default=0.0)
        wall = max(max(ends, default=start) - start, 1e-9)
        correct = [r for r in records if r.outcome == "ok"]
        latency = Latency.of(answered) if answered else None
        held = None
        if bound_s is not None:
            held = (
                latency is not None
                and latency.p99_s <= bound_s
                and counts["failed"] + counts["wrong"] + counts["unanswered"] == 0
            )
        return cls(
            requests=len(records),
            ok=counts["ok"],
            wrong=counts["wrong"],
            failed=counts["failed"],
            unanswered=counts["unanswered"],
            wall_s=wall,
            latency=latency,
            throughput_rps=len(correct) / wall,
            audio_s_per_s=sum(durations[r.clip] for r in correct) / wall,
            arrival_rps=rate_rps,
            bound_s=bound_s,
            bound_held=held,
            statuses={str(k): v for k, v in sorted(Counter(r.status for r in records).items())},
        )


class CapacityTrial(BaseModel):
    rate_rps: float
    held: bool
    requests: int
    p99_s: float | None
    errors: int


class Cost(BaseModel):
    """What the sustained rate costs on an instance type (report/prices.py's table)."""

    instance_type: str
    region: str
    hourly: float = Field(description="price per instance-hour")
    currency: str
    prices_as_of: str
    per_audio_hour: float = Field(
        description="at the sustained rate around the clock: hourly / audio hours per hour"
    )
    daily_audio_hours: float | None = None
    peak_to_average: float = 1.0
    instances: int | None = Field(None, description="needed for the daily volume at its peak")
    daily_cost: float | None = None
    per_audio_hour_at_volume: float | None = Field(
        None, description="the daily cost over the daily volume (idle capacity included)"
    )


class Capacity(BaseModel):
    bound_s: float = Field(description="p99 latency bound")
    sustained_rps: float | None = Field(None, description="highest rate that held; None if none")
    sustained_trial: int | None = Field(None, description="the trial that ran at that rate")
    audio_s_per_s: float | None = Field(
        None, description="sustained_rps x the mean clip length: audio hours per hour"
    )
    converged: bool = Field(description="the held and failed rates within the search tolerance")
    lowest_failed_rps: float | None = None
    trials: list[CapacityTrial]
    cost: Cost | None = None


class BadInputAnswer(BaseModel):
    label: str = Field(description="empty, corrupt, oversized, wrong field")
    status: int
    message: str | None


class LoadResult(BaseModel):
    schema_version: int = SCHEMA_VERSION
    kind: Literal["load"] = "load"
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    target: TargetInfo
    scenario: Scenario
    settings: dict[str, Any] = Field(description="the LoadSettings the scenario ran with")
    clips: list[ClipInfo]
    latency_boundary: str = LATENCY_BOUNDARY
    capacity: Capacity | None = None
    bad_input: list[BadInputAnswer] = Field(default_factory=list)
    still_serving: bool | None = Field(
        None, description="bad-input: a good request answered correctly after the bad ones"
    )
    requests: list[RequestRecord] = Field(default_factory=list)
    server_rss_before_mb: float | None = None
    server_rss_after_mb: float | None = None
    server_processes: dict[str, float] = Field(
        default_factory=dict, description="RSS MiB by process name after the run (local only)"
    )
    environment: Environment = Field(description="the client side's fingerprint")
    warnings: list[str] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _upgrade(cls, data: Any) -> Any:
        return upgrade("LoadResult", data)

    @cached_property
    def figures(self) -> LoadFigures | None:
        """The scenario's figures from its requests: for a server run at its rate and bound;
        for a capacity search, the trial at the sustained rate; None for bad input or a
        search where no rate held."""
        durations = {clip.name: clip.duration_s for clip in self.clips}
        if self.scenario == "bad-input":
            return None
        if self.scenario == "capacity":
            capacity = self.capacity
            if capacity is None or capacity.sustained_trial is None:
                return None
            trial = capacity.sustained_trial
            return LoadFigures.of(
                [r for r in self.requests if r.trial == trial],
                durations,
                rate_rps=capacity.trials[trial].rate_rps,
                bound_s=capacity.bound_s,
            )
        if self.scenario == "server":
            return LoadFigures.of(
                self.requests,
                durations,
                rate_rps=self.settings.get("rate_rps"),
                bound_s=self.settings.get("bound_s"),
            )
        return LoadFigures.of(self.requests, durations)

    @property
    def key(self) -> tuple[str, ...]:
        """What compare matches results by: target, model, scenario, clips, and the rate or
        bound that makes a server or capacity run comparable to another."""
        parts = [self.target.name, self.target.model or "", self.scenario]
        parts.append("+".join(c.name for c in self.clips))
        if self.scenario == "server":
            parts.append(f"{self.settings.get('rate_rps')} rps")
        if self.scenario in ("server", "capacity"):
            parts.append(f"p99 <= {self.settings.get('bound_s')} s")
        return tuple(parts)

    def save(self, path: str | Path) -> Path:
        """Append this result as one JSON line."""
        path = Path(path)
        with path.open("a", encoding="utf-8") as f:
            f.write(self.model_dump_json() + "\n")
        return path
