"""The one inference handler: the toolkit calls model_fn once per worker, then input_fn,
predict_fn and output_fn per request, for every engine.

model_fn loads the engine code/serving.json names through the same registry and backend code
bench() measures (device, precision and threads as benchmarked), and sets the worker's audio
budget (serving/budget.py). predict_fn validates the request's parameters against the loaded
model's `request_options` and checks the endpoint's per-request limits before any audio is
decoded; then, inside the request's deadline, decodes the body no further than the audio
budget allows and calls the model's one per-request entry point, `transcribe(samples,
request)`, which bench() calls too. Nothing here names an engine.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from transcription_benchmarks.args import BenchArgs
from transcription_benchmarks.backends.base import LoadedModel
from transcription_benchmarks.backends.registry import get_backend
from transcription_benchmarks.errors import AudioTooLongError, InvalidOptionError
from transcription_benchmarks.serving import legacy
from transcription_benchmarks.serving.budget import AudioBudget, audio_budget, workers_per_model
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
    Deadline,
    ReceivedRequest,
    RequestRefusedError,
    decode_body,
    fail,
    in_model_server,
    read_request,
    refuse,
    refuse_invalid,
    request_deadline,
    request_params,
    request_timeout_s,
    write_json,
)

LOAD_OPTIONS = ("compute_type", "cpu_threads", "dtype")
"""ServingConfig fields that are BenchArgs options: each goes to the engines that read it."""

logger = logging.getLogger(__name__)


@dataclass
class Service:
    """What model_fn returns: the loaded model and how it is served."""

    model: LoadedModel
    config: ServingConfig
    kill_on_timeout: bool = False
    """In a model server's worker: a request past its hard deadline ends the process."""
    budget: AudioBudget | None = None
    """The worker's audio limit per request; None: found from the config when first needed."""

    @property
    def audio_budget(self) -> AudioBudget:
        if self.budget is None:
            self.budget = worker_budget(self.config, self.config.device)
        return self.budget


def worker_budget(config: ServingConfig, device: str) -> AudioBudget:
    """This worker's audio budget, measured with the model loaded."""
    return audio_budget(
        config.limits.max_audio_s,
        get_backend(config.backend).request_mib_per_audio_minute,
        budget_mb=config.memory_budget_mb,
        device=device,
    )


def load_service(
    model_dir: str | Path, config: ServingConfig, *, kill_on_timeout: bool = False
) -> Service:
    """The model in `model_dir` (in the engine's format) loaded as `config` says."""
    backend = get_backend(config.backend)
    backend.check_installed()
    options = {k: getattr(config, k) for k in LOAD_OPTIONS if k in backend.reads}
    args = BenchArgs(backend=config.backend, device=config.device, **options)
    model = backend.resolve_model(str(Path(model_dir)), args)
    device = backend.resolve_device(config.device)
    loaded = backend.load(model, args, device)
    budget = worker_budget(config, device)
    logger.info(
        "serving %s on %s: at most %.0f s of audio per request (%s)",
        config.backend,
        device,
        budget.max_audio_s(),
        budget.describe(),
    )
    return Service(loaded, config, kill_on_timeout=kill_on_timeout, budget=budget)


def model_fn(model_dir: str, context: Any = None) -> Service:
    config = ServingConfig.read(model_dir)
    if in_model_server(context):
        share_cores(config)
    return load_service(model_dir, config, kill_on_timeout=in_model_server(context))


OMP_THREADS_ENV = "OMP_NUM_THREADS"


def share_cores(config: ServingConfig) -> int | None:
    """Give this worker its share of the cores, where Multi Model Server took them away.

    MMS's worker sets OMP_NUM_THREADS=1 whenever the container sets none (an MXNet-era default
    in mms/model_service_worker.py). CTranslate2 and torch take their default thread count from
    OpenMP, so a served model ran on one core where bench() runs on all of them: faster-whisper
    tiny.en 1.2x slower than in-process on 2 cores (benchmarks/serving_overhead.py). Here,
    before the engine loads (CTranslate2's OpenMP runtime reads the variable when it loads;
    torch, imported by the toolkit, is set directly), the variable becomes the cores over the
    model server's workers: every core with the local endpoint's one worker, still one each
    with MMS's default of a worker per core. A value the container sets itself is left alone.
    Returns the threads set, or None."""
    if os.environ.get(OMP_THREADS_ENV) != "1" or _set_at_start(OMP_THREADS_ENV) is not False:
        return None
    threads = max(len(os.sched_getaffinity(0)) // workers_per_model(config.device), 1)
    os.environ[OMP_THREADS_ENV] = str(threads)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(threads)
    logger.info("%s=%d: the cores over the model server's workers", OMP_THREADS_ENV, threads)
    return threads


def _set_at_start(name: str) -> bool | None:
    """Whether the environment this process started with sets `name` (None: cannot tell)."""
    try:
        environ = Path("/proc/self/environ").read_bytes()
    except OSError:
        return None
    return any(entry.startswith(f"{name}=".encode()) for entry in environ.split(b"\0"))


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
        params, was_legacy, warnings = request_params(
            data, params_model, legacy_format=legacy if legacy.accepts(params_model) else None
        )
        asked = getattr(params, "limits_asked", dict)()  # a plug-in may declare none
        model.config.limits.check(None, **asked)  # the audio: while it decodes, below
        with request_deadline(
            request_timeout_s(model.config), kill=model.kill_on_timeout
        ) as deadline:
            request = AudioRequest(
                decode_body(
                    data.body,
                    max_s=model.audio_budget.max_audio_s(len(data.body)),
                    checkpoint=deadline.check,
                ),
                params,
                legacy=was_legacy,
                warnings=warnings,
            )
            if getattr(params, "task", None) == "detect_language" and not was_legacy:
                return detect_language(model, request)
            return transcribe(model, request, deadline)
    except AudioTooLongError as exc:
        return refuse(
            context,
            RequestRefusedError(
                HTTPStatus.BAD_REQUEST,
                "LimitExceeded",
                f"over this endpoint's per-request limits: {exc} "
                f"({model.audio_budget.describe(len(data.body))}; set in code/serving.json)",
            ),
        )
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


def transcribe(service: Service, request: AudioRequest, deadline: Deadline) -> Prediction | bytes:
    """`deadline`: the request's, already running (predict_fn decodes inside it)."""
    started = time.perf_counter()
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
    """Inside predict_fn's request deadline: one call, no checkpoint to give it."""
    guess = service.model.detect_language(request.samples, request.params)
    return LanguageDetection(
        language=guess.language,
        language_probability=guess.probability,
        all_language_probs=[
            LanguageProbability(language=k, probability=p) for k, p in guess.all_probabilities
        ],
        duration=request.duration_s,
    )
