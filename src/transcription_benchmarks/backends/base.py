"""The one small interface every backend implements.

bench() talks to a backend in four calls: check_installed, validate, resolve_device, load. The
loaded model then has one entry point, `transcribe(audio, request)`, that bench() and the
endpoint's one handler (serving.handler) both call: bench() with a file from disk and no
request (the options fixed at load time), the handler with decoded samples and the request's
options, an instance of the model's `request_options`. Everything inside it is inside the
timing boundary, so each backend consumes lazy generators and returns plain data.
"""

from __future__ import annotations

import contextlib
import importlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from transcription_benchmarks.args import BenchArgs
from transcription_benchmarks.audio import SAMPLE_RATE, AudioInfo, decode_audio
from transcription_benchmarks.decoding import (
    MAX_BEAM_SIZE,
    Text,
    check_temperatures,
    temperature_count,
)
from transcription_benchmarks.errors import BackendNotInstalledError, InvalidOptionError
from transcription_benchmarks.models import ModelFormat, ResolvedModel, resolve
from transcription_benchmarks.transcript import LanguageGuess, Transcript

# Called with the seconds of audio transcribed so far in the current run.
ProgressCallback = Callable[[float], None]
# Called between units of work (segments, windows) during a request; raises to stop it.
Checkpoint = Callable[[], None]

AudioInput = AudioInfo | np.ndarray
"""A file on disk (bench()), or 16 kHz mono float32 samples (an endpoint's decoded request)."""


def audio_samples(audio: AudioInput) -> np.ndarray:
    """The samples: decoded by the project's decoder where `audio` is a file."""
    return decode_audio(audio.path) if isinstance(audio, AudioInfo) else audio


def audio_duration_s(audio: AudioInput) -> float:
    return audio.duration_s if isinstance(audio, AudioInfo) else len(audio) / SAMPLE_RATE


class RequestOptions(BaseModel):
    """What one request may set on an engine that declares no options of its own: the options
    every Whisper engine reads. Unset fields keep what the model was loaded with."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    task: Literal["transcribe", "translate"] = "transcribe"
    # Bounds and Text: decoding.py, with the library fact each follows.
    language: Text | None = None
    beam_size: int | None = Field(None, ge=1, le=MAX_BEAM_SIZE)
    temperature: float | list[float] | None = None
    without_timestamps: bool | None = None
    word_timestamps: bool | None = None
    initial_prompt: Text | None = None

    @field_validator("temperature")
    @classmethod
    def _finite(cls, value: Any) -> Any:
        # A field validator, so that a refusal names the field: 0 or within float16's range
        # (decoding.check_temperatures says why).
        return check_temperatures(value)

    def limits_asked(self) -> dict[str, float | None]:
        """What an endpoint's per-request limits (serving.config.RequestLimits) check."""
        return {
            "beam_size": self.beam_size,
            "temperatures": temperature_count(self.temperature),
        }


class LoadedModel(ABC):
    """A model ready to transcribe, with the options it will use fixed at load time."""

    config: dict[str, Any]
    """Effective options, defaults filled in: what the result records."""

    warnings: list[str]
    """Things the user should know about this configuration (overridden options, fallbacks)."""

    request_options: ClassVar[type[BaseModel]] = RequestOptions
    """The per-request options the engine takes (an endpoint's request parameters)."""

    @abstractmethod
    def transcribe(
        self,
        audio: AudioInput,
        request: Any = None,
        *,
        progress: ProgressCallback | None = None,
        checkpoint: Checkpoint | None = None,
    ) -> Transcript:
        """From the audio to the final segments. `request`: an instance of `request_options`
        overriding the load-time options for this call only (None: the load-time options);
        the transcript then carries `info` (pipeline, effective options). The model's state
        after the call is what it was before, whatever the request set."""

    def transcribe_many(self, clips: list[np.ndarray]) -> list[Transcript]:
        """Several clips (a dataset's utterances) with the load-time options, one transcript
        each, in order. This default decodes them one after another; an engine that batches
        across clips (batch_size set at load) overrides it."""
        return [self.transcribe(clip) for clip in clips]

    def detect_language(self, audio: AudioInput, request: Any = None) -> LanguageGuess:
        """Language identification alone, where the engine offers it."""
        raise InvalidOptionError(
            f"{type(self).__name__} does not identify the language on its own; transcribe "
            "instead (the transcript names the language)"
        )

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
    container_requirements: tuple[str, ...] = ()
    """Pins an endpoint container installs to serve it, beside this package's `serving` extra
    ("{ctranslate2}" is filled in for the container's CUDA by serving.package)."""
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
    sequential_batch_size: int | None = None
    """The batch_size that decodes one window at a time (batch invariance's baseline): None
    where leaving batch_size unset does; an engine without an unbatched path sets 1."""
    families: frozenset[str] = frozenset({"whisper"})
    """The model families it runs (models.model_family): what studies that try every installed
    engine on one model pick engines by."""
    cpu_precisions: tuple[str, ...] = ()
    """Precisions worth searching on a CPU (auto-tune's default), and on a GPU."""
    gpu_precisions: tuple[str, ...] = ()
    request_mib_per_audio_minute: ClassVar[float] = 64.0
    """What one request holds in host memory per audio minute, from its decoded body to its
    transcript (the body itself apart): the figure an endpoint's memory budget divides
    (serving/budget.py). Each engine states its own, measured by benchmarks/request_memory.py;
    a plug-in that states none is budgeted like an engine that computes a whole file's
    features at once, with room to spare."""

    def check_installed(self) -> None:
        """Import the backend's packages: a missing one, or one that fails to load (a CUDA
        library mismatch, say), is reported with the import's own message."""
        for module in self.required_modules:
            try:
                importlib.import_module(module)
            except ImportError as exc:
                missing = isinstance(exc, ModuleNotFoundError) and exc.name == module
                raise BackendNotInstalledError(
                    self._needs(
                        module, "is not installed" if missing else f"fails to import ({exc})"
                    )
                ) from exc

    @classmethod
    def missing_packages(cls) -> str | None:
        """What check_installed would say of packages that are not installed at all, found
        without importing anything (None: all present; whether they import is another
        matter)."""
        import importlib.util

        for module in cls.required_modules:
            package = module.partition(".")[0]
            if importlib.util.find_spec(package) is None:
                return cls._needs(package, "is not installed")
        return None

    @classmethod
    def _needs(cls, module: str, problem: str) -> str:
        return (
            f"backend {cls.name!r} needs {module}, which {problem}: "
            f"pip install 'transcription-benchmarks[{cls.install_extra}]'"
        )

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


@contextlib.contextmanager
def restored_attributes(*objects: Any) -> Iterator[None]:
    """Put back every attribute of `objects` after a request: libraries keep per-call options
    on the model (faster-whisper's feature extractor keeps the last chunk_length), which would
    change the answers of every later request on the worker."""
    saved = [(obj, dict(vars(obj))) for obj in objects]
    try:
        yield
    finally:
        for obj, attributes in saved:
            for name in set(vars(obj)) - set(attributes):
                delattr(obj, name)
            for name, value in attributes.items():
                if vars(obj).get(name, object()) is not value:
                    setattr(obj, name, value)


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
