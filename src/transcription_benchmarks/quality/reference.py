"""Which reference transcript a result is scored against: the user's file, else the catalog's."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from transcription_benchmarks.errors import InvalidOptionError


@dataclass(frozen=True)
class ReferenceText:
    text: str
    source: str
    """Where it came from, recorded in the result: a file path or the catalog entry."""


def load_reference(reference_file: str | Path | None, audio_path: Path) -> ReferenceText | None:
    if reference_file is not None:
        path = Path(reference_file)
        if not path.is_file():
            raise InvalidOptionError(f"reference file not found: {path}")
        text = path.read_text(encoding="utf-8").strip()
        if not text:
            raise InvalidOptionError(f"reference file is empty: {path}")
        return ReferenceText(text, str(path))

    from transcription_benchmarks.audio.catalog import reference_for

    found = reference_for(audio_path)
    if found is None or not found.text:
        return None
    return ReferenceText(found.text, f"catalog: {audio_path.name} ({found.quality or 'unrated'})")
