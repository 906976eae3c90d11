"""faster-whisper's decoding options as types, and the rules every entry point applies to them.

BenchArgs (bench(), the CLI, matrix cells) and the endpoint's requests (serving.protocol) read
the same option names, so they validate through these same types: a value one refuses, the
other refuses with the same words. The types follow faster-whisper's own keyword arguments
(WhisperModel.transcribe and BatchedInferencePipeline.transcribe, faster-whisper 1.2) with the
same defaults, and import without faster-whisper, so a client gets names and types checked
before anything is sent. tests/test_serving_protocol.py holds them to the installed signatures.

What the types alone cannot know (the vocabulary a token id must fall in) is a function here
that the loaded model's owner calls: out-of-range token ids crash CTranslate2 natively.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from transcription_benchmarks.errors import InvalidOptionError


def check_temperatures(value: float | list[float] | None) -> float | list[float] | None:
    """Finite and non-negative; a fallback list is not empty. NaN, inf or a negative value
    make faster-whisper sample garbage (and negative timestamps) instead of failing."""
    if value is None:
        return value
    values = value if isinstance(value, list) else [value]
    if isinstance(value, list) and not value:
        raise ValueError("temperature list is empty")
    for t in values:
        if not math.isfinite(t) or t < 0:
            raise ValueError(f"temperature must be finite and >= 0, got {value}")
    return value


def temperature_count(value: float | list[float] | None) -> int | None:
    """How many fallback temperatures a request asks for (None: a single value or unset),
    what RequestLimits.max_temperatures bounds."""
    return len(value) if isinstance(value, list) else None


class _Options(BaseModel):
    # allow_inf_nan=False: JSON's NaN and Infinity (which Python's json reads) are refused in
    # every float field, not only in those with bounds.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class VadParameters(_Options):
    """faster_whisper.vad.VadOptions, the keys `vad_parameters` may hold; unset keys keep
    faster-whisper's defaults (max_speech_duration_s: unbounded)."""

    threshold: float = Field(0.5, ge=0, le=1)
    neg_threshold: float | None = Field(None, ge=0, le=1)
    min_speech_duration_ms: int = Field(0, ge=0)
    max_speech_duration_s: float = Field(float("inf"), gt=0)
    min_silence_duration_ms: int = Field(2000, ge=0)
    speech_pad_ms: int = Field(400, ge=0)


class TranscribeOptions(_Options):
    """The keyword arguments the two faster-whisper transcribe methods share (task aside: the
    caller owns it, as it owns the audio)."""

    language: str | None = None
    beam_size: int = Field(5, ge=1)
    best_of: int = Field(5, ge=1)
    patience: float = Field(1, gt=0)
    length_penalty: float = 1
    repetition_penalty: float = Field(1, gt=0)
    no_repeat_ngram_size: int = Field(0, ge=0)
    temperature: float | list[float] = [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    compression_ratio_threshold: float | None = 2.4
    log_prob_threshold: float | None = -1.0
    no_speech_threshold: float | None = Field(0.6, ge=0, le=1)
    condition_on_previous_text: bool = True
    prompt_reset_on_temperature: float = Field(0.5, ge=0)
    initial_prompt: str | list[int] | None = None
    prefix: str | None = None
    suppress_blank: bool = True
    suppress_tokens: list[int] | None = [-1]
    without_timestamps: bool = False
    max_initial_timestamp: float = Field(1.0, ge=0)
    word_timestamps: bool = False
    prepend_punctuations: str = "\"'“¿([{-"
    append_punctuations: str = "\"'.。,，!！?？:：”)]}、"
    multilingual: bool = False
    vad_filter: bool = False
    vad_parameters: VadParameters | None = None
    max_new_tokens: int | None = Field(None, ge=1)
    chunk_length: int | None = Field(None, ge=1, le=30)
    hallucination_silence_threshold: float | None = Field(None, ge=0)
    hotwords: str | None = None
    language_detection_threshold: float | None = Field(0.5, ge=0, le=1)
    language_detection_segments: int = Field(1, ge=1)

    @field_validator("temperature")
    @classmethod
    def _finite_temperatures(cls, value: float | list[float]) -> float | list[float]:
        return check_temperatures(value)  # type: ignore[return-value]

    @field_validator("initial_prompt")
    @classmethod
    def _prompt_ids(cls, value: str | list[int] | None) -> str | list[int] | None:
        if isinstance(value, list) and any(t < 0 for t in value):
            raise ValueError(f"token ids must be >= 0, got {value}")
        return value

    @field_validator("suppress_tokens")
    @classmethod
    def _suppress_ids(cls, value: list[int] | None) -> list[int] | None:
        if value and any(t < -1 for t in value):  # -1 stands for the model's own list
            raise ValueError(f"token ids must be >= 0 (or -1), got {value}")
        return value

    def decoding_kwargs(self) -> dict[str, Any]:
        """The options set, as faster-whisper's keywords (vad_parameters as a dict)."""
        options = self.model_dump(exclude_unset=True)
        if self.vad_parameters is not None:
            options["vad_parameters"] = self.vad_parameters.model_dump(exclude_unset=True)
        return options


class SingleOptions(TranscribeOptions):
    """WhisperModel.transcribe: sequential 30 s windows, conditioned on the previous text."""

    clip_timestamps: str | list[float] = "0"

    @field_validator("clip_timestamps")
    @classmethod
    def _ordered_clips(cls, value: str | list[float]) -> str | list[float]:
        """faster-whisper reads "start,end,start,end,..." (a trailing start runs to the end of
        the audio); each window must end after it starts and after the previous one."""
        if isinstance(value, str):
            try:
                times = [float(t) for t in value.split(",") if t.strip()] if value.strip() else []
            except ValueError:
                raise ValueError(
                    f"clip_timestamps must be comma-separated seconds, got {value!r}"
                ) from None
        else:
            times = list(value)
        if any(not math.isfinite(t) or t < 0 for t in times):
            raise ValueError(f"clip_timestamps must be finite and >= 0, got {value!r}")
        if any(later <= earlier for earlier, later in itertools.pairwise(times)):
            raise ValueError(
                f"clip_timestamps must increase (each window ends after it starts, windows in "
                f"order), got {value!r}"
            )
        return value


class ClipWindow(_Options):
    start: float = Field(ge=0)
    end: float = Field(gt=0)

    @model_validator(mode="after")
    def _ends_after_start(self) -> ClipWindow:
        if self.end <= self.start:
            raise ValueError(f"a clip window must end after it starts, got {self.start}-{self.end}")
        return self


class BatchOptions(TranscribeOptions):
    """BatchedInferencePipeline.transcribe: windows decoded `batch_size` at a time; VAD on and
    timestamps off by default, as in faster-whisper."""

    without_timestamps: bool = True
    vad_filter: bool = True
    clip_timestamps: list[ClipWindow] | None = None
    batch_size: int = Field(8, ge=1)


class FasterWhisperParams(_Options):
    """One request's options on faster-whisper (an endpoint's request parameters). At most one
    of `single` and `batch` chooses the pipeline and its options; with neither,
    WhisperModel.transcribe runs with its defaults (the same as sending no parameters).
    detect_language ignores both."""

    task: Literal["transcribe", "detect_language"] = "transcribe"
    single: SingleOptions | None = None
    batch: BatchOptions | None = None

    @model_validator(mode="after")
    def _one_pipeline(self) -> FasterWhisperParams:
        if self.single is not None and self.batch is not None:
            raise ValueError(
                "set exactly one of 'single' (WhisperModel.transcribe) and 'batch' "
                "(BatchedInferencePipeline.transcribe), not both"
            )
        return self

    @property
    def options(self) -> SingleOptions | BatchOptions:
        return self.batch or self.single or SingleOptions()

    def limits_asked(self) -> dict[str, float | None]:
        """What an endpoint's per-request limits (serving.config.RequestLimits) check."""
        options = self.options.decoding_kwargs()
        return {
            "beam_size": options.get("beam_size"),
            "best_of": options.get("best_of"),
            "temperatures": temperature_count(options.get("temperature")),
            "batch_size": options.get("batch_size"),
            "max_new_tokens": options.get("max_new_tokens"),
            "chunk_length_s": options.get("chunk_length"),
        }


def options_model(batched: bool) -> type[SingleOptions] | type[BatchOptions]:
    return BatchOptions if batched else SingleOptions


def token_id_problems(options: Mapping[str, Any], vocab_size: int) -> list[str]:
    """Token ids outside the model's vocabulary, by option: CTranslate2 reads them as indices
    into its embedding table and crashes the process (SIGSEGV) instead of raising."""
    problems = []
    prompt = options.get("initial_prompt")
    if isinstance(prompt, list | tuple):
        bad = [t for t in prompt if not 0 <= int(t) < vocab_size]
        if bad:
            problems.append(
                f"initial_prompt token ids {bad} are outside the vocabulary 0-{vocab_size - 1}"
            )
    suppress = options.get("suppress_tokens") or []
    bad = [t for t in suppress if int(t) != -1 and not 0 <= int(t) < vocab_size]
    if bad:
        problems.append(f"suppress_tokens ids {bad} are outside the vocabulary 0-{vocab_size - 1}")
    return problems


def check_token_ids(options: Mapping[str, Any], vocab_size: int) -> None:
    if problems := token_id_problems(options, vocab_size):
        raise InvalidOptionError("; ".join(problems))
