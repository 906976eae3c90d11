"""The faster-whisper handler: the toolkit calls model_fn once per worker, then input_fn,
predict_fn and output_fn per request.

The model loads through the same backend code bench() measures (models.resolve and
FasterWhisperBackend.load: device, compute type and threads as benchmarked). Decoding options
are per request, so predict_fn calls the loaded WhisperModel (or a BatchedInferencePipeline
over the same weights) with the request's options instead of the options fixed at load time;
batched decoding without VAD gets the same fixed 30 s windows bench() gives it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from transcription_benchmarks.args import BenchArgs
from transcription_benchmarks.backends.base import jsonable

# Private helpers of the backend, shared on purpose: one definition of which keywords
# faster-whisper takes and of the windows batched decoding gets without VAD.
from transcription_benchmarks.backends.faster_whisper import (
    RESERVED_TRANSCRIBE_OPTIONS,
    FasterWhisperBackend,
    _fixed_windows,
    _transcribe_parameters,
    vocabulary_size,
)
from transcription_benchmarks.decoding import token_id_problems
from transcription_benchmarks.errors import InvalidOptionError
from transcription_benchmarks.models import resolve
from transcription_benchmarks.serving import legacy
from transcription_benchmarks.serving.config import ServingConfig
from transcription_benchmarks.serving.handlers.toolkit import (
    AudioRequest,
    Deadline,
    RequestRefusedError,
    fail,
    in_model_server,
    read_request,
    refuse,
    refuse_invalid,
    request_deadline,
    request_timeout_s,
    restored_attributes,
    write_json,
)
from transcription_benchmarks.serving.protocol import (
    ErrorBody,
    FasterWhisperParams,
    LanguageDetection,
    LanguageProbability,
    Prediction,
    TranscriptionInfo,
    WireSegment,
)


@dataclass
class FasterWhisperService:
    """What model_fn returns: the model and a batched pipeline over the same weights."""

    whisper: Any  # faster_whisper.WhisperModel
    batched: Any  # faster_whisper.BatchedInferencePipeline
    config: ServingConfig
    vocab_size: int
    kill_on_timeout: bool = False
    """In a model server's worker: a request past its hard deadline ends the process."""

    @contextlib.contextmanager
    def session(self) -> Iterator[Deadline]:
        """Around one request's decoding: the time budget, and the model's state put back."""
        with (
            restored_attributes(self.whisper, self.whisper.feature_extractor, self.batched),
            request_deadline(request_timeout_s(self.config), kill=self.kill_on_timeout) as deadline,
        ):
            yield deadline


def model_fn(model_dir: str, context: Any = None) -> FasterWhisperService:
    from faster_whisper import BatchedInferencePipeline

    config = ServingConfig.read(model_dir)
    model = resolve(str(Path(model_dir)), "ctranslate2")
    backend = FasterWhisperBackend()
    backend.check_installed()
    args = BenchArgs(
        backend="faster-whisper",
        device=config.device,
        compute_type=config.compute_type,
        cpu_threads=config.cpu_threads,
    )
    loaded = backend.load(model, args, backend.resolve_device(config.device))
    return FasterWhisperService(
        loaded.model,
        BatchedInferencePipeline(loaded.model),
        config,
        vocabulary_size(loaded.model),
        kill_on_timeout=in_model_server(context),
    )


def input_fn(input_data: bytes | None, content_type: str, context: Any = None):
    try:
        return read_request(
            input_data, content_type, context, FasterWhisperParams, legacy_format=legacy
        )
    except RequestRefusedError as exc:
        return refuse(context, exc)


def predict_fn(data: AudioRequest | ErrorBody, model: FasterWhisperService, context: Any = None):
    if isinstance(data, ErrorBody):
        return data
    try:
        if data.params.task == "detect_language":
            return detect_language(model, data)
        return transcribe(model, data)
    except RequestRefusedError as exc:
        return refuse(context, exc)
    except InvalidOptionError as exc:  # over a limit, or a value the model cannot take
        return refuse_invalid(context, exc)
    except ValueError as exc:  # faster-whisper's own refusal of a value, e.g. an unknown language
        return refuse(
            context, RequestRefusedError(HTTPStatus.BAD_REQUEST, "InvalidOption", str(exc))
        )
    except Exception as exc:
        return fail(context, exc)


def output_fn(prediction: BaseModel | bytes, accept: str, context: Any = None) -> bytes:
    return write_json(prediction, accept, context)


def check_request(model: FasterWhisperService, options: dict[str, Any], audio_s: float) -> None:
    """Everything a request must pass before it reaches CTranslate2: the endpoint's limits,
    token ids inside the vocabulary, a language the model has."""
    temperature = options.get("temperature")
    model.config.limits.check(
        audio_s,
        beam_size=options.get("beam_size"),
        best_of=options.get("best_of"),
        temperatures=len(temperature) if isinstance(temperature, list) else None,
        batch_size=options.get("batch_size"),
        max_new_tokens=options.get("max_new_tokens"),
        chunk_length_s=options.get("chunk_length"),
    )
    if problems := token_id_problems(options, model.vocab_size):
        raise InvalidOptionError("; ".join(problems))
    if not model.whisper.model.is_multilingual and options.get("language") not in (None, "en"):
        # faster-whisper would ignore the language and transcribe English: say so instead.
        raise InvalidOptionError(f"this model is English-only; language={options['language']!r}")


def transcribe(model: FasterWhisperService, request: AudioRequest) -> Prediction | bytes:
    params: FasterWhisperParams = request.params
    batched = params.batch is not None
    options = params.options.decoding_kwargs()
    _check_installed_options(options, batched)
    check_request(model, options, request.duration_s)
    if batched:
        if not options.get("vad_filter", True) and "clip_timestamps" not in options:
            options["clip_timestamps"] = _fixed_windows(request.duration_s)
        pipeline = model.batched
    else:
        pipeline = model.whisper
    started = time.perf_counter()
    with model.session() as deadline:
        segments, info = pipeline.transcribe(request.samples, task="transcribe", **options)
        collected = []
        for segment in segments:  # lazy: consuming the generator is the decoding
            collected.append(WireSegment.model_validate(dataclasses.asdict(segment)))
            deadline.check()
    processing_s = time.perf_counter() - started
    if request.legacy:
        return legacy.answer(collected, info, request.warnings)
    # The pipeline's defaults, what the request set, then what faster-whisper says it used.
    effective = jsonable(
        {
            **{
                name: p.default
                for name, p in _transcribe_parameters(batched).items()
                if name not in RESERVED_TRANSCRIBE_OPTIONS
            },
            **options,
            **dataclasses.asdict(info.transcription_options),
        }
    )
    effective["vad_parameters"] = jsonable(info.vad_options)
    return Prediction(
        segments=collected,
        info=TranscriptionInfo(
            backend="faster-whisper",
            language=info.language,
            language_probability=info.language_probability,
            duration=info.duration,
            duration_after_vad=info.duration_after_vad,
            pipeline="BatchedInferencePipeline" if batched else "WhisperModel",
            options=effective,
            processing_s=processing_s,
        ),
    )


def detect_language(
    model: FasterWhisperService, request: AudioRequest
) -> LanguageDetection | bytes:
    """WhisperModel.detect_language. An English-only model has no language tokens to score;
    faster-whisper's transcribe reports such a model's language as English with probability 1,
    and so does this. The original format answers [[], info] from transcribe() (which detects
    the language before any window is decoded), as the original did."""
    whisper = model.whisper
    if request.legacy:
        check_request(model, {}, request.duration_s)
        with model.session():
            _, info = whisper.transcribe(request.samples)
        return legacy.answer([], info, request.warnings)
    if not whisper.model.is_multilingual:
        return LanguageDetection(
            language="en",
            language_probability=1.0,
            all_language_probs=[LanguageProbability(language="en", probability=1.0)],
            duration=request.duration_s,
        )
    options = request.params.options.decoding_kwargs()
    check_request(model, options, request.duration_s)
    kwargs = {
        k: v
        for k, v in options.items()
        if k
        in (
            "vad_filter",
            "vad_parameters",
            "language_detection_segments",
            "language_detection_threshold",
        )
    }
    with model.session():
        language, probability, all_probs = whisper.detect_language(request.samples, **kwargs)
    return LanguageDetection(
        language=language,
        language_probability=probability,
        all_language_probs=[LanguageProbability(language=k, probability=p) for k, p in all_probs],
        duration=request.duration_s,
    )


def _check_installed_options(options: dict[str, Any], batched: bool) -> None:
    """The wire types follow faster-whisper 1.2; refuse, by name, an option the faster-whisper
    installed here does not take rather than fail inside it."""
    known = set(_transcribe_parameters(batched)) - RESERVED_TRANSCRIBE_OPTIONS
    unknown = sorted(set(options) - known)
    if unknown:
        import faster_whisper

        raise RequestRefusedError(
            HTTPStatus.BAD_REQUEST,
            "ParamsError",
            f"option(s) {', '.join(unknown)} not taken by faster-whisper "
            f"{faster_whisper.__version__} "
            f"{'BatchedInferencePipeline' if batched else 'WhisperModel'}.transcribe",
        )
