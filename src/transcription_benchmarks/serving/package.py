"""Build model_artifact.tar.gz: the model files at the root and code/ beside them.

code/ holds inference.py (a few lines handing over to serving.handler), serving.json (which
engine serves it, and how to load the model), requirements.txt pinned for the container (the
engine's Backend.container_requirements), and a wheel of this package that requirements.txt
installs: one implementation, shipped with every artifact, never a copy.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from importlib import resources
from pathlib import Path

from transcription_benchmarks.args import BenchArgs
from transcription_benchmarks.backends.registry import backend_class, check_name, get_backend
from transcription_benchmarks.errors import BenchError
from transcription_benchmarks.serving.config import CONFIG_FILE, ServingConfig

ARTIFACT_NAME = "model_artifact.tar.gz"
WHEEL_PLACEHOLDER = "{wheel}"
CT2_PLACEHOLDER = "{ctranslate2}"
CONTAINER_CUDA = "12.4"
"""The CUDA of the image the artifact is served in: the Hugging Face PyTorch inference DLC's
torch 2.6 cu124 (aws/images.INFERENCE_GPU_TAG). The ctranslate2 pin is chosen for it."""
PROJECT_ROOT = Path(__file__).resolve().parents[3]


class PackagingError(BenchError):
    """The artifact cannot be built: no project source to build the wheel from, or pip failed."""


def template_dir() -> Path:
    """The code/ templates inside the installed package."""
    return Path(str(resources.files("transcription_benchmarks.serving.artifact")))


def requirements_text(backend: str) -> str:
    """requirements.txt for an artifact `backend` serves: the template's line installing this
    package (its wheel placeholder stays for stage() to fill), then the engine's pins, with
    ctranslate2's chosen by the stack chooser for CONTAINER_CUDA."""
    pins = list(backend_class(backend).container_requirements)
    if any(CT2_PLACEHOLDER in pin for pin in pins):
        from transcription_benchmarks.compat.stack import ctranslate2_for

        version, _ = ctranslate2_for([int(CONTAINER_CUDA.split(".")[0])])
        pins = [pin.replace(CT2_PLACEHOLDER, version) for pin in pins]
    text = (template_dir() / "requirements.txt").read_text()
    return text + "".join(f"{pin}\n" for pin in pins)


def container_requirements(backend: str) -> list[str]:
    """The engine's pins, without the line that installs the wheel: what the local
    endpoint's env installs besides this package."""
    text = requirements_text(backend)
    return [
        line.strip()
        for line in text.splitlines()
        if line.strip() and not line.lstrip().startswith("#") and WHEEL_PLACEHOLDER not in line
    ]


def stage(
    model: str,
    dest: Path,
    *,
    config: ServingConfig | None = None,
    wheel: Path | None = None,
    link: bool = False,
) -> Path:
    """Lay out an unpacked artifact in `dest`: the model files and code/. `link` symlinks the
    model files instead of copying them (the local endpoint serves in place)."""
    config = config or ServingConfig()
    backend = get_backend(config.backend)
    model_format = backend.model_format
    # The engine's own resolution (its own names; a NeMo model is one .nemo file).
    resolved = backend.resolve_model(model, BenchArgs(backend=config.backend))
    if not resolved.path.exists():
        raise PackagingError(
            f"{model} resolves to no file here ({resolved.path}): package a local copy"
        )
    dest.mkdir(parents=True, exist_ok=True)
    items = [resolved.path] if resolved.path.is_file() else sorted(resolved.path.iterdir())
    for item in items:
        if item.name == "code" or item.name.startswith("."):
            continue
        target = dest / item.name
        if link:
            target.symlink_to(item.resolve(), target_is_directory=item.is_dir())
        elif item.is_dir():
            shutil.copytree(item, target)
        else:
            shutil.copy2(item, target)
    if model_format == "transformers":  # whichever engine reads it, the container's 4.51 loads it
        _rewrite_for_container_transformers(dest)
    code = dest / "code"
    code.mkdir()
    shutil.copy2(template_dir() / "inference.py", code / "inference.py")
    (code / CONFIG_FILE).write_text(config.model_dump_json(indent=2) + "\n")
    if wheel is not None:
        shutil.copy2(wheel, code / wheel.name)
        requirements = requirements_text(config.backend)
        (code / "requirements.txt").write_text(requirements.replace(WHEEL_PLACEHOLDER, wheel.name))
    return dest


def _rewrite_for_container_transformers(dest: Path) -> None:
    """Make a checkpoint saved by transformers 5 loadable by the container's transformers 4.51.

    What 4.51 misreads (found by loading our CTranslate2 -> HF copy there):
    - WhisperProcessor in 4.x always builds the slow WhisperTokenizer, which needs vocab.json
      and merges.txt; v5 saves tokenizer.json alone. Both are the BPE model inside
      tokenizer.json, and added_tokens.json pins the special tokens to their ids.
    - tokenizer_config.json: v5 lists the special tokens under extra_special_tokens, where 4.x
      expects a dict (AttributeError: 'list' object has no attribute 'keys'); 4.x reads that
      list from additional_special_tokens.
    - processor_config.json: v5 nests the feature extractor's settings in it, and 4.x passes
      them to WhisperProcessor as a second feature_extractor argument (TypeError); 4.x reads
      them from preprocessor_config.json, which v5 writes too.
    - generation_config.json: 4.50+ re-applies a checkpoint's generation values as "model
      defaults" when the checkpoint was saved by >= 4.50, which brings forced_decoder_ids back
      after Whisper's generate() consumed them, and generate() then refuses them. Whisper builds
      the same prompt without them: English-only gets <|notimestamps|>, and the handler passes
      task (and language) to multilingual models itself.
    The staged copies replace the links or copies; the cached conversion is untouched, and
    transformers 5 loads the rewritten files as well (tests/test_serving_handlers.py).
    """
    _write_slow_tokenizer_files(dest)
    tokenizer_config = dest / "tokenizer_config.json"
    if tokenizer_config.is_file():
        data = json.loads(tokenizer_config.read_text(encoding="utf-8"))
        extra = data.get("extra_special_tokens")
        if isinstance(extra, list):
            del data["extra_special_tokens"]
            data.setdefault("additional_special_tokens", extra)
            data.pop("backend", None)  # v5's tokenizer-backend key, unknown to 4.x
            _replace_json(tokenizer_config, data)
    processor_config = dest / "processor_config.json"
    if processor_config.is_file():
        data = json.loads(processor_config.read_text(encoding="utf-8"))
        nested = [
            key for key in ("feature_extractor", "tokenizer") if isinstance(data.get(key), dict)
        ]
        if nested and (dest / "preprocessor_config.json").is_file():
            _replace_json(processor_config, {k: v for k, v in data.items() if k not in nested})
    generation_config = dest / "generation_config.json"
    if generation_config.is_file():
        data = json.loads(generation_config.read_text(encoding="utf-8"))
        if data.pop("forced_decoder_ids", None) is not None:
            _replace_json(generation_config, data)


def _write_slow_tokenizer_files(dest: Path) -> None:
    tokenizer_json = dest / "tokenizer.json"
    if (dest / "vocab.json").exists() or not tokenizer_json.is_file():
        return
    tokenizer = json.loads(tokenizer_json.read_text(encoding="utf-8"))
    bpe = tokenizer.get("model", {})
    if bpe.get("type") != "BPE":
        return
    # tokenizers writes a merge as "a b" (older) or ["a", "b"] (newer); merges.txt wants "a b".
    merges = [m if isinstance(m, str) else " ".join(m) for m in bpe["merges"]]
    vocab: dict[str, int] = bpe["vocab"]
    added = {t["content"]: t["id"] for t in tokenizer.get("added_tokens", [])}
    _replace_json(dest / "vocab.json", vocab)
    (dest / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", "utf-8")
    _replace_json(dest / "added_tokens.json", {k: i for k, i in added.items() if k not in vocab})


def _replace_json(path: Path, data: dict) -> None:
    path.unlink(missing_ok=True)  # a symlink into the model cache when staged with link=True
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def build_wheel(out_dir: Path, project: Path = PROJECT_ROOT) -> Path:
    """A wheel of this package from its source tree (pip wheel --no-deps)."""
    if not (project / "pyproject.toml").is_file():
        raise PackagingError(
            f"no project source at {project} to build the wheel from; package from a checkout "
            "of transcription-benchmarks"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out_dir), str(project)],
        capture_output=True,
        text=True,
    )
    wheels = sorted(out_dir.glob("transcription_benchmarks-*.whl"))
    if built.returncode or not wheels:
        raise PackagingError(f"pip wheel failed for {project}:\n{built.stderr[-2000:]}")
    return wheels[-1]


def package(
    model: str,
    out_dir: str | Path,
    backend: str = "faster-whisper",
    *,
    config: ServingConfig | None = None,
) -> Path:
    """Build out_dir/model_artifact.tar.gz for `model` (anything models.resolve takes) served
    by `backend` (a registered engine) through the one handler; returns its path."""
    config = (config or ServingConfig()).model_copy(update={"backend": check_name(backend)})
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    artifact = out / ARTIFACT_NAME
    with tempfile.TemporaryDirectory(prefix="tb-package-") as tmp:
        wheel = build_wheel(Path(tmp) / "wheel")
        staged = stage(model, Path(tmp) / "artifact", config=config, wheel=wheel)
        partial = artifact.with_suffix(".partial")
        # SageMaker unpacks the archive into /opt/ml/model: members are relative to its root.
        with tarfile.open(partial, "w:gz", compresslevel=6) as tar:
            for item in sorted(staged.iterdir()):
                tar.add(item, arcname=item.name)
        partial.replace(artifact)
    return artifact
