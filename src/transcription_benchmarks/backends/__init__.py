"""Backends behind one interface (base.Backend): faster-whisper and transformers."""

from __future__ import annotations

from transcription_benchmarks.args import BACKEND_NAMES, BackendName
from transcription_benchmarks.backends.base import Backend, LoadedModel, ProgressCallback
from transcription_benchmarks.errors import InvalidOptionError


def get_backend(name: BackendName) -> Backend:
    if name == "faster-whisper":
        from transcription_benchmarks.backends.faster_whisper import FasterWhisperBackend

        return FasterWhisperBackend()
    if name == "transformers":
        from transcription_benchmarks.backends.transformers import TransformersBackend

        return TransformersBackend()
    raise InvalidOptionError(f"unknown backend {name!r}; choose one of {', '.join(BACKEND_NAMES)}")


__all__ = ["Backend", "LoadedModel", "ProgressCallback", "get_backend"]
