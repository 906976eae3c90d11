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
    parse_language_detection,
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
        # json.loads' other errors: RecursionError, and ValueError past 4300 digits.
        (base64.b64encode(brotli.compress(b"[" * 30_000 + b"]" * 30_000)).decode(), "too deeply"),
        (
            base64.b64encode(brotli.compress(b'{"a": ' + b"9" * 4301 + b"}")).decode(),
            r"valid JSON: Exceeds the limit \(4300 digits\) for integer string conversion: "
            r"value has 4301 digits$",
        ),
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


def test_parse_language_detection_bodies():
    body = json.dumps(
        {
            "language": "de",
            "language_probability": 0.91,
            "all_language_probs": [
                {"language": "de", "probability": 0.91},
                {"language": "en", "probability": 0.05},
            ],
            "duration": 11.0,
        }
    ).encode()
    detected = parse_language_detection(body)
    assert (detected.language, detected.language_probability, detected.duration) == (
        "de",
        0.91,
        11.0,
    )
    assert [p.language for p in detected.all_language_probs] == ["de", "en"]
    with pytest.raises(EndpointError, match="not a language detection") as refused:
        parse_language_detection(b'{"language": "de"}')  # a transcription's info would miss these
    assert refused.value.status == 200
    with pytest.raises(EndpointError, match="not JSON"):
        parse_language_detection(b"<html>")


def _header(payload: bytes) -> str:
    return base64.b64encode(brotli.compress(payload)).decode()


def test_a_header_with_stray_characters_is_refused_not_read_around():
    value = _header(b'{"task":"transcribe"}')
    assert decode_params(value) == {"task": "transcribe"}
    with pytest.raises(ParamsError, match="is not base64"):
        decode_params(value[:4] + "!" + value[4:])  # a lenient decoder would drop the "!"


def test_the_decompressed_cap_is_inclusive_and_stops_inflating_at_it():
    import tracemalloc

    cap = 64

    def exactly(size: int) -> bytes:
        return b'{"a":"' + b"x" * (size - 8) + b'"}'

    assert decode_params(_header(exactly(cap)), max_bytes=cap) == {"a": "x" * (cap - 8)}
    with pytest.raises(ParamsError, match=f"decompresses to more than {cap} bytes"):
        decode_params(_header(exactly(cap + 1)), max_bytes=cap)
    # A header far under 1024 characters that would inflate to 64 MiB: refused without
    # holding the inflated bytes.
    bomb = _header(exactly(64 * 2**20))
    assert len(bomb) < MAX_CUSTOM_ATTRIBUTES_CHARS
    tracemalloc.start()
    try:
        with pytest.raises(ParamsError, match="decompresses to more than"):
            decode_params(bomb)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * MAX_DECODED_PARAMS_BYTES, f"decoding held {peak} bytes"


def test_malformed_headers_say_which_layer_is_wrong():
    header = "X-Amzn-SageMaker-Custom-Attributes"
    with pytest.raises(ParamsError) as raised:
        decode_params(base64.b64encode(b"\xff" * 20).decode())  # brotli's decoder fails
    assert str(raised.value) == f"{header} is not brotli-compressed JSON"
    with pytest.raises(ParamsError) as raised:
        decode_params(base64.b64encode(b"plain text").decode())  # reads as a stream cut short
    assert str(raised.value) == f"{header} is not brotli-compressed JSON (truncated or other data)"


def test_the_same_params_encode_to_the_same_header_in_any_key_order():
    one = encode_params({"task": "transcribe", "single": {"beam_size": 1, "language": "en"}})
    other = encode_params({"single": {"language": "en", "beam_size": 1}, "task": "transcribe"})
    assert one == other


def test_encoding_errors_name_the_problem_and_the_fix():
    with pytest.raises(ParamsError, match=r"parameters are not JSON-serialisable: .*set"):
        encode_params({"single": {"temperature": {0.0}}})
    prompt = "".join(f"{i:x}{i * 7919 % 65521:x}" for i in range(600))
    with pytest.raises(ParamsTooLongError) as raised:
        encode_params({"single": {"initial_prompt": prompt}})
    assert str(raised.value).endswith(
        "allows at most 1024. Drop options that equal their defaults or shorten long values "
        "(initial_prompt, hotwords)."
    )


def test_invalid_params_inside_a_request_are_named_under_its_field():
    with pytest.raises(ParamsError) as raised:
        parse_params(SingleOptions, {"beam_size": 0, "best_of": 0}, where="single")
    message = str(raised.value)
    assert message.startswith("invalid SingleOptions: single.beam_size: Input should be greater")
    assert "; single.best_of: Input should be greater" in message
    with pytest.raises(ParamsError, match=r"^invalid SingleOptions: beam_size: "):
        parse_params(SingleOptions, {"beam_size": 0})
    with pytest.raises(ParamsError, match=r"^invalid FasterWhisperParams: params: Value error"):
        parse_params(FasterWhisperParams, {"single": {}, "batch": {}})  # a whole-model error


def test_wire_params_are_json_ready():
    wire = wire_params(
        FasterWhisperParams(batch=BatchOptions(clip_timestamps=[{"start": 0, "end": 1}]))
    )
    assert wire == {"batch": {"clip_timestamps": [{"start": 0.0, "end": 1.0}]}}
    json.dumps(wire)  # model objects inside would not serialise
    assert wire_params({"task": "transcribe"}) == {"task": "transcribe"}


def test_endpoint_errors_carry_status_and_message():
    error = EndpointError(413, "payload too large")
    assert (error.status, error.message) == (413, "payload too large")
    assert str(error) == "endpoint answered 413: payload too large"
    for bad in (b"<html>", b'{"segments": []}'):
        with pytest.raises(EndpointError) as raised:
            parse_prediction(bad)
        assert raised.value.status == 200  # it answered, with something else


def test_error_messages_of_any_body():
    assert error_message("café closed".encode()) == "café closed"
    assert error_message(b"\xff\xfe broken") == "\ufffd\ufffd broken"
    assert error_message(b'{"status": 500}') == '{"status": 500}'
    assert error_message(b'["a"]') == '["a"]'
    assert error_message(b'{"message": 3}') == '{"message": 3}'
