"""Speed, memory and accuracy benchmarks for Whisper-family models.

from transcription_benchmarks import bench, BenchArgs
res = bench("openai/whisper-large-v2", BenchArgs(batch_size=16))
print(res.get_text()); print(res.get_stats())
"""

from transcription_benchmarks.args import BenchArgs
from transcription_benchmarks.bench import IgnoredOptionWarning, UnstableBenchmarkWarning, bench
from transcription_benchmarks.errors import (
    AudioChecksumError,
    AudioError,
    AudioUnavailableError,
    BackendLoadError,
    BackendNotInstalledError,
    BenchError,
    InvalidOptionError,
    ModelNotFoundError,
)
from transcription_benchmarks.result import BenchResult
from transcription_benchmarks.transcript import Segment, Transcript

__all__ = [
    "AudioChecksumError",
    "AudioError",
    "AudioUnavailableError",
    "BackendLoadError",
    "BackendNotInstalledError",
    "BenchArgs",
    "BenchError",
    "BenchResult",
    "IgnoredOptionWarning",
    "InvalidOptionError",
    "ModelNotFoundError",
    "Segment",
    "Transcript",
    "UnstableBenchmarkWarning",
    "bench",
]
