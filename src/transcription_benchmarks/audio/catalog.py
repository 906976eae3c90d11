"""Find test audio by name: the project's test_audio/ first, then the configured search path.

test_audio/manifest.json catalogues the names benchmarks use: public files (read from wherever
the search path finds them, never copied into the repository), generated ones, and the original
project's proprietary recordings, which are listed so that asking for one says why it is missing
instead of "not found". A sha256 in the catalogue is checked on lookup, because a truncated or
substituted file still decodes and would silently change every figure measured on it.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from transcription_benchmarks.errors import (
    AudioChecksumError,
    AudioError,
    AudioUnavailableError,
    describe_validation_error,
)

AUDIO_PATH_ENV = "TRANSCRIPTION_BENCHMARKS_AUDIO_PATH"
PROJECT_AUDIO_DIR = Path(__file__).resolve().parents[3] / "test_audio"
MANIFEST_PATH = PROJECT_AUDIO_DIR / "manifest.json"

Availability = Literal["public", "generated", "proprietary"]
Quality = Literal["gold", "silver", "partial"]


class AudioEntry(BaseModel):
    """One catalogued file. Unknown keys are kept, so producers (e.g. the speech generator) can
    record their own details without a schema change."""

    model_config = ConfigDict(extra="allow", frozen=True)

    name: str = Field(pattern=r"^[^/\\]+$")
    description: str
    duration_s: float | None = Field(default=None, gt=0)
    language: str | None = None
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    availability: Availability
    source: str
    reference: str | None = None
    reference_quality: Quality | None = None
    references: dict[str, str] = Field(default_factory=dict)
    must_contain: str | None = None

    @property
    def has_reference(self) -> bool:
        return bool(self.reference or self.references or self.must_contain)


class AudioManifest(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    schema_version: Literal[1] = 1
    files: list[AudioEntry] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_names(self) -> AudioManifest:
        names = [entry.name for entry in self.files]
        if duplicates := sorted({n for n in names if names.count(n) > 1}):
            raise ValueError(f"duplicate names: {', '.join(duplicates)}")
        return self

    @property
    def names(self) -> list[str]:
        return [entry.name for entry in self.files]

    def get(self, name: str) -> AudioEntry | None:
        return next((entry for entry in self.files if entry.name == name), None)


class Reference(BaseModel):
    """What a transcript of one file is judged against; `quality` says how far to trust it."""

    text: str | None = None
    quality: Quality | None = None
    references: dict[str, str] = Field(default_factory=dict)
    must_contain: str | None = None
    language: str | None = None


def search_path() -> list[Path]:
    """test_audio/ of a source checkout, then each directory in $TRANSCRIPTION_BENCHMARKS_AUDIO_PATH."""
    extra = os.environ.get(AUDIO_PATH_ENV, "")
    return [PROJECT_AUDIO_DIR, *(Path(p) for p in extra.split(os.pathsep) if p)]


@functools.cache
def load_manifest() -> AudioManifest:
    """The catalogue, read once. An installed package has no test_audio/: an empty catalogue then,
    so lookups by name still work through the search path."""
    if not MANIFEST_PATH.is_file():
        return AudioManifest()
    try:
        return AudioManifest.model_validate(json.loads(MANIFEST_PATH.read_text(encoding="utf-8")))
    except ValidationError as exc:
        problems = describe_validation_error(exc)
        raise AudioError(f"invalid test-audio manifest {MANIFEST_PATH}: {problems}") from None
    except ValueError as exc:  # not JSON
        raise AudioError(f"invalid test-audio manifest {MANIFEST_PATH}: {exc}") from exc


def get_test_audio(name: str) -> Path:
    """The first file called `name` in search_path(), checked against the catalogue's sha256.

    Raises AudioUnavailableError for a proprietary file that is absent (tests skip on it),
    AudioChecksumError for a file whose bytes differ, AudioError otherwise.
    """
    if not name or Path(name).name != name:
        raise AudioError(f"test audio names are bare file names, got {name!r}; pass paths as paths")
    entry = load_manifest().get(name)
    directories = search_path()
    for directory in directories:
        path = directory / name
        if path.is_file():
            if entry is not None and entry.sha256:
                _verify(path, entry.sha256)
            return path
    raise _not_found(name, entry, directories)


def find_test_audio(name: str | Path) -> Path:
    """A path that exists is returned as is; a bare name is looked up with get_test_audio()."""
    candidate = Path(name).expanduser()
    if candidate.exists() or candidate.is_absolute() or len(candidate.parts) > 1:
        return candidate  # decoding reports a missing path with the path itself
    return get_test_audio(str(candidate))


def reference_for(audio: str | Path) -> Reference | None:
    """The reference transcript for a file: the catalogue's (matched by file name), else the exact
    text a generator wrote beside the audio as `<stem>.txt`, else None."""
    path = Path(audio).expanduser()
    entry = load_manifest().get(path.name)
    located = _locate(path)
    # Another recording that merely shares a catalogued name must not be scored against the
    # catalogue's transcript.
    if (
        entry
        and entry.sha256
        and located
        and located.is_file()
        and _sha256(located) != entry.sha256
    ):
        entry = None
    if entry is not None and entry.has_reference:
        return Reference(
            text=entry.reference,
            quality=entry.reference_quality,
            references=entry.references,
            must_contain=entry.must_contain,
            language=entry.language,
        )
    sidecar = located.with_suffix(".txt") if located else None
    if sidecar is None or not sidecar.is_file():
        return None
    return Reference(
        text=sidecar.read_text(encoding="utf-8").strip(),
        quality="gold",
        language=entry.language if entry else None,
    )


def _locate(path: Path) -> Path | None:
    """Where a path or bare name lives, without verifying it (a reference lookup must not fail
    on a checksum)."""
    if path.exists() or path.is_absolute() or len(path.parts) > 1:
        return path
    return next((d / path for d in search_path() if (d / path).is_file()), None)


_digests: dict[tuple[str, int, int], str] = {}


def _sha256(path: Path) -> str:
    """Hash once per (path, size, mtime): benchmarks look the same file up on every run."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _digests:
        with path.open("rb") as f:
            _digests[key] = hashlib.file_digest(f, "sha256").hexdigest()
    return _digests[key]


def _verify(path: Path, expected: str) -> None:
    actual = _sha256(path)
    if actual != expected:
        raise AudioChecksumError(
            f"test audio {path} does not match test_audio/manifest.json: sha256 expected "
            f"{expected}, actual {actual}. The file is corrupt, truncated or a different "
            "recording; replace it with the catalogued one"
        )


def _not_found(name: str, entry: AudioEntry | None, directories: list[Path]) -> AudioError:
    searched = ", ".join(str(d) for d in directories)
    how = f"put it in one of those directories or add its directory to ${AUDIO_PATH_ENV} (os.pathsep-separated)"
    if entry is None:
        known = ", ".join(load_manifest().names) or "none (no manifest)"
        return AudioError(
            f"test audio {name!r} not found; searched {searched}. Known names: {known}. "
            f"Pass a path, or add the directory holding it to ${AUDIO_PATH_ENV} (os.pathsep-separated)"
        )
    if entry.availability == "proprietary":
        return AudioUnavailableError(
            f"test audio {name!r} is a proprietary recording and not shipped ({entry.source}); "
            f"searched {searched}. If you have a copy, {how}"
        )
    if entry.availability == "generated":
        return AudioError(
            f"test audio {name!r} is generated on demand and not generated here yet "
            f"({entry.source}); searched {searched}"
        )
    return AudioError(
        f"test audio {name!r} not found; searched {searched}. It is public, from {entry.source}: {how}"
    )
