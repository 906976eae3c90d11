"""Hugging Face transformers: pipeline("automatic-speech-recognition") over a Whisper model.

Audio is decoded by our own decoder inside the timing boundary (the pipeline's own file reader
shells out to an ffmpeg binary), then handed to the pipeline as a 16 kHz array.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from transcription_benchmarks.args import BenchArgs
from transcription_benchmarks.audio import SAMPLE_RATE, AudioInfo
from transcription_benchmarks.backends.base import (
    AudioInput,
    Backend,
    Checkpoint,
    LoadedModel,
    ProgressCallback,
    TorchLoadedModel,
    audio_duration_s,
    audio_samples,
    check_english_only,
    force_options,
    jsonable,
    torch_device,
)
from transcription_benchmarks.decoding import (
    MAX_BATCH_SIZE,
    MAX_BEAM_SIZE,
    MAX_TOKEN_COUNT,
    Text,
    check_temperatures,
)
from transcription_benchmarks.errors import InvalidOptionError
from transcription_benchmarks.models import ResolvedModel
from transcription_benchmarks.transcript import DecodingInfo, Segment, Transcript

# BenchArgs options that become generate_kwargs; setting both is a conflict.
FLAT_GENERATE_OPTIONS = {
    "beam_size": "num_beams",
    "temperature": "temperature",
    "language": "language",
    "task": "task",
}
BATCH_CHUNK_LENGTH_S = 30.0  # batching a single file needs chunks to batch


class TransformersParams(BaseModel):
    """One request's options on transformers (an endpoint's request parameters): the
    automatic-speech-recognition pipeline's call."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    task: Literal["transcribe", "translate"] = "transcribe"
    # Bounds and Text: decoding.py, with the library fact each follows (temperature's range in
    # check_temperatures).
    language: Text | None = None
    chunk_length_s: float | None = Field(30.0, gt=0, le=30)
    """Long-form audio is cut into chunks this long (None: the model's own 30 s window only)."""
    batch_size: int = Field(1, ge=1, le=MAX_BATCH_SIZE)
    """Chunks decoded together."""
    return_timestamps: bool = True
    num_beams: int | None = Field(None, ge=1, le=MAX_BEAM_SIZE)
    temperature: float | None = Field(None, ge=0)
    max_new_tokens: int | None = Field(None, ge=1, le=MAX_TOKEN_COUNT)

    @field_validator("temperature")
    @classmethod
    def _finite(cls, value: Any) -> Any:
        # A field validator, so that a refusal names the field: 0 or within float16's range
        # (decoding.check_temperatures says why).
        return check_temperatures(value)

    def limits_asked(self) -> dict[str, float | None]:
        """What an endpoint's per-request limits (serving.config.RequestLimits) check."""
        return {
            "beam_size": self.num_beams,
            "batch_size": self.batch_size,
            "max_new_tokens": self.max_new_tokens,
            "chunk_length_s": self.chunk_length_s,
        }


class TransformersBackend(Backend):
    name = "transformers"
    model_format = "transformers"
    install_extra = "transformers"
    required_modules = ("transformers", "torch")
    fingerprint_packages = ("torch", "transformers")
    reads = frozenset({"dtype", "attn_implementation", "chunk_length_s", "generate_kwargs"})
    # The DLC's own transformers: pinned so pip never swaps it for another.
    container_requirements = ("transformers==4.51.3",)
    sequential_batch_size = 1  # the pipeline has no unbatched path
    precision_option = "dtype"
    # CPU: fp16 is refused there and bf16 is emulated on most CPUs.
    cpu_precisions = ("fp32",)
    gpu_precisions = ("fp16", "bf16")
    # benchmarks/request_memory.py, tiny.en on CPU, 1 and 6 minutes of speech (2026-12-07):
    # 4.6 MiB per audio minute: the pipeline computes features per 30 s chunk, so a request
    # holds its samples and little more.
    request_mib_per_audio_minute = 5.0

    def validate(self, args: BenchArgs, audio: AudioInfo) -> None:
        duplicated = sorted(
            flat
            for flat, key in FLAT_GENERATE_OPTIONS.items()
            if key in args.generate_kwargs and flat in args.set_options()
        )
        if duplicated:
            raise InvalidOptionError(
                "set these either as BenchArgs options or in generate_kwargs, not both: "
                + ", ".join(f"{flat} / {FLAT_GENERATE_OPTIONS[flat]}" for flat in duplicated)
            )
        if args.dtype == "fp16" and args.device == "cpu":
            raise InvalidOptionError(
                "dtype='fp16' is not supported on device='cpu'; use bf16 or fp32"
            )

        timestamps = args.word_timestamps or not args.without_timestamps
        if (
            audio.duration_s > 30
            and not timestamps
            and not (args.chunk_length_s or args.batch_size)
        ):
            raise InvalidOptionError(
                f"{audio.path.name} is {audio.duration_s:.0f} s long: transformers' long-form "
                "decoding needs timestamps; drop without_timestamps or set chunk_length_s"
            )

    def resolve_device(self, device: str) -> str:
        return torch_device(device)

    def load(self, model: ResolvedModel, args: BenchArgs, device: str) -> LoadedModel:
        return TransformersModel(model, args, device)


class TransformersModel(TorchLoadedModel):
    request_options = TransformersParams

    def __init__(self, model: ResolvedModel, args: BenchArgs, device: str) -> None:
        import torch
        import transformers
        from transformers import AutoProcessor, WhisperForConditionalGeneration, pipeline

        self.warnings = []
        self.device = device
        dtype_name = args.dtype or ("fp16" if device.startswith("cuda") else "fp32")
        dtype = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}[dtype_name]
        # transformers renamed torch_dtype to dtype in 4.56.
        dtype_kwarg = (
            "dtype" if _version_tuple(transformers.__version__) >= (4, 56) else "torch_dtype"
        )
        load_kwargs: dict[str, Any] = {dtype_kwarg: dtype}
        if args.attn_implementation:
            load_kwargs["attn_implementation"] = args.attn_implementation
        try:
            whisper = WhisperForConditionalGeneration.from_pretrained(
                str(model.path), **load_kwargs
            )
        except (ImportError, ValueError) as exc:  # e.g. flash_attention_2 without flash-attn
            raise InvalidOptionError(f"transformers cannot load {model.path}: {exc}") from exc
        whisper.to(device)
        processor = AutoProcessor.from_pretrained(str(model.path))
        self.pipeline = pipeline(
            "automatic-speech-recognition",
            model=whisper,
            tokenizer=processor.tokenizer,
            feature_extractor=processor.feature_extractor,
            device=device,
        )
        self.multilingual = bool(getattr(whisper.generation_config, "is_multilingual", True))
        self.generate_kwargs = self._generate_kwargs(model, args)
        self.call_kwargs = self._call_kwargs(args, synthetic=model.synthetic)
        self.config = jsonable(
            {
                "dtype": dtype_name,
                "attn_implementation": whisper.config._attn_implementation,
                "batch_size": self.call_kwargs.get("batch_size"),
                "beam_size": self._effective_beams(whisper),
                "temperature": self.generate_kwargs.get("temperature", 0.0),
                "chunk_length_s": self.call_kwargs.get("chunk_length_s"),
                "return_timestamps": self.call_kwargs["return_timestamps"],
                "generate_kwargs": self.generate_kwargs,
            }
        )

    def _effective_beams(self, whisper: Any) -> int:
        """The beam size generate() gets: ours, else the model's generation config's, else the
        pipeline's own default (transformers 5's ASR pipeline decodes with 5 beams when neither
        sets one, as openai-whisper's CLI does; 4.x pipelines decode greedily)."""
        if "num_beams" in self.generate_kwargs:
            return int(self.generate_kwargs["num_beams"])
        if "num_beams" in whisper.generation_config.to_diff_dict():
            return int(whisper.generation_config.num_beams)
        defaults = getattr(self.pipeline, "_generation_defaults", None) or {}
        return int(defaults.get("num_beams", 1))

    def _generate_kwargs(self, model: ResolvedModel, args: BenchArgs) -> dict[str, Any]:
        kwargs: dict[str, Any] = {}
        for flat, key in FLAT_GENERATE_OPTIONS.items():
            value = getattr(args, flat)
            if value is not None and (flat != "task" or self.multilingual):
                kwargs[key] = tuple(value) if isinstance(value, list) else value
        if not self.multilingual:
            # English-only checkpoints reject language/task tokens; English is all they do.
            check_english_only(model.requested, kwargs.pop("language", None), args.task)
        kwargs.update(args.generate_kwargs)
        if kwargs.get("temperature", 0.0) not in (0, 0.0) and not isinstance(
            kwargs["temperature"], tuple
        ):
            kwargs.setdefault("do_sample", True)
        if model.synthetic:
            from transcription_benchmarks.models.synthetic import (
                SYNTHETIC_TOKENS_PER_WINDOW,
                transformers_forcing,
            )

            forcing = transformers_forcing(SYNTHETIC_TOKENS_PER_WINDOW)
            # Timestamps are a pipeline argument; the forcing masks them, so windows of 30 s
            # come from chunking instead of long-form decoding.
            forcing.pop("return_timestamps", None)
            if warning := force_options(kwargs, forcing):
                self.warnings.append(warning)
        return kwargs

    def _call_kwargs(self, args: BenchArgs, synthetic: bool) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "return_timestamps": "word"
            if args.word_timestamps
            else not (args.without_timestamps or False),
        }
        chunk = args.chunk_length_s
        if synthetic:
            # Consecutive 30 s windows without overlap, as faster-whisper walks the audio, so
            # both engines decode the same number of fixed-length windows.
            kwargs["return_timestamps"] = False
            kwargs["stride_length_s"] = 0
            chunk = chunk or 30.0
        if args.batch_size is not None:
            kwargs["batch_size"] = args.batch_size
            if chunk is None:
                chunk = BATCH_CHUNK_LENGTH_S
                self.warnings.append(
                    f"batch_size without chunk_length_s: using chunk_length_s={chunk:g} so there "
                    "are chunks to batch"
                )
        if chunk is not None:
            kwargs["chunk_length_s"] = chunk
        return kwargs

    def transcribe(
        self,
        audio: AudioInput,
        request: TransformersParams | None = None,
        *,
        progress: ProgressCallback | None = None,
        checkpoint: Checkpoint | None = None,
    ) -> Transcript:
        samples = audio_samples(audio)  # inside the boundary: the pipeline's reader needs ffmpeg
        duration = audio_duration_s(audio)
        if request is None:
            generate_kwargs, call_kwargs = dict(self.generate_kwargs), self.call_kwargs
        else:
            generate_kwargs, call_kwargs = self._request_kwargs(request)
        # No checkpoint inside the pipeline's call; a caller's deadline bounds it from outside.
        output = self.pipeline(
            {"raw": samples, "sampling_rate": SAMPLE_RATE},
            generate_kwargs=generate_kwargs,
            **call_kwargs,
        )
        segments = _segments(output, duration)
        if progress is not None:
            progress(duration)
        language = generate_kwargs.get("language") or (None if self.multilingual else "en")
        info = None
        if request is not None:
            info = DecodingInfo(
                pipeline="AutomaticSpeechRecognitionPipeline",
                options={**request.model_dump(), "generate_kwargs": generate_kwargs},
            )
        return Transcript(segments=segments, language=language, info=info)

    def transcribe_many(self, clips: list[np.ndarray]) -> list[Transcript]:
        """The pipeline over the list of clips: with batch_size set it batches across clips
        (and across a long clip's chunks) as its DataLoader fills batches."""
        if self.call_kwargs.get("batch_size") is None or len(clips) < 2:
            return [self.transcribe(clip) for clip in clips]
        outputs = self.pipeline(
            [{"raw": clip, "sampling_rate": SAMPLE_RATE} for clip in clips],
            generate_kwargs=dict(self.generate_kwargs),
            **self.call_kwargs,
        )
        language = self.generate_kwargs.get("language") or (None if self.multilingual else "en")
        return [
            Transcript(segments=_segments(output, len(clip) / SAMPLE_RATE), language=language)
            for clip, output in zip(clips, outputs, strict=True)
        ]

    def _request_kwargs(self, request: TransformersParams) -> tuple[dict[str, Any], dict[str, Any]]:
        """A request's generate() keywords and pipeline call; English-only checkpoints take no
        language or task tokens, so another language or translation is refused."""
        kwargs: dict[str, Any] = {}
        if self.multilingual:
            kwargs["task"] = request.task
            if request.language:
                kwargs["language"] = request.language
        else:
            check_english_only("this model", request.language, request.task)
        if request.num_beams is not None:
            kwargs["num_beams"] = request.num_beams
        if request.max_new_tokens is not None:
            kwargs["max_new_tokens"] = request.max_new_tokens
        if request.temperature:
            kwargs.update(temperature=request.temperature, do_sample=True)
        call: dict[str, Any] = {
            "return_timestamps": request.return_timestamps,
            "batch_size": request.batch_size,
        }
        if request.chunk_length_s is not None:
            call["chunk_length_s"] = request.chunk_length_s
        return kwargs, call


def _segments(output: dict[str, Any], duration: float) -> list[Segment]:
    """The pipeline's chunks as segments; an open end is the clip's end."""
    return [
        Segment(
            start=chunk["timestamp"][0] or 0.0,
            end=chunk["timestamp"][1] if chunk["timestamp"][1] is not None else duration,
            text=chunk["text"],
        )
        for chunk in output.get("chunks", [])
    ] or [Segment(start=0.0, end=duration, text=output["text"])]


def _version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split(".")[:2] if part.isdigit())
