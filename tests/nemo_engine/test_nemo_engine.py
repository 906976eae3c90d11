"""The NeMo engine on the small synthetic canary and parakeet-TDT (the real NeMo classes, random
weights, offline tokenizers) and real speech, on CPU. NeMo has an environment of its own:
`nox -s nemo` runs these; elsewhere they skip."""

from __future__ import annotations

import math
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

pytest.importorskip("nemo.collections.asr", reason="NeMo is not installed: nox -s nemo runs these")

from transcription_benchmarks import BenchArgs, bench
from transcription_benchmarks.audio import SAMPLE_RATE, decode_audio
from transcription_benchmarks.backends.nemo import expected_tokens
from transcription_benchmarks.backends.registry import get_backend
from transcription_benchmarks.errors import InvalidOptionError, ModelNotFoundError

pytestmark = pytest.mark.nemo

CANARY = "synthetic:canary-tiny"
PARAKEET = "synthetic:parakeet-tdt-tiny"


def load(model: str, **options):
    backend = get_backend("nemo")
    args = BenchArgs(backend="nemo", device="cpu", cpu_threads=1, **options)
    return backend.load(backend.resolve_model(model, args), args, "cpu")


@pytest.fixture(scope="module")
def canary():
    return load(CANARY)


@pytest.fixture(scope="module")
def parakeet():
    return load(PARAKEET)


@pytest.fixture(scope="module")
def jfk_samples(jfk: Path):
    return decode_audio(jfk)


def token_counts(transcript) -> list[int]:
    return [len(s.tokens) for s in transcript.segments]


@pytest.mark.parametrize("model", [CANARY, PARAKEET])
def test_both_architectures_run_through_bench_like_any_engine(model, jfk):
    result = bench(model, BenchArgs(test_file=str(jfk), warmup=1, repeats=2, device="cpu"))
    assert result.backend == "nemo"  # chosen by the model's format
    assert result.model.synthetic and result.model.format == "nemo"
    assert result.model.path.endswith("model.nemo")
    assert len(result.timing.runs_s) == 2 and len(result.timing.warmup_s) == 1
    assert result.audio_duration_s == pytest.approx(11.0, abs=0.05)
    assert result.memory.peak_rss_mb > 0 and result.load_time_s > 0
    packages = result.environment.packages
    assert packages["nemo_toolkit"] == version("nemo_toolkit")
    assert packages["lightning"] == version("lightning")
    # Fixed work: every run decodes the same tokens (greedy, forced), so the texts agree.
    assert len(set(result.run_text_sha256)) == 1
    assert result.transcript.text.strip()
    assert result.quality.error_rates.wer > 0.5  # random weights against the reference
    assert "synthetic_decoding" in result.config
    assert result.config["dtype"] == "fp32" and result.config["beam_size"] == 1


def test_canary_decodes_64_tokens_per_30_seconds_on_every_run(canary, jfk_samples):
    assert canary.kind == "aed"
    assert canary.config["synthetic_tokens_per_window"] == 64
    counts = {tuple(token_counts(canary.transcribe(jfk_samples))) for _ in range(3)}
    assert counts == {(math.ceil(64 * 11.0 / 30),)} == {(24,)}
    three = jfk_samples[: 3 * SAMPLE_RATE]
    assert token_counts(canary.transcribe(three)) == [expected_tokens(canary, len(three))] == [7]


def test_tdt_emits_one_token_every_four_frames_on_every_run(parakeet, jfk_samples):
    assert parakeet.kind == "transducer"
    # 11.0 s: 1101 feature frames, 138 encoder frames (80 ms), one token every 4.
    counts = {tuple(token_counts(parakeet.transcribe(jfk_samples))) for _ in range(3)}
    assert counts == {(35,)}
    assert expected_tokens(parakeet, len(jfk_samples)) == 35
    text = parakeet.transcribe(jfk_samples).text.split()
    assert len(text) == 35 and len(set(text)) == 1  # one whole-word piece, every step


@pytest.mark.parametrize("model", [CANARY, PARAKEET])
def test_clips_are_batched_and_put_back_in_order(model, jfk_samples):
    one = load(model, chunk_length_s=4, batch_size=1)
    three = load(model, chunk_length_s=4, batch_size=3)
    lengths = [4 * SAMPLE_RATE, 4 * SAMPLE_RATE, len(jfk_samples) - 8 * SAMPLE_RATE]
    counts = {}
    for loaded in (one, three):
        transcript = loaded.transcribe(jfk_samples)
        assert [s.start for s in transcript.segments] == [0.0, 4.0, 8.0]
        assert transcript.segments[-1].end == pytest.approx(11.0, abs=0.01)
        counts[loaded.batch_size] = token_counts(transcript)
    assert counts[1] == [expected_tokens(one, n) for n in lengths]
    if model == CANARY:  # a batch decodes until its longest clip's cap: 4 s -> 9 tokens
        assert counts == {1: [9, 9, 7], 3: [9, 9, 9]}
    else:  # each clip's frames fix its own count, batched or not
        assert counts[3] == counts[1] == [13, 13, 10]
    assert three.config["batch_size"] == 3 and three.config["chunk_length_s"] == 4
    # A batch without clips cuts 30 s ones: jfk.flac is one.
    assert load(model, batch_size=2).config["chunk_length_s"] == 30


def test_a_dataset_is_decoded_in_one_batched_call(parakeet, jfk_samples):
    clips = [jfk_samples, jfk_samples[: 2 * SAMPLE_RATE]]
    transcripts = parakeet.transcribe_many(clips)
    assert [token_counts(t) for t in transcripts] == [
        [35],
        [expected_tokens(parakeet, len(clips[1]))],
    ]


def test_bf16_runs_on_cpu_where_it_can_and_fp16_is_refused(jfk_samples):
    bf16 = load(CANARY, dtype="bf16")
    assert bf16.config["dtype"] == "bf16"
    assert token_counts(bf16.transcribe(jfk_samples)) == [24]
    with pytest.raises(InvalidOptionError, match="oneDNN's LSTM"):
        load(PARAKEET, dtype="bf16")
    with pytest.raises(InvalidOptionError, match="fp16 on CUDA only"):
        load(PARAKEET, dtype="fp16")


def test_word_timestamps_give_timed_segments(jfk_samples):
    timed = load(PARAKEET, word_timestamps=True)
    segments = timed.transcribe(jfk_samples).segments
    assert segments and all(0.0 <= s.start <= s.end <= 11.3 for s in segments)
    assert sum(len(s.tokens) for s in segments) == 35


def test_canary_prompt_follows_language_and_task():
    german = load(CANARY, language="de")
    assert german.prompt == {"source_lang": "de", "target_lang": "de", "task": "asr", "pnc": "yes"}
    translating = load(
        CANARY, task="translate", transcribe_options={"target_lang": "fr", "pnc": False}
    )
    assert translating.prompt == {
        "source_lang": "en",
        "target_lang": "fr",
        "task": "ast",
        "pnc": "no",
    }


@pytest.mark.parametrize(
    ("model", "options", "message"),
    [
        (CANARY, {"transcribe_options": {"bogus": 1}}, "bogus"),
        (PARAKEET, {"temperature": 0.4}, "temperature"),
        (PARAKEET, {"task": "translate"}, "cannot translate"),
        (CANARY, {"language": "xx"}, "knows de, en, es, fr"),
        (CANARY, {"task": "translate"}, "target language other than the source"),
    ],
)
def test_bad_options_are_refused_by_name(model, options, message, jfk):
    with pytest.raises(InvalidOptionError, match=message):
        bench(model, BenchArgs(test_file=str(jfk), device="cpu", warmup=0, **options))


def test_an_option_only_whisper_engines_read_is_named_as_ignored(jfk):
    with pytest.warns(UserWarning, match=r"nemo ignores option\(s\): condition_on_previous_text"):
        result = bench(PARAKEET, BenchArgs(test_file=str(jfk), device="cpu", warmup=0, repeats=1,
                                           condition_on_previous_text=False))  # fmt: skip
    assert "nemo ignores option(s): condition_on_previous_text" in result.warnings


def test_synthetic_beam_search_is_overridden_with_a_warning(jfk):
    result = bench(
        PARAKEET, BenchArgs(test_file=str(jfk), device="cpu", warmup=0, repeats=1, beam_size=4)
    )
    assert result.config["beam_size"] == 1
    assert any("beam_size (4 -> 1)" in w for w in result.warnings)


def test_missing_or_wrong_model_files_are_named(tmp_path, jfk):
    args = BenchArgs(backend="nemo", test_file=str(jfk), device="cpu")
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        bench(str(tmp_path / "absent.nemo"), args)
    (tmp_path / "model.txt").write_text("not a model")
    with pytest.raises(ModelNotFoundError, match=r"not a \.nemo file"):
        bench(str(tmp_path / "model.txt"), args)
    with pytest.raises(ModelNotFoundError, match=r"holds 0 \.nemo files"):
        bench(str(tmp_path), args)
    (tmp_path / "broken.nemo").write_bytes(b"\x00" * 64)
    with pytest.raises(ModelNotFoundError, match="cannot be restored"):
        bench(str(tmp_path / "broken.nemo"), args)
    with pytest.raises(ModelNotFoundError, match="known: canary-1b"):
        bench("synthetic:canary-2b", args)


def test_a_hub_name_offline_is_a_clear_error(jfk, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(
        ModelNotFoundError, match=r"NeMo cannot fetch 'nvidia/parakeet-tdt-0\.6b-v2'"
    ):
        bench("nvidia/parakeet-tdt-0.6b-v2", BenchArgs(test_file=str(jfk), device="cpu"))


def test_the_matrix_runs_a_hub_row_on_its_synthetic_fallback(jfk):
    from transcription_benchmarks.matrix.rows import Cell
    from transcription_benchmarks.matrix.runner import run_cell
    from transcription_benchmarks.report.table import markdown_table

    cell = Cell(
        model="nvidia/parakeet-tdt-0.6b-v2",
        fallback=PARAKEET,
        args={"backend": "nemo", "test_file": str(jfk), "device": "cpu", "warmup": 0, "repeats": 1},
    )
    row = run_cell("nemo", cell, timeout_s=300)
    assert row.status == "ok", row.reason
    assert row.synthetic_fallback and row.ran_model == PARAKEET
    assert "NeMo cannot fetch" in row.reason
    assert row.result.backend == "nemo"
    table = markdown_table([row])
    assert "nvidia/parakeet-tdt-0.6b-v2 (synthetic weights)" in table and "| nemo," in table


def test_the_cli_keeps_nemo_logging_out_of_its_output(jfk):
    done = subprocess.run(
        [sys.executable, "-m", "transcription_benchmarks", "bench", PARAKEET, "-f", str(jfk),
         "--device", "cpu", "--warmup", "0", "-n", "1"],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    output = done.stdout + done.stderr
    assert "nemo" in done.stdout  # the stats line names the backend
    assert "[NeMo" not in output and "OneLogger" not in output, output


def test_the_generic_handler_serves_a_nemo_model(tmp_path, jfk):
    # The handler tests' stand-in for MMS's context, and their call through the toolkit's hooks.
    from tests.test_serving_handlers import _call, _with_params

    from transcription_benchmarks.serving import handler
    from transcription_benchmarks.serving.config import ServingConfig
    from transcription_benchmarks.serving.package import stage
    from transcription_benchmarks.serving.protocol import parse_prediction

    config = ServingConfig(backend="nemo", device="cpu")
    staged = stage(PARAKEET, tmp_path / "artifact", config=config, link=True)
    assert [p.name for p in staged.glob("*.nemo")] == ["model.nemo"]
    service = handler.model_fn(str(staged))
    audio = jfk.read_bytes()

    body, context = _call(handler, service, audio)
    assert context.status is None
    segments, info = parse_prediction(body)
    assert info.backend == "nemo" and info.pipeline == "EncDecRNNTBPEModel.transcribe"
    assert sum(len(s.tokens) for s in segments) == 35
    body, context = _call(handler, service, audio, context=_with_params({"word_timestamps": True}))
    assert context.status is None and parse_prediction(body)[1].options["timestamps"] is True
    body, context = _call(handler, service, audio, context=_with_params({"beam_size": 2}))
    assert context.status[0] == 400 and b"beam_size" in body  # not a NeMo request option


def test_studies_offer_nemo_for_nemo_models_only():
    from transcription_benchmarks.backends.registry import installed_backends

    assert installed_backends(CANARY) == ["nemo"]
    assert "nemo" not in installed_backends("Systran/faster-whisper-tiny.en")


def test_autotune_searches_nemo_batch_sizes():
    # 1min.flac is two 30 s clips at batch 2: the batch decodes both in one forward.
    done = subprocess.run(
        [sys.executable, "-m", "transcription_benchmarks", "autotune", CANARY, "--device", "cpu",
         "--memory-mb", "8000", "-f", "1min.flac", "--batch-size", "1", "--batch-size", "2",
         "--beam-size", "1", "--finalists", "1", "--warmup", "0", "--repeats", "1"],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "screen: nemo fp32, beam 1, batch 1: ok" in done.stderr  # progress
    assert "largest batch size that fits: 2" in done.stdout
    assert "pick: nemo fp32, beam 1, batch" in done.stdout


def test_canary_builds_after_another_model_was_restored(parakeet, tmp_path):
    # NeMo keeps the last restored .nemo in a process-wide state, where a canary being built
    # would look for a timestamps model unless its config says it has none.
    from transcription_benchmarks.models.synthetic_nemo import ARCHITECTURES, _build

    assert parakeet.kind == "transducer"  # restored in this process
    _build(ARCHITECTURES["canary-tiny"], tmp_path)
    assert (tmp_path / "model.nemo").stat().st_size > 0


def test_a_dataset_run_batches_utterances_through_nemo():
    from transcription_benchmarks.datasets import run_dataset

    result = run_dataset(PARAKEET, "shared", BenchArgs(device="cpu", batch_size=2), limit=3)
    assert result.backend == "nemo" and result.batch_size == 2
    assert len(result.utterances) == 3
    assert result.score.wer > 0.5  # random weights, scored like any engine
    from transcription_benchmarks.models.synthetic_nemo import tdt_tokens

    for utterance in result.utterances:  # one whole word per step, batched or not
        samples = round(utterance.duration_s * SAMPLE_RATE)
        assert len(utterance.hypothesis.split()) == tdt_tokens(samples), utterance.id
