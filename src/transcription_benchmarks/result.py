"""BenchResult: one benchmark run as versioned, JSON round-trippable data.

Runs are compared across machines and months, so every result carries a schema version, the
effective configuration (not just what was asked for) and the environment fingerprint.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, model_validator

from transcription_benchmarks.formats import CURRENT, upgrade
from transcription_benchmarks.measure.environment import Environment
from transcription_benchmarks.measure.memory import MemoryStats
from transcription_benchmarks.measure.timer import Stats
from transcription_benchmarks.models import ResolvedModel
from transcription_benchmarks.quality.metrics import Quality
from transcription_benchmarks.transcript import Transcript

SCHEMA_VERSION = CURRENT["BenchResult"]


class ModelInfo(BaseModel):
    requested: str = Field(description="the id or path the user passed")
    path: str = Field(description="the directory the backend loaded")
    format: str
    source: str = Field(description="hub, local, packaged or synthetic")
    synthetic: bool = False
    converted_from: str | None = Field(None, description="format converted from, when converted")

    @classmethod
    def of(cls, requested: str, resolved: ResolvedModel) -> ModelInfo:
        return cls(
            requested=requested,
            path=str(resolved.path),
            format=resolved.format,
            source=resolved.source,
            synthetic=resolved.synthetic,
            converted_from=resolved.converted_from,
        )


class BenchResult(BaseModel):
    """One run as stored; a file of an older schema_version is brought up to date on reading and
    a newer one refused (formats.py holds the history)."""

    schema_version: int = SCHEMA_VERSION
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    backend: str
    model: ModelInfo
    test_file: str
    audio_path: str
    audio_duration_s: float
    device: str
    args: dict[str, Any] = Field(
        description="the BenchArgs as recorded: data, so that a later change to the options "
        "leaves this file readable"
    )
    config: dict[str, Any] = Field(description="effective options the backend ran with")
    load_time_s: float
    timing: Stats
    memory: MemoryStats
    transcript: Transcript
    run_text_sha256: list[str] = Field(
        default_factory=list, description="sha256 of each run's text, warm-up runs first"
    )
    run_texts: list[str] | None = Field(
        None, description="each run's text, when asked to keep them"
    )
    quality: Quality | None = None
    environment: Environment
    warnings: list[str] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _upgrade(cls, data: Any) -> Any:
        return upgrade("BenchResult", data)

    @property
    def speed(self) -> float:
        """Real-time factor: seconds of audio transcribed per second, from the median run."""
        return self.audio_duration_s / self.timing.median

    @property
    def energy_j_per_audio_hour(self) -> float | None:
        """GPU joules per hour of audio, from the median run's energy; None without a reading."""
        if self.timing.median_j is None:
            return None
        return self.timing.median_j * 3600 / self.audio_duration_s

    @property
    def wer(self) -> float | None:
        rates = self.quality.error_rates if self.quality else None
        return rates.wer if rates else None

    @property
    def deterministic(self) -> bool:
        """Every run (warm-up included) produced the same text."""
        return len(set(self.run_text_sha256)) <= 1

    def get_text(self, with_timestamps: bool = True) -> str:
        if not with_timestamps:
            return self.transcript.text
        return "\n".join(
            f"[{_clock(s.start)} -> {_clock(s.end)}]  {s.text.strip()}"
            for s in self.transcript.segments
        )

    def get_stats(self) -> str:
        """One line: speed, peak memory, model, file, config."""
        return " | ".join(
            [
                f"Speed: {self.speed:.1f}x",
                f"Peak VRAM: {_megabytes(self.memory.peak_gpu_mb)}",
                f"Peak RSS: {_megabytes(self.memory.peak_rss_mb)}",
                f"Model: {self.model.requested}"
                + (" (synthetic weights)" if self.model.synthetic else ""),
                f"File: {self.test_file} ({self.audio_duration_s:.1f} s)",
                f"Config: {self.backend} on {self.device}, {describe_config(self.config)}",
                *([f"WER: {self.wer:.1%}"] if self.wer is not None else []),
                *(
                    [f"Energy: {energy / 1000:.1f} kJ / audio h"]
                    if (energy := self.energy_j_per_audio_hour) is not None
                    else []
                ),
                f"Load: {self.load_time_s:.2f} s",
                f"Runs: {self.timing.describe()}",
            ]
        )

    def to_json(self, indent: int | None = 2) -> str:
        return self.model_dump_json(indent=indent)

    @classmethod
    def from_json(cls, text: str) -> BenchResult:
        return cls.model_validate_json(text)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(self.to_json() + "\n")
        return path


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def describe_config(config: dict[str, Any]) -> str:
    shown = (
        "compute_type",
        "dtype",
        "attn_implementation",
        "batch_size",
        "beam_size",
        "temperature",
    )
    parts = [f"{key}={config[key]}" for key in shown if config.get(key) is not None]
    return ", ".join(parts)


def _clock(seconds: float) -> str:
    return str(timedelta(seconds=int(seconds)))


def _megabytes(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value / 1024:.2f} GB" if value >= 1024 else f"{value:.0f} MB"
