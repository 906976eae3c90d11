"""Packaging: the artifact's layout, what code/ holds, and the local launcher's refusals.
(That the local endpoint serves from the unpacked artifact is tests/endpoint, LOCAL=1.)"""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from transcription_benchmarks.errors import ModelNotFoundError
from transcription_benchmarks.models import resolve
from transcription_benchmarks.serving.config import ServingConfig
from transcription_benchmarks.serving.local import (
    LocalEndpointError,
    endpoint_requirements,
    predict_local,
)
from transcription_benchmarks.serving.package import (
    container_requirements,
    package,
    stage,
)


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    config = ServingConfig(compute_type="int8", device="cpu")
    return package("Systran/faster-whisper-tiny.en", out, "faster-whisper", config=config)


def test_artifact_has_model_files_at_the_root_and_code(artifact):
    assert artifact.name == "model_artifact.tar.gz"
    with tarfile.open(artifact) as tar:
        names = set(tar.getnames())
    assert {"model.bin", "config.json", "tokenizer.json", "vocabulary.txt"} <= names
    assert {"code/inference.py", "code/requirements.txt", "code/serving.json"} <= names
    wheels = [n for n in names if n.startswith("code/") and n.endswith(".whl")]
    assert len(wheels) == 1
    assert all(not n.startswith(("/", "..")) for n in names)


def test_code_installs_and_configures_the_handler(artifact, tmp_path):
    with tarfile.open(artifact) as tar:
        tar.extractall(tmp_path, filter="data")
    code = tmp_path / "code"
    wheel = next(code.glob("transcription_benchmarks-*.whl"))
    requirements = (code / "requirements.txt").read_text().splitlines()
    assert (
        f"transcription-benchmarks[serving] @ file:///opt/ml/model/code/{wheel.name}"
        in requirements
    )
    assert "faster-whisper==1.2.1" in requirements
    # ctranslate2 as the stack chooser picks it for the container's CUDA: one needing no cuDNN.
    from transcription_benchmarks.aws.images import INFERENCE_GPU_TAG
    from transcription_benchmarks.compat.matrix import default_matrix
    from transcription_benchmarks.serving.package import CONTAINER_CUDA

    assert f"-cu{CONTAINER_CUDA.replace('.', '')}-" in INFERENCE_GPU_TAG
    [pin] = [line for line in requirements if line.startswith("ctranslate2==")]
    build = default_matrix().ctranslate2[pin.removeprefix("ctranslate2==")]
    assert (build.cuda, build.cudnn) == (CONTAINER_CUDA.split(".")[0], "")
    assert pin == "ctranslate2==4.8.5"
    config = ServingConfig.model_validate(json.loads((code / "serving.json").read_text()))
    assert (config.backend, config.compute_type, config.device) == ("faster-whisper", "int8", "cpu")
    assert "transcription_benchmarks.serving.handler" in (code / "inference.py").read_text()
    with zipfile.ZipFile(wheel) as whl:
        packed = set(whl.namelist())
    assert "transcription_benchmarks/serving/handler.py" in packed
    assert "transcription_benchmarks/serving/artifact/requirements.txt" in packed


def test_inference_py_hands_over_to_the_package(tmp_path):
    staged = stage("Systran/faster-whisper-tiny.en", tmp_path / "m", link=True)
    namespace: dict = {}
    exec(compile((staged / "code" / "inference.py").read_text(), "inference.py", "exec"), namespace)
    from transcription_benchmarks.serving import handler

    for name in ("model_fn", "input_fn", "predict_fn", "output_fn"):
        assert namespace[name] is getattr(handler, name)
    assert (staged / "model.bin").is_symlink()
    assert not (staged / "code" / "requirements.txt").exists()  # no wheel: nothing to install


def _as_saved_by_transformers_5(tmp_path: Path) -> Path:
    """Our tiny.en conversion, plus the two things transformers 5 also writes when a hub
    checkpoint is re-saved through WhisperProcessor: processor_config.json with the feature
    extractor nested, and forced_decoder_ids kept in generation_config.json."""
    converted = resolve("Systran/faster-whisper-tiny.en", "transformers").path
    source = tmp_path / "saved-by-v5"
    source.mkdir()
    for item in converted.iterdir():
        (source / item.name).symlink_to(item)
    extractor = json.loads((converted / "preprocessor_config.json").read_text())
    processor = {"feature_extractor": extractor, "processor_class": "WhisperProcessor"}
    (source / "processor_config.json").write_text(json.dumps(processor))
    generation = json.loads((converted / "generation_config.json").read_text())
    (source / "generation_config.json").unlink()
    (source / "generation_config.json").write_text(
        json.dumps({**generation, "forced_decoder_ids": [[1, 50362]]})
    )
    return source


def test_transformers_artifact_is_rewritten_for_the_containers_transformers(tmp_path):
    # The container runs transformers 4.51, which misreads four files of a checkpoint saved by
    # transformers 5. Staging writes 4.x-readable copies of those and links the rest.
    source = _as_saved_by_transformers_5(tmp_path)
    staged = stage(
        str(source), tmp_path / "m", config=ServingConfig(backend="transformers"), link=True
    )
    assert (staged / "model.safetensors").is_symlink()
    tokenizer = json.loads((staged / "tokenizer_config.json").read_text())
    original = json.loads((source / "tokenizer_config.json").read_text())
    assert isinstance(original["extra_special_tokens"], list)
    assert "extra_special_tokens" not in tokenizer
    assert tokenizer["additional_special_tokens"] == original["extra_special_tokens"]
    assert "<|notimestamps|>" in tokenizer["additional_special_tokens"]
    generation = json.loads((staged / "generation_config.json").read_text())
    assert "forced_decoder_ids" not in generation
    assert generation["no_timestamps_token_id"] == 50362
    processor = json.loads((staged / "processor_config.json").read_text())
    assert processor == {"processor_class": "WhisperProcessor"}
    assert "feature_extractor" in json.loads((source / "processor_config.json").read_text())
    # The slow tokenizer's files, from tokenizer.json's BPE model.
    vocab = json.loads((staged / "vocab.json").read_text())
    assert vocab["<|endoftext|>"] == 50256 and len(vocab) == 50257
    merges = (staged / "merges.txt").read_text().splitlines()
    assert merges[0] == "#version: 0.2" and merges[1] == "\u0120 t"
    added = json.loads((staged / "added_tokens.json").read_text())
    assert added["<|startoftranscript|>"] == 50257 and added["<|notimestamps|>"] == 50362
    assert "serving.handler" in (staged / "code" / "inference.py").read_text()
    assert json.loads((staged / "code" / "serving.json").read_text())["backend"] == "transformers"


def test_unknown_model_is_a_clear_error(tmp_path):
    with pytest.raises(ModelNotFoundError):
        package(str(tmp_path / "no-such-model"), tmp_path / "dist")
    assert not (tmp_path / "dist" / "model_artifact.tar.gz").exists()


def test_endpoint_env_is_pinned_like_the_container():
    pins = endpoint_requirements()
    assert "sagemaker-huggingface-inference-toolkit==2.6.0" in pins
    assert "multi-model-server==1.1.11" in pins
    assert any(p.startswith("transformers==4.") for p in pins)
    assert all("{wheel}" not in p for p in pins)
    assert container_requirements("transformers") == ["transformers==4.51.3"]


def test_predict_local_without_a_server_says_how_to_start_one(jfk):
    with pytest.raises(LocalEndpointError, match="tbench serve-local"):
        predict_local(jfk, url="http://127.0.0.1:9")


def _tbench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "transcription_benchmarks", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_cli_package_prints_the_artifact(tmp_path):
    done = _tbench("package", "tiny.en", "--out", str(tmp_path), "--compute-type", "int8")
    assert done.returncode == 0, done.stderr
    artifact = Path(done.stdout.strip())
    assert artifact == tmp_path / "model_artifact.tar.gz"
    with tarfile.open(artifact) as tar:
        assert "code/serving.json" in tar.getnames()
        config = json.load(tar.extractfile("code/serving.json"))
    assert (config["backend"], config["compute_type"]) == ("faster-whisper", "int8")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--url", "http://127.0.0.1:9"], "tbench serve-local"),
        (["--param", "single.beam_size"], "--param expects KEY=VALUE"),
        (["--params", "[1]"], "--params must be a JSON object"),
    ],
)
def test_cli_predict_local_errors_exit_2(jfk, args, message):
    done = _tbench("predict-local", str(jfk), *args)
    assert done.returncode == 2
    assert message in done.stderr
