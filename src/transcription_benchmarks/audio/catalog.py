"""Find test audio by name: the project's test_audio/ first, then the configured search path."""

from __future__ import annotations

import os
from pathlib import Path

from transcription_benchmarks.errors import AudioError

AUDIO_PATH_ENV = "TRANSCRIPTION_BENCHMARKS_AUDIO_PATH"
PROJECT_AUDIO_DIR = Path(__file__).resolve().parents[3] / "test_audio"


def search_path() -> list[Path]:
    """test_audio/ of a source checkout, then each directory in $TRANSCRIPTION_BENCHMARKS_AUDIO_PATH."""
    extra = os.environ.get(AUDIO_PATH_ENV, "")
    return [PROJECT_AUDIO_DIR, *(Path(p) for p in extra.split(os.pathsep) if p)]


def find_test_audio(name: str | Path) -> Path:
    """A path that exists is returned as is; a bare name is looked up in search_path()."""
    candidate = Path(name).expanduser()
    if candidate.exists() or candidate.is_absolute() or len(candidate.parts) > 1:
        return candidate  # decoding reports a missing path with the path itself
    for directory in search_path():
        if (directory / candidate).is_file():
            return directory / candidate
    searched = ", ".join(str(d) for d in search_path())
    raise AudioError(
        f"test audio {str(name)!r} not found; searched {searched}. Pass a path, or add the "
        f"directory holding it to ${AUDIO_PATH_ENV} (os.pathsep-separated)"
    )
