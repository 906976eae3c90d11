"""Decode any container PyAV reads into the 16 kHz mono float32 array Whisper models take.

Written against PyAV directly (rather than faster_whisper.decode_audio or transformers'
ffmpeg_read) so that every backend decodes the same way without an ffmpeg binary and without
importing another backend's package.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np

from transcription_benchmarks.audio.silence import silent_stretches
from transcription_benchmarks.errors import AudioError, AudioTooLongError

SAMPLE_RATE = 16_000
_EMPTY = np.empty(0, dtype=np.int16)


@dataclass(frozen=True)
class AudioInfo:
    path: Path
    duration_s: float
    source_sample_rate: int
    source_channels: int
    silences: list[tuple[float, float]] = field(default_factory=list)
    """Silent stretches (start, end seconds): found while the samples are at hand."""


def decode_audio(
    source: str | Path | bytes | bytearray,
    *,
    max_s: float | None = None,
    checkpoint: Callable[[], None] | None = None,
) -> np.ndarray:
    """The audio as float32 in [-1, 1], mono, 16 kHz, from a file or from a file's bytes (an
    endpoint's request body). Raises AudioError naming the problem.

    `max_s` bounds the memory decoding may take: a container whose header claims more is refused
    before anything is decoded, and decoding stops as soon as the decoded audio passes it,
    whatever the header said (AudioTooLongError). `checkpoint` is called between decoded frames
    and may raise to stop decoding (an endpoint's request deadline)."""
    return _decode(source, max_s=max_s, checkpoint=checkpoint)[0]


def probe_audio(path: str | Path) -> AudioInfo:
    """Decode once to check the file and measure its duration from the samples themselves
    (container headers can lie about duration)."""
    path = Path(path)
    samples, rate, channels = _decode(path)
    silences = silent_stretches(samples, SAMPLE_RATE)
    return AudioInfo(path, len(samples) / SAMPLE_RATE, rate, channels, silences)


def header_duration_s(container: av.container.InputContainer, stream: av.AudioStream) -> float:
    """The longest duration the container's header claims (0 where it claims none): the
    stream's own, and the container's (microseconds). A WAV whose header gives 1 sample per
    second claims 6 MB of data to be hours long: this is what refuses it before decoding."""
    claims = [0.0]
    if stream.duration is not None and stream.time_base is not None:
        claims.append(float(stream.duration * stream.time_base))
    if container.duration is not None:
        claims.append(container.duration / av.time_base)
    return max(c for c in claims if math.isfinite(c))


def _describe(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 3600 else f"{seconds:.0f} s ({seconds / 3600:.1f} h)"


def _decode(
    source: str | Path | bytes | bytearray,
    *,
    max_s: float | None = None,
    checkpoint: Callable[[], None] | None = None,
) -> tuple[np.ndarray, int, int]:
    if isinstance(source, bytes | bytearray | memoryview):
        name = "the request body"
        if not source:
            raise AudioError("the audio is empty (0 bytes)")
        opened = io.BytesIO(source)
    else:
        path = Path(source)
        name = str(path)
        if not path.exists():
            raise AudioError(f"audio file not found: {path}")
        if path.is_dir():
            raise AudioError(f"audio path is a directory, not a file: {path}")
        if path.stat().st_size == 0:
            raise AudioError(f"audio file is empty (0 bytes): {path}")
        opened = str(path)
    limit = math.inf if max_s is None else max_s
    resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
    # int16 chunks as decoded (2 bytes a sample), copied once into the float32 result below:
    # six bytes a sample at the peak, where concatenating then converting took eight.
    chunks: list[np.ndarray] = []
    try:
        with av.open(opened, mode="r", metadata_errors="ignore") as container:
            if not container.streams.audio:
                raise AudioError(f"no audio stream in {name}")
            stream = container.streams.audio[0]
            rate, channels = stream.rate or 0, stream.channels or 0
            if (claimed := header_duration_s(container, stream)) > limit:
                raise AudioTooLongError(
                    f"{name} is {_describe(claimed)} long by its header; at most "
                    f"{_describe(limit)} is taken",
                    claimed,
                    limit,
                )
            decoded_s = 0.0
            for frame in container.decode(stream):
                # Counted from the frame itself before resampling: a frame at 1 sample per
                # second would resample into 16 000 samples per input sample.
                decoded_s += frame.samples / (frame.sample_rate or SAMPLE_RATE)
                if decoded_s > limit:
                    raise AudioTooLongError(
                        f"{name} decodes to more than {_describe(limit)} of audio (its header "
                        f"claimed {_describe(claimed)}); at most {_describe(limit)} is taken",
                        None,
                        limit,
                    )
                if checkpoint is not None:
                    checkpoint()
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().reshape(-1))
            for out in resampler.resample(None):  # flush the resampler's buffer
                chunks.append(out.to_ndarray().reshape(-1))
    except AudioError:
        raise
    except (av.error.FFmpegError, ValueError, OSError, MemoryError) as exc:
        raise AudioError(f"cannot decode audio file {name}: {exc}") from exc
    total = sum(c.size for c in chunks)
    if total == 0:
        raise AudioError(f"audio file holds no samples: {name}")
    samples = np.empty(total, dtype=np.float32)
    position = 0
    for index, chunk in enumerate(chunks):
        samples[position : position + chunk.size] = chunk
        position += chunk.size
        chunks[index] = _EMPTY  # each chunk freed once copied
    samples /= 32768.0
    return samples, rate, channels
