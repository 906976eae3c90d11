"""Decode any container PyAV reads into the 16 kHz mono float32 array Whisper models take.

Written against PyAV directly (rather than faster_whisper.decode_audio or transformers'
ffmpeg_read) so that every backend decodes the same way without an ffmpeg binary and without
importing another backend's package.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np

from transcription_benchmarks.audio.silence import silent_stretches
from transcription_benchmarks.errors import AudioError

SAMPLE_RATE = 16_000


@dataclass(frozen=True)
class AudioInfo:
    path: Path
    duration_s: float
    source_sample_rate: int
    source_channels: int
    silences: list[tuple[float, float]] = field(default_factory=list)
    """Silent stretches (start, end seconds): found while the samples are at hand."""


def decode_audio(path: str | Path) -> np.ndarray:
    """The file's audio as float32 in [-1, 1], mono, 16 kHz. Raises AudioError naming the problem."""
    return _decode(Path(path))[0]


def probe_audio(path: str | Path) -> AudioInfo:
    """Decode once to check the file and measure its duration from the samples themselves
    (container headers can lie about duration)."""
    path = Path(path)
    samples, rate, channels = _decode(path)
    silences = silent_stretches(samples, SAMPLE_RATE)
    return AudioInfo(path, len(samples) / SAMPLE_RATE, rate, channels, silences)


def _decode(path: Path) -> tuple[np.ndarray, int, int]:
    if not path.exists():
        raise AudioError(f"audio file not found: {path}")
    if path.is_dir():
        raise AudioError(f"audio path is a directory, not a file: {path}")
    if path.stat().st_size == 0:
        raise AudioError(f"audio file is empty (0 bytes): {path}")
    resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
    chunks: list[np.ndarray] = []
    try:
        with av.open(str(path), mode="r", metadata_errors="ignore") as container:
            if not container.streams.audio:
                raise AudioError(f"no audio stream in {path}")
            stream = container.streams.audio[0]
            rate, channels = stream.rate or 0, stream.channels or 0
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().reshape(-1))
            for out in resampler.resample(None):  # flush the resampler's buffer
                chunks.append(out.to_ndarray().reshape(-1))
    except AudioError:
        raise
    except (av.error.FFmpegError, ValueError, OSError) as exc:
        raise AudioError(f"cannot decode audio file {path}: {exc}") from exc
    if not chunks or sum(c.size for c in chunks) == 0:
        raise AudioError(f"audio file holds no samples: {path}")
    samples = np.concatenate(chunks).astype(np.float32) / 32768.0
    return samples, rate, channels
