"""Audio: decoding to 16 kHz mono float32, the test-audio catalog, generated speech."""

from transcription_benchmarks.audio.catalog import (
    AUDIO_PATH_ENV,
    find_test_audio,
    get_test_audio,
    reference_for,
)
from transcription_benchmarks.audio.decode import SAMPLE_RATE, AudioInfo, decode_audio, probe_audio

__all__ = [
    "AUDIO_PATH_ENV",
    "SAMPLE_RATE",
    "AudioInfo",
    "decode_audio",
    "find_test_audio",
    "get_test_audio",
    "probe_audio",
    "reference_for",
]
