"""One endpoint suite for every target (see conftest.py): real audio through the real server."""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys

import pytest

from transcription_benchmarks.serving.client import (
    EndpointClient,
    LocalEndpoint,
    detect_language,
    predict,
)
from transcription_benchmarks.serving.protocol import (
    MAX_CUSTOM_ATTRIBUTES_CHARS,
    MAX_REALTIME_BODY_BYTES,
    ErrorBody,
    ParamsTooLongError,
    WireSegment,
    encode_params,
    error_message,
)

JFK_TEXT = "ask not what your country can do for you"  # as tests/conftest.py has it


def _words(text: str) -> str:
    return " ".join(re.sub(r"[^a-z' ]", " ", text.lower()).split())


def _answers_jfk(endpoint: EndpointClient, audio: bytes) -> None:
    """The check after every refused request: the endpoint still transcribes correctly."""
    segments, _ = predict(endpoint, audio)
    assert JFK_TEXT in _words(" ".join(s.text for s in segments))


def _refused(endpoint: EndpointClient, status: int, **request) -> ErrorBody:
    response = endpoint.invoke(**request)
    assert response.status == status, response.body
    error = ErrorBody.model_validate_json(response.body)
    assert error.status == status
    assert error.message
    return error


def test_detects_english_with_its_probability(endpoint, jfk_bytes):
    detected = detect_language(endpoint, jfk_bytes)
    assert detected.language == "en"
    assert 0.5 < detected.language_probability <= 1.0
    assert detected.all_language_probs[0].language == "en"
    assert detected.duration == pytest.approx(11.0, abs=0.1)


def test_no_params_transcribes_with_whisper_model_defaults(endpoint, jfk_bytes):
    segments, info = predict(endpoint, jfk_bytes)
    assert JFK_TEXT in _words(" ".join(s.text for s in segments))
    assert info.backend == "faster-whisper"
    assert info.pipeline == "WhisperModel"
    assert info.language == "en"
    assert info.duration == pytest.approx(11.0, abs=0.1)
    assert info.options["beam_size"] == 5  # WhisperModel.transcribe's default
    assert all(s.tokens and s.avg_logprob is not None for s in segments)


def test_single_params_reach_whisper_model(endpoint, jfk_bytes):
    segments, info = predict(
        endpoint,
        jfk_bytes,
        {"single": {"beam_size": 1, "temperature": 0.0, "word_timestamps": True}},
    )
    assert info.pipeline == "WhisperModel"
    assert info.options["beam_size"] == 1
    assert info.options["temperatures"] == [0.0]
    assert info.options["word_timestamps"] is True
    words = [w for s in segments for w in s.words or []]
    assert "Americans" in "".join(w.word for w in words)
    assert all(0.0 <= w.start <= w.end <= 11.1 for w in words)


def test_batch_params_reach_the_batched_pipeline(endpoint, jfk_bytes):
    segments, info = predict(
        endpoint, jfk_bytes, {"batch": {"batch_size": 2, "vad_filter": False, "beam_size": 1}}
    )
    assert info.pipeline == "BatchedInferencePipeline"
    assert info.options["batch_size"] == 2
    assert info.options["beam_size"] == 1
    assert JFK_TEXT in _words(" ".join(s.text for s in segments))


def test_forced_language_is_reported_with_certainty(endpoint, jfk_bytes):
    segments, info = predict(endpoint, jfk_bytes, {"single": {"language": "en"}})
    assert info.language == "en"
    assert info.language_probability == 1.0
    assert JFK_TEXT in _words(" ".join(s.text for s in segments))


@pytest.mark.parametrize(
    "params",
    [
        {"single": {"temperature": 0.0}},
        {"batch": {"temperature": 0.0, "batch_size": 4}},
    ],
    ids=["single", "batch"],
)
def test_three_identical_answers_at_temperature_zero(endpoint, jfk_bytes, params):
    answers: list[list[WireSegment]] = [predict(endpoint, jfk_bytes, params)[0] for _ in range(3)]
    texts = [[(s.start, s.end, s.text, s.tokens) for s in answer] for answer in answers]
    assert texts[0] == texts[1] == texts[2]
    assert texts[0]


def test_empty_body_is_refused(endpoint, jfk_bytes):
    error = _refused(endpoint, 400, body=b"")
    assert error.error == "EmptyBody"
    _answers_jfk(endpoint, jfk_bytes)


def test_corrupt_audio_is_refused_with_the_decode_error(endpoint, jfk_bytes):
    corrupt = b"fLaC" + hashlib.sha256(b"not audio").digest() * 64
    error = _refused(endpoint, 400, body=corrupt)
    assert error.error == "AudioError"
    assert "decode" in error.message
    _answers_jfk(endpoint, jfk_bytes)


def test_truncated_audio_is_refused_or_transcribed_without_crashing(endpoint, jfk_bytes):
    response = endpoint.invoke(jfk_bytes[:200])
    assert response.status in (200, 400), response.body
    _answers_jfk(endpoint, jfk_bytes)


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/json", b'{"inputs": "https://example.com/jfk.flac"}'),
        ("text/plain", b"jfk.flac"),
        ("image/png", None),
    ],
    ids=["json", "text", "image"],
)
def test_wrong_content_type_is_415(endpoint, jfk_bytes, content_type, body):
    error = _refused(endpoint, 415, body=body or jfk_bytes, content_type=content_type)
    assert content_type in error.message
    _answers_jfk(endpoint, jfk_bytes)


@pytest.mark.parametrize("content_type", ["application/json", "text/csv"])
def test_audio_sent_as_json_or_csv_is_refused_by_the_toolkit(endpoint, jfk_bytes, content_type):
    """The toolkit decodes JSON and CSV bodies as UTF-8 before our input_fn runs; audio bytes
    fail that, and its handler service answers 400 with the decode error (not 415: that
    happens before any code of ours)."""
    response = endpoint.invoke(jfk_bytes, content_type=content_type)
    assert response.status == 400
    assert "utf-8" in error_message(response.body)
    _answers_jfk(endpoint, jfk_bytes)


@pytest.mark.parametrize(
    ("header", "problem"),
    [
        ("not base64!", "not base64"),
        ("aGVsbG8gd29ybGQ=", "not brotli"),  # base64 of plain text
        (encode_params({"single": {"beam_size": "wide"}}).replace("=", ""), ""),
    ],
    ids=["not-base64", "not-brotli", "truncated"],
)
def test_malformed_params_header_is_400(endpoint, jfk_bytes, header, problem):
    error = _refused(endpoint, 400, body=jfk_bytes, custom_attributes=header)
    assert "X-Amzn-SageMaker-Custom-Attributes" in error.message or "Params" in error.message
    assert problem in error.message
    _answers_jfk(endpoint, jfk_bytes)


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"single": {"beam_sise": 2}}, "single.beam_sise"),
        ({"single": {"beam_size": "wide"}}, "single.beam_size"),
        ({"single": {}, "batch": {}}, "exactly one of 'single'"),
        ({"task": "translate"}, "task"),
        ({"batch": {"batch_size": 0}}, "batch.batch_size"),
    ],
    ids=["unknown-option", "wrong-type", "single-and-batch", "unknown-task", "out-of-range"],
)
def test_invalid_params_are_400_naming_the_problem(endpoint, jfk_bytes, params, named):
    error = _refused(endpoint, 400, body=jfk_bytes, params=params)
    assert error.error == "ParamsError"
    assert named in error.message
    _answers_jfk(endpoint, jfk_bytes)


def _long_prompt() -> str:
    # Hex of hashes: incompressible enough that the encoded header passes 1024 characters.
    return "".join(hashlib.sha256(str(i).encode()).hexdigest() for i in range(40))


def test_over_long_params_are_refused_by_the_client(endpoint, jfk_bytes):
    with pytest.raises(ParamsTooLongError, match="1024"):
        endpoint.invoke(jfk_bytes, params={"single": {"initial_prompt": _long_prompt()}})
    _answers_jfk(endpoint, jfk_bytes)


def test_over_long_header_is_refused_by_the_server(endpoint, jfk_bytes):
    if not isinstance(endpoint, LocalEndpoint):
        pytest.skip("SageMaker itself rejects a custom-attributes header over 1024 characters")
    header = "A" * (MAX_CUSTOM_ATTRIBUTES_CHARS + 1)
    error = _refused(endpoint, 400, body=jfk_bytes, custom_attributes=header)
    assert str(MAX_CUSTOM_ATTRIBUTES_CHARS) in error.message
    _answers_jfk(endpoint, jfk_bytes)


def test_body_over_the_realtime_limit_is_413(endpoint, jfk_bytes):
    if not isinstance(endpoint, LocalEndpoint):
        pytest.skip("the SageMaker client refuses bodies over 6 MB before sending them")
    response = endpoint.invoke(jfk_bytes * (MAX_REALTIME_BODY_BYTES // len(jfk_bytes) + 1))
    assert response.status == 413
    error = ErrorBody.model_validate_json(response.body)  # a body naming the limit, not empty
    assert error.error == "BodyTooLarge" and str(MAX_REALTIME_BODY_BYTES) in error.message
    _answers_jfk(endpoint, jfk_bytes)


def test_cli_predict_local_prints_the_transcript(endpoint, jfk):
    if not isinstance(endpoint, LocalEndpoint):
        pytest.skip("predict-local talks to the local endpoint")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "transcription_benchmarks",
            "predict-local",
            str(jfk),
            "--url",
            endpoint.url,
            "--param",
            "batch.batch_size=2",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert JFK_TEXT in _words(done.stdout)
    assert "BatchedInferencePipeline" in done.stderr


# --- hardening (issue 12): each numbered item of the adversarial run ----------------------------


def test_1_one_request_cannot_ask_past_the_limits(endpoint, jfk_bytes):
    params = {"single": {"best_of": 1000, "temperature": 1.0}}
    error = _refused(endpoint, 400, body=jfk_bytes, params=params)
    assert error.error == "LimitExceeded"
    assert "best_of=1000 (limits.max_best_of = 10)" in error.message
    _answers_jfk(endpoint, jfk_bytes)


def test_3_a_request_leaves_later_answers_unchanged(endpoint, jfk_bytes):
    plain = {"single": {"temperature": 0.0}}
    before = [s.text for s in predict(endpoint, jfk_bytes, plain)[0]]
    cut = [s.text for s in predict(endpoint, jfk_bytes, {"single": {"chunk_length": 5}})[0]]
    after = [s.text for s in predict(endpoint, jfk_bytes, plain)[0]]
    assert cut != before  # the option took effect on its own request...
    assert after == before  # ...and on no later one


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"single": {"initial_prompt": [999999]}}, "outside the vocabulary"),
        ({"single": {"initial_prompt": [-1]}}, "single.initial_prompt"),
        ({"single": {"temperature": -1}}, "single.temperature"),
        ({"single": {"vad_filter": True, "vad_parameters": {"treshold": 0.2}}}, "treshold"),
        ({"batch": {"clip_timestamps": [{"start": 5, "end": 2}]}}, "must end after it starts"),
        ({"single": {"clip_timestamps": [5.0, 2.0]}}, "clip_timestamps must increase"),
    ],
    ids=["4-vocabulary", "9-negative-id", "9-negative-t", "9-vad-key", "9-windows", "9-clips"],
)
def test_4_9_bad_values_are_400_not_a_crash_or_500(endpoint, jfk_bytes, params, named):
    error = _refused(endpoint, 400, body=jfk_bytes, params=params)
    assert named in error.message
    _answers_jfk(endpoint, jfk_bytes)


@pytest.mark.parametrize("token", ["NaN", "Infinity"])
def test_9_non_finite_temperatures_are_400(endpoint, jfk_bytes, token):
    import base64

    import brotli

    raw = '{"single": {"temperature": TOKEN}}'.replace("TOKEN", token).encode()
    header = base64.b64encode(brotli.compress(raw)).decode()
    error = _refused(endpoint, 400, body=jfk_bytes, custom_attributes=header)
    assert "single.temperature" in error.message
    _answers_jfk(endpoint, jfk_bytes)


def test_10_the_answer_is_labelled_as_what_is_sent(endpoint, jfk_bytes):
    if not isinstance(endpoint, LocalEndpoint):
        pytest.skip("sends its own Accept header over HTTP")
    import httpx

    response = httpx.post(
        f"{endpoint.url}/invocations",
        content=jfk_bytes,
        headers={"Content-Type": "audio/flac", "Accept": "text/csv"},
        timeout=60,
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert JFK_TEXT in _words(response.json()["segments"][0]["text"])


def _original_request(endpoint, audio: bytes, model_args: dict):
    from tests.test_serving_hardening import original_header

    return endpoint.invoke(
        audio, content_type="audio/x-audio", custom_attributes=original_header(model_args)
    )


def test_11_a_client_of_the_original_endpoint_works_unchanged(endpoint, jfk_bytes):
    from tests.test_serving_hardening import (
        ORIGINAL_BATCH_DEFAULTS,
        ORIGINAL_SINGLE_DEFAULTS,
        ORIGINAL_TRANSCRIPTION_OPTIONS,
    )

    single = {"task": "transcribe", "single_params": ORIGINAL_SINGLE_DEFAULTS, "batch_params": None}
    response = _original_request(endpoint, jfk_bytes, single)
    assert response.ok, response.body
    segments, info = response.json()  # what the original client did with the answer
    assert JFK_TEXT in _words(" ".join(s["text"] for s in segments))
    assert set(ORIGINAL_TRANSCRIPTION_OPTIONS) <= set(info["transcription_options"])
    assert "all_language_probs" in info and "vad_options" in info
    assert info["warnings"]  # the original-only options it dropped

    batch = {"task": "transcribe", "single_params": None, "batch_params": ORIGINAL_BATCH_DEFAULTS}
    segments, info = _original_request(endpoint, jfk_bytes, batch).json()
    assert JFK_TEXT in _words(" ".join(s["text"] for s in segments))
    assert info["vad_options"] is not None

    detect = {"task": "detect_language", "single_params": None, "batch_params": None}
    segments, info = _original_request(endpoint, jfk_bytes, detect).json()
    assert segments == [] and info["language"] == "en"

    bad = {"single_params": {**ORIGINAL_SINGLE_DEFAULTS, "output_language": "fr"}}
    refused = _original_request(endpoint, jfk_bytes, bad)
    assert refused.status == 400
    assert "output_language='fr'" in error_message(refused.body)
    _answers_jfk(endpoint, jfk_bytes)  # and today's format is as it was
