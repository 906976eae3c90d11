"""whisper.cpp (pywhispercpp) on the real packaged tiny.en, converted to a ggml file offline."""

from __future__ import annotations

import re
import struct
import subprocess
import sys

import pytest
from tests.conftest import JFK_TEXT

from transcription_benchmarks import BenchArgs, InvalidOptionError, ModelNotFoundError, bench
from transcription_benchmarks.bench import IgnoredOptionWarning
from transcription_benchmarks.models import PACKAGED_ID, resolve
from transcription_benchmarks.models.hf_to_ggml import HEADER_ORDER, MAGIC

pytest.importorskip("pywhispercpp", reason="pywhispercpp is not installed")

FAST = {"device": "cpu", "warmup": 0, "repeats": 1, "temperature": 0.0}


def run(model=PACKAGED_ID, **options):
    return bench(model, BenchArgs(backend="whisper.cpp", **{**FAST, **options}))


@pytest.fixture(scope="module")
def jfk_result(jfk):
    return run(test_file=str(jfk))


def test_jfk_on_the_converted_packaged_weights(jfk_result):
    result = jfk_result
    assert result.backend == "whisper.cpp"
    assert (result.model.format, result.model.converted_from) == ("ggml", "ctranslate2")
    assert JFK_TEXT in result.get_text(with_timestamps=False).lower()
    assert result.wer == 0.0
    assert result.transcript.language == "en"
    assert result.config["compute_type"] == "float16"
    assert "pywhispercpp" in result.environment.packages


def test_segment_times_agree_with_faster_whisper_on_the_same_weights(jfk, jfk_result):
    reference = bench(PACKAGED_ID, BenchArgs(test_file=str(jfk), beam_size=1, **FAST))
    ends = [s.end for s in jfk_result.transcript.segments]
    assert jfk_result.transcript.segments[0].start == pytest.approx(0.0, abs=0.5)
    assert ends[-1] == pytest.approx(reference.transcript.segments[-1].end, abs=1.0)
    assert ends == sorted(ends)


def test_the_ggml_file_has_whisper_cpps_layout():
    path = resolve(PACKAGED_ID, "ggml").path / "ggml-model.bin"
    with path.open("rb") as f:
        magic, *header = struct.unpack("<12i", f.read(48))
        rows, columns = struct.unpack("<ii", f.read(8))
        f.seek(rows * columns * 4, 1)
        (tokens,) = struct.unpack("<i", f.read(4))
    assert magic == MAGIC
    dims = dict(zip(HEADER_ORDER, header, strict=False))
    assert dims["n_vocab"] == 51864 and dims["n_mels"] == 80  # tiny.en
    assert (dims["n_audio_layer"], dims["n_audio_state"]) == (4, 384)
    assert header[-1] == 1  # f16
    assert (rows, columns) == (80, 201)
    assert tokens == 50256  # GPT-2's BPE tokens, end-of-text and the specials left out


def test_options_reach_whisper_cpp_and_are_recorded(jfk):
    with pytest.warns(IgnoredOptionWarning, match=r"whisper\.cpp ignores option.*dtype"):
        result = run(test_file=str(jfk), beam_size=3, cpu_threads=2, dtype="fp32")
    assert (result.config["beam_size"], result.config["n_threads"]) == (3, 2)
    assert result.config["beam_search"]["beam_size"] == 3
    assert result.wer == 0.0


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"batch_size": 4}, "no batch_size"),
        ({"compute_type": "int8"}, "float16 ggml files, not 'int8'"),
        ({"word_timestamps": True}, "word_timestamps is not supported"),
        ({"transcribe_options": {"n_thread": 2}}, r"unknown whisper\.cpp parameter\(s\) n_thread"),
        ({"device": "cuda"}, "CPU builds"),
    ],
)
def test_bad_values_are_refused_with_their_reason(jfk, options, message):
    with pytest.raises(InvalidOptionError, match=message):
        run(test_file=str(jfk), **options)


def test_its_own_names_go_through_pywhispercpps_download(jfk):
    with pytest.raises(ModelNotFoundError, match=r"whisper\.cpp cannot download 'base\.en'"):
        run("base.en", test_file=str(jfk))


def test_random_weights_are_capped_and_the_result_says_so(jfk):
    result = run("synthetic:tiny", test_file=str(jfk))
    assert result.config["synthetic_tokens_per_window"] is None  # not fixed on this engine
    (note,) = [w for w in result.warnings if "cannot fix the decoded length" in w]
    per_window = int(re.search(r"(\d+) per window", note).group(1))
    assert 0 < per_window <= 64 + 2  # the cap, plus the segment's own markers


def test_cli_runs_it(jfk):
    done = subprocess.run(
        [
            *(sys.executable, "-m", "transcription_benchmarks", "bench", "tiny.en"),
            *("--backend", "whisper.cpp", "-f", str(jfk), "--device", "cpu"),
            *("--warmup", "0", "-n", "1", "--option", 'transcribe_options={"max_len": 0}'),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert JFK_TEXT in done.stdout.lower()
