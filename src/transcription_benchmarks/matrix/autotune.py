"""Auto-tune: the largest batch size that fits a memory budget, and the fastest configuration
within a WER tolerance of the most accurate one.

Every probe is a matrix cell run in its own process, so running out of memory is a row with
status "oom", not a crash. Budgets are GPU memory (peak_gpu_mb, from NVML) on a GPU and peak
RSS on a CPU, given in MiB or named by SageMaker instance family. On SageMaker a worker that
runs out of GPU memory usually surfaces as "Worker died": the tuned batch size is the fix.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from pydantic import BaseModel, Field

from transcription_benchmarks.compat.instances import GPU_BY_FAMILY, instance_family
from transcription_benchmarks.errors import InvalidOptionError
from transcription_benchmarks.matrix.rows import Cell, Row

BATCH_SIZES = (1, 2, 4, 8, 12, 16, 24, 32, 48, 64)
# Headroom kept free: the CUDA context, fragmentation and longer files than the probe's.
HEADROOM = 0.9

RunCell = Callable[[Cell], Row]


class Budget(BaseModel):
    memory_mb: float = Field(description="usable memory, MiB, headroom applied")
    kind: str = Field(description="'gpu' (NVML peak) or 'cpu' (peak RSS)")
    source: str = Field(description="what it was derived from, e.g. 'ml.g4dn.xlarge: NVIDIA T4'")


class TuneResult(BaseModel):
    budget: Budget
    largest_batch_size: int | None = Field(description="None: not even batch 1 fits")
    fastest: Row | None = Field(description="fastest fitting probe within the WER tolerance")
    wer_tolerance: float
    probes: list[Row] = Field(description="every probe, in the order run")

    def describe(self) -> str:
        head = f"budget {self.budget.memory_mb:.0f} MiB {self.budget.kind} ({self.budget.source})"
        if self.largest_batch_size is None:
            return f"{head}: nothing fits, not even batch size 1"
        text = f"{head}: largest batch size that fits {self.largest_batch_size}"
        if self.fastest and self.fastest.result:
            result = self.fastest.result
            wer = f", WER {result.wer:.1%}" if result.wer is not None else ""
            text += (
                f"; fastest within tolerance: {self.fastest.cell.label} at {result.speed:.1f}x{wer}"
            )
        return text


def budget_for(
    instance_type: str | None = None, memory_mb: float | None = None, kind: str = "gpu"
) -> Budget:
    """A budget from an instance type ('ml.g4dn.xlarge') or an explicit size in MiB."""
    if memory_mb is not None:
        return Budget(memory_mb=memory_mb, kind=kind, source=f"{memory_mb:.0f} MiB given")
    if instance_type is None:
        raise InvalidOptionError("give an instance type or a memory budget")
    family = instance_family(instance_type)
    if family not in GPU_BY_FAMILY:
        known = ", ".join(f"ml.{f}" for f in sorted(GPU_BY_FAMILY))
        raise InvalidOptionError(f"unknown instance family 'ml.{family}'; known: {known}")
    gpu = GPU_BY_FAMILY[family]
    return Budget(
        memory_mb=gpu.memory_gb * 1024 * HEADROOM,
        kind="gpu",
        source=f"{instance_type}: {gpu.name} {gpu.memory_gb} GB, {HEADROOM:.0%} usable",
    )


def peak_mb(row: Row, kind: str) -> float | None:
    if row.status != "ok" or row.result is None:
        return None
    memory = row.result.memory
    return memory.peak_gpu_mb if kind == "gpu" else memory.peak_rss_mb


def fits(row: Row, budget: Budget) -> bool:
    peak = peak_mb(row, budget.kind)
    return peak is not None and peak <= budget.memory_mb


def autotune(
    model: str,
    base_args: dict[str, Any],
    budget: Budget,
    run: RunCell,
    *,
    batch_sizes: Sequence[int] = BATCH_SIZES,
    variants: Sequence[dict[str, Any]] = ({"beam_size": 1}, {"beam_size": 5}),
    wer_tolerance: float = 0.01,
) -> TuneResult:
    """Probe batch sizes upward (stopping at the first that does not fit), then the variants at
    every fitting size; pick the fastest whose WER is within `wer_tolerance` of the best."""
    probes: list[Row] = []

    def probe(batch_size: int, variant: dict[str, Any]) -> Row:
        args = {**base_args, **variant, "batch_size": batch_size}
        label = "auto-tune: " + ", ".join(
            f"{k} {v}" for k, v in {"batch": batch_size, **variant}.items()
        )
        row = run(Cell(model=model, args=args, label=label))
        probes.append(row)
        return row

    fitting: list[int] = []
    for batch_size in sorted(batch_sizes):
        if not fits(probe(batch_size, variants[0]), budget):
            break  # memory grows with batch size: larger ones will not fit either
        fitting.append(batch_size)
    if not fitting:
        return TuneResult(
            budget=budget,
            largest_batch_size=None,
            fastest=None,
            wer_tolerance=wer_tolerance,
            probes=probes,
        )
    for batch_size in fitting:
        for variant in variants[1:]:
            probe(batch_size, variant)
    return TuneResult(
        budget=budget,
        largest_batch_size=fitting[-1],
        fastest=_fastest_within(probes, budget, wer_tolerance),
        wer_tolerance=wer_tolerance,
        probes=probes,
    )


def _fastest_within(probes: list[Row], budget: Budget, tolerance: float) -> Row | None:
    candidates = [row for row in probes if fits(row, budget) and row.result is not None]
    if not candidates:
        return None
    wers = [row.result.wer for row in candidates if row.result.wer is not None]
    if wers:
        best = min(wers)
        candidates = [
            r for r in candidates if r.result.wer is None or r.result.wer <= best + tolerance
        ]
    return max(candidates, key=lambda row: row.result.speed)
