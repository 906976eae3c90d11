"""Per-cell limits from a TOML file, checked against a matrix run's rows.

    [default]                 # applies to every cell
    min_speed = 5.0           # x real time; a cell that did not run (OOM, abort, ...) fails it
    max_peak_vram_mb = 8000   # MiB (rows without a GPU figure are not checked)
    max_wer = 0.10            # fraction: 0.10 = 10 %
    max_speed = 2000          # x real time; faster means the clock missed the work
    min_peak_vram_mb = 1500   # MiB, e.g. the weights in their dtype; a missing figure fails it

    [[cell]]                  # matched by label, or by model and/or test_file (all given must match)
    label = "fp16, batch 24, SDPA"
    min_speed = 40

    [[cell]]
    model = "openai/whisper-large-v3"
    test_file = "1min.flac"
    max_wer = 0.05

For each limit, the first matching [[cell]] that sets it wins, else [default].

Load results (`tbench load --out`) are checked against [[load]] tables, matched by target name
and/or scenario; every matching table's limits apply:

    [[load]]
    target = "faster-whisper-server"   # TargetInfo.name
    scenario = "server"                # single-stream, offline, server, capacity
    max_p99_s = 5.0                    # also max_p50_s
    min_throughput_rps = 0.5           # correct answers per second
    max_errors = 0                     # wrong + failed + unanswered requests
    min_sustained_rps = 0.5            # capacity
    max_per_audio_hour = 0.10          # capacity, priced
"""

from __future__ import annotations

from pathlib import Path, PurePath
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from transcription_benchmarks.errors import BenchError
from transcription_benchmarks.load.result import LoadResult, Scenario
from transcription_benchmarks.matrix.rows import Results, Row
from transcription_benchmarks.report.table import (
    config_label,
    is_synthetic,
    model_name,
    status_text,
)
from transcription_benchmarks.tomlfile import load_toml

Metric = Literal["min_speed", "max_speed", "max_peak_vram_mb", "min_peak_vram_mb", "max_wer"]
LIMITS: tuple[Metric, ...] = (
    "min_speed",
    "max_speed",
    "max_peak_vram_mb",
    "min_peak_vram_mb",
    "max_wer",
)


class ThresholdsError(BenchError):
    """The thresholds file is missing, not TOML, or holds unknown keys or bad values."""


class Limits(BaseModel):
    model_config = ConfigDict(extra="forbid")

    min_speed: float | None = Field(None, gt=0)
    max_peak_vram_mb: float | None = Field(None, gt=0)
    max_wer: float | None = Field(None, ge=0)
    max_speed: float | None = Field(None, gt=0)
    """Above it the timing cannot have covered the decoding (a plausibility bound)."""
    min_peak_vram_mb: float | None = Field(None, gt=0)
    """Below it the memory reading cannot have seen the model (e.g. its weights)."""


class CellLimits(Limits):
    label: str | None = None
    model: str | None = None
    test_file: str | None = None

    def matches(self, row: Row) -> bool:
        if self.label is None and self.model is None and self.test_file is None:
            return False
        models = {row.cell.model, row.ran_model}
        return (
            (self.label is None or self.label == row.cell.label)
            and (self.model is None or self.model in models)
            and (
                self.test_file is None
                or self.test_file in (row.cell.test_file, PurePath(row.cell.test_file).name)
            )
        )


LoadMetric = Literal[
    "max_p50_s",
    "max_p99_s",
    "min_throughput_rps",
    "max_errors",
    "min_sustained_rps",
    "max_per_audio_hour",
]


class LoadLimits(BaseModel):
    model_config = ConfigDict(extra="forbid")

    target: str | None = None
    scenario: Scenario | None = None
    max_p50_s: float | None = Field(None, gt=0)
    max_p99_s: float | None = Field(None, gt=0)
    min_throughput_rps: float | None = Field(None, gt=0)
    max_errors: int | None = Field(None, ge=0)
    min_sustained_rps: float | None = Field(None, gt=0)
    max_per_audio_hour: float | None = Field(None, gt=0)

    def matches(self, result: LoadResult) -> bool:
        return (self.target is None or self.target == result.target.name) and (
            self.scenario is None or self.scenario == result.scenario
        )

    def actuals(self, result: LoadResult) -> dict[LoadMetric, float | None]:
        figures, capacity = result.figures, result.capacity
        latency = figures.latency if figures else None
        cost = capacity.cost if capacity else None
        return {
            "max_p50_s": latency.p50_s if latency else None,
            "max_p99_s": latency.p99_s if latency else None,
            "min_throughput_rps": figures.throughput_rps if figures else None,
            "max_errors": figures.errors if figures else None,
            "min_sustained_rps": (capacity.sustained_rps or 0.0) if capacity else None,
            "max_per_audio_hour": cost.per_audio_hour if cost else None,
        }


class LoadViolation(BaseModel):
    target: str
    scenario: str
    metric: LoadMetric
    limit: float
    actual: float | None

    def describe(self) -> str:
        where = f"load {self.target} | {self.scenario}"
        if self.actual is None:
            return f"{where}: no {self.metric.removeprefix('max_').removeprefix('min_')} figure"
        relation = ">" if self.metric.startswith("max_") else "<"
        return f"{where}: {self.actual:.3g} {relation} {self.metric} {self.limit:g}"


class Thresholds(BaseModel):
    model_config = ConfigDict(extra="forbid")

    default: Limits = Field(default_factory=Limits)
    cell: list[CellLimits] = Field(default_factory=list)
    load: list[LoadLimits] = Field(default_factory=list)

    def limits_for(self, row: Row) -> Limits:
        chosen = self.default.model_dump()
        for key in LIMITS:
            for entry in self.cell:
                value = getattr(entry, key)
                if value is not None and entry.matches(row):
                    chosen[key] = value
                    break
        return Limits(**chosen)


class Violation(BaseModel):
    cell_id: str
    model: str
    config: str
    test_file: str
    metric: Metric
    limit: float
    actual: float | None = Field(None, description="None when the cell did not run")
    status: str = "ok"
    host: str | None = Field(None, description="the row's host, where the results hold several")

    def describe(self) -> str:
        where = f"{self.model} | {self.config} | {self.test_file}"
        if self.host is not None:
            where = f"{self.host}: {where}"
        if self.metric == "min_peak_vram_mb" and self.actual is None:
            return f"{where}: no GPU memory figure, min_peak_vram_mb {self.limit:g}"
        if self.actual is None:
            return f"{where}: did not run ({self.status}), min_speed {self.limit:g}x"
        if self.metric == "min_speed":
            return f"{where}: speed {self.actual:.1f}x < min_speed {self.limit:g}x"
        if self.metric == "max_speed":
            return f"{where}: speed {self.actual:.1f}x > max_speed {self.limit:g}x (implausible)"
        if self.metric == "max_peak_vram_mb":
            return f"{where}: peak VRAM {self.actual:.0f} MiB > max_peak_vram_mb {self.limit:g}"
        if self.metric == "min_peak_vram_mb":
            return f"{where}: peak VRAM {self.actual:.0f} MiB < min_peak_vram_mb {self.limit:g}"
        return f"{where}: WER {self.actual:.1%} > max_wer {self.limit:.1%}"


def load_thresholds(path: str | Path) -> Thresholds:
    hint = (
        f"allowed: [default] and [[cell]] tables with {', '.join(LIMITS)}; [[cell]] matched by "
        "label, model, test_file; [[load]] tables matched by target, scenario"
    )
    thresholds = load_toml(Thresholds, path, "thresholds file", ThresholdsError, hint)
    for index, entry in enumerate(thresholds.cell):
        if entry.label is None and entry.model is None and entry.test_file is None:
            raise ThresholdsError(
                f"thresholds file {path}: [[cell]] number {index + 1} names no label, model or "
                "test_file to match"
            )
    return thresholds


def check_thresholds(
    rows: Results | list[Row], thresholds: Thresholds | str | Path
) -> list[Violation]:
    """Every limit a current row breaks (rows.Results: the last row per matrix, cell and host),
    each host's rows checked on their own and named in the violation.

    A cell that could not run here at all ("unavailable": its backend or a proprietary test file
    is absent) is reported by the table, not failed; synthetic-weight rows have meaningless
    text, so their WER is not checked."""
    if not isinstance(thresholds, Thresholds):
        thresholds = load_thresholds(thresholds)
    violations: list[Violation] = []
    results = rows if isinstance(rows, Results) else Results(rows)
    several_hosts = len(results.hosts) > 1
    for row in results.bench_rows:  # dataset cells carry no speed/WER limits here
        limits = thresholds.limits_for(row)
        base = {
            "cell_id": row.cell_id,
            "host": row.host if several_hosts else None,
            "model": model_name(row),
            "config": config_label(row),
            "test_file": PurePath(row.cell.test_file).name,
            "status": row.status if row.status == "ok" else status_text(row),
        }
        if row.status == "unavailable":
            continue
        result = row.result if row.status == "ok" else None
        if result is None:
            if limits.min_speed is not None:
                violations.append(Violation(metric="min_speed", limit=limits.min_speed, **base))
            continue
        peak = result.memory.peak_gpu_mb
        if limits.min_peak_vram_mb is not None and peak is None:  # a GPU cell that NVML missed
            violations.append(
                Violation(metric="min_peak_vram_mb", limit=limits.min_peak_vram_mb, **base)
            )
        checks: list[tuple[Metric, float | None, float | None, bool]] = [
            ("min_speed", limits.min_speed, result.speed, False),
            ("max_speed", limits.max_speed, result.speed, True),
            ("max_peak_vram_mb", limits.max_peak_vram_mb, peak, True),
            ("min_peak_vram_mb", limits.min_peak_vram_mb, peak, False),
            ("max_wer", limits.max_wer, None if is_synthetic(row) else result.wer, True),
        ]
        for metric, limit, actual, is_max in checks:
            if limit is None or actual is None:
                continue
            if (actual > limit) if is_max else (actual < limit):
                violations.append(Violation(metric=metric, limit=limit, actual=actual, **base))
    return violations


def check_load_thresholds(
    results: list[LoadResult], thresholds: Thresholds | str | Path
) -> list[LoadViolation]:
    """Every [[load]] limit a load result breaks (each matching table applies). A limit on a
    figure the result lacks (a p99 where nothing was answered) is broken."""
    if not isinstance(thresholds, Thresholds):
        thresholds = load_thresholds(thresholds)
    violations = []
    for result in results:
        for limits in (entry for entry in thresholds.load if entry.matches(result)):
            actuals = limits.actuals(result)
            for metric, actual in actuals.items():
                limit = getattr(limits, metric)
                if limit is None:
                    continue
                broken = actual is None or (
                    actual > limit if metric.startswith("max_") else actual < limit
                )
                if broken:
                    violations.append(
                        LoadViolation(
                            target=result.target.name,
                            scenario=result.scenario,
                            metric=metric,
                            limit=limit,
                            actual=actual,
                        )
                    )
    return violations
