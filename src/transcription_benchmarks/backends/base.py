"""The one small interface every backend implements.

bench() talks to a backend in four calls: check_installed, validate, resolve_device, load. The
loaded model then transcribes a file from disk to the final list of segments: everything
between is inside the timing boundary, so each backend must consume lazy generators and return
plain data.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

from transcription_benchmarks.args import BenchArgs
from transcription_benchmarks.audio import AudioInfo
from transcription_benchmarks.errors import BackendNotInstalledError, InvalidOptionError
from transcription_benchmarks.models import ModelFormat, ResolvedModel, resolve
from transcription_benchmarks.transcript import Transcript

# Called with the seconds of audio transcribed so far in the current run.
ProgressCallback = Callable[[float], None]


class LoadedModel(ABC):
    """A model ready to transcribe, with the options it will use fixed at load time."""

    config: dict[str, Any]
    """Effective options, defaults filled in: what the result records."""

    warnings: list[str]
    """Things the user should know about this configuration (overridden options, fallbacks)."""

    @abstractmethod
    def transcribe(self, audio: AudioInfo, progress: ProgressCallback | None = None) -> Transcript:
        """From the file on disk to the final segments."""

    def synchronize(self) -> None:  # noqa: B027 - optional hook; CTranslate2 returns synced
        """Wait for queued device work (torch.cuda.synchronize where torch drives CUDA)."""


class Backend(ABC):
    """One engine. A subclass declares what the registry (backends/registry.py), bench(), the
    fingerprint and the studies need to know of it, so that none of them names it."""

    name: str
    model_format: ModelFormat
    install_extra: str
    required_modules: tuple[str, ...]
    """Modules whose import proves the engine is installed."""
    fingerprint_packages: tuple[str, ...] = ()
    """Distributions whose versions go into every result's environment fingerprint."""
    reads: frozenset[str] = frozenset()
    """The engine-specific BenchArgs options it reads, beside the common ones (device, beam
    size, temperature, ...). An option several engines read is listed by each; one set that
    only other engines read draws an "ignored option" warning."""
    precision_option: str | None = None
    """The BenchArgs option that sets its numeric precision (auto-tune searches it)."""
    supports_batching: bool = True
    """Whether `batch_size` means something to it (auto-tune searches batch sizes only then)."""
    cpu_precisions: tuple[str, ...] = ()
    """Precisions worth searching on a CPU (auto-tune's default), and on a GPU."""
    gpu_precisions: tuple[str, ...] = ()

    def check_installed(self) -> None:
        """Import the backend's packages: a missing one, or one that fails to load (a CUDA
        library mismatch, say), is reported with the import's own message."""
        for module in self.required_modules:
            try:
                importlib.import_module(module)
            except ImportError as exc:
                missing = isinstance(exc, ModuleNotFoundError) and exc.name == module
                raise BackendNotInstalledError(
                    f"backend {self.name!r} needs {module}, which "
                    + ("is not installed" if missing else f"fails to import ({exc})")
                    + f": pip install 'transcription-benchmarks[{self.install_extra}]'"
                ) from exc

    @abstractmethod
    def validate(self, args: BenchArgs, audio: AudioInfo) -> None:
        """Raise InvalidOptionError for values this backend rejects, before anything loads."""

    @abstractmethod
    def resolve_device(self, device: str) -> str:
        """'auto' -> 'cuda' or 'cpu'; an explicit CUDA device without CUDA is an error."""

    def resolve_model(self, model: str, args: BenchArgs) -> ResolvedModel:
        """What the user named, as a directory in this engine's format (converted and cached
        when needed). An engine with its own download code for its own names overrides this."""
        return resolve(model, self.model_format)

    @abstractmethod
    def load(self, model: ResolvedModel, args: BenchArgs, device: str) -> LoadedModel: ...


class TorchLoadedModel(LoadedModel):
    """A loaded model that torch drives: synchronize waits for its CUDA queue."""

    device: str

    def synchronize(self) -> None:
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.synchronize()


def check_english_only(requested: str, language: str | None, task: str | None) -> None:
    """An English-only checkpoint transcribes English and nothing else: another language or
    translation is an error naming the model, not a silent English transcript."""
    if (language or "en") not in ("en", "english"):
        raise InvalidOptionError(f"{requested} is English-only; language={language!r}")
    if task == "translate":
        raise InvalidOptionError(f"{requested} is English-only; it cannot translate")


def torch_device(device: str) -> str:
    """Device resolution for the engines that run on torch: 'auto' -> 'cuda' when torch sees
    a CUDA device, else 'cpu'; an explicit CUDA device without one is an error."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InvalidOptionError(
            f"device={device!r} but torch sees no CUDA device (torch {torch.__version__}, "
            f"built for CUDA {torch.version.cuda}); use device='cpu'"
        )
    return device


def jsonable(value: Any) -> Any:
    """Effective options as plain JSON data (tuples to lists, option objects to dicts)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if hasattr(value, "__dict__"):  # e.g. faster_whisper.vad.VadOptions
        return jsonable(vars(value))
    return repr(value)


def force_options(options: dict[str, Any], forced: dict[str, Any]) -> str | None:
    """Apply `forced` over `options` in place; a warning naming the set options it changed."""
    changed = sorted(k for k, v in forced.items() if k in options and options[k] != v)
    options.update(forced)
    if not changed:
        return None
    return "synthetic model: fixed-length decoding overrides " + ", ".join(changed)
