"""Does a configuration give the same text every time, and if not, which option breaks it?

The check runs the configuration N times in one bench() (every run's text is hashed into the
result) and compares the hashes. When they differ it re-runs with one suspect option changed at
a time, most likely culprit first, and names the first change that makes the runs agree. The
usual culprit is temperature: faster-whisper's default is the fallback list 0.0-1.0, which
samples whenever a window fails the compression-ratio or log-probability checks.
"""

from __future__ import annotations

import warnings
from typing import Any

from pydantic import BaseModel, Field

from transcription_benchmarks.args import BenchArgs
from transcription_benchmarks.quality.metrics import Divergence, first_difference
from transcription_benchmarks.result import BenchResult


class Trial(BaseModel):
    change: dict[str, Any]
    deterministic: bool
    distinct_texts: int


class DeterminismReport(BaseModel):
    model: str
    backend: str
    runs: int
    temperature: Any = Field(description="the effective temperature setting, in full")
    deterministic: bool
    distinct_texts: int
    run_text_sha256: list[str]
    divergence: Divergence | None = Field(None, description="first difference between two runs")
    culprit: dict[str, Any] | None = Field(None, description="the change that restored agreement")
    trials: list[Trial] = Field(default_factory=list)

    def describe(self) -> str:
        head = f"{self.model} ({self.backend}), {self.runs} runs, temperature={self.temperature}: "
        if self.deterministic:
            return head + "deterministic (identical text every run)"
        text = head + f"{self.distinct_texts} different texts"
        if self.divergence:
            d = self.divergence
            text += f"; first difference at word {d.word_index} ('{d.left}' vs '{d.right}')"
        if self.culprit:
            text += "; deterministic again with " + ", ".join(
                f"{k}={v!r}" for k, v in self.culprit.items()
            )
        elif self.trials:
            text += "; no single option change restored determinism"
        return text


def suspects(result: BenchResult) -> list[dict[str, Any]]:
    """Option changes to try, most likely culprit first; only ones that change something."""
    config, args = result.config, result.args
    changes: list[dict[str, Any]] = []
    if config.get("temperature") not in (0, 0.0):
        changes.append({"temperature": 0.0})
    generate_kwargs = args.get("generate_kwargs") or {}
    if generate_kwargs.get("do_sample"):
        changes.append({"generate_kwargs": {**generate_kwargs, "do_sample": False}})
    if args.get("transcribe_options"):
        changes.append({"transcribe_options": {}})
    if args.get("batch_size") is not None:
        changes.append({"batch_size": None})
    if config.get("compute_type") not in (None, "float32"):
        changes.append({"compute_type": "float32"})
    if config.get("dtype") not in (None, "fp32"):
        changes.append({"dtype": "fp32"})
    if result.device != "cpu":
        changes.append({"device": "cpu", "dtype": None, "compute_type": "default"})
    return changes


def check_determinism(
    model: str, args: BenchArgs | None = None, *, runs: int = 5, diagnose: bool = True
) -> DeterminismReport:
    args = (args or BenchArgs()).model_copy(update={"warmup": 0, "repeats": runs})
    result = _quiet_bench(model, args)
    hashes = result.run_text_sha256
    report = DeterminismReport(
        model=model,
        backend=result.backend,
        runs=runs,
        temperature=result.config.get("temperature"),
        deterministic=result.deterministic,
        distinct_texts=len(set(hashes)),
        run_text_sha256=hashes,
    )
    texts = result.run_texts or []
    differing = next((t for t in texts if t != texts[0]), None) if texts else None
    if differing is not None:
        report.divergence = first_difference(texts[0], differing, normalized=False)
    if report.deterministic or not diagnose:
        return report
    for change in suspects(result):
        trial = _quiet_bench(model, args.model_copy(update=change))
        report.trials.append(
            Trial(
                change=change,
                deterministic=trial.deterministic,
                distinct_texts=len(set(trial.run_text_sha256)),
            )
        )
        if trial.deterministic:
            report.culprit = change
            break
    return report


def _quiet_bench(model: str, args: BenchArgs) -> BenchResult:
    from transcription_benchmarks.bench import bench

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # timing stability is not what this check is about
        return bench(model, BenchArgs.model_validate(args.model_dump()), keep_run_texts=True)
