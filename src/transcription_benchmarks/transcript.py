"""What a backend returns for one file or one request: timed segments, the language it
detected, and (for a request) how it decoded them."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Segment(BaseModel):
    model_config = ConfigDict(frozen=True)

    start: float
    end: float
    text: str


class Word(BaseModel):
    start: float
    end: float
    word: str
    probability: float


class DecodedSegment(Segment):
    """A segment with the decoder's own details, where the engine gives them (faster-whisper
    yields all of them). A result keeps only start, end and text (Transcript.segments is typed
    Segment, and pydantic writes a field by its declared type); an endpoint answers with all."""

    id: int | None = None
    seek: int | None = None
    tokens: list[int] = Field(default_factory=list)
    avg_logprob: float | None = None
    compression_ratio: float | None = None
    no_speech_prob: float | None = None
    temperature: float | None = None
    words: list[Word] | None = None


class DecodingInfo(BaseModel):
    """How one request was decoded: what an endpoint tells its client beside the segments."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    pipeline: str
    """The engine's entry point, e.g. WhisperModel, BatchedInferencePipeline."""
    options: dict[str, Any] = Field(default_factory=dict)
    """The effective options, defaults filled in."""
    duration_after_vad: float | None = None
    native: Any = None
    """The engine's own record of the decoding (faster-whisper's TranscriptionInfo), for
    answers in a format that carried it."""


class Transcript(BaseModel):
    """What a backend returns for one file: the segments and what it detected."""

    segments: list[Segment]
    language: str | None = None
    language_probability: float | None = None
    info: DecodingInfo | None = Field(None, exclude=True)
    """A request's decoding details; results do not keep them (exclude=True)."""

    @property
    def text(self) -> str:
        return " ".join(s.text.strip() for s in self.segments if s.text.strip())


class LanguageGuess(BaseModel):
    """Language identification on its own: the likeliest language and every language's
    probability, most likely first."""

    language: str
    probability: float
    all_probabilities: list[tuple[str, float]]
