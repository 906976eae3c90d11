"""Auto-tune: the fastest configuration that fits a memory budget and stays within a WER
tolerance of the most accurate one, searched over engine, precision, beam size and batch size.

The search, instead of timing every configuration with the full protocol (the grid, kept for
comparison: `grid()`):
1. **Screen** every configuration once, cheaply: one timed run on the screening file (the test
   file unless a shorter one is given), all configurations of one engine and precision in one
   worker process, so imports are paid once per group, with one warm-up run for the group's
   first configuration only. Batch sizes climb a
   ladder: the first that does not fit the budget ends its ladder.
2. **Keep** the screened configurations that fit the budget and whose WER is within the
   tolerance of the best screened WER, ranked by screened speed.
3. **Confirm** them in that order, each as a matrix cell of its own with the normal protocol
   (the caller's warm-up and repeats, its own process, so its memory peak is its own), until
   `finalists` of them are confirmed admissible.
The pick is the fastest confirmed admissible configuration; the Pareto front over speed, peak
memory and WER is reported beside it, with confirmed figures where a configuration has them.

Every probe is a matrix row (running out of memory is a row with status "oom", not a crash).
Budgets are GPU memory (NVML peak) on a GPU and peak RSS on a CPU, in MiB or named by SageMaker
instance family. On SageMaker a worker that runs out of GPU memory usually surfaces as "Worker
died": the tuned batch size is the fix.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from transcription_benchmarks.args import BackendName
from transcription_benchmarks.backends.registry import backend_class, installed_backends
from transcription_benchmarks.compat.instances import GPU_BY_FAMILY, instance_family
from transcription_benchmarks.errors import InvalidOptionError
from transcription_benchmarks.matrix.rows import Cell, MemoryLimit, Row
from transcription_benchmarks.report.table import markdown_header

# Headroom kept free: the CUDA context, fragmentation and longer files than the probe's.
HEADROOM = 0.9
MATRIX = "autotune"

BATCH_SIZES: dict[str, tuple[int | None, ...]] = {
    "cpu": (None, 4, 8),
    "gpu": (None, 4, 8, 16, 24, 32, 48, 64),
}
"""None: sequential decoding (no batched pipeline)."""

RunCell = Callable[[Cell], Row]
RunGroup = Callable[[list[Cell], MemoryLimit], list[Row]]


class Budget(MemoryLimit):
    source: str = Field(description="what it was derived from, e.g. 'ml.g4dn.xlarge: NVIDIA T4'")


def budget_for(
    instance_type: str | None = None,
    memory_mb: float | None = None,
    kind: Literal["gpu", "cpu"] = "gpu",
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


class Config(BaseModel):
    """One point of the search space."""

    model_config = ConfigDict(frozen=True)

    engine: BackendName
    precision: str
    beam_size: int = Field(ge=1)
    batch_size: int | None = Field(None, ge=1, description="None: sequential decoding")

    def args(self) -> dict[str, Any]:
        return {
            "backend": self.engine,
            precision_option(self.engine): self.precision,
            "beam_size": self.beam_size,
            "batch_size": self.batch_size,
        }

    @property
    def label(self) -> str:
        batch = "sequential" if self.batch_size is None else f"batch {self.batch_size}"
        return f"{self.engine} {self.precision}, beam {self.beam_size}, {batch}"

    @classmethod
    def of(cls, row: Row) -> Config:
        args = row.cell.args
        engine = args["backend"]
        return cls(
            engine=engine,
            precision=args[precision_option(engine)],
            beam_size=args["beam_size"],
            batch_size=args.get("batch_size"),
        )


class SearchSpace(BaseModel):
    engines: dict[BackendName, list[str]] = Field(description="engine -> precisions to search")
    beam_sizes: list[int] = Field(default_factory=lambda: [1, 5], min_length=1)
    batch_sizes: list[int | None] = Field(min_length=1)

    @classmethod
    def default(
        cls,
        kind: Literal["gpu", "cpu"],
        engines: Sequence[BackendName] | None = None,
        *,
        model: str | None = None,
        **overrides: Any,
    ) -> SearchSpace:
        """The installed engines that run `model`'s family (or the ones named) with their
        precisions for this device."""
        chosen = list(engines) if engines else installed_backends(model)
        chosen = [engine for engine in chosen if backend_class(engine).precision_option]
        if not chosen:
            raise InvalidOptionError("no installed engine has a precision to tune")
        values: dict[str, Any] = {
            "engines": {engine: list(_precisions(engine, kind)) for engine in chosen},
            "batch_sizes": list(BATCH_SIZES[kind]),
        }
        values.update({k: v for k, v in overrides.items() if v})
        return cls(**values)

    def check(self, base_args: dict[str, Any]) -> None:
        """Every configuration's options are valid with `base_args` (InvalidOptionError naming
        the first that is not), before anything runs."""
        from transcription_benchmarks.args import BenchArgs

        for config in self.configs():
            try:
                BenchArgs.build(**{**base_args, **config.args()})
            except InvalidOptionError as exc:
                raise InvalidOptionError(f"{config.label}: {exc}") from None

    def configs(self) -> list[Config]:
        """Grouped by engine and precision, batch sizes ascending within each beam size: the
        order a screening process climbs its ladders in. An engine that does not batch gets
        sequential decoding only."""
        return [
            Config(engine=engine, precision=precision, beam_size=beam, batch_size=batch)
            for engine, precisions in self.engines.items()
            for precision in precisions
            for beam in sorted(self.beam_sizes)
            for batch in sorted(self.batch_sizes, key=lambda b: 0 if b is None else b)
            if batch is None or backend_class(engine).supports_batching
        ]


def _precisions(engine: str, kind: str) -> tuple[str, ...]:
    backend = backend_class(engine)
    return backend.cpu_precisions if kind == "cpu" else backend.gpu_precisions


def precision_option(engine: str) -> str:
    option = backend_class(engine).precision_option
    if option is None:
        raise InvalidOptionError(f"engine {engine!r} declares no precision option to tune")
    return option


Stage = Literal["screen", "confirm", "grid"]


class Probe(BaseModel):
    stage: Stage
    config: Config
    row: Row

    @property
    def ok(self) -> bool:
        return self.row.status == "ok" and self.row.result is not None

    @property
    def speed(self) -> float | None:
        return self.row.result.speed if self.ok else None

    @property
    def wer(self) -> float | None:
        return self.row.result.wer if self.ok else None


class TuneResult(BaseModel):
    """What a search (or the grid) found, with every probe it ran."""

    method: Literal["search", "grid"]
    model: str
    budget: Budget
    wer_tolerance: float
    test_file: str
    screen_file: str | None = None
    probes: list[Probe]
    pick: Probe | None = Field(description="fastest confirmed probe that fits and is accurate")
    front: list[Probe] = Field(
        description="Pareto front of speed, peak memory and WER, over the screened probes (a "
        "search: one protocol for all) or all probes (the grid)"
    )
    wall_s: float = Field(description="the whole search, start to end")

    @property
    def front_of(self) -> str:
        if self.method == "grid":
            return "every configuration, full protocol"
        return "screened figures: one run, peaks shared with the group's earlier configurations"

    def confirmed(self, config: Config) -> Probe | None:
        return next((p for p in self.probes if p.config == config and p.stage == "confirm"), None)

    def largest_batch_size(self) -> int | None:
        """The largest batch size of any probe that fit the budget."""
        sizes = [
            p.config.batch_size
            for p in self.probes
            if p.config.batch_size is not None and self.budget.holds(p.row)
        ]
        return max(sizes, default=None)

    def describe(self) -> str:
        budget = self.budget
        lines = [
            f"{self.method} over {len({p.config for p in self.probes})} configuration(s) of "
            f"{self.model} on {self.test_file}: budget {budget.memory_mb:.0f} MiB "
            f"{budget.kind} ({budget.source}), WER tolerance {self.wer_tolerance:.1%}, "
            f"{len(self.probes)} probe(s) in {self.wall_s:.0f} s",
        ]
        largest = self.largest_batch_size()
        if largest is not None:
            lines.append(f"largest batch size that fits: {largest}")
        if self.pick is None:
            lines.append("pick: nothing fits the budget within the WER tolerance")
        else:
            lines.append(f"pick: {self.pick.config.label} ({_figures(self.pick, budget)})")
        lines += ["", f"Pareto front of speed, peak memory and WER ({self.front_of}):", ""]
        lines += markdown_header(("Configuration", "Speed", "Peak MiB", "WER", "Confirmed"))
        for probe in self.front:
            confirmed = self.confirmed(probe.config)
            lines.append(
                f"| {probe.config.label} | {_figures(probe, budget, ' | ')} | "
                f"{_figures(confirmed, budget, ', ') if confirmed else '-'} |"
            )
        return "\n".join(lines)


def _figures(probe: Probe, budget: Budget, sep: str = ", ") -> str:
    peak, wer = budget.peak_mb(probe.row), probe.wer
    return sep.join(
        (
            "-" if probe.speed is None else f"{probe.speed:.1f}x",
            "-" if peak is None else f"{peak:.0f} MiB",
            "-" if wer is None else f"WER {wer:.1%}",
        )
    )


def cell_for(model: str, base_args: dict[str, Any], config: Config, stage: Stage) -> Cell:
    return Cell(model=model, args={**base_args, **config.args()}, label=f"{stage}: {config.label}")


def screening_args(base_args: dict[str, Any], screen_file: str | None) -> dict[str, Any]:
    """One timed run, no warm-up, on the screening file."""
    args = {**base_args, "warmup": 0, "repeats": 1}
    if screen_file is not None:
        args["test_file"] = screen_file
    return args


def search(
    model: str,
    base_args: dict[str, Any],
    budget: Budget,
    space: SearchSpace,
    *,
    run_group: RunGroup,
    run_cell: RunCell,
    wer_tolerance: float = 0.01,
    finalists: int = 3,
    screen_file: str | None = None,
) -> TuneResult:
    """Screen every configuration once, then confirm the fastest admissible ones with the
    normal protocol (see the module's docstring)."""
    space.check(base_args)
    start = time.perf_counter()
    configs = space.configs()
    screen_args = screening_args(base_args, screen_file)
    probes: list[Probe] = []
    for group in _groups(configs):
        cells = [cell_for(model, screen_args, config, "screen") for config in group]
        # A process's first run pays one-off costs (allocator growth, lazy kernel set-up):
        # one untimed run keeps them off the group's first configuration.
        first = cells[0]
        cells[0] = first.model_copy(update={"args": {**first.args, "warmup": 1}})
        probes += [
            Probe(stage="screen", config=Config.of(row), row=row)
            for row in run_group(cells, budget)
        ]
    screens = list(probes)
    # The screen's WER counts towards the best only when it scored the same file.
    same_file = screen_file is None or screen_file == base_args.get("test_file")
    confirmed: list[Probe] = []

    def accepted() -> list[Probe]:
        best_from = screens + confirmed if same_file else confirmed
        return _admissible(confirmed, budget, wer_tolerance, best_from=best_from)

    for candidate in sorted(_admissible(screens, budget, wer_tolerance), key=_fastest_first):
        if len(accepted()) >= finalists:
            break
        row = run_cell(cell_for(model, base_args, candidate.config, "confirm"))
        confirmed.append(Probe(stage="confirm", config=candidate.config, row=row))
    probes += confirmed
    pick = _fastest(accepted())
    return TuneResult(
        method="search",
        model=model,
        budget=budget,
        wer_tolerance=wer_tolerance,
        test_file=str(base_args.get("test_file")),
        screen_file=screen_file,
        probes=probes,
        pick=pick,
        front=pareto_front(screens, budget),
        wall_s=time.perf_counter() - start,
    )


def grid(
    model: str,
    base_args: dict[str, Any],
    budget: Budget,
    space: SearchSpace,
    *,
    run_cell: RunCell,
    wer_tolerance: float = 0.01,
) -> TuneResult:
    """Every configuration with the full protocol, each in its own process: what the search
    is measured against."""
    space.check(base_args)
    start = time.perf_counter()
    probes = [
        Probe(stage="grid", config=config, row=run_cell(cell_for(model, base_args, config, "grid")))
        for config in space.configs()
    ]
    return TuneResult(
        method="grid",
        model=model,
        budget=budget,
        wer_tolerance=wer_tolerance,
        test_file=str(base_args.get("test_file")),
        probes=probes,
        pick=_fastest(_admissible(probes, budget, wer_tolerance)),
        front=pareto_front(probes, budget),
        wall_s=time.perf_counter() - start,
    )


def _groups(configs: list[Config]) -> list[list[Config]]:
    """Consecutive configurations of one engine and precision: one screening process each."""
    groups: dict[tuple[str, str], list[Config]] = {}
    for config in configs:
        groups.setdefault((config.engine, config.precision), []).append(config)
    return list(groups.values())


def _admissible(
    probes: list[Probe],
    budget: Budget,
    tolerance: float,
    best_from: list[Probe] | None = None,
) -> list[Probe]:
    """The probes that ran, fit the budget and whose WER is within `tolerance` of the best WER
    among `best_from` (default: the probes themselves) that fit; no WER, no WER filter."""
    fitting = [p for p in probes if p.ok and budget.holds(p.row)]
    pool = [p for p in (best_from if best_from is not None else probes) if budget.holds(p.row)]
    wers = [p.wer for p in pool if p.wer is not None]
    if not wers:
        return fitting
    best = min(wers)
    return [p for p in fitting if p.wer is None or p.wer <= best + tolerance]


def _fastest_first(probe: Probe) -> float:
    return -(probe.speed or 0.0)


def _fastest(probes: list[Probe]) -> Probe | None:
    return max(probes, key=lambda p: p.speed or 0.0, default=None)


def pareto_front(probes: list[Probe], budget: Budget) -> list[Probe]:
    """Probes that fit and that no other fitting probe beats on one of speed, peak memory and
    WER while being at least as good on the other two; fastest first."""
    from transcription_benchmarks.report.pareto import non_dominated

    def objectives(probe: Probe) -> tuple[float, float, float]:
        peak = budget.peak_mb(probe.row)
        return (-(probe.speed or 0.0), peak or 0.0, probe.wer if probe.wer is not None else 0.0)

    fitting = [p for p in probes if p.ok and budget.holds(p.row)]
    return sorted(non_dominated(fitting, objectives), key=_fastest_first)
