"""DatasetResult: one model on one dataset, as versioned data that can be rescored.

Every utterance's row is kept (reference, hypothesis, its time, its errors), so a run can be
scored again with another normaliser version, or a subset, without transcribing anything.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

from transcription_benchmarks.formats import CURRENT, upgrade
from transcription_benchmarks.measure.environment import Environment
from transcription_benchmarks.measure.memory import MemoryStats
from transcription_benchmarks.measure.timer import Latency
from transcription_benchmarks.quality.metrics import CorpusErrorRates, corpus_error_rates
from transcription_benchmarks.result import ModelInfo

SCHEMA_VERSION = CURRENT["DatasetResult"]

TIMING_BOUNDARY = (
    "from decoded 16 kHz samples to the final text of each batch (the Open ASR Leaderboard's "
    "boundary: it starts after audio decoding); decoding is timed apart (decode_s)"
)


class DatasetInfo(BaseModel):
    name: str
    kind: str = Field(description="folder, manifest, hf-disk or hf-hub")
    location: str
    utterances: int
    audio_s: float = Field(description="total seconds of audio")
    limit: int | None = None
    max_duration_s: float | None = None


class UtteranceRow(BaseModel):
    id: str
    audio: str | None = Field(None, description="the audio file, where the source has one")
    duration_s: float
    reference: str
    hypothesis: str
    time_s: float = Field(
        description="sequential: this utterance's own time; batched: its batch's time shared "
        "among the batch's utterances in proportion to their duration"
    )
    batch: int = Field(description="the batch it was decoded in, in decoding order")
    substitutions: int
    deletions: int
    insertions: int
    reference_words: int


class DatasetResult(BaseModel):
    schema_version: int = SCHEMA_VERSION
    kind: Literal["dataset"] = "dataset"
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    backend: str
    model: ModelInfo
    dataset: DatasetInfo
    device: str
    args: dict[str, Any]
    config: dict[str, Any]
    batching: str = Field(description="sequential, or how utterances were batched")
    batch_size: int | None
    timing_boundary: str = TIMING_BOUNDARY
    decode_s: float = Field(description="decoding every utterance's audio, outside the boundary")
    load_time_s: float
    warmup_s: float | None = Field(None, description="the untimed warm-up on the first batch")
    transcribe_s: float = Field(description="sum of the timed batches")
    batch_times_s: list[float]
    latency: Latency | None = Field(None, description="per utterance, sequential runs only")
    score: CorpusErrorRates
    memory: MemoryStats
    environment: Environment
    warnings: list[str] = Field(default_factory=list)
    utterances: list[UtteranceRow]

    @model_validator(mode="before")
    @classmethod
    def _upgrade(cls, data: Any) -> Any:
        return upgrade("DatasetResult", data)

    @property
    def rtfx(self) -> float:
        """Inverse real-time factor as the leaderboard defines it: total audio seconds over
        total transcription seconds."""
        return self.dataset.audio_s / self.transcribe_s

    @property
    def wer(self) -> float:
        return self.score.wer

    def rescore(self, language: str | None = "en") -> CorpusErrorRates:
        """The corpus error rates again from the kept rows (another normaliser version, say)."""
        return corpus_error_rates(
            [u.hypothesis for u in self.utterances],
            [u.reference for u in self.utterances],
            language,
        )

    def stats_line(self) -> str:
        """The leaderboard-style row in one line."""
        memory = self.memory.peak_gpu_mb or self.memory.peak_rss_mb
        kind = "VRAM" if self.memory.peak_gpu_mb else "RSS"
        return " | ".join(
            [
                f"{self.model.requested} on {self.dataset.name}",
                f"{self.backend} ({self.batching})",
                f"WER {self.score.wer:.2%}",
                f"CER {self.score.cer:.2%}",
                f"RTFx {self.rtfx:.1f}",
                f"{self.dataset.utterances} utterances, {self.dataset.audio_s / 60:.1f} min",
                f"peak {kind} {memory:.0f} MiB" if memory else f"peak {kind} -",
            ]
        )

    def save(self, path: str | Path) -> Path:
        """Append this result as one JSON line."""
        path = Path(path)
        with path.open("a", encoding="utf-8") as f:
            f.write(self.model_dump_json() + "\n")
        return path


def read_dataset_results(path: str | Path) -> list[DatasetResult]:
    """Every dataset result in a JSONL file (`tbench dataset --out`)."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return [DatasetResult.model_validate_json(line) for line in lines if line.strip()]
