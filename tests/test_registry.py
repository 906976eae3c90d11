"""The engine registry: built-in engines from one table, others from the entry-point group,
options each engine declares, and a third-party engine run end to end on the real tiny.en."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from transcription_benchmarks import BenchArgs, InvalidOptionError
from transcription_benchmarks.backends import (
    backend_for_format,
    backend_names,
    get_backend,
    ignored_options,
)
from transcription_benchmarks.backends.registry import BUILTIN, fingerprint_packages
from transcription_benchmarks.measure.environment import fingerprint
from transcription_benchmarks.models import PACKAGED_ID

PLUGIN_DIR = Path(__file__).parent / "plugin_engine"


def test_builtin_engines_come_from_the_table():
    builtin = ("faster-whisper", "transformers", "openai-whisper", "whisper.cpp", "nemo")
    assert tuple(BUILTIN) == builtin
    assert backend_names()[:5] == builtin
    assert backend_for_format("ctranslate2") == "faster-whisper"
    assert backend_for_format("transformers") == "transformers"
    assert backend_for_format("openai-whisper") == "openai-whisper"
    assert backend_for_format("ggml") == "whisper.cpp"
    assert backend_for_format("nemo") == "nemo"
    with pytest.raises(InvalidOptionError, match="no registered engine reads onnx models"):
        backend_for_format("onnx")
    assert get_backend("transformers").reads >= {"dtype", "generate_kwargs"}


def test_an_unknown_engine_is_refused_naming_the_registered_ones():
    with pytest.raises(InvalidOptionError, match=r"unknown backend 'whisperx'; choose one of"):
        BenchArgs.build(backend="whisperx")
    with pytest.raises(InvalidOptionError, match="faster-whisper, transformers, openai-whisper"):
        get_backend("whisperx")


def test_options_only_other_engines_read_are_ignored():
    args = BenchArgs(compute_type="int8", dtype="bf16", beam_size=2, device="cpu")
    assert ignored_options(args, "faster-whisper") == ["dtype"]
    assert ignored_options(args, "transformers") == ["compute_type"]  # beam_size: all read it
    # An option two engines declare is read by both: dtype by transformers and openai-whisper.
    assert ignored_options(args, "openai-whisper") == ["compute_type"]
    assert ignored_options(args, "whisper.cpp") == ["dtype"]
    threads = BenchArgs(cpu_threads=2, chunk_length_s=10.0)
    assert ignored_options(threads, "whisper.cpp") == ["chunk_length_s"]
    assert ignored_options(threads, "transformers") == ["cpu_threads"]


def test_every_engines_packages_are_in_the_fingerprint():
    packages = fingerprint_packages()
    for name in ("ctranslate2", "faster-whisper", "transformers", "torch"):
        assert name in packages
    assert set(packages) <= set(fingerprint().packages)


def _with_plugin(code: str) -> subprocess.CompletedProcess:
    """`code` in a fresh interpreter that sees the plug-in package's dist-info."""
    path = os.pathsep.join([str(PLUGIN_DIR), os.environ.get("PYTHONPATH", "")])
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": path},
    )


def test_a_third_party_engine_registers_through_the_entry_point_and_runs(jfk):
    code = f"""
import json, warnings
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    from transcription_benchmarks.backends import backend_names, get_backend
    names = backend_names()
    shadow = type(get_backend("transformers")).__name__
from transcription_benchmarks import BenchArgs, bench
result = bench({PACKAGED_ID!r}, BenchArgs(backend="plugin-whisper", test_file={str(jfk)!r},
               device="cpu", warmup=0, repeats=1, beam_size=1, dtype="bf16"))
print(json.dumps({{"names": names, "shadow": shadow, "backend": result.backend,
    "text": result.get_text(with_timestamps=False), "warnings": result.warnings,
    "caught": [str(w.message) for w in caught],
    "packages": sorted(result.environment.packages)}}))
"""
    done = _with_plugin(code)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["names"] == [*BUILTIN, "plugin-whisper"]
    assert out["shadow"] == "TransformersBackend"  # a built-in name cannot be taken over
    assert any(
        "engine 'transformers' from tb_plugin_engine:ShadowBackend" in w for w in out["caught"]
    )
    assert out["backend"] == "plugin-whisper"
    assert "ask not what your country can do for you" in out["text"].lower()
    assert "plugin-whisper ignores option(s): dtype" in out["warnings"]
    assert "tb-plugin-engine" in out["packages"]


def test_the_cli_reaches_a_third_party_engine(jfk):
    code = (
        "import sys; from transcription_benchmarks.cli import app; "
        f"sys.argv = ['tbench', 'bench', {PACKAGED_ID!r}, '--backend', 'plugin-whisper', "
        f"'-f', {str(jfk)!r}, '--device', 'cpu', '--warmup', '0', '--repeats', '1']; app()"
    )
    done = _with_plugin(code)
    assert done.returncode == 0, done.stderr
    assert "plugin-whisper" in done.stdout


def test_the_one_handler_serves_a_third_party_engine(jfk, tmp_path):
    # Staged and served by name, as `tbench package --backend plugin-whisper` would: the
    # handler loads it through the registry and calls its per-request entry point.
    code = f"""
import json
from pathlib import Path
from transcription_benchmarks.serving import handler
from transcription_benchmarks.serving.config import ServingConfig
from transcription_benchmarks.serving.package import stage
from transcription_benchmarks.serving.protocol import encode_params, parse_prediction

staged = stage({PACKAGED_ID!r}, Path({str(tmp_path)!r}) / "model", link=True,
               config=ServingConfig(backend="plugin-whisper", device="cpu"))
service = handler.model_fn(str(staged))

class Request:
    def get_request_properties(self):
        params = encode_params({{"single": {{"beam_size": 1}}}})
        return {{"X-Amzn-SageMaker-Custom-Attributes": params}}

class Context:
    request_processor = [Request()]

body = Path({str(jfk)!r}).read_bytes()
data = handler.input_fn(body, "audio/flac", Context())
answer = handler.output_fn(handler.predict_fn(data, service, Context()), "application/json")
segments, info = parse_prediction(answer)
print(json.dumps({{"backend": info.backend, "pipeline": info.pipeline,
    "text": " ".join(s.text for s in segments), "beam": info.options["beam_size"]}}))
"""
    done = _with_plugin(code)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert (out["backend"], out["pipeline"], out["beam"]) == ("plugin-whisper", "WhisperModel", 1)
    assert "ask not what your country can do for you" in out["text"].lower()
