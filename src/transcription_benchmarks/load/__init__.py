"""Endpoints under load: scenarios (single stream, offline, server), capacity and its cost,
against SageMaker-style and OpenAI-compatible servers behind one target interface."""

from transcription_benchmarks.load.result import LoadResult
from transcription_benchmarks.load.run import Pricing, run_load
from transcription_benchmarks.load.scenarios import Clip, LoadSettings
from transcription_benchmarks.load.targets import (
    LoadTarget,
    deployed_sagemaker,
    openai_compatible,
    sagemaker_style,
)

__all__ = [
    "Clip",
    "LoadResult",
    "LoadSettings",
    "LoadTarget",
    "Pricing",
    "deployed_sagemaker",
    "openai_compatible",
    "run_load",
    "sagemaker_style",
]
