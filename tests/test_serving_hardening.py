"""What one request could do to a worker, called in-process as the toolkit calls the handlers
(real tiny.en, real audio): limits, validation at the boundary, no state left behind, the
request deadline, the JSON label, and requests of the original project's format. The endpoint
suite (tests/endpoint) repeats the ones that matter through the real server."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import brotli
import pytest
from tests.test_serving_handlers import (  # noqa: F401 - fixtures
    MmsContext,
    _call,
    _with_params,
    _words,
    faster_whisper_service,
    transformers_service,
)

from transcription_benchmarks.serving import handler, legacy
from transcription_benchmarks.serving.config import RequestLimits, ServingConfig
from transcription_benchmarks.serving.protocol import (
    CUSTOM_ATTRIBUTES_HEADER,
    ErrorBody,
    parse_prediction,
)
from transcription_benchmarks.serving.toolkit import (
    label_as_json,
    request_timeout_s,
    server_response_timeout_s,
)

JFK_TEXT = "ask not what your country can do for you"

# The original project's option models, dumped whole as its client sent them (every default,
# `task` inside; VadOptions' infinite max_speech_duration_s is not among these defaults).
PREPEND = "\"'“¿([{-"
APPEND = "\"'.。,，!！?？:：”)]}、"
_ORIGINAL_SHARED: dict[str, Any] = {
    "language": None,
    "task": "transcribe",
    "beam_size": 5,
    "best_of": 5,
    "patience": 1,
    "length_penalty": 1,
    "repetition_penalty": 1,
    "no_repeat_ngram_size": 0,
    "temperature": [0.0, 0.2, 0.4, 0.6, 0.8, 1.0],
    "compression_ratio_threshold": 2.4,
    "log_prob_threshold": -1.0,
    "log_prob_low_threshold": None,
    "no_speech_threshold": 0.6,
    "initial_prompt": None,
    "prefix": None,
    "suppress_blank": True,
    "suppress_tokens": [-1],
    "prepend_punctuations": PREPEND,
    "append_punctuations": APPEND,
    "max_new_tokens": None,
    "hotwords": None,
    "word_timestamps": False,
}
ORIGINAL_SINGLE_DEFAULTS: dict[str, Any] = {
    **_ORIGINAL_SHARED,
    "condition_on_previous_text": True,
    "prompt_reset_on_temperature": 0.5,
    "without_timestamps": False,
    "max_initial_timestamp": 1.0,
    "multilingual": False,
    "output_language": None,
    "vad_filter": False,
    "vad_parameters": None,
    "chunk_length": None,
    "clip_timestamps": "0",
    "hallucination_silence_threshold": None,
    "language_detection_threshold": None,
    "language_detection_segments": 1,
}
ORIGINAL_BATCH_DEFAULTS: dict[str, Any] = {
    **_ORIGINAL_SHARED,
    "batch_size": 16,
    "vad_segments": None,
    "log_progress": False,
    "without_timestamps": True,
}
ORIGINAL_TRANSCRIPTION_OPTIONS = [
    "beam_size",
    "best_of",
    "patience",
    "length_penalty",
    "repetition_penalty",
    "no_repeat_ngram_size",
    "log_prob_threshold",
    "log_prob_low_threshold",
    "no_speech_threshold",
    "compression_ratio_threshold",
    "condition_on_previous_text",
    "prompt_reset_on_temperature",
    "temperatures",
    "initial_prompt",
    "prefix",
    "suppress_blank",
    "suppress_tokens",
    "without_timestamps",
    "max_initial_timestamp",
    "word_timestamps",
    "prepend_punctuations",
    "append_punctuations",
    "multilingual",
    "output_language",
    "max_new_tokens",
    "clip_timestamps",
    "hallucination_silence_threshold",
    "hotwords",
]
"""The fields the original client's TranscriptionOptions model requires."""


def original_header(model_args: dict[str, Any]) -> str:
    """base64(brotli(ModelArgs JSON)), as the original client wrote it."""
    return base64.b64encode(brotli.compress(json.dumps(model_args).encode())).decode()


def _raw_context(header: str) -> MmsContext:
    return MmsContext({CUSTOM_ATTRIBUTES_HEADER: header})


@pytest.fixture(scope="module")
def service(faster_whisper_service):  # noqa: F811 - the fixture, by name
    return faster_whisper_service


def _refusal(service, body: bytes, params: dict[str, Any] | None = None, header=None) -> ErrorBody:
    context = _raw_context(header) if header else _with_params(params or {})
    answer, context = _call(handler, service, body, "audio/flac", context)
    refusal = ErrorBody.model_validate_json(answer)
    assert context.status is not None and context.status[0] == refusal.status
    return refusal


# --- 1. limits ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "limit"),
    [
        ({"single": {"best_of": 1000, "temperature": 1.0}}, "limits.max_best_of = 10"),
        ({"single": {"beam_size": 64}}, "limits.max_beam_size = 10"),
        ({"single": {"temperature": [0.1] * 11}}, "limits.max_temperatures = 10"),
        ({"batch": {"batch_size": 1000}}, "limits.max_batch_size = 64"),
        ({"single": {"max_new_tokens": 5000}}, "limits.max_new_tokens = 448"),
        ({"single": {"chunk_length": 1}}, "limits.min_chunk_length_s = 5"),
    ],
    ids=["best_of", "beam_size", "temperatures", "batch_size", "max_new_tokens", "chunk_length"],
)
def test_one_request_cannot_ask_past_the_limits(service, jfk_bytes, params, limit):
    refusal = _refusal(service, jfk_bytes, params)
    assert (refusal.status, refusal.error) == (400, "LimitExceeded")
    assert limit in refusal.message
    assert "serving.json" in refusal.message


def test_limits_are_the_serving_configs(service, jfk_bytes):
    tight = handler.Service(
        service.model, ServingConfig(limits=RequestLimits(max_beam_size=2, max_audio_s=5))
    )
    refusal = _refusal(tight, jfk_bytes, {"single": {"beam_size": 3}})
    assert "beam_size=3 (limits.max_beam_size = 2)" in refusal.message
    assert "audio" not in refusal.message  # refused on its options, before any decoding
    refusal = _refusal(tight, jfk_bytes, {"single": {"beam_size": 2}})
    assert (refusal.status, refusal.error) == (400, "LimitExceeded")
    assert "the request body is 11 s long by its header; at most 5 s is taken" in refusal.message
    assert "limits.max_audio_s = 5" in refusal.message


def test_transformers_limits_name_the_chunk_length():
    limits = RequestLimits()
    with pytest.raises(ValueError, match=r"chunk length 0.01 s \(limits.min_chunk_length_s = 5\)"):
        limits.check(11.0, chunk_length_s=0.01)
    limits.check(11.0, chunk_length_s=30, beam_size=None)  # within: nothing raised


# --- 3. no state shared between requests -------------------------------------------------------


def test_a_chunk_length_request_leaves_later_answers_unchanged(service, jfk_bytes):
    plain = {"single": {"temperature": 0.0}}
    before, _ = _call(handler, service, jfk_bytes, context=_with_params(plain))
    odd, _ = _call(
        handler, service, jfk_bytes, context=_with_params({"single": {"chunk_length": 5}})
    )
    after, _ = _call(handler, service, jfk_bytes, context=_with_params(plain))
    text = [" ".join(s.text for s in parse_prediction(b)[0]) for b in (before, odd, after)]
    assert JFK_TEXT in _words(text[0])
    assert text[1] != text[0]  # 5 s windows cut the speech: the option took effect
    assert text[2] == text[0]
    assert service.model.model.feature_extractor.n_samples == 30 * 16000


# --- 4 and 9. validation at the boundary, not a native crash or a 500 ---------------------------


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"single": {"initial_prompt": [999999]}}, "outside the vocabulary 0-50362"),
        ({"single": {"suppress_tokens": [60000]}}, "suppress_tokens ids [60000]"),
        ({"single": {"initial_prompt": [-1]}}, "single.initial_prompt"),
        ({"single": {"temperature": -1}}, "single.temperature"),
        ({"single": {"vad_filter": True, "vad_parameters": {"treshold": 0.2}}}, "treshold"),
        ({"single": {"clip_timestamps": [5.0, 2.0]}}, "clip_timestamps must increase"),
        ({"batch": {"clip_timestamps": [{"start": 5, "end": 2}]}}, "must end after it starts"),
    ],
    ids=["prompt-ids", "suppress-ids", "negative-id", "negative-t", "vad-key", "clip", "windows"],
)
def test_bad_values_are_400_naming_them(service, jfk_bytes, params, named):
    refusal = _refusal(service, jfk_bytes, params)
    assert refusal.status == 400
    assert refusal.error in ("ParamsError", "InvalidOption")
    assert named in refusal.message


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_temperatures_are_refused(service, jfk_bytes, token):
    # Python's json (the server's reader) accepts these tokens; the options model must not.
    raw = '{"single": {"temperature": TOKEN}}'.replace("TOKEN", token)
    header = base64.b64encode(brotli.compress(raw.encode())).decode()
    refusal = _refusal(service, jfk_bytes, header=header)
    assert (refusal.status, refusal.error) == (400, "ParamsError")
    assert "single.temperature" in refusal.message


# --- 2. the request deadline ------------------------------------------------------------------


def test_a_request_past_its_deadline_is_stopped_with_504(service, long_audio: Path):
    slow = handler.Service(
        service.model,
        ServingConfig(request_timeout_s=0.2),
        kill_on_timeout=False,  # in-process: the soft deadline only, this is pytest's process
    )
    refusal = _refusal(slow, long_audio.read_bytes(), {"single": {"beam_size": 1}})
    assert (refusal.status, refusal.error) == (504, "RequestTimeout")
    assert "0.2 s response timeout" in refusal.message


def test_the_deadline_follows_the_servers_timeout(monkeypatch):
    for name in (
        "MMS_DEFAULT_RESPONSE_TIMEOUT_SECONDS",
        "SAGEMAKER_MODEL_SERVER_TIMEOUT_SECONDS",
        "MMS_DEFAULT_RESPONSE_TIMEOUT",
        "SAGEMAKER_MODEL_SERVER_TIMEOUT",
    ):
        monkeypatch.delenv(name, raising=False)
    assert server_response_timeout_s() == 3600  # the toolkit's default: 60 minutes
    monkeypatch.setenv("MMS_DEFAULT_RESPONSE_TIMEOUT", "1")
    assert server_response_timeout_s() == 60
    monkeypatch.setenv("SAGEMAKER_MODEL_SERVER_TIMEOUT_SECONDS", "7")
    assert server_response_timeout_s() == 7  # seconds win over minutes, as in MMS
    monkeypatch.setenv("TRANSCRIPTION_BENCHMARKS_REQUEST_TIMEOUT_S", "5")
    assert request_timeout_s(ServingConfig()) == 5  # deploy's real-time budget
    assert request_timeout_s(ServingConfig(request_timeout_s=3)) == 3  # the artifact's own
    assert request_timeout_s(ServingConfig(request_timeout_s=30)) == 7  # never past the server


@pytest.fixture(scope="module")
def long_audio(tmp_path_factory) -> Path:
    from transcription_benchmarks.audio import find_test_audio

    return find_test_audio("1min.flac")


# --- 10. what is sent is what the label says ----------------------------------------------------


class _LabelledContext(MmsContext):
    def __init__(self, headers=None):
        super().__init__(headers)
        self.content_types: dict[int, str] = {}

    def set_response_content_type(self, idx: int, value: str) -> None:
        self.content_types[idx] = value


def test_the_answer_is_labelled_json_whatever_accept_says(service, jfk_bytes):
    context = _LabelledContext()
    answer, _ = _call(handler, service, jfk_bytes, context=context)
    context.set_response_content_type(0, "text/csv")  # what the toolkit does after output_fn
    assert context.content_types[0] == "application/json"
    assert parse_prediction(answer)[0]
    label_as_json(context)  # once per worker context, however many requests
    context.set_response_content_type(0, "text/html")
    assert context.content_types[0] == "application/json"


# --- 11. the original project's clients ------------------------------------------------------


def _original(service, jfk_bytes, model_args: dict[str, Any]):
    answer, context = _call(
        handler, service, jfk_bytes, "audio/x-audio", _raw_context(original_header(model_args))
    )
    return json.loads(answer), context


def test_an_original_single_request_is_answered_in_the_original_format(service, jfk_bytes):
    body, context = _original(
        service,
        jfk_bytes,
        {"task": "transcribe", "single_params": ORIGINAL_SINGLE_DEFAULTS, "batch_params": None},
    )
    assert context.status is None
    segments, info = body  # a two-element array, as the original client unpacks it
    assert JFK_TEXT in _words(" ".join(s["text"] for s in segments))
    assert {"id", "seek", "tokens", "avg_logprob", "no_speech_prob", "words"} <= set(segments[0])
    assert info["language"] == "en" and info["duration"] == pytest.approx(11.0, abs=0.1)
    assert set(ORIGINAL_TRANSCRIPTION_OPTIONS) <= set(info["transcription_options"])
    assert info["transcription_options"]["temperatures"] == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert info["vad_options"] is None and "all_language_probs" in info
    assert any("log_prob_low_threshold" in w and "output_language" in w for w in info["warnings"])


def test_an_original_batch_request_runs_the_batched_pipeline(service, jfk_bytes):
    body, _ = _original(
        service,
        jfk_bytes,
        {"task": "transcribe", "single_params": None, "batch_params": ORIGINAL_BATCH_DEFAULTS},
    )
    segments, info = body
    assert JFK_TEXT in _words(" ".join(s["text"] for s in segments))
    assert info["vad_options"] is not None  # batched decoding runs VAD
    assert info["vad_options"]["max_speech_duration_s"] == 30  # the window, as faster-whisper sets
    assert any("vad_segments" in w and "log_progress" in w for w in info["warnings"])


def test_an_original_detect_language_request_gets_empty_segments(service, jfk_bytes):
    body, _ = _original(
        service,
        jfk_bytes,
        {"task": "detect_language", "single_params": None, "batch_params": None},
    )
    assert body[0] == []
    assert (body[1]["language"], body[1]["language_probability"]) == ("en", 1)


@pytest.mark.parametrize(
    ("model_args", "named"),
    [
        (
            {"single_params": {**ORIGINAL_SINGLE_DEFAULTS, "output_language": "fr"}},
            "output_language='fr'",
        ),
        (
            {"single_params": {**ORIGINAL_SINGLE_DEFAULTS, "task": "translate"}},
            "single_params.task",
        ),
        ({"single_params": {"beam_sise": 1}}, "single_params.beam_sise"),
        ({"single_params": {}, "batch_params": {}}, "both batch_params and single_params"),
        ({"single_params": None, "model": "large"}, "unknown key(s) model"),
    ],
    ids=["unsupported-value", "translate", "unknown-option", "both", "unknown-key"],
)
def test_original_requests_with_unsupported_keys_are_400_naming_them(
    service, jfk_bytes, model_args, named
):
    refusal = _refusal(service, jfk_bytes, header=original_header(model_args))
    assert (refusal.status, refusal.error) == (400, "ParamsError")
    assert named in refusal.message


def test_todays_format_is_unchanged(service, jfk_bytes):
    answer, _ = _call(
        handler, service, jfk_bytes, context=_with_params({"single": {"beam_size": 1}})
    )
    assert set(json.loads(answer)) == {"segments", "info"}
    assert not legacy.recognises({"single": {}, "task": "transcribe"})


def test_transformers_refuses_a_tiny_chunk_length(transformers_service, jfk_bytes):  # noqa: F811
    # The request that once left a timed-out worker running per call: now refused up front.
    context = _with_params({"chunk_length_s": 0.01})
    answer, context = _call(handler, transformers_service, jfk_bytes, context=context)
    refusal = ErrorBody.model_validate_json(answer)
    assert (refusal.status, refusal.error) == (400, "LimitExceeded")
    assert "limits.min_chunk_length_s" in refusal.message


def test_serving_config_file_round_trips(tmp_path):
    # serve-local --config reads what `package` writes into code/serving.json.
    path = tmp_path / "serving.json"
    path.write_text(json.dumps({"limits": {"max_best_of": 2}, "request_timeout_s": 30}))
    read = ServingConfig.read_file(path)
    assert (read.limits.max_best_of, read.request_timeout_s) == (2, 30)
