"""Synthetic architectures through bench(): random weights, real shapes, fixed-length decoding."""

from __future__ import annotations

import pytest

from transcription_benchmarks import BenchArgs, BenchResult, bench
from transcription_benchmarks.models.synthetic import SYNTHETIC_TOKENS_PER_WINDOW

FAST = {"device": "cpu", "warmup": 0, "repeats": 1}


@pytest.fixture(scope="module")
def one_minute():
    from tests.conftest import shared_audio

    return shared_audio("1min.flac")


@pytest.mark.parametrize("arch", ["whisper-tiny", "whisper-base"])
@pytest.mark.parametrize("backend", ["faster-whisper", "transformers"])
def test_synthetic_architectures_on_both_backends(arch, backend, one_minute):
    result: BenchResult = bench(
        f"synthetic:{arch}", BenchArgs(backend=backend, test_file=str(one_minute), **FAST)
    )
    assert result.model.synthetic
    assert result.model.source == "synthetic"
    assert result.model.format == ("ctranslate2" if backend == "faster-whisper" else "transformers")
    assert result.config["synthetic_tokens_per_window"] == SYNTHETIC_TOKENS_PER_WINDOW
    assert "(synthetic weights)" in result.get_stats()
    if backend == "faster-whisper":
        # 60 s of audio = two 30 s windows, one segment each: decoding never stops early.
        assert len(result.transcript.segments) == 2
    else:
        # Without timestamps the pipeline joins its two 30 s chunks into one text.
        assert result.config["chunk_length_s"] == 30
        assert len(result.transcript.segments) == 1
    assert all(segment.text.strip() for segment in result.transcript.segments)
    assert result.speed > 0


def test_forcing_overrides_user_decoding_options_and_says_so(jfk):
    result = bench(
        "synthetic:tiny",
        BenchArgs(test_file=str(jfk), beam_size=5, temperature=[0.0, 0.5], **FAST),
    )
    assert result.config["beam_size"] == 1
    assert result.config["temperature"] == 0.0
    assert any("overrides beam_size, temperature" in w for w in result.warnings)


def test_transformers_forcing_decodes_the_fixed_token_count(jfk):
    result = bench("synthetic:tiny", BenchArgs(backend="transformers", test_file=str(jfk), **FAST))
    generate = result.config["generate_kwargs"]
    assert generate["min_new_tokens"] == generate["max_new_tokens"] == SYNTHETIC_TOKENS_PER_WINDOW
    assert result.config["return_timestamps"] is False


def test_unknown_architecture_lists_the_known_ones(jfk):
    from transcription_benchmarks import ModelNotFoundError

    with pytest.raises(ModelNotFoundError, match="whisper-large-v3"):
        bench("synthetic:whisper-gigantic", BenchArgs(test_file=str(jfk), **FAST))
