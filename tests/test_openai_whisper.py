"""openai-whisper on the real packaged tiny.en, converted to its checkpoint layout offline."""

from __future__ import annotations

import subprocess
import sys

import pytest
from tests.conftest import JFK_TEXT, shared_audio

from transcription_benchmarks import BenchArgs, InvalidOptionError, ModelNotFoundError, bench
from transcription_benchmarks.bench import IgnoredOptionWarning
from transcription_benchmarks.models import PACKAGED_ID
from transcription_benchmarks.models.hf_to_openai import openai_name

pytest.importorskip("whisper", reason="openai-whisper is not installed")

FAST = {"device": "cpu", "warmup": 0, "repeats": 1, "temperature": 0.0}


def run(model=PACKAGED_ID, **options):
    return bench(model, BenchArgs(backend="openai-whisper", **{**FAST, **options}))


@pytest.fixture(scope="module")
def jfk_result(jfk):
    return run(test_file=str(jfk), beam_size=1)


def test_jfk_on_the_converted_packaged_weights(jfk_result):
    result = jfk_result
    assert result.backend == "openai-whisper"
    assert result.model.format == "openai-whisper"
    assert result.model.converted_from == "ctranslate2"
    assert JFK_TEXT in result.get_text(with_timestamps=False).lower()
    assert result.wer == 0.0
    assert result.transcript.language == "en"
    assert "openai-whisper" in result.environment.packages


def test_segment_times_agree_with_faster_whisper_on_the_same_weights(jfk, jfk_result):
    reference = bench(PACKAGED_ID, BenchArgs(test_file=str(jfk), beam_size=1, **FAST))
    ours = [(s.start, s.end) for s in jfk_result.transcript.segments]
    theirs = [(s.start, s.end) for s in reference.transcript.segments]
    assert len(ours) == len(theirs)
    for (start, end), (start_ref, end_ref) in zip(ours, theirs, strict=True):
        assert start == pytest.approx(start_ref, abs=0.5)
        assert end == pytest.approx(end_ref, abs=0.5)


def test_options_reach_transcribe_and_are_recorded(short):
    with pytest.warns(IgnoredOptionWarning, match="openai-whisper ignores option.*compute_type"):
        result = run(
            test_file=str(short),
            beam_size=2,
            compute_type="int8",
            transcribe_options={"initial_prompt": "Transcript:", "patience": 1.0},
        )
    assert result.config["beam_size"] == 2
    assert result.config["initial_prompt"] == "Transcript:"
    assert result.wer is not None and result.wer < 0.2


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"batch_size": 4}, "batch_size is not supported"),
        ({"dtype": "bf16"}, "fp16 or fp32, not bf16"),
        ({"dtype": "fp16"}, "fp16 on CUDA only"),
        (
            {"transcribe_options": {"beam_width": 3}},
            r"unknown openai-whisper option\(s\) beam_width",
        ),
        ({"transcribe_options": {"beam_size": 3}}, "BenchArgs has as its own option"),
        ({"language": "fr"}, "English-only"),
    ],
)
def test_bad_values_are_refused_with_their_reason(jfk, options, message):
    with pytest.raises(InvalidOptionError, match=message):
        run(test_file=str(jfk), **options)


def test_its_own_short_names_go_through_its_own_download(jfk):
    with pytest.raises(ModelNotFoundError, match=r"openai-whisper cannot download 'base\.en'"):
        run("base.en", test_file=str(jfk))


def test_synthetic_architecture_decodes_a_fixed_number_of_tokens_per_window():
    import whisper.tokenizer

    from transcription_benchmarks.models.synthetic import SYNTHETIC_TOKENS_PER_WINDOW

    result = run("synthetic:tiny", test_file=str(shared_audio("1min.flac")))
    assert result.model.synthetic
    assert result.config["synthetic_tokens_per_window"] == SYNTHETIC_TOKENS_PER_WINDOW
    tokenizer = whisper.tokenizer.get_tokenizer(True, num_languages=99)
    counts = [len(tokenizer.encode(s.text)) for s in result.transcript.segments]
    assert counts == [SYNTHETIC_TOKENS_PER_WINDOW] * 2  # two 30 s windows in 60 s


def test_names_map_onto_openai_whispers_layout():
    assert openai_name("model.encoder.layers.3.self_attn.q_proj.weight") == (
        "encoder.blocks.3.attn.query.weight"
    )
    assert openai_name("model.decoder.layers.0.encoder_attn_layer_norm.bias") == (
        "decoder.blocks.0.cross_attn_ln.bias"
    )
    assert openai_name("model.decoder.layers.1.fc2.weight") == "decoder.blocks.1.mlp.2.weight"
    assert openai_name("model.encoder.embed_positions.weight") == "encoder.positional_embedding"
    assert openai_name("model.decoder.embed_tokens.weight") == "decoder.token_embedding.weight"
    assert openai_name("model.encoder.layer_norm.weight") == "encoder.ln_post.weight"
    assert openai_name("proj_out.weight") is None  # tied to the token embedding


def test_cli_runs_it(jfk):
    done = subprocess.run(
        [
            *(sys.executable, "-m", "transcription_benchmarks", "bench", "tiny.en"),
            *("--backend", "openai-whisper", "-f", str(jfk), "--device", "cpu"),
            *("--warmup", "0", "-n", "1", "--option", 'transcribe_options={"best_of": 2}'),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert JFK_TEXT in done.stdout.lower()
