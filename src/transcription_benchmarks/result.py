"""BenchResult: one benchmark run as versioned, JSON round-trippable data.

Runs are compared across machines and months, so every result carries a schema version, the
effective configuration (not just what was asked for) and the environment fingerprint.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from transcription_benchmarks.args import BenchArgs
from transcription_benchmarks.measure.environment import Environment
from transcription_benchmarks.measure.memory import MemoryStats
from transcription_benchmarks.measure.timer import Stats

SCHEMA_VERSION = 1


class Segment(BaseModel):
    model_config = ConfigDict(frozen=True)

    start: float
    end: float
    text: str


class Transcript(BaseModel):
    """What a backend returns for one file: the segments and what it detected."""

    segments: list[Segment]
    language: str | None = None
    language_probability: float | None = None

    @property
    def text(self) -> str:
        return " ".join(s.text.strip() for s in self.segments if s.text.strip())


class ModelInfo(BaseModel):
    requested: str = Field(description="the id or path the user passed")
    path: str = Field(description="the directory the backend loaded")
    format: str
    source: str = Field(description="hub, local, packaged or synthetic")
    synthetic: bool = False
    converted_from: str | None = Field(None, description="format converted from, when converted")


class BenchResult(BaseModel):
    schema_version: int = SCHEMA_VERSION
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    backend: str
    model: ModelInfo
    test_file: str
    audio_path: str
    audio_duration_s: float
    device: str
    args: BenchArgs
    config: dict[str, Any] = Field(description="effective options the backend ran with")
    load_time_s: float
    timing: Stats
    memory: MemoryStats
    transcript: Transcript
    environment: Environment
    warnings: list[str] = Field(default_factory=list)

    @property
    def speed(self) -> float:
        """Real-time factor: seconds of audio transcribed per second, from the median run."""
        return self.audio_duration_s / self.timing.median

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
