"""The transformers handler: the automatic-speech-recognition pipeline behind the toolkit.

model_fn loads through TransformersBackend (the dtype and device bench() measures); chunking,
batch size, language, task and decoding options come with each request.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from transcription_benchmarks.args import BenchArgs
from transcription_benchmarks.audio.decode import SAMPLE_RATE
from transcription_benchmarks.backends.transformers import TransformersBackend
from transcription_benchmarks.errors import InvalidOptionError
from transcription_benchmarks.models import resolve
from transcription_benchmarks.serving.config import ServingConfig
from transcription_benchmarks.serving.handlers.toolkit import (
    AudioRequest,
    RequestRefusedError,
    fail,
    in_model_server,
    read_request,
    refuse,
    refuse_invalid,
    request_deadline,
    request_timeout_s,
    write_json,
)
from transcription_benchmarks.serving.protocol import (
    ErrorBody,
    Prediction,
    TranscriptionInfo,
    TransformersParams,
    WireSegment,
)


@dataclass
class TransformersService:
    pipeline: Any  # transformers.AutomaticSpeechRecognitionPipeline
    multilingual: bool
    config: ServingConfig
    kill_on_timeout: bool = False
    """In a model server's worker: a request past its hard deadline ends the process."""


def model_fn(model_dir: str, context: Any = None) -> TransformersService:
    config = ServingConfig.read(model_dir)
    model = resolve(str(Path(model_dir)), "transformers")
    backend = TransformersBackend()
    backend.check_installed()
    args = BenchArgs(backend="transformers", device=config.device, dtype=config.dtype)
    loaded = backend.load(model, args, backend.resolve_device(config.device))
    return TransformersService(
        loaded.pipeline, loaded.multilingual, config, kill_on_timeout=in_model_server(context)
    )


def input_fn(input_data: bytes | None, content_type: str, context: Any = None):
    try:
        return read_request(input_data, content_type, context, TransformersParams)
    except RequestRefusedError as exc:
        return refuse(context, exc)


def predict_fn(data: AudioRequest | ErrorBody, model: TransformersService, context: Any = None):
    if isinstance(data, ErrorBody):
        return data
    try:
        return transcribe(model, data)
    except RequestRefusedError as exc:
        return refuse(context, exc)
    except InvalidOptionError as exc:  # over a limit, or a value the model cannot take
        return refuse_invalid(context, exc)
    except ValueError as exc:  # the pipeline's refusal of a value, e.g. an unknown language
        return refuse(
            context, RequestRefusedError(HTTPStatus.BAD_REQUEST, "InvalidOption", str(exc))
        )
    except Exception as exc:
        return fail(context, exc)


def output_fn(prediction: BaseModel, accept: str, context: Any = None) -> bytes:
    return write_json(prediction, accept, context)


def generate_kwargs(params: TransformersParams, multilingual: bool) -> dict[str, Any]:
    """The request's decoding options as generate() keywords; English-only checkpoints take no
    language or task tokens, so asking them for another language or translation is refused."""
    kwargs: dict[str, Any] = {}
    if multilingual:
        kwargs["task"] = params.task
        if params.language:
            kwargs["language"] = params.language
    else:
        if params.language not in (None, "en", "english"):
            raise RequestRefusedError(
                HTTPStatus.BAD_REQUEST,
                "InvalidOption",
                f"this model is English-only; language={params.language!r}",
            )
        if params.task == "translate":
            raise RequestRefusedError(
                HTTPStatus.BAD_REQUEST, "InvalidOption", "this model is English-only; no translate"
            )
    if params.num_beams is not None:
        kwargs["num_beams"] = params.num_beams
    if params.max_new_tokens is not None:
        kwargs["max_new_tokens"] = params.max_new_tokens
    if params.temperature:
        kwargs.update(temperature=params.temperature, do_sample=True)
    return kwargs


def transcribe(model: TransformersService, request: AudioRequest) -> Prediction:
    params: TransformersParams = request.params
    model.config.limits.check(
        request.duration_s,
        beam_size=params.num_beams,
        batch_size=params.batch_size,
        max_new_tokens=params.max_new_tokens,
        chunk_length_s=params.chunk_length_s,
    )
    kwargs = generate_kwargs(params, model.multilingual)
    call: dict[str, Any] = {
        "return_timestamps": params.return_timestamps,
        "batch_size": params.batch_size,
    }
    if params.chunk_length_s is not None:
        call["chunk_length_s"] = params.chunk_length_s
    started = time.perf_counter()
    # No checkpoint inside the pipeline's call: the hard deadline is what bounds it.
    with request_deadline(request_timeout_s(model.config), kill=model.kill_on_timeout) as deadline:
        output = model.pipeline(
            {"raw": request.samples, "sampling_rate": SAMPLE_RATE}, generate_kwargs=kwargs, **call
        )
        deadline.check()
    processing_s = time.perf_counter() - started
    duration = request.duration_s
    segments = [
        WireSegment(
            start=chunk["timestamp"][0] or 0.0,
            end=chunk["timestamp"][1] if chunk["timestamp"][1] is not None else duration,
            text=chunk["text"],
        )
        for chunk in output.get("chunks", [])
    ] or [WireSegment(start=0.0, end=duration, text=output["text"])]
    return Prediction(
        segments=segments,
        info=TranscriptionInfo(
            backend="transformers",
            language=params.language or (None if model.multilingual else "en"),
            duration=duration,
            pipeline="AutomaticSpeechRecognitionPipeline",
            options={**params.model_dump(), "generate_kwargs": kwargs},
            processing_s=processing_s,
        ),
    )
