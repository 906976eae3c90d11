"""The inference handlers called in-process, as the toolkit calls them, on the real tiny.en and
jfk.flac. The context is a stand-in for MMS's (request headers in, response status out)."""

from __future__ import annotations

import base64
import os
import re
from pathlib import Path
from typing import Any

import brotli
import pytest

from transcription_benchmarks.serving import handler
from transcription_benchmarks.serving.protocol import (
    ErrorBody,
    encode_params,
    parse_language_detection,
    parse_prediction,
)
from transcription_benchmarks.serving.toolkit import request_header

JFK_TEXT = "ask not what your country can do for you"  # as tests/conftest.py has it


class _Request:
    def __init__(self, headers: dict[str, str]) -> None:
        self.headers = headers

    def get_request_properties(self) -> dict[str, str]:
        return self.headers


class MmsContext:
    """What the handlers use of mms.context.Context: the request's headers, set_response_status."""

    def __init__(self, headers: dict[str, str] | None = None) -> None:
        self.request_processor = [_Request(headers or {})]
        self.status: tuple[int, str] | None = None

    def set_response_status(self, code: int, phrase: str = "") -> None:
        self.status = (code, phrase)


def _with_params(params: dict[str, Any]) -> MmsContext:
    # Lower case, as some proxies forward it: the handler looks the header up case-insensitively.
    return MmsContext({"x-amzn-sagemaker-custom-attributes": encode_params(params)})


def _call(module, service, body, content_type="application/octet-stream", context=None):
    context = context or MmsContext()
    data = module.input_fn(body, content_type, context)
    prediction = module.predict_fn(data, service, context)
    return module.output_fn(prediction, "application/json", context), context


def _words(text: str) -> str:
    return " ".join(re.sub(r"[^a-z' ]", " ", text.lower()).split())


@pytest.fixture(scope="module")
def faster_whisper_service():
    from transcription_benchmarks.models import resolve

    return handler.model_fn(str(resolve("Systran/faster-whisper-tiny.en", "ctranslate2").path))


def test_request_header_is_case_insensitive():
    context = MmsContext({"X-AMZN-SageMaker-Custom-Attributes": "abc", "Other": "x"})
    assert request_header(context, "x-amzn-sagemaker-custom-attributes") == "abc"
    assert request_header(context, "missing") is None
    assert request_header(None, "anything") is None


def test_faster_whisper_transcribes_with_defaults(faster_whisper_service, jfk_bytes):
    body, context = _call(handler, faster_whisper_service, jfk_bytes)
    assert context.status is None  # 200: nothing set
    segments, info = parse_prediction(body)
    assert JFK_TEXT in _words(" ".join(s.text for s in segments))
    assert info.pipeline == "WhisperModel"
    assert info.options["beam_size"] == 5
    assert info.duration == pytest.approx(11.0, abs=0.1)
    assert segments[0].tokens and segments[0].no_speech_prob is not None


def test_faster_whisper_batch_params_from_the_header(faster_whisper_service, jfk_bytes):
    params = {"batch": {"batch_size": 2, "vad_filter": False, "word_timestamps": True}}
    body, _ = _call(handler, faster_whisper_service, jfk_bytes, context=_with_params(params))
    segments, info = parse_prediction(body)
    assert info.pipeline == "BatchedInferencePipeline"
    assert info.options["batch_size"] == 2
    assert info.options["vad_filter"] is False
    assert JFK_TEXT in _words(" ".join(s.text for s in segments))
    assert segments[0].words and segments[0].words[0].start >= 0.0


def test_faster_whisper_detects_language(faster_whisper_service, jfk_bytes):
    body, _ = _call(
        handler,
        faster_whisper_service,
        jfk_bytes,
        context=_with_params({"task": "detect_language"}),
    )
    detected = parse_language_detection(body)
    assert detected.language == "en"
    assert detected.language_probability == 1.0  # English-only: as faster-whisper reports it


@pytest.mark.parametrize(
    ("body", "content_type", "params", "status", "error"),
    [
        (b"", "application/octet-stream", None, 400, "EmptyBody"),
        (None, "application/octet-stream", None, 400, "EmptyBody"),
        (b"fLaC" + b"\x00" * 500, "application/octet-stream", None, 400, "AudioError"),
        ("jfk", "application/json", None, 415, "UnsupportedContentType"),
        (b"jfk", None, None, 415, "UnsupportedContentType"),
        ("JFK", "audio/flac", {"single": {"beam_sise": 1}}, 400, "ParamsError"),
        ("JFK", "audio/flac", {"single": {"language": "xx"}}, 400, "InvalidOption"),
    ],
    ids=["empty", "none", "corrupt", "json", "no-type", "unknown-option", "bad-language"],
)
def test_faster_whisper_refuses_bad_requests(
    faster_whisper_service, jfk_bytes, body, content_type, params, status, error
):
    body = jfk_bytes if body == "JFK" else body
    context = _with_params(params) if params else MmsContext()
    answer, context = _call(handler, faster_whisper_service, body, content_type, context)
    refusal = ErrorBody.model_validate_json(answer)
    assert (refusal.status, refusal.error) == (status, error)
    assert context.status[0] == status
    assert refusal.message


def test_faster_whisper_refuses_options_the_installed_version_lacks(
    faster_whisper_service, jfk_bytes, monkeypatch
):
    # The request types follow faster-whisper 1.2: an installed version without `hotwords`
    # (as 1.0 was) refuses the option by name instead of failing inside faster-whisper.
    from transcription_benchmarks.backends import faster_whisper as engine

    signature = engine._transcribe_parameters

    def without_hotwords(batched: bool):
        return {k: v for k, v in signature(batched).items() if k != "hotwords"}

    monkeypatch.setattr(engine, "_transcribe_parameters", without_hotwords)
    params = {"single": {"hotwords": "Kennedy", "beam_size": 1}}
    body, context = _call(handler, faster_whisper_service, jfk_bytes, context=_with_params(params))
    refusal = ErrorBody.model_validate_json(body)
    assert (
        (refusal.status, refusal.error)
        == (context.status[0], "InvalidOption")
        == (
            400,
            "InvalidOption",
        )
    )
    assert "hotwords" in refusal.message and "WhisperModel.transcribe" in refusal.message


@pytest.fixture(scope="module")
def transformers_service(tmp_path_factory):
    # The staged artifact, rewritten for the container's transformers 4.51 (package.stage), must
    # still load and transcribe under this env's transformers 5.
    from transcription_benchmarks.serving.config import ServingConfig
    from transcription_benchmarks.serving.package import stage

    staged = stage(
        "Systran/faster-whisper-tiny.en",
        tmp_path_factory.mktemp("hf") / "model",
        config=ServingConfig(backend="transformers"),
        link=True,
    )
    return handler.model_fn(str(staged))


def test_transformers_pipeline_with_chunking_and_batch(transformers_service, jfk_bytes):
    params = {"chunk_length_s": 10, "batch_size": 2, "language": "en", "num_beams": 1}
    body, context = _call(handler, transformers_service, jfk_bytes, context=_with_params(params))
    assert context.status is None
    segments, info = parse_prediction(body)
    assert JFK_TEXT in _words(" ".join(s.text for s in segments))
    assert info.backend == "transformers"
    assert info.options["chunk_length_s"] == 10
    assert info.options["batch_size"] == 2
    assert info.language == "en"


def test_transformers_without_params_uses_the_checkpoints_prompt(transformers_service, jfk_bytes):
    body, context = _call(handler, transformers_service, jfk_bytes)
    assert context.status is None
    segments, info = parse_prediction(body)
    assert JFK_TEXT in _words(" ".join(s.text for s in segments))
    assert info.language == "en"
    assert "<|" not in segments[0].text  # no special tokens leak into the text


@pytest.mark.parametrize(
    ("params", "named"),
    [({"language": "fr"}, "English-only"), ({"task": "translate"}, "translate")],
)
def test_transformers_english_only_refuses_other_languages(
    transformers_service, jfk_bytes, params, named
):
    body, context = _call(handler, transformers_service, jfk_bytes, context=_with_params(params))
    refusal = ErrorBody.model_validate_json(body)
    assert context.status[0] == refusal.status == 400
    assert named in refusal.message


@pytest.fixture(scope="module")
def jfk_over_6mb(jfk: Path) -> bytes:
    """jfk.flac as 96 kHz stereo 32-bit WAV: the same 11 s of speech in 8.4 MB of body."""
    import io
    import wave

    import numpy as np

    from transcription_benchmarks.audio.decode import decode_audio

    samples = np.repeat(decode_audio(jfk), 6)  # 16 kHz -> 96 kHz by sample repetition
    pcm = (np.clip(samples, -1, 1) * (2**31 - 1)).astype("<i4")
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(2)
        out.setsampwidth(4)
        out.setframerate(96_000)
        out.writeframes(np.repeat(pcm, 2).tobytes())
    return buffer.getvalue()


def test_body_cap_follows_the_servers_request_limit(
    faster_whisper_service, jfk_over_6mb, monkeypatch
):
    """Real-time traffic is capped at 6 MB by SageMaker; an async endpoint raises
    MMS_MAX_REQUEST_SIZE and the handler must then accept the larger body."""
    assert len(jfk_over_6mb) > 6 * 1024 * 1024
    monkeypatch.delenv("MMS_MAX_REQUEST_SIZE", raising=False)
    answer, context = _call(handler, faster_whisper_service, jfk_over_6mb, "audio/wav")
    assert ErrorBody.model_validate_json(answer).error == "BodyTooLarge"
    assert context.status[0] == 413

    monkeypatch.setenv("MMS_MAX_REQUEST_SIZE", str(64 * 1024 * 1024))
    answer, context = _call(handler, faster_whisper_service, jfk_over_6mb, "audio/wav")
    segments, _info = parse_prediction(answer)
    assert JFK_TEXT in _words(" ".join(s.text for s in segments))


# --- Every engine through the one handler ---------------------------------------------------
# openai-whisper and whisper.cpp declare no request types of their own: they take
# RequestOptions (task, language, beam size, temperature, timestamps, initial prompt).


@pytest.fixture(scope="module", params=["openai-whisper", "whisper.cpp"])
def engine_service(request, tmp_path_factory):
    """The packaged tiny.en staged as an artifact for the engine (converted to its format) and
    loaded by model_fn from code/serving.json, as a worker loads it."""
    from transcription_benchmarks.backends import get_backend
    from transcription_benchmarks.serving.config import ServingConfig
    from transcription_benchmarks.serving.package import stage

    try:
        get_backend(request.param).check_installed()
    except Exception as exc:
        pytest.skip(str(exc))
    staged = stage(
        "Systran/faster-whisper-tiny.en",
        tmp_path_factory.mktemp(request.param) / "model",
        config=ServingConfig(backend=request.param, device="cpu"),
        link=True,
    )
    return handler.model_fn(str(staged))


def test_each_engine_is_served_with_and_without_options(engine_service, jfk_bytes):
    name = engine_service.config.backend
    plain, context = _call(handler, engine_service, jfk_bytes)
    assert context.status is None, plain
    segments, info = parse_prediction(plain)
    assert JFK_TEXT in _words(" ".join(s.text for s in segments))
    assert info.backend == name and info.language == "en"
    assert 10.5 < segments[-1].end <= 11.1 and segments[0].start < 1.0
    params = {"beam_size": 1, "temperature": 0.0, "without_timestamps": True, "language": "en"}
    body, context = _call(handler, engine_service, jfk_bytes, context=_with_params(params))
    assert context.status is None, body
    segments, info = parse_prediction(body)
    assert JFK_TEXT in _words(" ".join(s.text for s in segments))
    assert info.options["temperature"] == 0.0
    # A request's options do not outlive it: the next plain request answers as the first did.
    again, _ = _call(handler, engine_service, jfk_bytes)
    assert parse_prediction(again)[0] == parse_prediction(plain)[0]


@pytest.mark.parametrize(
    ("params", "status", "error", "named"),
    [
        ({"language": "fr"}, 400, "InvalidOption", "English-only"),
        ({"task": "translate"}, 400, "InvalidOption", "English-only"),
        ({"beam_size": 0}, 400, "ParamsError", "beam_size"),
        ({"num_beams": 2}, 400, "ParamsError", "num_beams"),
        ({"beam_size": 50}, 400, "LimitExceeded", "max_beam_size"),
        ({"temperature": [0.0, float("nan")]}, 400, "ParamsError", "temperature"),
    ],
    ids=["language", "translate", "beam-0", "other-engines-name", "over-limit", "nan"],
)
def test_each_engine_refuses_bad_options_naming_them(
    engine_service, jfk_bytes, params, status, error, named
):
    if params.get("temperature") and any(t != t for t in params["temperature"]):
        header = base64.b64encode(
            brotli.compress(b'{"temperature": [0.0, NaN]}')
        ).decode()  # JSON's NaN, as a careless client sends it
        context = MmsContext({"X-Amzn-SageMaker-Custom-Attributes": header})
    else:
        context = _with_params(params)
    body, context = _call(handler, engine_service, jfk_bytes, context=context)
    refusal = ErrorBody.model_validate_json(body)
    assert (refusal.status, refusal.error) == (status, error), refusal.message
    assert named in refusal.message
    assert context.status[0] == status


@pytest.mark.parametrize("engine_service", ["whisper.cpp"], indirect=True)
def test_whisper_cpp_keeps_the_beam_it_loaded_with(engine_service, jfk_bytes):
    # whisper.cpp chooses greedy or beam search when the model loads.
    context = _with_params({"beam_size": 2})
    body, context = _call(handler, engine_service, jfk_bytes, context=context)
    refusal = ErrorBody.model_validate_json(body)
    assert refusal.error == "InvalidOption" and "beam size 1, chosen when it loaded" in (
        refusal.message
    )


def test_a_worker_gets_its_share_of_the_cores_where_mms_took_them(monkeypatch):
    # MMS's worker sets OMP_NUM_THREADS=1 inside itself where the container sets none; the
    # variable this test process started with tells the two cases apart, so each case runs
    # in a child whose starting environment is known.
    import subprocess
    import sys

    script = (
        "import os; os.environ['OMP_NUM_THREADS'] = '1'\n"  # what MMS's worker does
        "from transcription_benchmarks.serving.config import ServingConfig\n"
        "from transcription_benchmarks.serving.handler import share_cores\n"
        "print(share_cores(ServingConfig(device='cpu')), os.environ['OMP_NUM_THREADS'])\n"
    )

    def run(**env: str) -> str:
        base = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS",)}
        base.pop("SAGEMAKER_MODEL_SERVER_WORKERS", None)
        done = subprocess.run(
            [sys.executable, "-c", script], env={**base, **env}, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.split()

    cores = len(os.sched_getaffinity(0))
    assert run(SAGEMAKER_MODEL_SERVER_WORKERS="1") == [str(cores), str(cores)]
    assert run() == [str(max(cores // (os.cpu_count() or 1), 1))] * 2  # a worker per core
    assert run(OMP_NUM_THREADS="1", SAGEMAKER_MODEL_SERVER_WORKERS="1") == ["None", "1"]
