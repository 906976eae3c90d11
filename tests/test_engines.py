"""compare_engines over any set of engines on the same weights (real tiny.en, real audio)."""

from __future__ import annotations

import pytest

from transcription_benchmarks import BenchArgs, InvalidOptionError
from transcription_benchmarks.models import PACKAGED_ID
from transcription_benchmarks.studies.engines import compare_engines

pytest.importorskip("pywhispercpp", reason="pywhispercpp is not installed")


def test_each_engine_is_compared_with_the_first(jfk):
    args = BenchArgs(device="cpu", warmup=0, repeats=1, beam_size=1, temperature=0.0)
    engines = ["faster-whisper", "whisper.cpp", "transformers"]
    (comparison,) = compare_engines(PACKAGED_ID, [str(jfk)], args, engines=engines)
    assert comparison.reference == "faster-whisper"
    assert list(comparison.wer) == engines
    assert set(comparison.divergence) == {"whisper.cpp", "transformers"}
    assert all(wer == 0.0 for wer in comparison.wer.values())
    # Same weights, greedy: the same words on jfk (punctuation and case normalised away).
    assert comparison.divergence == {"whisper.cpp": None, "transformers": None}
    text = comparison.describe()
    assert "whisper.cpp: same words as faster-whisper" in text
    assert "transformers: same words as faster-whisper" in text


def test_one_engine_is_not_a_comparison(jfk):
    with pytest.raises(InvalidOptionError, match="two or more"):
        compare_engines(PACKAGED_ID, [str(jfk)], engines=["faster-whisper"])
