"""faster-whisper (CTranslate2): WhisperModel, or BatchedInferencePipeline when batch_size is set."""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pydantic import ValidationError

from transcription_benchmarks.args import BenchArgs
from transcription_benchmarks.audio import AudioInfo
from transcription_benchmarks.backends.base import (
    Backend,
    LoadedModel,
    ProgressCallback,
    force_options,
    jsonable,
)
from transcription_benchmarks.compat.preload import preload_pip_cuda_libraries
from transcription_benchmarks.decoding import check_token_ids, options_model
from transcription_benchmarks.errors import (
    BackendLoadError,
    InvalidOptionError,
    describe_validation_error,
)
from transcription_benchmarks.models import ResolvedModel
from transcription_benchmarks.transcript import Segment, Transcript

# BenchArgs fields that map one-to-one onto transcribe() keywords; setting one of these inside
# transcribe_options as well is a conflict, not a silent override.
FLAT_TRANSCRIBE_OPTIONS = (
    "beam_size",
    "temperature",
    "language",
    "task",
    "without_timestamps",
    "word_timestamps",
    "vad_filter",
    "condition_on_previous_text",
    "chunk_length",
    "batch_size",
)
# Arguments that bench() owns: the audio, and progress display.
RESERVED_TRANSCRIBE_OPTIONS = frozenset({"audio", "log_progress", "self"})


def _transcribe_parameters(batched: bool) -> dict[str, inspect.Parameter]:
    from faster_whisper import BatchedInferencePipeline, WhisperModel

    method = BatchedInferencePipeline.transcribe if batched else WhisperModel.transcribe
    return dict(inspect.signature(method).parameters)


class FasterWhisperBackend(Backend):
    name = "faster-whisper"
    model_format = "ctranslate2"
    install_extra = "faster-whisper"
    required_modules = ("faster_whisper", "ctranslate2")
    fingerprint_packages = ("ctranslate2", "faster-whisper", "nvidia-cublas-cu12")
    reads = frozenset(
        {
            "compute_type",
            "chunk_length",
            "vad_filter",
            "condition_on_previous_text",
            "cpu_threads",
            "num_workers",
            "transcribe_options",
        }
    )
    precision_option = "compute_type"
    # CPU: int8_float32 is int8 there, and (b)float16 is emulated on most CPUs.
    cpu_precisions = ("int8", "float32")
    gpu_precisions = ("float16", "int8_float16")

    def validate(self, args: BenchArgs, audio: AudioInfo) -> None:
        batched = args.batch_size is not None
        known = _transcribe_parameters(batched)
        given = set(args.transcribe_options)
        unknown = sorted((given - set(known)) | (given & RESERVED_TRANSCRIBE_OPTIONS))
        if unknown:
            valid = sorted(set(known) - RESERVED_TRANSCRIBE_OPTIONS - set(FLAT_TRANSCRIBE_OPTIONS))
            raise InvalidOptionError(
                f"unknown faster-whisper transcribe option(s) {', '.join(unknown)} for "
                f"{'BatchedInferencePipeline' if batched else 'WhisperModel'}.transcribe; "
                f"valid: {', '.join(valid)}"
            )
        duplicated = sorted(set(args.transcribe_options) & set(FLAT_TRANSCRIBE_OPTIONS))
        if duplicated:
            raise InvalidOptionError(
                f"transcribe_options sets {', '.join(duplicated)}, which BenchArgs has as its "
                "own option(s): set them there"
            )
        check_transcribe_options(args.transcribe_options, batched)

    def resolve_device(self, device: str) -> str:
        if device != "cpu":  # before ctranslate2 dlopens libcublas.so.12 by name
            preload_pip_cuda_libraries()
        import ctranslate2

        cuda_devices = ctranslate2.get_cuda_device_count()
        if device == "auto":
            return "cuda" if cuda_devices else "cpu"
        if device.startswith("cuda") and not cuda_devices:
            raise InvalidOptionError(
                f"device={device!r} but CTranslate2 sees no CUDA device (no GPU, driver or "
                "libcublas.so.12); use device='cpu'"
            )
        return device

    def load(self, model: ResolvedModel, args: BenchArgs, device: str) -> LoadedModel:
        return FasterWhisperModel(model, args, device)


class FasterWhisperModel(LoadedModel):
    def __init__(self, model: ResolvedModel, args: BenchArgs, device: str) -> None:
        from faster_whisper import BatchedInferencePipeline, WhisperModel

        kind, _, index = device.partition(":")
        self.warnings = []
        with explain_cuda_library_errors():
            self.model = WhisperModel(
                str(model.path),
                device=kind,
                device_index=int(index or 0),
                compute_type=args.compute_type,
                cpu_threads=args.cpu_threads,
                num_workers=args.num_workers,
                local_files_only=True,
            )
        self.batched = args.batch_size is not None
        self.pipeline = BatchedInferencePipeline(self.model) if self.batched else self.model
        self.options = self._transcribe_options(model, args)
        check_token_ids(self.options, vocabulary_size(self.model))
        defaults = {
            name: p.default
            for name, p in _transcribe_parameters(self.batched).items()
            if name not in RESERVED_TRANSCRIBE_OPTIONS
        }
        self.config = {
            "compute_type": self.model.model.compute_type,
            "requested_compute_type": args.compute_type,
            "pipeline": "BatchedInferencePipeline" if self.batched else "WhisperModel",
            "cpu_threads": args.cpu_threads,
            "num_workers": args.num_workers,
            **jsonable({**defaults, **self.options}),
        }

    def _transcribe_options(self, model: ResolvedModel, args: BenchArgs) -> dict[str, Any]:
        options: dict[str, Any] = {"task": args.task, "word_timestamps": args.word_timestamps}
        for name in FLAT_TRANSCRIBE_OPTIONS:
            value = getattr(args, name)
            if value is not None and name not in ("task", "word_timestamps"):
                options[name] = value
        if self.batched:
            options.pop("condition_on_previous_text", None)  # batched never conditions
        options.update(args.transcribe_options)
        if model.synthetic:
            from transcription_benchmarks.models.synthetic import (
                SYNTHETIC_TOKENS_PER_WINDOW,
                faster_whisper_forcing,
            )

            forcing = faster_whisper_forcing(SYNTHETIC_TOKENS_PER_WINDOW, self.model)
            if warning := force_options(options, forcing):
                self.warnings.append(warning)
        return options

    def transcribe(self, audio: AudioInfo, progress: ProgressCallback | None = None) -> Transcript:
        options = self.options
        if (
            self.batched
            and not options.get("vad_filter", True)
            and "clip_timestamps" not in options
        ):
            # Batched decoding without VAD needs explicit windows; fixed 30 s ones match how
            # WhisperModel walks the audio.
            options = {**options, "clip_timestamps": _fixed_windows(audio.duration_s)}
        with explain_cuda_library_errors():
            segments, info = self.pipeline.transcribe(str(audio.path), **options)
            collected = []
            for segment in segments:  # the generator is lazy: consuming it is the transcription
                collected.append(Segment(start=segment.start, end=segment.end, text=segment.text))
                if progress is not None:
                    progress(segment.end)
        return Transcript(
            segments=collected,
            language=info.language,
            language_probability=info.language_probability,
        )


@contextmanager
def explain_cuda_library_errors() -> Iterator[None]:
    """CTranslate2 loads cuBLAS/cuDNN lazily and reports a missing one as a bare RuntimeError;
    turn that into an error that says what is missing and what to do."""
    try:
        yield
    except RuntimeError as exc:
        message = str(exc)
        if "Library lib" not in message and "libcudnn" not in message:
            raise
        raise BackendLoadError(
            f"faster-whisper (CTranslate2) cannot load a CUDA library: {message}. CTranslate2 "
            "wheels need the CUDA 12 cuBLAS (libcublas.so.12) and, for 4.5.0-4.6.2, cuDNN 9: "
            "install nvidia-cublas-cu12 (and nvidia-cudnn-cu12) and put their lib directories "
            "on LD_LIBRARY_PATH, or run with device='cpu'"
        ) from exc


def check_transcribe_options(options: dict[str, Any], batched: bool) -> None:
    """The values of transcribe_options by the rules the endpoint applies (decoding.py): the
    options the project types; others the installed faster-whisper takes pass as they are."""
    model = options_model(batched)
    typed = {k: v for k, v in options.items() if k in model.model_fields}
    try:
        model.model_validate(typed)
    except ValidationError as exc:
        raise InvalidOptionError(
            describe_validation_error(exc, each="invalid option ", under="transcribe_options")
        ) from None


def vocabulary_size(whisper: Any) -> int:
    """The token ids a faster_whisper.WhisperModel can embed."""
    return int(whisper.hf_tokenizer.get_vocab_size(with_added_tokens=True))


def _fixed_windows(duration_s: float, window_s: float = 30.0) -> list[dict[str, float]]:
    """Consecutive windows in seconds, the unit BatchedInferencePipeline takes them in."""
    starts = [
        i * window_s for i in range(int(duration_s // window_s) + 1) if i * window_s < duration_s
    ]
    return [{"start": start, "end": min(start + window_s, duration_s)} for start in starts]
