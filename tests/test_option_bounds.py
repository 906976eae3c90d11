"""Bounds on every option that reaches a native library, and text a tokenizer can take.

Each value here once reached CTranslate2, torch or whisper.cpp and spun the decoder for a minute
or raised inside it (an endpoint's 500, a `tbench bench` that hangs). Now the shared option
types (decoding.py, and the engines' request models) refuse it, naming the field, in the same
words for BenchArgs and for the endpoint, before any engine is called; and the value at each
bound really runs on the real tiny.en.
"""

from __future__ import annotations

import base64
import functools
import math
import re
import subprocess
import sys
import time
import typing
from typing import Any

import annotated_types
import brotli
import numpy as np
import pytest
from pydantic import BaseModel
from tests.conftest import JFK_TEXT
from tests.test_serving_handlers import (  # noqa: F401 - fixtures
    MmsContext,
    _call,
    _with_params,
    _words,
    faster_whisper_service,
)

from transcription_benchmarks import BenchArgs, bench
from transcription_benchmarks.backends.nemo import NemoOptions, NemoRequestOptions
from transcription_benchmarks.decoding import (
    FLOAT32_MAX,
    LARGEST_VOCABULARY,
    MAX_AUDIO_S,
    MAX_BEAM_SIZE,
    MAX_DECODER_POSITIONS,
    MAX_INITIAL_TIMESTAMP_S,
    MAX_LENGTH_PENALTY,
    MAX_LOGIT_SCALE,
    MIN_LOGIT_SCALE,
    ClipWindow,
    VadParameters,
)
from transcription_benchmarks.errors import InvalidOptionError
from transcription_benchmarks.models import PACKAGED_ID
from transcription_benchmarks.serving import handler
from transcription_benchmarks.serving.protocol import (
    CUSTOM_ATTRIBUTES_HEADER,
    BatchOptions,
    ErrorBody,
    FasterWhisperParams,
    ParamsError,
    RequestOptions,
    SingleOptions,
    TransformersParams,
    decode_params,
    parse_params,
    parse_prediction,
)

GREEDY = {"device": "cpu", "warmup": 0, "repeats": 1, "beam_size": 1, "temperature": 0.0}
QUICK_S = 60.0
"""A tiny.en transcription of jfk.flac takes a few seconds on a shared CPU; the values these
tests refuse spun CTranslate2 for about a minute of a core (no_repeat_ngram_size = 2**63)."""


def _header(raw: str) -> str:
    """A header holding exactly this JSON text (escapes such as \\ud800 kept as sent)."""
    return base64.b64encode(brotli.compress(raw.encode())).decode()


@pytest.fixture
def engine_never_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any call into faster-whisper's transcription fails the test: a refusal must come first."""
    from faster_whisper import BatchedInferencePipeline, WhisperModel

    def refusing(original: Any) -> Any:
        @functools.wraps(original)  # the signature stays: validate() reads the keywords
        def called(*args: Any, **kwargs: Any) -> None:
            raise AssertionError("the engine was called with a value the options should refuse")

        return called

    for pipeline in (WhisperModel, BatchedInferencePipeline):
        monkeypatch.setattr(pipeline, "transcribe", refusing(pipeline.transcribe))


# --- The values that reached the engines, refused by the shared types ---------------------------

SURROGATE = "\ud800"  # what JSON's escape \ud800 decodes to: not Unicode text

REFUSED = [
    # (4): a C++ size_t in CTranslate2; 2**63 spins it, 10**100 is pybind11's TypeError.
    (
        FasterWhisperParams,
        {"single": {"no_repeat_ngram_size": 2**63}},
        "single.no_repeat_ngram_size",
    ),
    (
        FasterWhisperParams,
        {"single": {"no_repeat_ngram_size": 10**100}},
        "single.no_repeat_ngram_size",
    ),
    (FasterWhisperParams, {"batch": {"no_repeat_ngram_size": 2**63}}, "batch.no_repeat_ngram_size"),
    # (9): 1e308 overflows faster-whisper's arithmetic (seq_len ** length_penalty, round(t / 0.02),
    # seconds * 16000).
    (FasterWhisperParams, {"single": {"length_penalty": 1e308}}, "single.length_penalty"),
    (FasterWhisperParams, {"batch": {"length_penalty": -1e308}}, "batch.length_penalty"),
    (
        FasterWhisperParams,
        {"single": {"max_initial_timestamp": 1e308}},
        "single.max_initial_timestamp",
    ),
    (FasterWhisperParams, {"single": {"clip_timestamps": [0, 1e308]}}, "single.clip_timestamps"),
    (FasterWhisperParams, {"single": {"clip_timestamps": "0,1e308"}}, "single.clip_timestamps"),
    (
        FasterWhisperParams,
        {"batch": {"clip_timestamps": [{"start": 0, "end": 1e308}]}},
        "batch.clip_timestamps.0.end",
    ),
    (
        FasterWhisperParams,
        {"batch": {"clip_timestamps": [{"start": 1e308, "end": 1e308}]}},
        "batch.clip_timestamps.0.start",
    ),
    # (9): lone surrogates, which the HF tokenizer refuses with a TypeError.
    (FasterWhisperParams, {"single": {"initial_prompt": SURROGATE}}, "single.initial_prompt"),
    (FasterWhisperParams, {"single": {"hotwords": "hello " + SURROGATE}}, "single.hotwords"),
    (FasterWhisperParams, {"batch": {"prefix": SURROGATE}}, "batch.prefix"),
    (FasterWhisperParams, {"single": {"prepend_punctuations": SURROGATE}}, "prepend_punctuations"),
    (
        RequestOptions,
        {"initial_prompt": SURROGATE},
        "initial_prompt",
    ),  # openai-whisper, whisper.cpp
    (RequestOptions, {"language": SURROGATE}, "language"),
    (NemoRequestOptions, {"target_lang": SURROGATE}, "target_lang"),
    # (9): transformers divides float32 logits by the temperature: 1e300 -> NaN probabilities.
    (TransformersParams, {"temperature": 1e300}, "temperature"),
    (TransformersParams, {"temperature": 1e-300}, "temperature"),
    (RequestOptions, {"temperature": [0.0, 1e300]}, "temperature"),
    # Past the other native limits (decoding.py says which).
    (FasterWhisperParams, {"single": {"beam_size": 2**64}}, "single.beam_size"),
    (FasterWhisperParams, {"single": {"best_of": 2**64}}, "single.best_of"),
    (FasterWhisperParams, {"single": {"repetition_penalty": 1e-50}}, "single.repetition_penalty"),
    (FasterWhisperParams, {"single": {"patience": 1e308}}, "single.patience"),
    (FasterWhisperParams, {"batch": {"batch_size": 2**64}}, "batch.batch_size"),
    (
        FasterWhisperParams,
        {"single": {"language_detection_segments": 10**100}},
        "single.language_detection_segments",
    ),
    (
        FasterWhisperParams,
        {"single": {"vad_parameters": {"speech_pad_ms": 10**400}}},
        "single.vad_parameters.speech_pad_ms",
    ),
    (TransformersParams, {"num_beams": 2**64}, "num_beams"),
    (TransformersParams, {"max_new_tokens": 10**400}, "max_new_tokens"),
    (RequestOptions, {"beam_size": 2**64}, "beam_size"),
]


@pytest.mark.parametrize(("model", "params", "named"), REFUSED)
def test_values_past_the_native_limits_are_refused_naming_the_field(model, params, named):
    with pytest.raises(ParamsError, match=f"invalid {model.__name__}: ") as raised:
        parse_params(model, params)
    assert f"{named}: " in str(raised.value)


def test_a_lone_surrogate_is_named_with_its_position():
    with pytest.raises(ParamsError) as raised:
        parse_params(SingleOptions, {"hotwords": "ask not " + SURROGATE}, where="single")
    assert str(raised.value) == (
        "invalid SingleOptions: single.hotwords: Value error, must be valid Unicode text: "
        "'\\ud800' at position 8 is a lone surrogate"
    )
    parse_params(SingleOptions, {"hotwords": "ask not 🇺🇸 café"})  # real non-ASCII text passes


ACCEPTED = [
    {"single": {"no_repeat_ngram_size": MAX_DECODER_POSITIONS}},
    {"single": {"length_penalty": MAX_LENGTH_PENALTY}},
    {"single": {"length_penalty": -MAX_LENGTH_PENALTY}},
    {"single": {"max_initial_timestamp": MAX_INITIAL_TIMESTAMP_S}},
    {"single": {"clip_timestamps": [0, MAX_AUDIO_S]}},
    {"batch": {"clip_timestamps": [{"start": 0, "end": MAX_AUDIO_S}]}},
    {"single": {"temperature": [0.0, MIN_LOGIT_SCALE, MAX_LOGIT_SCALE]}},
    {"single": {"repetition_penalty": MIN_LOGIT_SCALE, "beam_size": MAX_BEAM_SIZE}},
    {"single": {"repetition_penalty": MAX_LOGIT_SCALE, "best_of": MAX_BEAM_SIZE}},
]


@pytest.mark.parametrize("params", ACCEPTED)
def test_values_at_the_bounds_are_accepted(params):
    parse_params(FasterWhisperParams, params)


@pytest.mark.parametrize(
    "temperature", [MIN_LOGIT_SCALE * 0.99, MAX_LOGIT_SCALE * 1.01, 1e-300, 1e300]
)
def test_temperatures_just_past_the_float16_range_are_refused_everywhere(temperature):
    message = "temperature must be 0 or between 2**-14 and 2**14"
    for model, params in [
        (SingleOptions, {"temperature": temperature}),
        (BatchOptions, {"temperature": [0.0, temperature]}),
        (TransformersParams, {"temperature": temperature}),
        (RequestOptions, {"temperature": temperature}),
    ]:
        with pytest.raises(ParamsError, match=re.escape(message)):
            parse_params(model, params)
    with pytest.raises(InvalidOptionError, match=re.escape(message)):
        BenchArgs.build(temperature=temperature)


# --- The bounds are the libraries' own facts ----------------------------------------------------


def test_the_bounds_follow_the_library_facts(faster_whisper_service):  # noqa: F811
    whisper = faster_whisper_service.model.model
    assert whisper.max_length == MAX_DECODER_POSITIONS  # faster-whisper's decoder length
    assert whisper.time_precision * 1500 == pytest.approx(MAX_INITIAL_TIMESTAMP_S)
    # CTranslate2's beam search: beam x vocabulary candidates with int32 ids.
    assert np.iinfo(np.int32).max >= MAX_BEAM_SIZE * LARGEST_VOCABULARY
    assert np.iinfo(np.int32).max < (MAX_BEAM_SIZE + 1) * LARGEST_VOCABULARY
    assert float(np.finfo(np.float32).max) == FLOAT32_MAX
    # length ** length_penalty in float32, for lengths up to 448.
    with np.errstate(over="ignore"):
        length = np.float32(MAX_DECODER_POSITIONS)
        assert np.isfinite(length ** np.float32(MAX_LENGTH_PENALTY))
        assert np.isinf(length ** np.float32(MAX_LENGTH_PENALTY + 1))
        assert length ** np.float32(-MAX_LENGTH_PENALTY) >= np.finfo(np.float32).tiny
    # Logit scales and their reciprocals are normal float16 numbers.
    assert float(np.finfo(np.float16).tiny) == MIN_LOGIT_SCALE
    for scale in (MIN_LOGIT_SCALE, MAX_LOGIT_SCALE):
        for value in (np.float16(scale), np.float16(1 / scale)):
            assert np.isfinite(value) and value >= np.finfo(np.float16).tiny
    assert MAX_AUDIO_S * 16_000 == 2**31  # whisper.cpp's n_samples is a C int


# Numbers that only Python code in the engines compares, never a native library: finite
# (allow_inf_nan=False) is all they need. Everything else numeric has an upper bound.
PYTHON_ONLY = {
    "compression_ratio_threshold",  # faster-whisper: gzip ratio > threshold
    "log_prob_threshold",  # avg_logprob < threshold
    "prompt_reset_on_temperature",  # temperature > threshold
    "hallucination_silence_threshold",  # seconds of silence > threshold
    "temperature",  # check_temperatures: 0 or [2**-14, 2**14], by hand
    "warmup",  # bench()'s own loop counts
    "repeats",
    # Bounded by hand: token ids by the loaded model's vocabulary (decoding.check_token_ids,
    # at load and per request), clip_timestamps' string form by its validator (MAX_AUDIO_S).
    "initial_prompt",
    "suppress_tokens",
    "clip_timestamps",
}


def _numeric(annotation: Any) -> bool:
    args = typing.get_args(annotation)
    if args:
        return any(_numeric(a) for a in args)
    return annotation in (int, float)


@pytest.mark.parametrize(
    "model",
    [
        SingleOptions,
        BatchOptions,
        VadParameters,
        ClipWindow,
        RequestOptions,
        TransformersParams,
        NemoRequestOptions,
        NemoOptions,
        BenchArgs,
    ],
)
def test_every_numeric_option_has_an_upper_bound(model: type[BaseModel]):
    unbounded = [
        name
        for name, field in model.model_fields.items()
        if _numeric(field.annotation)
        and name not in PYTHON_ONLY
        and not any(isinstance(m, annotated_types.Le | annotated_types.Lt) for m in field.metadata)
    ]
    assert not unbounded, f"{model.__name__}: numeric options without an upper bound: {unbounded}"


# --- bench() and the CLI: refused before anything loads; the bound itself runs -----------------


def test_bench_refuses_the_spinning_ngram_size_before_the_engine_runs(jfk, engine_never_runs):
    started = time.monotonic()
    with pytest.raises(InvalidOptionError) as raised:
        bench(
            PACKAGED_ID,
            BenchArgs(
                test_file=str(jfk), transcribe_options={"no_repeat_ngram_size": 2**63}, **GREEDY
            ),
        )
    assert (
        "invalid option transcribe_options.no_repeat_ngram_size: Input should be less than or "
        "equal to 448"
    ) in str(raised.value)
    assert time.monotonic() - started < QUICK_S


def test_bench_runs_tiny_en_at_the_ngram_bound(jfk):
    started = time.monotonic()
    result = bench(
        PACKAGED_ID,
        BenchArgs(
            test_file=str(jfk),
            transcribe_options={"no_repeat_ngram_size": MAX_DECODER_POSITIONS},
            **GREEDY,
        ),
    )
    assert time.monotonic() - started < QUICK_S
    assert result.config["no_repeat_ngram_size"] == MAX_DECODER_POSITIONS
    assert JFK_TEXT in _words(result.transcript.text)


def test_the_cli_refuses_it_too_instead_of_hanging(jfk):
    done = subprocess.run(
        [
            *(sys.executable, "-m", "transcription_benchmarks", "bench", PACKAGED_ID),
            *("--test-file", str(jfk), "--device", "cpu", "--warmup", "0", "--repeats", "1"),
            *("--transcribe-option", f"no_repeat_ngram_size={2**63}"),
        ],
        capture_output=True,
        text=True,
        timeout=120,  # the unbounded value ran for about a minute, then failed natively
    )
    assert done.returncode != 0
    assert "transcribe_options.no_repeat_ngram_size" in done.stderr + done.stdout


def test_bench_args_share_the_bounds():
    for values, named in [
        ({"beam_size": MAX_BEAM_SIZE + 1}, "beam_size"),
        ({"batch_size": 2**64}, "batch_size"),
        ({"cpu_threads": 10**6}, "cpu_threads"),
        ({"num_workers": 2**64}, "num_workers"),
        ({"language": SURROGATE}, "language"),
    ]:
        with pytest.raises(InvalidOptionError, match=f"invalid option {named}: "):
            BenchArgs.build(**values)
    BenchArgs.build(beam_size=MAX_BEAM_SIZE, cpu_threads=512, num_workers=512)


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"initial_prompt": SURROGATE}, "transcribe_options.initial_prompt"),
        ({"length_penalty": 1e308}, "transcribe_options.length_penalty"),
        ({"max_initial_timestamp": 1e308}, "transcribe_options.max_initial_timestamp"),
        ({"clip_timestamps": [0, 1e308]}, "transcribe_options.clip_timestamps"),
    ],
)
def test_bench_refuses_what_the_endpoint_refuses_in_the_same_words(
    jfk, engine_never_runs, options, named
):
    with pytest.raises(InvalidOptionError) as from_bench:
        bench(PACKAGED_ID, BenchArgs(test_file=str(jfk), transcribe_options=options, **GREEDY))
    with pytest.raises(ParamsError) as from_endpoint:
        parse_params(FasterWhisperParams, {"single": options})
    bench_problem = str(from_bench.value).split(f"{named}: ", 1)[1]
    endpoint_problem = str(from_endpoint.value).split(f"single.{named.split('.')[1]}: ", 1)[1]
    assert bench_problem == endpoint_problem


# --- The endpoint: a 400 with our body, before the engine; the bound runs -----------------------


@pytest.fixture(scope="module")
def service(faster_whisper_service):  # noqa: F811 - the fixture, by name
    return faster_whisper_service


def _answer(service, body: bytes, context: MmsContext) -> tuple[bytes, MmsContext]:
    return _call(handler, service, body, "audio/flac", context)


def _refusal(service, body: bytes, context: MmsContext) -> ErrorBody:
    answer, context = _answer(service, body, context)
    refusal = ErrorBody.model_validate_json(answer)  # our body, not the toolkit's or MMS's
    assert context.status is not None and context.status[0] == refusal.status == 400
    assert refusal.error == "ParamsError"
    return refusal


ENDPOINT_REFUSED = [
    ('{"single": {"no_repeat_ngram_size": 9223372036854775808}}', "single.no_repeat_ngram_size"),
    ('{"single": {"no_repeat_ngram_size": 1' + "0" * 100 + "}}", "single.no_repeat_ngram_size"),
    ('{"single": {"length_penalty": 1e308}}', "single.length_penalty"),
    ('{"batch": {"max_initial_timestamp": 1e308}}', "batch.max_initial_timestamp"),
    ('{"single": {"clip_timestamps": [0, 1e308]}}', "single.clip_timestamps"),
    ('{"batch": {"clip_timestamps": [{"start": 0, "end": 1e308}]}}', "batch.clip_timestamps.0.end"),
    ('{"single": {"initial_prompt": "\\ud800"}}', "single.initial_prompt"),
    ('{"single": {"hotwords": "\\ud800"}}', "single.hotwords"),
    ('{"batch": {"prefix": "\\udcff"}}', "batch.prefix"),
]


@pytest.mark.parametrize(("raw", "named"), ENDPOINT_REFUSED)
def test_the_endpoint_answers_400_naming_the_field_before_the_engine_runs(
    service, jfk_bytes, engine_never_runs, raw, named
):
    header = _header(raw)
    refusal = _refusal(service, jfk_bytes, MmsContext({CUSTOM_ATTRIBUTES_HEADER: header}))
    assert f"{named}: " in refusal.message


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ("[" * 32_000 + "]" * 32_000, "nest too deeply"),  # json.loads: RecursionError
        ('{"single": {"beam_size": ' + "1" * 5000 + "}}", "Exceeds the limit (4300 digits)"),
        ('{"single": {"initial_prompt": "\\ud800"', "valid JSON"),  # cut short
    ],
    ids=["deep", "digits", "truncated"],
)
def test_every_malformed_json_header_is_a_params_error(service, jfk_bytes, raw, problem):
    header = _header(raw)
    with pytest.raises(ParamsError, match=re.escape(problem)) as raised:
        decode_params(header)
    assert "set_int_max_str_digits" not in str(raised.value)  # advice for the server, not us
    refusal = _refusal(service, jfk_bytes, MmsContext({CUSTOM_ATTRIBUTES_HEADER: header}))
    assert problem in refusal.message
    assert refusal.message.startswith(f"{CUSTOM_ATTRIBUTES_HEADER} does not hold valid JSON: ")


def test_the_endpoint_runs_tiny_en_at_the_bounds(service, jfk_bytes):
    for params in [
        {"single": {"no_repeat_ngram_size": MAX_DECODER_POSITIONS, "beam_size": 1}},
        {"single": {"length_penalty": MAX_LENGTH_PENALTY, "max_initial_timestamp": 30.0}},
        {"single": {"clip_timestamps": [0, MAX_AUDIO_S], "temperature": 0.0}},
    ]:
        started = time.monotonic()
        answer, context = _answer(service, jfk_bytes, _with_params(params))
        assert context.status is None, answer  # 200
        assert time.monotonic() - started < QUICK_S
        segments, _ = parse_prediction(answer)
        assert "fellow americans" in _words(" ".join(s.text for s in segments)), params


def test_infinite_values_stay_refused():
    # allow_inf_nan=False already refused inf; the bounds must not have re-admitted it.
    for params in [
        {"single": {"length_penalty": math.inf}},
        {"single": {"max_initial_timestamp": math.inf}},
        {"batch": {"clip_timestamps": [{"start": 0, "end": math.inf}]}},
    ]:
        with pytest.raises(ParamsError):
            parse_params(FasterWhisperParams, params)


def test_a_batched_window_past_the_end_of_the_audio_is_cut_there(service, jfk_bytes):
    # faster-whisper's batched pipeline failed an assertion formatting a window that ends after
    # the audio (a 500); WhisperModel cuts its clips at the end, and so do we now.
    params = {"batch": {"clip_timestamps": [{"start": 0, "end": 12}], "batch_size": 1}}
    answer, context = _answer(service, jfk_bytes, _with_params(params))
    assert context.status is None, answer
    segments, _ = parse_prediction(answer)
    assert "fellow americans" in _words(" ".join(s.text for s in segments))
    assert segments[-1].end <= 11.01
    past = {"batch": {"clip_timestamps": [{"start": 20, "end": 25}]}}
    refusal = ErrorBody.model_validate_json(_answer(service, jfk_bytes, _with_params(past))[0])
    assert (refusal.status, refusal.error) == (400, "InvalidOption")
    assert "after the end of the audio (11.00 s)" in refusal.message


def test_cli_key_values_keep_unreadable_json_as_the_string_given():
    from transcription_benchmarks.cli import _key_values

    digits = "1" * 5000
    assert _key_values([f"k={digits}", "d=" + "[" * 5000], "--x") == {
        "k": digits,
        "d": "[" * 5000,
    }


def test_the_serving_config_bounds_its_threads():
    from pydantic import ValidationError

    from transcription_benchmarks.serving.config import ServingConfig

    with pytest.raises(ValidationError, match="cpu_threads"):
        ServingConfig(cpu_threads=10**6)
