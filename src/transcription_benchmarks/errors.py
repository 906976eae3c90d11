"""The errors `bench()` raises. Each names the problem and, where there is one, the way out."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydantic import ValidationError


class BenchError(Exception):
    """Base class: anything the user can fix by changing the input or the environment."""


class AudioError(BenchError):
    """The audio file is missing, unreadable, corrupt or holds no samples."""


class AudioTooLongError(AudioError):
    """The audio is longer than the caller takes, by its header or by what decoded so far:
    decoding stopped there, so its memory stayed bounded."""

    def __init__(self, message: str, claimed_s: float | None, limit_s: float) -> None:
        super().__init__(message)
        self.claimed_s = claimed_s
        self.limit_s = limit_s


class ModelNotFoundError(BenchError):
    """The model id or path cannot be resolved to a model directory."""


class BackendNotInstalledError(BenchError):
    """The backend's Python packages are not installed."""


class InvalidOptionError(BenchError, ValueError):
    """An option has an invalid value, or options conflict."""


class BackendLoadError(BenchError):
    """The backend is installed but cannot run here (a CUDA library it needs does not load)."""


class AudioUnavailableError(AudioError):
    """A catalogued test file that cannot be shipped (proprietary) is not on this machine."""


class AudioChecksumError(AudioError):
    """A test file's bytes differ from the catalogue's sha256: corrupt, truncated or another file."""


def describe_validation_error(
    exc: ValidationError, *, each: str = "", under: str = "", empty: str = "top level"
) -> str:
    """A pydantic ValidationError as one line: `each` + "dotted.location: message" per problem,
    joined by "; ". `under` is prefixed to every location (the dict sits inside a larger
    document); `empty` names a problem with the whole document."""
    problems = []
    for error in exc.errors():
        where = ".".join(str(part) for part in ((under,) if under else ()) + tuple(error["loc"]))
        problems.append(f"{each}{where or empty}: {error['msg']}")
    return "; ".join(problems)
