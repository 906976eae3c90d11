"""What a backend returns for one file: timed segments, and the language it detected."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


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
