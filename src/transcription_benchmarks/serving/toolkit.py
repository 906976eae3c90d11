"""What the handler needs from the toolkit's side of a request: headers, the body, the status.

The toolkit (sagemaker_huggingface_inference_toolkit.handler_service.handle) turns any exception
from our functions into `PredictionException(str(e), 400)`: every failure would be a 400, and
the message a bare string. So a refused request does not raise: input_fn or predict_fn sets the
status on the MMS context (`context.set_response_status`, MMS's per-request status) and passes an
`ErrorBody` on, which output_fn writes as JSON. That gives 415 for a wrong content type, a
message in a body the client parses, and a worker that stays up for the next request.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, TypeVar

import numpy as np
from pydantic import BaseModel

from transcription_benchmarks.audio.decode import SAMPLE_RATE, decode_audio
from transcription_benchmarks.errors import (
    AudioError,
    AudioTooLongError,
    BenchError,
    InvalidOptionError,
)
from transcription_benchmarks.serving.config import (
    MAX_BODY_ENV,
    REQUEST_TIMEOUT_ENV,
    LimitExceededError,
)
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
class ReceivedRequest:
    """What input_fn hands to predict_fn: the body, checked for type and size, and the
    parameters header decoded but not yet validated (which options are valid depends on the
    engine, known in predict_fn)."""

    body: bytes
    params: dict[str, Any] | None


@dataclass(frozen=True)
class AudioRequest:
    """A request with its audio decoded and its parameters validated. `legacy`: the request came
    in the original project's format and is answered in it (serving.legacy); `warnings`: what
    the answer should tell the client (options dropped on the way)."""

    samples: np.ndarray
    params: Any
    legacy: bool = False
    warnings: list[str] = field(default_factory=list)

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
    input_data: bytes | str | None, content_type: str | None, context: Any
) -> ReceivedRequest:
    """Body and header -> the checked body and the decoded header; RequestRefusedError for
    anything wrong with them."""
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
    limit, source = body_limit()
    if len(input_data) > limit:
        raise RequestRefusedError(
            HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
            "BodyTooLarge",
            f"the request body is {len(input_data)} bytes; this endpoint accepts at most {limit} "
            f"({source}); audio over 6 MB needs an asynchronous endpoint",
        )
    header = request_header(context, CUSTOM_ATTRIBUTES_HEADER)
    try:
        raw = decode_params(header) if header else None
    except ParamsError as exc:
        raise RequestRefusedError(HTTPStatus.BAD_REQUEST, type(exc).__name__, str(exc)) from exc
    return ReceivedRequest(input_data, raw)


def request_params(
    received: ReceivedRequest, params_model: type[ParamsModel], legacy_format: Any = None
) -> tuple[Any, bool, list[str]]:
    """The validated parameters, in today's format or the original one where `legacy_format`
    recognises them: (params, whether legacy, warnings for the answer). Nothing is decoded
    yet, so a request with bad parameters costs no decoding."""
    raw = received.params
    try:
        if legacy_format is not None and raw is not None and legacy_format.recognises(raw):
            params, warnings = legacy_format.convert(raw)
            return params, True, warnings
        return parse_params(params_model, raw), False, []
    except ParamsError as exc:
        raise RequestRefusedError(HTTPStatus.BAD_REQUEST, type(exc).__name__, str(exc)) from exc


def max_body_bytes() -> int:
    """The server's own request cap: SageMaker already holds real-time calls to 6 MB, while an
    async endpoint raises MMS_MAX_REQUEST_SIZE so large audio staged in S3 gets through. The
    local endpoint sets TRANSCRIPTION_BENCHMARKS_MAX_BODY_BYTES below MMS's own cap, so that an
    over-size body reaches this check and gets a body naming the limit (MMS's 413 has none)."""
    return body_limit()[0]


def body_limit() -> tuple[int, str]:
    """The request cap in bytes and where it comes from (for the 413's message)."""
    for name in (MAX_BODY_ENV, "MMS_MAX_REQUEST_SIZE"):
        configured = os.environ.get(name, "")
        if configured.isdigit():
            return int(configured), name
    return MAX_REALTIME_BODY_BYTES, "SageMaker's real-time limit"


def server_response_timeout_s() -> float:
    """The model server's response timeout, read as MMS 1.1 reads it: a seconds setting when
    there is one, else minutes (the toolkit writes SAGEMAKER_MODEL_SERVER_TIMEOUT, default 60,
    into default_response_timeout; MMS_* variables override the properties)."""
    for name in ("MMS_DEFAULT_RESPONSE_TIMEOUT_SECONDS", "SAGEMAKER_MODEL_SERVER_TIMEOUT_SECONDS"):
        value = os.environ.get(name, "").strip()
        if value.lstrip("-").isdigit() and int(value) >= 0:
            return float(value)
    for name in ("MMS_DEFAULT_RESPONSE_TIMEOUT", "SAGEMAKER_MODEL_SERVER_TIMEOUT"):
        value = os.environ.get(name, "").strip()
        if value.isdigit():
            return 60.0 * int(value)
    return 60.0 * 60


SOFT_DEADLINE = 0.8
"""Past this share of the timeout a request stops at its next checkpoint (a 504 with a body)."""
HARD_DEADLINE = 0.9
"""Past this share the worker ends itself, before the server gives up on it: MMS then starts a
fresh worker in its place. Left running, a timed-out worker keeps its core and memory while MMS
starts another beside it, one more per timeout."""


@dataclass(frozen=True)
class Deadline:
    timeout_s: float | None
    soft_at: float = math.inf

    def check(self) -> None:
        if time.monotonic() > self.soft_at:
            raise RequestRefusedError(
                HTTPStatus.GATEWAY_TIMEOUT,
                "RequestTimeout",
                f"the request ran past {SOFT_DEADLINE:.0%} of this endpoint's "
                f"{self.timeout_s:g} s response timeout and was stopped; send shorter audio or "
                "cheaper options (request_timeout_s in code/serving.json, or the server's timeout)",
            )


@contextlib.contextmanager
def request_deadline(timeout_s: float | None, *, kill: bool) -> Iterator[Deadline]:
    """The request's time budget. `kill` (in a model server's worker): an interval timer whose
    SIGALRM, left at its default action, ends the process at the hard deadline, whatever holds
    the GIL (CTranslate2 and torch run long calls in native code, where no Python check runs)."""
    if timeout_s is None:
        yield Deadline(None)
        return
    armed = kill and threading.current_thread() is threading.main_thread()
    previous = None
    if armed:
        previous = signal.signal(signal.SIGALRM, signal.SIG_DFL)
        signal.setitimer(signal.ITIMER_REAL, HARD_DEADLINE * timeout_s)
        logger.info(
            "request budget %.1f s: stopped at %.1f s, worker ended at %.1f s",
            timeout_s,
            SOFT_DEADLINE * timeout_s,
            HARD_DEADLINE * timeout_s,
        )
    try:
        yield Deadline(timeout_s, time.monotonic() + SOFT_DEADLINE * timeout_s)
    finally:
        if armed:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)


def request_timeout_s(config: Any) -> float:
    """The budget of one request: the serving config's, else $TRANSCRIPTION_BENCHMARKS_REQUEST_
    TIMEOUT_S (deploy sets SageMaker's 60 s on real-time endpoints), within the server's own
    response timeout (which MMS also applies to loading the model, so it is often longer)."""
    server = server_response_timeout_s()
    configured = config.request_timeout_s
    if configured is None and (value := os.environ.get(REQUEST_TIMEOUT_ENV, "").strip()):
        try:
            configured = float(value)
        except ValueError:
            logger.warning("%s=%r is not a number of seconds; ignored", REQUEST_TIMEOUT_ENV, value)
    return min(configured or server, server)


def in_model_server(context: Any) -> bool:
    """model_fn's context is MMS's own in a server worker (tests pass None or a stand-in)."""
    properties = getattr(context, "system_properties", None)
    return isinstance(properties, dict) and properties.get("server_name") == "MMS"


def decode_body(
    data: bytes, *, max_s: float | None = None, checkpoint: Callable[[], None] | None = None
) -> np.ndarray:
    """The project's decoder (PyAV) reading the body from memory, so the endpoint hears exactly
    what bench() hears. `max_s`: audio beyond it is refused from the container's header, or as
    soon as decoding passes it (AudioTooLongError, raised as it is: the caller words the
    limit); `checkpoint` runs between frames (the request deadline)."""
    try:
        return decode_audio(data, max_s=max_s, checkpoint=checkpoint)
    except AudioTooLongError:
        raise
    except AudioError as exc:
        raise RequestRefusedError(HTTPStatus.BAD_REQUEST, "AudioError", str(exc)) from exc


def refuse(context: Any, exc: RequestRefusedError) -> ErrorBody:
    """Set the refusal's status on this request and return the body output_fn will write."""
    if context is not None and hasattr(context, "set_response_status"):
        context.set_response_status(int(exc.status), HTTPStatus(exc.status).phrase)
    logger.info("refused request: %s %s: %s", int(exc.status), exc.error, exc.message)
    return ErrorBody(status=int(exc.status), error=exc.error, message=exc.message)


def refuse_invalid(context: Any, exc: InvalidOptionError) -> ErrorBody:
    """A value a limit or the model refuses: 400 LimitExceeded, or InvalidOption."""
    error = "LimitExceeded" if isinstance(exc, LimitExceededError) else "InvalidOption"
    return refuse(context, RequestRefusedError(HTTPStatus.BAD_REQUEST, error, str(exc)))


def fail(context: Any, exc: Exception) -> ErrorBody:
    """An error of ours, not the request's: 500 with the exception, logged with its traceback."""
    logger.exception("prediction failed")
    if context is not None and hasattr(context, "set_response_status"):
        context.set_response_status(500, HTTPStatus.INTERNAL_SERVER_ERROR.phrase)
    return ErrorBody(status=500, error=type(exc).__name__, message=str(exc))


def write_json(prediction: BaseModel | bytes, accept: str | None, context: Any = None) -> bytes:
    """output_fn's body: JSON whatever Accept says, labelled as JSON."""
    if accept and accept not in (JSON_CONTENT_TYPE, "*/*"):
        logger.info("Accept %s asked for; answering %s", accept, JSON_CONTENT_TYPE)
    label_as_json(context)
    return prediction if isinstance(prediction, bytes) else prediction.model_dump_json().encode()


def label_as_json(context: Any) -> None:
    """The toolkit's handle() labels every answer with the request's Accept header after
    output_fn returns (context.set_response_content_type(0, accept)), so a client asking for
    text/csv got JSON labelled text/csv. The toolkit offers no hook after that call, so the
    context's setter (one context per worker) is wrapped once to label what is sent."""
    setter = getattr(context, "set_response_content_type", None)
    if setter is None or getattr(setter, "labels_json", False):
        return

    def set_json(idx: int, value: str) -> None:
        setter(idx, JSON_CONTENT_TYPE)

    set_json.labels_json = True  # type: ignore[attr-defined]
    context.set_response_content_type = set_json
    set_json(0, JSON_CONTENT_TYPE)
