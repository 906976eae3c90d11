"""The one inference handler: the toolkit calls model_fn once per worker, then input_fn,
predict_fn and output_fn per request, for every engine.

model_fn loads the engine code/serving.json names through the same registry and backend code
bench() measures (device, precision and threads as benchmarked). predict_fn validates the
request's parameters against the loaded model's `request_options`, checks the endpoint's
per-request limits, and calls the model's one per-request entry point,
`transcribe(samples, request)`, which bench() calls too. Nothing here names an engine.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from transcription_benchmarks.args import BenchArgs
from transcription_benchmarks.backends.base import LoadedModel
from transcription_benchmarks.backends.registry import get_backend
from transcription_benchmarks.errors import InvalidOptionError
from transcription_benchmarks.serving import legacy
from transcription_benchmarks.serving.config import ServingConfig
from transcription_benchmarks.serving.protocol import (
    ErrorBody,
    LanguageDetection,
    LanguageProbability,
    Prediction,
    TranscriptionInfo,
    WireSegment,
)
from transcription_benchmarks.serving.toolkit import (
    AudioRequest,
    ReceivedRequest,
    RequestRefusedError,
    audio_request,
    fail,
    in_model_server,
    read_request,
    refuse,
    refuse_invalid,
    request_deadline,
    request_timeout_s,
    write_json,
)

LOAD_OPTIONS = ("compute_type", "cpu_threads", "dtype")
"""ServingConfig fields that are BenchArgs options: each goes to the engines that read it."""


@dataclass
class Service:
    """What model_fn returns: the loaded model and how it is served."""

    model: LoadedModel
    config: ServingConfig
    kill_on_timeout: bool = False
    """In a model server's worker: a request past its hard deadline ends the process."""


def load_service(
    model_dir: str | Path, config: ServingConfig, *, kill_on_timeout: bool = False
) -> Service:
    """The model in `model_dir` (in the engine's format) loaded as `config` says."""
    backend = get_backend(config.backend)
    backend.check_installed()
    options = {k: getattr(config, k) for k in LOAD_OPTIONS if k in backend.reads}
    args = BenchArgs(backend=config.backend, device=config.device, **options)
    model = backend.resolve_model(str(Path(model_dir)), args)
    loaded = backend.load(model, args, backend.resolve_device(config.device))
    return Service(loaded, config, kill_on_timeout=kill_on_timeout)


def model_fn(model_dir: str, context: Any = None) -> Service:
    config = ServingConfig.read(model_dir)
    return load_service(model_dir, config, kill_on_timeout=in_model_server(context))


def input_fn(input_data: bytes | None, content_type: str, context: Any = None):
    try:
        return read_request(input_data, content_type, context)
    except RequestRefusedError as exc:
        return refuse(context, exc)


def predict_fn(data: ReceivedRequest | ErrorBody, model: Service, context: Any = None):
    if isinstance(data, ErrorBody):
        return data
    try:
        params_model = model.model.request_options
        request = audio_request(
            data, params_model, legacy_format=legacy if legacy.accepts(params_model) else None
        )
        asked = getattr(request.params, "limits_asked", dict)()  # a plug-in may declare none
        model.config.limits.check(request.duration_s, **asked)
        if getattr(request.params, "task", None) == "detect_language" and not request.legacy:
            return detect_language(model, request)
        return transcribe(model, request)
    except RequestRefusedError as exc:
        return refuse(context, exc)
    except InvalidOptionError as exc:  # over a limit, or a value the model cannot take
        return refuse_invalid(context, exc)
    except ValueError as exc:  # the engine's own refusal of a value, e.g. an unknown language
        return refuse(
            context, RequestRefusedError(HTTPStatus.BAD_REQUEST, "InvalidOption", str(exc))
        )
    except Exception as exc:
        return fail(context, exc)


def output_fn(prediction: BaseModel | bytes, accept: str, context: Any = None) -> bytes:
    return write_json(prediction, accept, context)


def transcribe(service: Service, request: AudioRequest) -> Prediction | bytes:
    started = time.perf_counter()
    timeout = request_timeout_s(service.config)
    with request_deadline(timeout, kill=service.kill_on_timeout) as deadline:
        transcript = service.model.transcribe(
            request.samples, request.params, checkpoint=deadline.check
        )
        deadline.check()
    processing_s = time.perf_counter() - started
    segments = [WireSegment.model_validate(s, from_attributes=True) for s in transcript.segments]
    info = transcript.info
    if request.legacy:
        return legacy.answer(segments, info.native if info else None, request.warnings)
    return Prediction(
        segments=segments,
        info=TranscriptionInfo(
            backend=service.config.backend,
            language=transcript.language,
            language_probability=transcript.language_probability,
            duration=request.duration_s,
            duration_after_vad=info.duration_after_vad if info else None,
            pipeline=info.pipeline if info else type(service.model).__name__,
            options=info.options if info else {},
            processing_s=processing_s,
        ),
    )


def detect_language(service: Service, request: AudioRequest) -> LanguageDetection:
    with request_deadline(request_timeout_s(service.config), kill=service.kill_on_timeout):
        guess = service.model.detect_language(request.samples, request.params)
    return LanguageDetection(
        language=guess.language,
        language_probability=guess.probability,
        all_language_probs=[
            LanguageProbability(language=k, probability=p) for k, p in guess.all_probabilities
        ],
        duration=request.duration_s,
    )
