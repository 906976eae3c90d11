"""What both handlers need from the toolkit's side of a request: headers, the body, the status.

The toolkit (sagemaker_huggingface_inference_toolkit.handler_service.handle) turns any exception
from our functions into `PredictionException(str(e), 400)`: every failure would be a 400, and
the message a bare string. So a refused request does not raise: input_fn or predict_fn sets the
status on the MMS context (`context.set_response_status`, MMS's per-request status) and passes an
`ErrorBody` on, which output_fn writes as JSON. That gives 415 for a wrong content type, a
message in a body the client parses, and a worker that stays up for the next request.
"""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from pydantic import BaseModel

from transcription_benchmarks.audio.decode import SAMPLE_RATE, decode_audio
from transcription_benchmarks.errors import AudioError, BenchError
from transcription_benchmarks.serving.protocol import (
    CUSTOM_ATTRIBUTES_HEADER,
    JSON_CONTENT_TYPE,
    MAX_REALTIME_BODY_BYTES,
    ErrorBody,
    ParamsError,
    decode_params,
    parse_params,
)

logger = logging.getLogger(__name__)

ParamsModel = TypeVar("ParamsModel", bound=BaseModel)


class RequestRefusedError(BenchError):
    """A request the endpoint answers with a 4xx: the status and a short problem name."""

    def __init__(self, status: int, error: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message


@dataclass(frozen=True)
class AudioRequest:
    """What input_fn hands to predict_fn: decoded audio and validated parameters."""

    samples: np.ndarray
    params: Any

    @property
    def duration_s(self) -> float:
        return len(self.samples) / SAMPLE_RATE


def request_header(context: Any, name: str) -> str | None:
    """A request header by name, case-insensitively (MMS keeps the case the client sent)."""
    if context is None or getattr(context, "request_processor", None) is None:
        return None
    wanted = name.lower()
    headers = context.request_processor[0].get_request_properties() or {}
    for key, value in headers.items():
        if isinstance(key, str) and key.lower() == wanted and isinstance(value, str):
            return value
    return None


def accepts_audio(content_type: str | None) -> bool:
    kind = (content_type or "").split(";")[0].strip().lower()
    return kind == "application/octet-stream" or kind.startswith("audio/")


def read_request(
    input_data: bytes | str | None,
    content_type: str | None,
    context: Any,
    params_model: type[ParamsModel],
) -> AudioRequest:
    """Body and header -> decoded audio and typed params; RequestRefusedError for anything wrong."""
    if not accepts_audio(content_type):
        raise RequestRefusedError(
            HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedContentType",
            f"content type {content_type or '(none)'} is not accepted: send the audio file's "
            "bytes as application/octet-stream (or audio/*)",
        )
    if isinstance(input_data, str):  # the toolkit decodes text types; audio is never text
        input_data = input_data.encode("utf-8", "surrogateescape")
    if not input_data:
        raise RequestRefusedError(HTTPStatus.BAD_REQUEST, "EmptyBody", "the request body is empty")
    limit = max_body_bytes()
    if len(input_data) > limit:
        raise RequestRefusedError(
            HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
            "BodyTooLarge",
            f"the request body is {len(input_data)} bytes; this endpoint accepts at most {limit} "
            "(MMS_MAX_REQUEST_SIZE); audio over 6 MB needs an asynchronous endpoint",
        )
    header = request_header(context, CUSTOM_ATTRIBUTES_HEADER)
    try:
        params = parse_params(params_model, decode_params(header) if header else None)
    except ParamsError as exc:
        raise RequestRefusedError(HTTPStatus.BAD_REQUEST, type(exc).__name__, str(exc)) from exc
    return AudioRequest(samples=decode_body(input_data), params=params)


def max_body_bytes() -> int:
    """The server's own request cap: SageMaker already holds real-time calls to 6 MB, while an
    async endpoint raises MMS_MAX_REQUEST_SIZE so large audio staged in S3 gets through."""
    configured = os.environ.get("MMS_MAX_REQUEST_SIZE", "")
    return int(configured) if configured.isdigit() else MAX_REALTIME_BODY_BYTES


def decode_body(data: bytes) -> np.ndarray:
    """The project's decoder (PyAV), so the endpoint hears exactly what bench() hears; it reads
    from a file, and 6 MB through a temporary file costs milliseconds."""
    with tempfile.TemporaryDirectory(prefix="tb-request-") as tmp:
        path = Path(tmp) / "audio"
        path.write_bytes(data)
        try:
            return decode_audio(path)
        except AudioError as exc:
            message = str(exc).replace(str(path), "the request body")
            raise RequestRefusedError(HTTPStatus.BAD_REQUEST, "AudioError", message) from exc


def refuse(context: Any, exc: RequestRefusedError) -> ErrorBody:
    """Set the refusal's status on this request and return the body output_fn will write."""
    if context is not None and hasattr(context, "set_response_status"):
        context.set_response_status(int(exc.status), HTTPStatus(exc.status).phrase)
    logger.info("refused request: %s %s: %s", int(exc.status), exc.error, exc.message)
    return ErrorBody(status=int(exc.status), error=exc.error, message=exc.message)


def fail(context: Any, exc: Exception) -> ErrorBody:
    """An error of ours, not the request's: 500 with the exception, logged with its traceback."""
    logger.exception("prediction failed")
    if context is not None and hasattr(context, "set_response_status"):
        context.set_response_status(500, HTTPStatus.INTERNAL_SERVER_ERROR.phrase)
    return ErrorBody(status=500, error=type(exc).__name__, message=str(exc))


def write_json(prediction: BaseModel, accept: str | None) -> bytes:
    """output_fn's body: JSON whatever Accept says (the toolkit labels it with Accept; clients
    ask for application/json, which is all these handlers produce)."""
    if accept and accept not in (JSON_CONTENT_TYPE, "*/*"):
        logger.info("Accept %s asked for; answering %s", accept, JSON_CONTENT_TYPE)
    return prediction.model_dump_json().encode()
