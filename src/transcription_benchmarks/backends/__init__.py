"""Engines behind one interface (base.Backend), found through one registry (registry.py):
faster-whisper and transformers built in, others from the `transcription_benchmarks.backends`
entry-point group."""

from __future__ import annotations

from transcription_benchmarks.backends.base import Backend, LoadedModel, ProgressCallback
from transcription_benchmarks.backends.registry import (
    backend_for_format,
    backend_names,
    get_backend,
    ignored_options,
)

__all__ = [
    "Backend",
    "LoadedModel",
    "ProgressCallback",
    "backend_for_format",
    "backend_names",
    "get_backend",
    "ignored_options",
]
