"""What crosses the wire between a client and an endpoint; client and server both import it.

Parameters travel in SageMaker's custom-attributes header, the one request header SageMaker
forwards to the container (at most 1024 ASCII characters), as base64(brotli(json)). Brotli
because JSON option dicts compress 3-5x and the header is small; base64 because the header must
be ASCII. The server caps the decompressed size so a tiny header cannot inflate into gigabytes.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from transcription_benchmarks.backends.base import RequestOptions
from transcription_benchmarks.backends.transformers import TransformersParams
from transcription_benchmarks.decoding import (
    BatchOptions,
    ClipWindow,
    FasterWhisperParams,
    SingleOptions,
    TranscribeOptions,
    VadParameters,
)
from transcription_benchmarks.errors import BenchError, describe_validation_error
from transcription_benchmarks.transcript import DecodedSegment, Word

__all__ = [
    "BatchOptions",
    "ClipWindow",
    "FasterWhisperParams",
    "RequestOptions",
    "SingleOptions",
    "TranscribeOptions",
    "TransformersParams",
    "VadParameters",
    "Word",
]

CUSTOM_ATTRIBUTES_HEADER = "X-Amzn-SageMaker-Custom-Attributes"
MAX_CUSTOM_ATTRIBUTES_CHARS = 1024
"""SageMaker's limit on the header value."""
MAX_DECODED_PARAMS_BYTES = 64 * 1024
"""The server's cap on the decompressed JSON: far above any real option set."""
MAX_REALTIME_BODY_BYTES = 6 * 1024 * 1024
"""SageMaker real-time invocations carry at most 6 MB; larger audio needs async inference."""


class ParamsError(BenchError, ValueError):
    """Parameters that cannot be encoded or decoded, or that the endpoint rejects."""


class ParamsTooLongError(ParamsError):
    """The encoded parameters exceed the custom-attributes header's 1024 characters."""


class EndpointError(BenchError):
    """An endpoint answered with an error status; carries the status and the server's message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"endpoint answered {status}: {message}")
        self.status = status
        self.message = message


def encode_params(params: Mapping[str, Any]) -> str:
    """Params -> header value; refuses anything SageMaker would truncate or reject."""
    try:
        raw = json.dumps(params, separators=(",", ":"), sort_keys=True).encode()
    except (TypeError, ValueError) as exc:
        raise ParamsError(f"parameters are not JSON-serialisable: {exc}") from exc
    import brotli  # the serving extra; imported here so the package imports without it

    value = base64.b64encode(brotli.compress(raw, quality=11)).decode("ascii")
    if len(value) > MAX_CUSTOM_ATTRIBUTES_CHARS:
        raise ParamsTooLongError(
            f"encoded parameters are {len(value)} characters; SageMaker's "
            f"{CUSTOM_ATTRIBUTES_HEADER} header allows at most {MAX_CUSTOM_ATTRIBUTES_CHARS}. "
            "Drop options that equal their defaults or shorten long values (initial_prompt, hotwords)."
        )
    return value


def decode_params(value: str, *, max_bytes: int = MAX_DECODED_PARAMS_BYTES) -> dict[str, Any]:
    """Header value -> params dict; every malformed input is a ParamsError naming what is wrong."""
    if len(value) > MAX_CUSTOM_ATTRIBUTES_CHARS:
        raise ParamsTooLongError(
            f"{CUSTOM_ATTRIBUTES_HEADER} is {len(value)} characters "
            f"(at most {MAX_CUSTOM_ATTRIBUTES_CHARS})"
        )
    try:
        compressed = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ParamsError(f"{CUSTOM_ATTRIBUTES_HEADER} is not base64: {exc}") from exc
    import brotli

    # Decompress incrementally so an oversized payload stops at the cap instead of filling memory.
    decompressor = brotli.Decompressor()
    try:
        raw = decompressor.process(compressed, output_buffer_limit=max_bytes + 1)
    except brotli.error as exc:
        raise ParamsError(f"{CUSTOM_ATTRIBUTES_HEADER} is not brotli-compressed JSON") from exc
    if len(raw) > max_bytes:
        raise ParamsError(f"{CUSTOM_ATTRIBUTES_HEADER} decompresses to more than {max_bytes} bytes")
    if not decompressor.is_finished():  # within the cap but the stream stops short
        raise ParamsError(
            f"{CUSTOM_ATTRIBUTES_HEADER} is not brotli-compressed JSON (truncated or other data)"
        )
    # json.loads raises more than JSONDecodeError: RecursionError for arrays or objects nested
    # deeper than the interpreter's stack allows (about 990 inside a worker), ValueError for an
    # integer over Python's 4300-digit conversion limit. Each is a malformed header, not a 500.
    try:
        params = json.loads(raw)
    except RecursionError:
        raise ParamsError(
            f"{CUSTOM_ATTRIBUTES_HEADER} does not hold valid JSON: arrays or objects nest too "
            "deeply to read"
        ) from None
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors too
        # The digit limit's message ends in advice for the server's code; the client needs
        # only what is wrong.
        problem = str(exc).split("; use sys.set_int_max_str_digits", 1)[0]
        raise ParamsError(
            f"{CUSTOM_ATTRIBUTES_HEADER} does not hold valid JSON: {problem}"
        ) from None
    if not isinstance(params, dict):
        raise ParamsError(
            f"{CUSTOM_ATTRIBUTES_HEADER} must hold a JSON object, not {type(params).__name__}"
        )
    return params


# --- Request parameters ------------------------------------------------------------------------
# Each engine's loaded model declares the options one request may set (request_options): the
# faster-whisper types live in transcription_benchmarks.decoding, shared with BenchArgs so that
# the endpoint and bench() apply the same rules; transformers' beside its backend; engines
# without their own take backends.base.RequestOptions. Re-exported here because they are what a
# client sends.


ParamsModel = TypeVar("ParamsModel", bound=BaseModel)


def parse_params(
    model: type[ParamsModel], params: Mapping[str, Any] | None, *, where: str | None = None
) -> ParamsModel:
    """Validate a params dict; a ParamsError lists every bad field by its dotted name (under
    `where` when the dict sits inside a larger request)."""
    try:
        return model.model_validate(dict(params or {}))
    except ValidationError as exc:
        problems = describe_validation_error(exc, under=where or "", empty="params")
        raise ParamsError(f"invalid {model.__name__}: {problems}") from None


def wire_params(params: BaseModel | Mapping[str, Any]) -> dict[str, Any]:
    """What goes on the wire: only the fields the caller set, so defaults stay the server's."""
    if isinstance(params, BaseModel):
        return params.model_dump(mode="json", exclude_unset=True)
    return dict(params)


# --- Responses ---------------------------------------------------------------------------------

JSON_CONTENT_TYPE = "application/json"
AUDIO_CONTENT_TYPES = ("application/octet-stream", "audio/*")
"""What the endpoint accepts: raw bytes of any container PyAV decodes."""


class WireSegment(DecodedSegment):
    """A segment as an endpoint answers with it: start, end, text and the decoder's details
    where the engine gives them (faster-whisper gives all; others start, end and text)."""

    model_config = ConfigDict(frozen=False)


class TranscriptionInfo(BaseModel):
    """What the server knows about the transcription as a whole."""

    backend: str
    """The engine's registered name (backends/registry.py)."""
    language: str | None
    language_probability: float | None = None
    duration: float
    """Seconds of audio decoded from the request body."""
    duration_after_vad: float | None = None
    pipeline: str
    """The engine's entry point: WhisperModel, BatchedInferencePipeline, the transformers
    pipeline, ..."""
    options: dict[str, Any] = Field(default_factory=dict)
    """The effective options, defaults filled in."""
    processing_s: float
    """Server-side seconds from decoded audio to the last segment."""


class Prediction(BaseModel):
    segments: list[WireSegment]
    info: TranscriptionInfo

    @property
    def text(self) -> str:
        return " ".join(s.text.strip() for s in self.segments if s.text.strip())


class LanguageProbability(BaseModel):
    language: str
    probability: float


class LanguageDetection(BaseModel):
    """task=detect_language: the most likely language and every language's probability."""

    language: str
    language_probability: float
    all_language_probs: list[LanguageProbability]
    duration: float


class ErrorBody(BaseModel):
    """What the endpoint answers to a request it refuses: HTTP status and a message."""

    status: int
    error: str
    """The problem, e.g. "ParamsError", "AudioError", "UnsupportedContentType"."""
    message: str


def _load_json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EndpointError(
            200, f"the endpoint answered with a body that is not JSON: {exc}"
        ) from None


def parse_prediction(body: bytes) -> tuple[list[WireSegment], TranscriptionInfo]:
    """A successful transcription response -> (segments, info)."""
    try:
        prediction = Prediction.model_validate(_load_json(body))
    except ValidationError as exc:
        raise EndpointError(
            200, f"the endpoint's answer is not a transcription: {describe_validation_error(exc)}"
        ) from None
    return prediction.segments, prediction.info


def parse_language_detection(body: bytes) -> LanguageDetection:
    """A successful task=detect_language response."""
    try:
        return LanguageDetection.model_validate(_load_json(body))
    except ValidationError as exc:
        raise EndpointError(
            200,
            "the endpoint's answer is not a language detection: " + describe_validation_error(exc),
        ) from None


def error_message(body: bytes) -> str:
    """The message of an error response: our ErrorBody, MMS's own {"code", "type", "message"},
    or the raw text when neither."""
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return body.decode("utf-8", "replace").strip() or "(empty body)"
    if isinstance(data, dict) and isinstance(data.get("message"), str):
        return data["message"]
    return json.dumps(data)
