"""Memory per request bounded and known before the work starts (issue 27, items 1 and 2):
decoding refuses what a header claims past the limit and stops where the samples pass it,
inside the request's deadline; each engine's cost per audio minute and the worker's budget give
the effective limit; faster-whisper's features are computed in pieces, bitwise the same as the
whole-file path, so a request's memory barely grows with its length. Real tiny.en, real audio.
"""

from __future__ import annotations

import io
import json
import struct
import subprocess
import sys
import tracemalloc
from pathlib import Path

import av
import numpy as np
import pytest
from tests.test_serving_handlers import (  # noqa: F401 - fixtures
    _call,
    faster_whisper_service,
)

from transcription_benchmarks.audio import decode_audio
from transcription_benchmarks.backends.faster_whisper import (
    FasterWhisperBackend,
    piecewise_features,
)
from transcription_benchmarks.errors import AudioError, AudioTooLongError
from transcription_benchmarks.serving import handler
from transcription_benchmarks.serving.budget import MIB, audio_budget, machine_memory_bytes
from transcription_benchmarks.serving.config import ServingConfig
from transcription_benchmarks.serving.protocol import ErrorBody

ROOT = Path(__file__).parent.parent


def _wav_one_sample_per_second(data_bytes: int) -> bytes:
    data = b"\x00\x01" * (data_bytes // 2)
    fmt = struct.pack("<IHHIIHH", 16, 1, 1, 1, 2, 2, 16)
    size = struct.pack("<I", 36 + len(data))
    return b"RIFF" + size + b"WAVEfmt " + fmt + b"data" + struct.pack("<I", len(data)) + data


def _flac(samples: np.ndarray) -> bytes:
    out = io.BytesIO()
    with av.open(out, mode="w", format="flac") as container:
        stream = container.add_stream("flac", rate=16_000, layout="mono")
        frame = av.AudioFrame.from_ndarray(
            (samples * 32767).astype(np.int16).reshape(1, -1), format="s16", layout="mono"
        )
        frame.sample_rate = 16_000
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)
    return out.getvalue()


def _without_length(flac: bytes) -> bytes:
    """The FLAC with STREAMINFO's total-samples field zeroed ("unknown", as a live encoder
    writes it): its header no longer says how long it is."""
    assert flac[:4] == b"fLaC"
    (packed,) = struct.unpack(">Q", flac[18:26])
    packed &= ~((1 << 36) - 1)
    return flac[:18] + struct.pack(">Q", packed) + flac[26:]


@pytest.fixture
def service(faster_whisper_service):  # noqa: F811 - the fixture, by name
    return faster_whisper_service


# --- 1. the decode bomb --------------------------------------------------------------------------


def test_a_header_claiming_hours_is_refused_before_any_decoding():
    bomb = _wav_one_sample_per_second(6_000_000)  # 6 MB: 833 h at 1 sample/s
    tracemalloc.start()
    try:
        with pytest.raises(AudioTooLongError, match=r"833\.3 h\) long by its header"):
            decode_audio(bomb, max_s=4 * 3600)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 16 * MIB  # the body's copy at most: before, 833 h resampled to 16 kHz


def test_decoding_stops_where_the_samples_pass_the_limit_whatever_the_header_says(jfk):
    samples = decode_audio(jfk)
    unknown = _without_length(_flac(np.tile(samples, 3)))  # 33 s, the header says nothing
    assert len(decode_audio(unknown)) == 3 * len(samples)  # it decodes whole without a limit
    every, stopped = [], []
    decode_audio(unknown, checkpoint=lambda: every.append(1))
    with pytest.raises(AudioTooLongError, match="decodes to more than 15 s"):
        decode_audio(unknown, max_s=15, checkpoint=lambda: stopped.append(1))
    # stopped at the limit: about 15 of its 33 s read, with a checkpoint for each frame
    assert 0 < len(stopped) < 0.6 * len(every)


def test_decoding_from_memory_hears_what_decoding_the_file_hears(jfk):
    assert np.array_equal(decode_audio(jfk.read_bytes()), decode_audio(jfk))
    with pytest.raises(AudioError, match="the request body"):
        decode_audio(b"not audio at all" * 100)


def test_decoding_runs_inside_the_request_deadline(service, jfk_bytes, monkeypatch):
    called = []
    monkeypatch.setattr(
        service.model, "transcribe", lambda *a, **k: called.append(1) or pytest.fail("ran")
    )
    expired = handler.Service(service.model, ServingConfig(request_timeout_s=1e-9))
    body, _ = _call(handler, expired, jfk_bytes)
    refusal = ErrorBody.model_validate_json(body)
    assert (refusal.status, refusal.error) == (504, "RequestTimeout")
    assert not called  # stopped while decoding, before the engine


# --- 2. the budget ----------------------------------------------------------------------------


def test_the_memory_budget_bounds_the_audio_a_request_carries(service, jfk_bytes, long_audio):
    per_minute = FasterWhisperBackend.request_mib_per_audio_minute
    budget_mb = per_minute * 0.5  # 30 s of audio, less the body
    small = handler.Service(service.model, ServingConfig(memory_budget_mb=budget_mb))
    answer, _ = _call(handler, small, jfk_bytes)  # 11 s: within
    assert "segments" in json.loads(answer)
    refusal = ErrorBody.model_validate_json(_call(handler, small, long_audio.read_bytes())[0])
    assert (refusal.status, refusal.error) == (400, "LimitExceeded")
    assert "long by its header" in refusal.message  # 60 s: refused before decoding
    assert f"a memory budget of {budget_mb:.0f} MiB per request" in refusal.message
    assert f"{per_minute:g} MiB per audio minute" in refusal.message
    assert "memory_budget_mb in serving.json" in refusal.message


def test_the_default_budget_shares_the_machine_among_the_workers(monkeypatch):
    monkeypatch.setenv("SAGEMAKER_MODEL_SERVER_WORKERS", "4")
    loaded = 500 * MIB
    budget = audio_budget(14_400, 10.0, budget_mb=None, device="cpu", loaded_bytes=loaded)
    assert budget.budget_mib == pytest.approx((machine_memory_bytes() / 4 - loaded) / MIB)
    assert "over 4 workers" in budget.source
    expected = min(14_400.0, 60 * (budget.budget_mib - 2.0) / 10.0)
    assert budget.max_audio_s(body_bytes=2 * MIB) == pytest.approx(expected)
    tight = audio_budget(14_400, 10.0, budget_mb=100, device="cpu")
    assert tight.max_audio_s() == pytest.approx(600)  # 100 MiB at 10 MiB a minute
    assert "600 s: a memory budget of 100 MiB" in tight.describe()


# --- faster-whisper's features in pieces ------------------------------------------------------


@pytest.mark.parametrize("n_mels", [80, 128])
def test_piecewise_features_are_bitwise_the_whole_file_features(long_audio, n_mels):
    from faster_whisper.feature_extractor import FeatureExtractor

    whole = FeatureExtractor(feature_size=n_mels)
    pieces = piecewise_features(whole)
    speech = decode_audio(long_audio)
    # Around the piece edges (a remainder of 0 to a few frames), and long files of many pieces.
    lengths = [16_000 * 60 - 480 + k * 997 for k in range(5)] + [16_000 * 200 + 12_345]
    for length in lengths:
        audio = np.resize(speech, length)
        expected = whole(audio)
        got = pieces(audio)
        assert got.shape == expected.shape and np.array_equal(got, expected), length


def test_piecewise_features_hold_a_fraction_of_the_whole_file_memory(long_audio):
    from faster_whisper.feature_extractor import FeatureExtractor

    audio = np.resize(decode_audio(long_audio), 16_000 * 600)  # 10 minutes
    peaks = {}
    for name, extractor in (
        ("whole", FeatureExtractor()),
        ("pieces", piecewise_features(FeatureExtractor())),
    ):
        tracemalloc.start()
        extractor(audio)
        peaks[name] = tracemalloc.get_traced_memory()[1] / MIB
        tracemalloc.stop()
    # whole: every frame windowed, its complex spectrum, its power (about 38 MiB a minute);
    # pieces: one piece of those, and the mel power of the whole file (1.9 MiB a minute).
    assert peaks["whole"] > 300, peaks
    assert peaks["pieces"] < peaks["whole"] / 4, peaks


def test_faster_whisper_states_what_a_request_costs_and_holds_to_it():
    # The benchmark's own measurement (peak RSS in a process of its own) at 1 and 3 minutes.
    points = []
    for minutes in ("1", "3"):
        done = subprocess.run(
            [
                sys.executable,
                str(ROOT / "benchmarks" / "request_memory.py"),
                "--point",
                "faster-whisper",
                minutes,
            ],
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        points.append(json.loads(done.stdout.strip().splitlines()[-1]))
    slope = (points[1]["request_mib"] - points[0]["request_mib"]) / 2
    assert slope <= FasterWhisperBackend.request_mib_per_audio_minute * 1.5, points
    assert FasterWhisperBackend.request_mib_per_audio_minute < 20  # whole-file features: 46


@pytest.fixture(scope="module")
def long_audio() -> Path:
    from transcription_benchmarks.audio import find_test_audio

    return find_test_audio("1min.flac")
