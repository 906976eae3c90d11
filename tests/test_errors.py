"""Bad input and bad options: a clear error naming the problem, before any model loads."""

from __future__ import annotations

import subprocess
import sys
import wave

import pytest

from transcription_benchmarks import (
    AudioError,
    BenchArgs,
    IgnoredOptionWarning,
    InvalidOptionError,
    ModelNotFoundError,
    bench,
)
from transcription_benchmarks.models import PACKAGED_ID

FAST = {"device": "cpu", "warmup": 0, "repeats": 1, "beam_size": 1}


def test_missing_audio(tmp_path):
    with pytest.raises(AudioError, match=r"not found.*nothing.flac"):
        bench(PACKAGED_ID, BenchArgs(test_file=str(tmp_path / "nothing.flac"), **FAST))


def test_unknown_test_audio_name_lists_search_path():
    with pytest.raises(
        AudioError, match=r"not found; searched .*TRANSCRIPTION_BENCHMARKS_AUDIO_PATH"
    ):
        bench(PACKAGED_ID, BenchArgs(test_file="no-such-name.flac", **FAST))


def test_empty_file(tmp_path):
    empty = tmp_path / "empty.flac"
    empty.write_bytes(b"")
    with pytest.raises(AudioError, match="empty"):
        bench(PACKAGED_ID, BenchArgs(test_file=str(empty), **FAST))


def test_corrupt_file(tmp_path):
    corrupt = tmp_path / "corrupt.flac"
    corrupt.write_bytes(b"fLaC" + bytes(range(256)) * 40)
    with pytest.raises(AudioError, match=r"cannot decode audio file .*corrupt.flac"):
        bench(PACKAGED_ID, BenchArgs(test_file=str(corrupt), **FAST))


def silent_wav(path, seconds: float):
    """A valid 16 kHz mono WAV of digital silence (0 s gives a header and no samples)."""
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes(b"\x00\x00" * int(16000 * seconds))
    return path


def test_wav_with_no_samples(tmp_path):
    silent = silent_wav(tmp_path / "zero.wav", 0)
    with pytest.raises(AudioError, match="holds no samples"):
        bench(PACKAGED_ID, BenchArgs(test_file=str(silent), **FAST))


def test_unknown_model_id(jfk):
    with pytest.raises(ModelNotFoundError, match="unknown model 'not-a-model'"):
        bench("not-a-model", BenchArgs(test_file=str(jfk), **FAST))


def test_directory_that_is_no_model(tmp_path, jfk):
    with pytest.raises(ModelNotFoundError, match="neither a CTranslate2 model"):
        bench(str(tmp_path), BenchArgs(test_file=str(jfk), **FAST))


def test_hub_offline_mode_says_how_to_point_at_a_local_copy(jfk, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelNotFoundError, match="local copy") as info:
        bench("openai/whisper-large-v3", BenchArgs(test_file=str(jfk), **FAST))
    assert "openai/whisper-large-v3" in str(info.value)


def test_hub_unreachable_fails_fast_with_the_same_advice(jfk, tmp_path):
    # A real download attempt against an endpoint that refuses connections (the situation on a
    # machine without network), in a fresh process so huggingface_hub reads the environment anew.
    code = (
        "from transcription_benchmarks import bench, BenchArgs\n"
        f"bench('Systran/faster-whisper-large-v3', BenchArgs(test_file={str(jfk)!r}, device='cpu'))"
    )
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "HF_HOME": str(tmp_path / "hf"),
        "HF_ENDPOINT": "http://127.0.0.1:9",
        "HF_HUB_ETAG_TIMEOUT": "5",
        "HF_HUB_DOWNLOAD_TIMEOUT": "5",
    }
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode != 0
    assert "ModelNotFoundError" in done.stderr
    assert "cannot download 'Systran/faster-whisper-large-v3'" in done.stderr
    assert "local copy" in done.stderr


def test_backend_not_installed_names_the_extra(jfk, tmp_path):
    # Hide transformers from a fresh interpreter the way a missing install would.
    blocker = tmp_path / "sitecustomize.py"
    blocker.write_text(
        "import sys\n"
        "class Hide:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'transformers' or name.startswith('transformers.'):\n"
        "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
        "sys.meta_path.insert(0, Hide())\n"
    )
    code = (
        "from transcription_benchmarks import bench, BenchArgs, BackendNotInstalledError\n"
        "try:\n"
        f"    bench('{PACKAGED_ID}', BenchArgs(backend='transformers', test_file={str(jfk)!r}))\n"
        "except BackendNotInstalledError as exc:\n"
        "    print(type(exc).__name__, exc)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "needs transformers, which is not installed" in done.stdout, done.stderr
    assert "transcription-benchmarks[transformers]" in done.stdout
    assert done.stdout.startswith("BackendNotInstalledError ")  # the public type was raised


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"beam_size": 0}, "beam_size"),
        ({"batch_size": -1}, "batch_size"),
        ({"temperature": -0.5}, "temperature must be finite and >= 0"),
        ({"temperature": []}, "temperature list is empty"),
        ({"compute_type": "int4"}, "compute_type"),
        ({"dtype": "fp8"}, "dtype"),
        ({"device": "tpu"}, "device must be auto, cpu, cuda or cuda:N"),
        ({"repeats": 0}, "repeats"),
        ({"chunk_length": 45}, "chunk_length"),
        ({"no_such_option": 1}, "no_such_option"),
        ({"batch_size": 8, "condition_on_previous_text": True}, "conflicts with batch_size"),
        (
            {"attn_implementation": "flash_attention_2", "dtype": "fp32"},
            "flash_attention_2 needs dtype",
        ),
        ({"attn_implementation": "flash_attention_2", "device": "cpu"}, "needs a CUDA device"),
    ],
)
def test_invalid_options(values, message):
    with pytest.raises(InvalidOptionError, match=message):
        BenchArgs.build(**values)


def test_every_invalid_option_is_one_named_clause():
    with pytest.raises(InvalidOptionError) as raised:
        BenchArgs.build(repeats=0, beam_size=0)
    assert str(raised.value) == (
        "invalid option repeats: Input should be greater than or equal to 1; "
        "invalid option beam_size: Input should be greater than or equal to 1"
    )
    with pytest.raises(InvalidOptionError) as raised:  # two options in conflict: no one field
        BenchArgs.build(batch_size=8, condition_on_previous_text=True)
    assert str(raised.value).startswith("invalid option arguments: Value error, condition_on")


def test_unknown_transcribe_option_lists_valid_ones(jfk):
    args = BenchArgs(test_file=str(jfk), transcribe_options={"beam_width": 3}, **FAST)
    with pytest.raises(InvalidOptionError, match=r"beam_width.*valid: .*best_of"):
        bench(PACKAGED_ID, args)


def test_transcribe_option_duplicating_a_flat_option(jfk):
    args = BenchArgs(test_file=str(jfk), transcribe_options={"beam_size": 3}, **FAST)
    with pytest.raises(InvalidOptionError, match="set them there"):
        bench(PACKAGED_ID, args)


def test_generate_kwargs_conflict(jfk):
    args = BenchArgs(
        backend="transformers", test_file=str(jfk), generate_kwargs={"num_beams": 2}, **FAST
    )
    with pytest.raises(InvalidOptionError, match="beam_size / num_beams"):
        bench(PACKAGED_ID, args)


def test_cuda_without_gpu(jfk):
    with pytest.raises(InvalidOptionError, match="no CUDA device"):
        bench(PACKAGED_ID, BenchArgs(test_file=str(jfk), device="cuda", warmup=0, repeats=1))


def test_english_only_model_rejects_other_languages(jfk):
    args = BenchArgs(backend="transformers", test_file=str(jfk), language="de", **FAST)
    with pytest.raises(InvalidOptionError, match="English-only"):
        bench(PACKAGED_ID, args)


def test_long_audio_without_timestamps_on_transformers(tmp_path):
    long_silence = silent_wav(tmp_path / "long.wav", 31)
    args = BenchArgs(
        backend="transformers", test_file=str(long_silence), without_timestamps=True, **FAST
    )
    with pytest.raises(InvalidOptionError, match="31 s long"):
        bench(PACKAGED_ID, args)


def test_options_the_backend_ignores_are_named(jfk):
    args = BenchArgs(test_file=str(jfk), dtype="bf16", attn_implementation="sdpa", **FAST)
    with pytest.warns(
        IgnoredOptionWarning, match="faster-whisper ignores option.*attn_implementation, dtype"
    ):
        result = bench(PACKAGED_ID, args)
    assert any("attn_implementation, dtype" in w for w in result.warnings)


def test_faster_whisper_options_ignored_by_transformers(jfk):
    args = BenchArgs(
        backend="transformers", test_file=str(jfk), compute_type="int8", vad_filter=True, **FAST
    )
    with pytest.warns(
        IgnoredOptionWarning, match="transformers ignores option.*compute_type, vad_filter"
    ):
        bench(PACKAGED_ID, args)


def test_missing_cuda_library_becomes_an_actionable_error():
    # The message CTranslate2 raises when libcublas.so.12 is absent (seen on CUDA 13-only hosts).
    from transcription_benchmarks import BackendLoadError
    from transcription_benchmarks.backends.faster_whisper import explain_cuda_library_errors

    with (
        pytest.raises(BackendLoadError, match=r"libcublas\.so\.12.*nvidia-cublas-cu12"),
        explain_cuda_library_errors(),
    ):
        raise RuntimeError("Library libcublas.so.12 is not found or cannot be loaded")
    with pytest.raises(RuntimeError, match="unrelated"), explain_cuda_library_errors():
        raise RuntimeError("unrelated failure")


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -1.0, [0.0, float("nan")]])
def test_temperatures_must_be_finite_and_non_negative(value):
    with pytest.raises(InvalidOptionError, match="temperature"):
        BenchArgs.build(temperature=value)


def test_transcribe_options_follow_the_endpoints_rules(jfk):
    args = BenchArgs(
        test_file=str(jfk), transcribe_options={"vad_parameters": {"treshold": 0.2}}, **FAST
    )
    with pytest.raises(InvalidOptionError, match=r"transcribe_options\.vad_parameters\.treshold"):
        bench(PACKAGED_ID, args)
