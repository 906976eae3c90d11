"""The wire protocol: params codec limits both ways, typed params, response parsing."""

from __future__ import annotations

import base64
import inspect
import json

import brotli
import pytest

from transcription_benchmarks.serving.client import custom_attributes_for
from transcription_benchmarks.serving.protocol import (
    MAX_CUSTOM_ATTRIBUTES_CHARS,
    MAX_DECODED_PARAMS_BYTES,
    BatchOptions,
    EndpointError,
    ErrorBody,
    FasterWhisperParams,
    ParamsError,
    ParamsTooLongError,
    SingleOptions,
    TransformersParams,
    decode_params,
    encode_params,
    error_message,
    parse_params,
    parse_prediction,
    wire_params,
)

# Keywords the request does not set per option: the audio, progress display, and task (the
# request's own top-level field).
NOT_OPTIONS = {"self", "audio", "log_progress", "task"}


def _signature(batched: bool) -> dict[str, inspect.Parameter]:
    from faster_whisper import BatchedInferencePipeline, WhisperModel

    method = BatchedInferencePipeline.transcribe if batched else WhisperModel.transcribe
    return {
        name: p
        for name, p in inspect.signature(method).parameters.items()
        if name not in NOT_OPTIONS
    }


@pytest.mark.parametrize(("model", "batched"), [(SingleOptions, False), (BatchOptions, True)])
def test_options_are_faster_whispers_own_names_and_defaults(model, batched):
    signature = _signature(batched)
    assert set(model.model_fields) == set(signature)
    for name, parameter in signature.items():
        ours = model.model_fields[name].default
        if name == "clip_timestamps" and not batched:
            assert str(parameter.default) == ours  # "0" or 0: faster-whisper takes both
            continue
        assert ours == parameter.default, name
        model.model_validate({name: parameter.default})  # faster-whisper's default is valid here


def test_round_trip_sends_only_what_was_set():
    params = FasterWhisperParams(batch=BatchOptions(batch_size=4, temperature=0.0))
    wire = wire_params(params)
    assert wire == {"batch": {"batch_size": 4, "temperature": 0.0}}
    decoded = parse_params(FasterWhisperParams, decode_params(encode_params(wire)))
    assert decoded == params
    assert decoded.options.batch_size == 4
    assert decoded.options.vad_filter is True  # BatchedInferencePipeline's default


def test_no_pipeline_means_whisper_model_defaults():
    params = parse_params(FasterWhisperParams, None)
    assert params.task == "transcribe"
    assert params.options == SingleOptions()


def test_single_and_batch_together_are_refused():
    with pytest.raises(ParamsError, match="exactly one of 'single'"):
        parse_params(FasterWhisperParams, {"single": {}, "batch": {}})


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"single": {"beam_sise": 5}}, "single.beam_sise: Extra inputs"),
        ({"batch": {"condition_on_previous_txt": False}}, "batch.condition_on_previous_txt"),
        ({"singel": {}}, "singel"),
        ({"single": {"beam_size": "wide"}}, "single.beam_size"),
        ({"single": {"beam_size": 0}}, "single.beam_size: Input should be greater"),
        ({"task": "translate"}, "task"),
        ({"batch": {"clip_timestamps": [{"start": 0}]}}, "batch.clip_timestamps.0.end"),
    ],
)
def test_invalid_params_name_the_field(params, named):
    with pytest.raises(ParamsError, match="invalid FasterWhisperParams") as raised:
        parse_params(FasterWhisperParams, params)
    assert named in str(raised.value)


def test_typed_values_accept_faster_whisper_forms():
    params = parse_params(
        FasterWhisperParams,
        {"single": {"temperature": [0.0, 0.4], "initial_prompt": [50363], "language": "en"}},
    )
    assert params.single.temperature == [0.0, 0.4]
    assert params.single.initial_prompt == [50363]
    transformers = parse_params(TransformersParams, {"batch_size": 4, "chunk_length_s": 15})
    assert transformers.batch_size == 4
    with pytest.raises(ParamsError, match="num_beam"):
        parse_params(TransformersParams, {"num_beam": 2})


def test_client_refuses_params_over_1024_characters():
    prompt = "".join(f"{i:x}{i * 7919 % 65521:x}" for i in range(600))
    with pytest.raises(ParamsTooLongError, match=str(MAX_CUSTOM_ATTRIBUTES_CHARS)):
        custom_attributes_for({"single": {"initial_prompt": prompt}}, None)


def test_client_takes_params_or_a_raw_header_not_both():
    assert custom_attributes_for(None, "raw") == "raw"
    assert custom_attributes_for(None, None) is None
    with pytest.raises(ParamsError, match="not both"):
        custom_attributes_for({"task": "transcribe"}, "raw")


def test_server_caps_the_decompressed_size():
    bomb = base64.b64encode(brotli.compress(b'{"a":"' + b"x" * 10 * MAX_DECODED_PARAMS_BYTES))
    assert len(bomb) < MAX_CUSTOM_ATTRIBUTES_CHARS  # a small header...
    with pytest.raises(ParamsError, match="decompresses to more than"):
        decode_params(bomb.decode())  # ...that would inflate far past the cap


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("not base64!", "not base64"),
        (base64.b64encode(b"plain text").decode(), "not brotli"),
        (base64.b64encode(brotli.compress(b"{not json")).decode(), "valid JSON"),
        (base64.b64encode(brotli.compress(b"[1, 2]")).decode(), "JSON object, not list"),
        ("A" * (MAX_CUSTOM_ATTRIBUTES_CHARS + 1), "at most 1024"),
    ],
)
def test_server_names_what_is_malformed(value, problem):
    with pytest.raises(ParamsError, match=problem):
        decode_params(value)


def test_parse_prediction_and_error_bodies():
    body = json.dumps(
        {
            "segments": [{"start": 0.0, "end": 1.5, "text": " Hello", "tokens": [1, 2]}],
            "info": {
                "backend": "faster-whisper",
                "language": "en",
                "language_probability": 1.0,
                "duration": 1.5,
                "pipeline": "WhisperModel",
                "processing_s": 0.1,
            },
        }
    ).encode()
    segments, info = parse_prediction(body)
    assert segments[0].text == " Hello"
    assert info.duration == 1.5
    with pytest.raises(EndpointError, match="not a transcription"):
        parse_prediction(b'{"segments": []}')
    with pytest.raises(EndpointError, match="not JSON"):
        parse_prediction(b"<html>")
    ours = ErrorBody(status=415, error="UnsupportedContentType", message="send audio")
    assert error_message(ours.model_dump_json().encode()) == "send audio"
    mms = b'{"code": 400, "type": "BadRequestException", "message": "utf-8 decode"}'
    assert error_message(mms) == "utf-8 decode"
    assert error_message(b"") == "(empty body)"
