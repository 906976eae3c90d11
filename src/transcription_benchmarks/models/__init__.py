"""Model sources (hub, local, packaged, synthetic) and conversions between formats."""

from transcription_benchmarks.models.resolve import (
    PACKAGED_ID,
    SYNTHETIC_PREFIX,
    ModelFormat,
    ResolvedModel,
    detect_format,
    guess_format,
    model_family,
    resolve,
)

__all__ = [
    "PACKAGED_ID",
    "SYNTHETIC_PREFIX",
    "ModelFormat",
    "ResolvedModel",
    "detect_format",
    "guess_format",
    "model_family",
    "resolve",
]
