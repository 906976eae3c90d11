"""The promises a benchmark result rests on, tested at their boundaries: which way WER counts,
what resume treats as done, what the clock covers, where the header limit falls, which options
an ignored-option warning names. Each test here failed against a bug put in by hand (issue 19's
table); they are written for the behaviour, not for those bugs."""

from __future__ import annotations

import base64
import hashlib
import json
import time
import warnings
from pathlib import Path

import brotli
import pytest

from transcription_benchmarks.args import BenchArgs
from transcription_benchmarks.backends import ignored_options
from transcription_benchmarks.matrix.rows import Cell
from transcription_benchmarks.matrix.runner import _row, append_row, run_matrix
from transcription_benchmarks.matrix.spec import Matrix
from transcription_benchmarks.quality.metrics import error_rates
from transcription_benchmarks.serving.protocol import (
    MAX_CUSTOM_ATTRIBUTES_CHARS,
    ParamsTooLongError,
    decode_params,
    encode_params,
)

TESTS = Path(__file__).resolve().parent
FAILING = Cell(model="python:matrix_cells:raise_error", label="raise")


# --- WER counts against the reference ------------------------------------------------------


def test_wer_divides_by_the_reference_and_counts_missing_words_as_deletions():
    rates = error_rates("the cat sat", "the cat sat on the mat")  # hypothesis, reference
    assert rates.wer == pytest.approx(0.5)  # 3 of the reference's 6 words lost
    assert (rates.deletions, rates.insertions, rates.substitutions) == (3, 0, 0)
    assert rates.reference_words == 6
    swapped = error_rates("the cat sat on the mat", "the cat sat")
    assert swapped.wer == pytest.approx(1.0)  # 3 extra words over a 3-word reference
    assert (swapped.deletions, swapped.insertions) == (0, 3)


# --- resume ------------------------------------------------------------------------------


def _planted(matrix: str, status: str, reason: str):
    from datetime import UTC, datetime

    return _row(matrix, FAILING, status, reason, datetime.now(UTC), 0.0)


@pytest.mark.usefixtures("cells_importable")
def test_a_later_timeout_row_reopens_a_cell_an_earlier_row_finished(tmp_path):
    out = tmp_path / "rows.jsonl"
    append_row(out, _planted("m", "error", "planted final row"))
    append_row(out, _planted("m", "timeout", "planted later timeout"))
    [row] = run_matrix(Matrix(name="m", cells=[FAILING]), out, progress=False)
    assert row.reason == "ValueError: this cell always fails"  # it ran again
    assert len(out.read_text().splitlines()) == 3


@pytest.mark.usefixtures("cells_importable")
def test_rows_of_another_matrix_in_the_same_file_do_not_count_as_done(tmp_path):
    out = tmp_path / "rows.jsonl"
    append_row(out, _planted("other", "error", "another matrix's row"))
    [row] = run_matrix(Matrix(name="m", cells=[FAILING]), out, progress=False)
    assert row.matrix == "m" and row.reason == "ValueError: this cell always fails"
    assert len(out.read_text().splitlines()) == 2


@pytest.mark.usefixtures("cells_importable")
def test_a_final_row_is_not_run_again(tmp_path):
    out = tmp_path / "rows.jsonl"
    append_row(out, _planted("m", "error", "planted final row"))
    [row] = run_matrix(Matrix(name="m", cells=[FAILING]), out, progress=False)
    assert row.reason == "planted final row"
    assert len(out.read_text().splitlines()) == 1


# --- the clock covers the decoding -----------------------------------------------------------

DECODE_S = 0.3


def test_timed_runs_cover_an_engines_whole_transcription(monkeypatch, jfk):
    """A stand-in engine whose transcription takes a known time, consumed lazily like
    faster-whisper's generator: every timed run must include all of it."""
    import importlib

    bench_module = importlib.import_module("transcription_benchmarks.bench")
    from transcription_benchmarks.backends.base import LoadedModel
    from transcription_benchmarks.backends.faster_whisper import FasterWhisperBackend
    from transcription_benchmarks.transcript import Segment, Transcript

    class SlowModel(LoadedModel):
        config: dict = {}  # noqa: RUF012 - a stand-in
        warnings: list = []  # noqa: RUF012

        def transcribe(self, audio, progress=None):
            def segments():
                time.sleep(DECODE_S)  # the decoding, run when the segments are consumed
                yield Segment(start=0.0, end=audio.duration_s, text="ask not")

            return Transcript(segments=list(segments()), language="en")

    class SlowBackend(FasterWhisperBackend):
        def load(self, model, args, device):
            return SlowModel()

    monkeypatch.setattr(bench_module, "get_backend", lambda name: SlowBackend())
    result = bench_module.bench(
        "Systran/faster-whisper-tiny.en", BenchArgs(test_file=str(jfk), warmup=0, repeats=2)
    )
    assert all(DECODE_S <= run < DECODE_S + 0.25 for run in result.timing.runs_s)
    assert result.speed == pytest.approx(result.audio_duration_s / result.timing.median)


def test_real_decoding_speed_is_physically_plausible(jfk):
    """tiny.en on CPU decodes 11 s of speech at tens of times real time; a clock that missed
    the decoding would report millions."""
    from transcription_benchmarks.bench import bench

    result = bench(
        "Systran/faster-whisper-tiny.en",
        BenchArgs(test_file=str(jfk), device="cpu", warmup=0, repeats=1, beam_size=1),
    )
    assert 1 < result.speed < 1000, result.speed
    assert result.timing.median > 0.01


# --- the custom-attributes header: 1024 characters, on both sides ------------------------------


def _encoded_length(prompt: str) -> int:
    raw = json.dumps({"single": {"initial_prompt": prompt}}, separators=(",", ":"), sort_keys=True)
    return len(base64.b64encode(brotli.compress(raw.encode(), quality=11)))


@pytest.fixture(scope="module")
def prompts_at_the_limit() -> dict[int, str]:
    """Incompressible prompts whose encoded header is exactly 1024 and exactly 1028 characters
    (base64 comes in steps of 4): the last length allowed and the first refused."""
    found: dict[int, str] = {}
    text = "".join(hashlib.sha256(str(i).encode()).hexdigest() for i in range(60))
    for length in range(900, len(text)):
        encoded = _encoded_length(text[:length])
        if encoded in (MAX_CUSTOM_ATTRIBUTES_CHARS, MAX_CUSTOM_ATTRIBUTES_CHARS + 4):
            found.setdefault(encoded, text[:length])
        if len(found) == 2:
            return found
    raise AssertionError(f"no prompt encodes to exactly 1024/1028 characters: {found}")


def test_exactly_1024_characters_pass_both_sides(prompts_at_the_limit):
    params = {"single": {"initial_prompt": prompts_at_the_limit[1024]}}
    header = encode_params(params)
    assert len(header) == MAX_CUSTOM_ATTRIBUTES_CHARS
    assert decode_params(header) == params


def test_the_first_longer_header_is_refused_by_the_client(prompts_at_the_limit):
    # 1028 characters of base64 carry only 771 compressed bytes: the limit is on the header.
    with pytest.raises(ParamsTooLongError, match="1028 characters"):
        encode_params({"single": {"initial_prompt": prompts_at_the_limit[1028]}})


@pytest.mark.parametrize("length", [1025, 1028, 1280])
def test_a_longer_header_is_refused_by_the_server(length):
    with pytest.raises(ParamsTooLongError, match=f"{length} characters"):
        decode_params("A" * length)


# --- the ignored-option warning names only what the backend does not read ---------------------


def test_a_backends_own_options_are_not_reported_as_ignored():
    own = BenchArgs(chunk_length=10, vad_filter=False, compute_type="int8", cpu_threads=2)
    assert ignored_options(own, "faster-whisper") == []
    assert ignored_options(own, "transformers") == [
        "chunk_length",
        "compute_type",
        "cpu_threads",
        "vad_filter",
    ]
    hf = BenchArgs(dtype="bf16", chunk_length_s=10.0)
    assert ignored_options(hf, "transformers") == []
    assert ignored_options(hf, "faster-whisper") == ["chunk_length_s", "dtype"]


def test_options_set_to_their_default_are_not_reported():
    spelled_out = BenchArgs(compute_type="default", dtype=None, chunk_length_s=None, cpu_threads=0)
    assert ignored_options(spelled_out, "transformers") == []
    assert ignored_options(spelled_out, "faster-whisper") == []
    # Options whose default is made by a factory (an empty dict) as well.
    empty = BenchArgs(transcribe_options={}, generate_kwargs={})
    assert ignored_options(empty, "transformers") == []
    assert ignored_options(empty, "faster-whisper") == []
    given = BenchArgs(generate_kwargs={"num_beams": 2})
    assert ignored_options(given, "faster-whisper") == ["generate_kwargs"]


def test_bench_warns_about_nothing_the_backend_reads(jfk):
    from transcription_benchmarks.bench import IgnoredOptionWarning, bench

    args = BenchArgs(
        test_file=str(jfk),
        device="cpu",
        warmup=0,
        repeats=1,
        beam_size=1,
        chunk_length=30,
        compute_type="default",
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = bench("Systran/faster-whisper-tiny.en", args)
    assert not [w for w in caught if issubclass(w.category, IgnoredOptionWarning)]
    assert not any("ignores" in note for note in result.warnings)
