"""The original project's wire format, accepted beside today's so that its clients work
unchanged. What a request in it looked like, and what its answer was:

- header X-Amzn-SageMaker-Custom-Attributes: base64(brotli(JSON of ModelArgs)), ModelArgs =
  {"task": "transcribe" | "detect_language", "single_params": {...} | null,
  "batch_params": {...} | null}; each params object a full dump of its option model (every
  default of WhisperModel.transcribe or BatchedInferencePipeline.transcribe, `task` inside,
  VadOptions' unbounded max_speech_duration_s dumped as null);
- body: the audio, as audio/x-audio;
- answer: the JSON array [segments, info], segments as faster-whisper's WireSegment fields, info as
  its TranscriptionInfo (all_language_probs, transcription_options, vad_options);
  task=detect_language answered [[], info] with the language fields filled.

A request is in this format when its params hold `single_params` or `batch_params` (the
original dumped both keys, null or not); anything else is today's format (serving.protocol).
Keys the original's models had and this endpoint does not take are dropped, with a warning in
info.warnings, while they hold the original's default; any other value of them, or any key
neither format knows, is a 400 naming it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from pydantic import TypeAdapter

from transcription_benchmarks.serving.protocol import (
    BatchOptions,
    FasterWhisperParams,
    ParamsError,
    SingleOptions,
    WireSegment,
    parse_params,
)

REQUEST_KEYS = ("task", "single_params", "batch_params")
ORIGINAL_ONLY_DEFAULTS: dict[str, Any] = {
    "task": "transcribe",  # inside single_params/batch_params: the pipeline's task
    "log_progress": False,
    "log_prob_low_threshold": None,
    "output_language": None,
    "vad_segments": None,
}
"""Keys of the original's option models that this endpoint does not take, with their default
there: at that value they change nothing and are dropped."""
NULL_MEANS_DEFAULT = ("language_detection_threshold",)
"""Options the original sent as null for "the default", which faster-whisper 1.2 reads as a
number (None there fails a comparison on multilingual models)."""
ORIGINAL_OPTIONS_FIELDS = ("log_prob_low_threshold", "output_language")
"""Fields the original's TranscriptionOptions model requires that faster-whisper's lacks."""


def accepts(params_model: type) -> bool:
    """The original format was a faster-whisper endpoint's: it applies where the loaded model
    takes FasterWhisperParams."""
    return issubclass(params_model, FasterWhisperParams)


def recognises(params: Mapping[str, Any]) -> bool:
    return "single_params" in params or "batch_params" in params


def convert(params: Mapping[str, Any]) -> tuple[FasterWhisperParams, list[str]]:
    """A request in the original format -> today's params and the warnings for the answer."""
    unknown = sorted(set(params) - set(REQUEST_KEYS))
    if unknown:
        raise ParamsError(
            f"unknown key(s) {', '.join(unknown)} in a request of the original format "
            f"(ModelArgs has {', '.join(REQUEST_KEYS)})"
        )
    task = params.get("task", "transcribe")
    if task not in ("transcribe", "detect_language"):
        raise ParamsError(f"task: must be 'transcribe' or 'detect_language', got {task!r}")
    single, batch = params.get("single_params"), params.get("batch_params")
    if single is not None and batch is not None:
        raise ParamsError("both batch_params and single_params were supplied: supply one")
    where, given = ("batch_params", batch) if batch is not None else ("single_params", single)
    if given is not None and not isinstance(given, dict):
        raise ParamsError(f"{where}: must be an object or null, got {type(given).__name__}")
    options, warnings = _drop_original_only(where, dict(given or {}))
    model = BatchOptions if batch is not None else SingleOptions
    typed = parse_params(model, options, where=where)
    pipeline = "batch" if batch is not None else "single"
    return FasterWhisperParams(task=task, **{pipeline: typed}), warnings


def _drop_original_only(where: str, options: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    dropped, refused = [], []
    for name, default in ORIGINAL_ONLY_DEFAULTS.items():
        if name not in options:
            continue
        value = options.pop(name)
        if value == default:
            dropped.append(name)
        else:
            refused.append(f"{where}.{name}={value!r}")
    if refused:
        raise ParamsError(
            f"not supported by this endpoint: {', '.join(refused)} (only the default value "
            "of these original-format options is accepted, and dropped)"
        )
    for name in NULL_MEANS_DEFAULT:
        if name in options and options[name] is None:
            del options[name]
    vad = options.get("vad_parameters")
    if isinstance(vad, dict):  # max_speech_duration_s=inf went over the wire as null
        options["vad_parameters"] = {k: v for k, v in vad.items() if v is not None}
    warnings = (
        [f"dropped {where} option(s) {', '.join(dropped)}: not taken here, at their default"]
        if dropped
        else []
    )
    return options, warnings


def answer(segments: list[WireSegment], info: Any, warnings: list[str]) -> bytes:
    """[segments, info] as the original answered; `info` is faster-whisper's TranscriptionInfo."""
    body = [[_segment(s) for s in segments], {**transcription_info(info), "warnings": warnings}]
    # pydantic writes inf (VadOptions.max_speech_duration_s) as null, as the original did.
    return TypeAdapter(list[Any]).dump_json(body)


def transcription_info(info: Any) -> dict[str, Any]:
    from transcription_benchmarks.backends.base import jsonable

    options = jsonable(dataclasses.asdict(info.transcription_options))
    for name in ORIGINAL_OPTIONS_FIELDS:
        options.setdefault(name, None)
    return {
        "language": info.language,
        "language_probability": info.language_probability,
        "duration": info.duration,
        "duration_after_vad": info.duration_after_vad,
        "all_language_probs": [list(p) for p in info.all_language_probs]
        if info.all_language_probs
        else None,
        "transcription_options": options,
        "vad_options": jsonable(dataclasses.asdict(info.vad_options))
        if info.vad_options is not None
        else None,
    }


def _segment(segment: WireSegment) -> dict[str, Any]:
    return segment.model_dump(
        include={
            "id",
            "seek",
            "start",
            "end",
            "text",
            "tokens",
            "avg_logprob",
            "compression_ratio",
            "no_speech_prob",
            "words",
            "temperature",
        }
    )
