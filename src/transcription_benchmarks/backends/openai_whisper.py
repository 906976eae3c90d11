"""openai-whisper (the `openai-whisper` package, the reference implementation): `transcribe()`
over its own PyTorch model.

Weights: its own checkpoints by short name through its own download code (what its users run),
or any model this harness resolves, converted from Hugging Face weights to its checkpoint layout
(models.hf_to_openai), so the packaged tiny.en and the synthetic architectures run offline on
the weights the other engines measure. Audio is decoded by our decoder inside the timing
boundary (its own loader shells out to an ffmpeg binary) and handed over as 16 kHz samples.
Options beyond the common ones go through `transcribe_options`, checked against `transcribe()`'s
and DecodingOptions' fields (best_of, initial_prompt, patience, ...).
"""

from __future__ import annotations

import dataclasses
import inspect
from pathlib import Path
from typing import Any

from transcription_benchmarks.args import BenchArgs
from transcription_benchmarks.audio import AudioInfo
from transcription_benchmarks.backends.base import (
    AudioInput,
    Backend,
    Checkpoint,
    LoadedModel,
    ProgressCallback,
    RequestOptions,
    TorchLoadedModel,
    audio_duration_s,
    audio_samples,
    check_english_only,
    force_options,
    jsonable,
    torch_device,
)
from transcription_benchmarks.errors import InvalidOptionError, ModelNotFoundError
from transcription_benchmarks.models import ResolvedModel, resolve
from transcription_benchmarks.models.resolve import PACKAGED_ALIASES, SYNTHETIC_PREFIX
from transcription_benchmarks.transcript import DecodingInfo, Segment, Transcript

# BenchArgs options passed to transcribe() under the same name; setting one of these inside
# transcribe_options as well is a conflict.
FLAT_OPTIONS = (
    "beam_size",
    "temperature",
    "language",
    "task",
    "without_timestamps",
    "word_timestamps",
    "condition_on_previous_text",
)
RESERVED_OPTIONS = frozenset({"model", "audio", "verbose", "fp16"})


def _known_options() -> set[str]:
    import whisper
    from whisper.decoding import DecodingOptions

    signature = inspect.signature(whisper.transcribe).parameters
    named = {name for name, p in signature.items() if p.kind is not p.VAR_KEYWORD}
    return (named | {f.name for f in dataclasses.fields(DecodingOptions)}) - RESERVED_OPTIONS


class OpenAIWhisperBackend(Backend):
    name = "openai-whisper"
    model_format = "openai-whisper"
    install_extra = "openai-whisper"
    required_modules = ("whisper", "torch")
    fingerprint_packages = ("openai-whisper", "torch")
    reads = frozenset({"dtype", "condition_on_previous_text", "cpu_threads", "transcribe_options"})
    container_requirements = ("openai-whisper==20250625",)  # torch is the DLC's
    precision_option = "dtype"
    supports_batching = False
    cpu_precisions = ("fp32",)
    gpu_precisions = ("fp16", "fp32")
    # benchmarks/request_memory.py, tiny.en on CPU, 1 and 6 minutes of speech (2026-12-07):
    # 21.2 MiB per audio minute: whisper.log_mel_spectrogram runs torch's STFT over the whole
    # file at once (the complex spectrum of every frame).
    request_mib_per_audio_minute = 22.0

    def validate(self, args: BenchArgs, audio: AudioInfo) -> None:
        if args.batch_size is not None:
            raise InvalidOptionError(
                "openai-whisper decodes one 30 s window at a time: batch_size is not supported"
            )
        if args.dtype == "bf16":
            raise InvalidOptionError("openai-whisper runs fp16 or fp32, not bf16")
        known = _known_options()
        unknown = sorted(set(args.transcribe_options) - known)
        if unknown:
            raise InvalidOptionError(
                f"unknown openai-whisper option(s) {', '.join(unknown)}; valid: "
                + ", ".join(sorted(known - set(FLAT_OPTIONS)))
            )
        if duplicated := sorted(set(args.transcribe_options) & set(FLAT_OPTIONS)):
            raise InvalidOptionError(
                f"transcribe_options sets {', '.join(duplicated)}, which BenchArgs has as its "
                "own option(s): set them there"
            )

    def resolve_device(self, device: str) -> str:
        return torch_device(device)

    def resolve_model(self, model: str, args: BenchArgs) -> ResolvedModel:
        """openai-whisper's own short names through its own download code (the packaged
        tiny.en stays offline); everything else as the harness resolves it, converted."""
        import whisper

        own = model in whisper.available_models() and model.lower() not in PACKAGED_ALIASES
        if own and not model.startswith(SYNTHETIC_PREFIX):
            root = Path.home() / ".cache" / "whisper"
            try:
                checkpoint = whisper._download(whisper._MODELS[model], str(root), False)
            except Exception as exc:  # offline, refused, checksum mismatch
                raise ModelNotFoundError(
                    f"openai-whisper cannot download {model!r} ({type(exc).__name__}: {exc}); "
                    "offline, use tiny.en (packaged), synthetic:<arch> or a local model directory"
                ) from None
            return ResolvedModel(model, Path(checkpoint).parent, self.model_format, "hub")
        return resolve(model, self.model_format)

    def load(self, model: ResolvedModel, args: BenchArgs, device: str) -> LoadedModel:
        return OpenAIWhisperModel(model, args, device)


class OpenAIWhisperModel(TorchLoadedModel):
    def __init__(self, model: ResolvedModel, args: BenchArgs, device: str) -> None:
        import torch
        import whisper

        self.warnings = []
        self.device = device
        if args.cpu_threads:
            torch.set_num_threads(args.cpu_threads)
        checkpoint = _checkpoint(model)
        self.model = whisper.load_model(str(checkpoint), device=device)
        dtype = args.dtype or ("fp16" if device.startswith("cuda") else "fp32")
        if dtype == "fp16" and not device.startswith("cuda"):
            raise InvalidOptionError("openai-whisper runs fp16 on CUDA only; use dtype='fp32'")
        self.options: dict[str, Any] = {"fp16": dtype == "fp16", "verbose": None}
        for name in FLAT_OPTIONS:
            value = getattr(args, name)
            if value is not None:
                self.options[name] = tuple(value) if isinstance(value, list) else value
        if not self.model.is_multilingual:
            check_english_only(model.requested, args.language, args.task)
        self.options.update(args.transcribe_options)
        if model.synthetic and (warning := force_options(self.options, self._forcing())):
            self.warnings.append(warning)
        self.config = jsonable(
            {
                "dtype": dtype,
                "checkpoint": str(checkpoint),
                **{k: v for k, v in self.options.items() if k not in ("verbose", "fp16")},
            }
        )

    def _forcing(self) -> dict[str, Any]:
        """Fixed-length decoding on random weights: greedy, end-of-text never sampled, each
        30 s window decoded to exactly SYNTHETIC_TOKENS_PER_WINDOW tokens without timestamps,
        and no window skipped as silence."""
        from whisper.tokenizer import get_tokenizer

        from transcription_benchmarks.models.synthetic import SYNTHETIC_TOKENS_PER_WINDOW

        tokenizer = get_tokenizer(
            self.model.is_multilingual, num_languages=self.model.num_languages
        )
        return {
            "temperature": 0.0,
            "beam_size": None,
            "best_of": None,
            "sample_len": SYNTHETIC_TOKENS_PER_WINDOW,
            "suppress_tokens": [-1, tokenizer.eot],
            "without_timestamps": True,
            "condition_on_previous_text": False,
            "no_speech_threshold": None,
            "compression_ratio_threshold": None,
            "logprob_threshold": None,
        }

    def transcribe(
        self,
        audio: AudioInput,
        request: RequestOptions | None = None,
        *,
        progress: ProgressCallback | None = None,
        checkpoint: Checkpoint | None = None,
    ) -> Transcript:
        import whisper

        samples = audio_samples(audio)  # inside the boundary: its own loader needs ffmpeg
        options = self.options if request is None else self._request_options(request)
        output = whisper.transcribe(self.model, samples, **options)
        segments = [
            Segment(start=s["start"], end=s["end"], text=s["text"]) for s in output["segments"]
        ]
        if progress is not None:
            progress(audio_duration_s(audio))
        info = None
        if request is not None:
            info = DecodingInfo(
                pipeline="whisper.transcribe",
                options=jsonable({k: v for k, v in options.items() if k != "verbose"}),
            )
        return Transcript(segments=segments, language=output.get("language"), info=info)

    def _request_options(self, request: RequestOptions) -> dict[str, Any]:
        """The load-time options with what the request set on top (transcribe() keeps no
        state between calls, so nothing needs putting back)."""
        options = dict(self.options)
        asked = request.model_dump(exclude_unset=True)
        if not self.model.is_multilingual:
            check_english_only("this model", asked.get("language"), asked.get("task"))
        for name, value in asked.items():
            options[name] = tuple(value) if isinstance(value, list) else value
        return options


def _checkpoint(model: ResolvedModel) -> Path:
    """The .pt file openai-whisper loads: ours is model.pt; its own downloads are <name>.pt."""
    candidates = sorted(model.path.glob("*.pt"))
    wanted = [p for p in candidates if p.stem == model.requested] or candidates
    if not wanted:
        raise ModelNotFoundError(f"{model.path} holds no openai-whisper checkpoint (*.pt)")
    return wanted[0]
