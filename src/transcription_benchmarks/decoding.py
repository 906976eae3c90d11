"""faster-whisper's decoding options as types, and the rules every entry point applies to them.

BenchArgs (bench(), the CLI, matrix cells) and the endpoint's requests (serving.protocol) read
the same option names, so they validate through these same types: a value one refuses, the
other refuses with the same words. The types follow faster-whisper's own keyword arguments
(WhisperModel.transcribe and BatchedInferencePipeline.transcribe, faster-whisper 1.2) with the
same defaults, and import without faster-whisper, so a client gets names and types checked
before anything is sent. tests/test_serving_protocol.py holds them to the installed signatures.

What the types alone cannot know (the vocabulary a token id must fall in) is a function here
that the loaded model's owner calls: out-of-range token ids crash CTranslate2 natively.

Every number that reaches a native library (CTranslate2, torch, whisper.cpp) is bounded by what
that library can take, and every string that reaches a tokenizer must be text it can encode: a
value past them is refused here, naming the field, instead of overflowing, spinning or raising
inside the engine (an endpoint's 500). The bounds below say which library fact each follows.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from transcription_benchmarks.errors import InvalidOptionError

# --- Bounds: what the native libraries can take --------------------------------------------------

WHISPER_SAMPLE_RATE = 16_000
"""Every Whisper engine takes 16 kHz samples (audio.SAMPLE_RATE; not imported, so that this
module imports without the audio stack)."""

MAX_DECODER_POSITIONS = 448
"""Whisper's text decoder has 448 positions (n_text_ctx in every size; faster-whisper's
max_length, transformers' max_target_positions): no decoded sequence, prompt included, is
longer, so an n-gram longer than that can never repeat."""

INT32_MAX = 2**31 - 1

LARGEST_VOCABULARY = 51_866
"""large-v3's vocabulary, the largest of the Whisper family."""

MAX_BEAM_SIZE = INT32_MAX // LARGEST_VOCABULARY  # 41404
"""CTranslate2's beam search ranks beam_size x vocabulary candidates per window with int32 ids
(TopK over the flattened [batch, beam * vocabulary] log-probabilities, topk_ids INT32): a wider
beam over large-v3's vocabulary would overflow them. best_of samples are rows of the decoder's
batch as beams are, and take the same cap (pybind11 refuses 2**64 and over outright, a 500).
What one worker can afford is far below (openai-whisper asks 95 GB for 41404 beams of tiny.en):
that is an endpoint's limits.max_beam_size / max_best_of, 10 by default."""

MAX_TOKEN_COUNT = INT32_MAX
"""max_new_tokens: at most the decoder's 448 positions are ever decoded, and faster-whisper and
transformers refuse more than 448 less the prompt themselves (naming it; an endpoint's
limits.max_new_tokens says 448 first). The type keeps the count a C int, what the engines'
length parameters are (whisper.cpp's n_max_text_ctx), so that no integer arithmetic on it and
no message printing it overflows (10**400 is an OverflowError converting it to float)."""

FLOAT32_MAX = 3.4028234663852886e38

MAX_LENGTH_PENALTY = math.floor(math.log(FLOAT32_MAX) / math.log(MAX_DECODER_POSITIONS))  # 14
"""CTranslate2 divides a hypothesis' score by length ** length_penalty in C++ float
(decoding.cc, finalize_hypothesis_score) for lengths up to 448: 448**14 = 1.3e37 fits a float32,
448**15 is inf. faster-whisper recomputes seq_len ** length_penalty in Python, an OverflowError
(a 500) from 117 on and at 1e308. Symmetric: 448**-14 = 7.6e-38 is still a normal float32."""

MAX_PATIENCE = 2.0 * MAX_DECODER_POSITIONS
"""Beam search runs until beam_size * patience hypotheses have finished. CTranslate2 ranks
2 * beam_size candidates a step, so over 448 steps at most 2 * 448 * beam_size can finish: a
larger patience cannot change the search. (1e308 is inf as a C++ float, and CTranslate2's
round(beam_size * patience) to a size_t of it fails the search.)"""

MIN_LOGIT_SCALE = 2.0**-14
MAX_LOGIT_SCALE = 2.0**14
"""temperature and repetition_penalty scale logits. CTranslate2 casts the factor (1 /
temperature; the penalty) to the model's compute type, float16 on GPUs (sampling.cc,
decoding_utils.cc), and torch divides float32 logits by the temperature. Both the factor and
its reciprocal stay normal float16 numbers within [2**-14, 2**14]; past them the logits become
0, inf or NaN: 1e300 or 1e-300 is a 500 from transformers ("probability tensor contains either
inf, nan") and openai-whisper (Categorical's constraint), garbage text with negative
timestamps from faster-whisper, and a penalty under float32's range CTranslate2's own
"repetition penalty must be > 0"."""

WINDOW_S = 30.0
MAX_INITIAL_TIMESTAMP_S = WINDOW_S
"""max_initial_timestamp is a time within one window: Whisper's timestamp tokens run from
<|0.00|> to <|30.00|> (0.02 s apart), and CTranslate2 adds max_initial_timestamp / 0.02 to the
first timestamp's id as a size_t. Past 30 s it constrains nothing; at 1e308 faster-whisper's
round(max_initial_timestamp / 0.02) overflows (a 500)."""

MAX_AUDIO_S = 2**31 / WHISPER_SAMPLE_RATE  # 134217.728 s, 37.3 h
"""Clip timestamps and VAD durations are times in the audio. whisper.cpp takes the number of
samples as a C int (whisper_full's n_samples), so 2**31 samples at 16 kHz (37.3 h) is more than
every engine can take; a request carries far less (a 6 MB body, an endpoint's
limits.max_audio_s). faster-whisper turns seconds into sample and frame indices (ts * 16000,
ts * 100): at 1e308 those overflow (a 500). (A batched window that ends after the audio still
fails faster-whisper's own duration assertion: only the caller, knowing the audio, can refuse
that one.)"""

MAX_AUDIO_MS = int(MAX_AUDIO_S * 1000)

MAX_BATCH_SIZE = int(MAX_AUDIO_S)
"""A batch holds windows of the audio, each at least a second long (faster-whisper's
chunk_length is a whole number of seconds; an endpoint's limits.min_chunk_length_s is 5): more
windows than the longest audio has seconds cannot be filled. (The transformers pipeline's
islice refuses more than sys.maxsize.)"""

MAX_LANGUAGE_DETECTION_SEGMENTS = math.ceil(MAX_AUDIO_S / WINDOW_S)
"""30 s segments of the longest audio."""


def _valid_text(value: str) -> str:
    """Text a tokenizer can take: a lone surrogate (JSON carries one as the escape \\ud800; a
    command line as an undecodable byte) is not Unicode text. HF tokenizers (faster-whisper,
    transformers) raise TypeError on it, pybind11 (whisper.cpp) cannot convert it, and an
    answer echoing it cannot be encoded as JSON. A pydantic constraint cannot say this, hence
    the hand-written check."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(
            f"must be valid Unicode text: {value[exc.start : exc.end]!r} at position "
            f"{exc.start} is a lone surrogate"
        ) from None
    return value


Text = Annotated[str, AfterValidator(_valid_text)]
"""A string option that reaches a tokenizer (or is echoed in an answer)."""


def check_temperatures(value: float | list[float] | None) -> float | list[float] | None:
    """Finite and non-negative, and 0 (greedy) or within [MIN_LOGIT_SCALE, MAX_LOGIT_SCALE];
    a fallback list is not empty. NaN, inf or a negative value make faster-whisper sample
    garbage (and negative timestamps) instead of failing; out-of-range ones overflow the
    engines' logits (MAX_LOGIT_SCALE). Hand-written: a value that is 0 or within a range, in a
    number or in a list, is more than Field(ge=, le=) can say."""
    if value is None:
        return value
    values = value if isinstance(value, list) else [value]
    if isinstance(value, list) and not value:
        raise ValueError("temperature list is empty")
    for t in values:
        if not math.isfinite(t) or t < 0:
            raise ValueError(f"temperature must be finite and >= 0, got {value}")
        if t != 0 and not MIN_LOGIT_SCALE <= t <= MAX_LOGIT_SCALE:
            raise ValueError(
                "temperature must be 0 or between 2**-14 and 2**14 (about 6.104e-05 to 16384): the "
                f"engines scale logits by its reciprocal in float16, got {value}"
            )
    return value


def temperature_count(value: float | list[float] | None) -> int | None:
    """How many fallback temperatures a request asks for (None: a single value or unset),
    what RequestLimits.max_temperatures bounds."""
    return len(value) if isinstance(value, list) else None


class _Options(BaseModel):
    # allow_inf_nan=False: JSON's NaN and Infinity (which Python's json reads) are refused in
    # every float field, not only in those with bounds.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class VadParameters(_Options):
    """faster_whisper.vad.VadOptions, the keys `vad_parameters` may hold; unset keys keep
    faster-whisper's defaults (max_speech_duration_s: unbounded)."""

    threshold: float = Field(0.5, ge=0, le=1)
    neg_threshold: float | None = Field(None, ge=0, le=1)
    # Durations within the audio (MAX_AUDIO_S): faster-whisper multiplies them into sample
    # counts for numpy, and 10**400 ms does not even convert to a float.
    min_speech_duration_ms: int = Field(0, ge=0, le=MAX_AUDIO_MS)
    max_speech_duration_s: float = Field(float("inf"), gt=0, le=MAX_AUDIO_S)
    min_silence_duration_ms: int = Field(2000, ge=0, le=MAX_AUDIO_MS)
    speech_pad_ms: int = Field(400, ge=0, le=MAX_AUDIO_MS)


class TranscribeOptions(_Options):
    """The keyword arguments the two faster-whisper transcribe methods share (task aside: the
    caller owns it, as it owns the audio)."""

    # Bounds: the constants above, each with the library fact it follows.
    language: Text | None = None
    beam_size: int = Field(5, ge=1, le=MAX_BEAM_SIZE)
    best_of: int = Field(5, ge=1, le=MAX_BEAM_SIZE)
    patience: float = Field(1, gt=0, le=MAX_PATIENCE)
    length_penalty: float = Field(1, ge=-MAX_LENGTH_PENALTY, le=MAX_LENGTH_PENALTY)
    repetition_penalty: float = Field(1, ge=MIN_LOGIT_SCALE, le=MAX_LOGIT_SCALE)
    # A C++ size_t in CTranslate2: 2**63 and over spin the decoder for about a minute, 2**64
    # and over are a TypeError; past the decoder's 448 positions no n-gram can repeat.
    no_repeat_ngram_size: int = Field(0, ge=0, le=MAX_DECODER_POSITIONS)
    temperature: float | list[float] = [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    compression_ratio_threshold: float | None = 2.4
    log_prob_threshold: float | None = -1.0
    no_speech_threshold: float | None = Field(0.6, ge=0, le=1)
    condition_on_previous_text: bool = True
    prompt_reset_on_temperature: float = Field(0.5, ge=0)
    initial_prompt: str | list[int] | None = None  # text checked in _prompt_ids
    prefix: Text | None = None
    suppress_blank: bool = True
    suppress_tokens: list[int] | None = [-1]
    without_timestamps: bool = False
    max_initial_timestamp: float = Field(1.0, ge=0, le=MAX_INITIAL_TIMESTAMP_S)
    word_timestamps: bool = False
    prepend_punctuations: Text = "\"'“¿([{-"
    append_punctuations: Text = "\"'.。,，!！?？:：”)]}、"
    multilingual: bool = False
    vad_filter: bool = False
    vad_parameters: VadParameters | None = None
    max_new_tokens: int | None = Field(None, ge=1, le=MAX_TOKEN_COUNT)
    chunk_length: int | None = Field(None, ge=1, le=30)
    hallucination_silence_threshold: float | None = Field(None, ge=0)
    hotwords: Text | None = None
    language_detection_threshold: float | None = Field(0.5, ge=0, le=1)
    language_detection_segments: int = Field(1, ge=1, le=MAX_LANGUAGE_DETECTION_SEGMENTS)

    @field_validator("temperature")
    @classmethod
    def _finite_temperatures(cls, value: float | list[float]) -> float | list[float]:
        return check_temperatures(value)  # type: ignore[return-value]

    @field_validator("initial_prompt")
    @classmethod
    def _prompt_ids(cls, value: str | list[int] | None) -> str | list[int] | None:
        if isinstance(value, str):
            # Here rather than as Text in the union, whose error would also list the list form.
            return _valid_text(value)
        if isinstance(value, list) and any(t < 0 for t in value):
            raise ValueError(f"token ids must be >= 0, got {value}")
        return value

    @field_validator("suppress_tokens")
    @classmethod
    def _suppress_ids(cls, value: list[int] | None) -> list[int] | None:
        if value and any(t < -1 for t in value):  # -1 stands for the model's own list
            raise ValueError(f"token ids must be >= 0 (or -1), got {value}")
        return value

    def decoding_kwargs(self) -> dict[str, Any]:
        """The options set, as faster-whisper's keywords (vad_parameters as a dict)."""
        options = self.model_dump(exclude_unset=True)
        if self.vad_parameters is not None:
            options["vad_parameters"] = self.vad_parameters.model_dump(exclude_unset=True)
        return options


class SingleOptions(TranscribeOptions):
    """WhisperModel.transcribe: sequential 30 s windows, conditioned on the previous text."""

    clip_timestamps: str | list[float] = "0"

    @field_validator("clip_timestamps")
    @classmethod
    def _ordered_clips(cls, value: str | list[float]) -> str | list[float]:
        """faster-whisper reads "start,end,start,end,..." (a trailing start runs to the end of
        the audio); each window must end after it starts and after the previous one."""
        if isinstance(value, str):
            try:
                times = [float(t) for t in value.split(",") if t.strip()] if value.strip() else []
            except ValueError:
                raise ValueError(
                    f"clip_timestamps must be comma-separated seconds, got {value!r}"
                ) from None
        else:
            times = list(value)
        # Hand-written: the string form ("0,10.5,20") is parsed before it can be bounded.
        if any(not math.isfinite(t) or t < 0 for t in times):
            raise ValueError(f"clip_timestamps must be finite and >= 0, got {value!r}")
        if any(t > MAX_AUDIO_S for t in times):
            raise ValueError(
                f"clip_timestamps are seconds in the audio, at most {MAX_AUDIO_S} (37 h), "
                f"got {value!r}"
            )
        if any(later <= earlier for earlier, later in itertools.pairwise(times)):
            raise ValueError(
                f"clip_timestamps must increase (each window ends after it starts, windows in "
                f"order), got {value!r}"
            )
        return value


class ClipWindow(_Options):
    # Seconds in the audio (MAX_AUDIO_S): faster-whisper multiplies them into sample indices.
    start: float = Field(ge=0, le=MAX_AUDIO_S)
    end: float = Field(gt=0, le=MAX_AUDIO_S)

    @model_validator(mode="after")
    def _ends_after_start(self) -> ClipWindow:
        if self.end <= self.start:
            raise ValueError(f"a clip window must end after it starts, got {self.start}-{self.end}")
        return self


class BatchOptions(TranscribeOptions):
    """BatchedInferencePipeline.transcribe: windows decoded `batch_size` at a time; VAD on and
    timestamps off by default, as in faster-whisper."""

    without_timestamps: bool = True
    vad_filter: bool = True
    clip_timestamps: list[ClipWindow] | None = None
    batch_size: int = Field(8, ge=1, le=MAX_BATCH_SIZE)


class FasterWhisperParams(_Options):
    """One request's options on faster-whisper (an endpoint's request parameters). At most one
    of `single` and `batch` chooses the pipeline and its options; with neither,
    WhisperModel.transcribe runs with its defaults (the same as sending no parameters).
    detect_language ignores both."""

    task: Literal["transcribe", "detect_language"] = "transcribe"
    single: SingleOptions | None = None
    batch: BatchOptions | None = None

    @model_validator(mode="after")
    def _one_pipeline(self) -> FasterWhisperParams:
        if self.single is not None and self.batch is not None:
            raise ValueError(
                "set exactly one of 'single' (WhisperModel.transcribe) and 'batch' "
                "(BatchedInferencePipeline.transcribe), not both"
            )
        return self

    @property
    def options(self) -> SingleOptions | BatchOptions:
        return self.batch or self.single or SingleOptions()

    def limits_asked(self) -> dict[str, float | None]:
        """What an endpoint's per-request limits (serving.config.RequestLimits) check."""
        options = self.options.decoding_kwargs()
        return {
            "beam_size": options.get("beam_size"),
            "best_of": options.get("best_of"),
            "temperatures": temperature_count(options.get("temperature")),
            "batch_size": options.get("batch_size"),
            "max_new_tokens": options.get("max_new_tokens"),
            "chunk_length_s": options.get("chunk_length"),
        }


def options_model(batched: bool) -> type[SingleOptions] | type[BatchOptions]:
    return BatchOptions if batched else SingleOptions


def token_id_problems(options: Mapping[str, Any], vocab_size: int) -> list[str]:
    """Token ids outside the model's vocabulary, by option: CTranslate2 reads them as indices
    into its embedding table and crashes the process (SIGSEGV) instead of raising."""
    problems = []
    prompt = options.get("initial_prompt")
    if isinstance(prompt, list | tuple):
        bad = [t for t in prompt if not 0 <= int(t) < vocab_size]
        if bad:
            problems.append(
                f"initial_prompt token ids {bad} are outside the vocabulary 0-{vocab_size - 1}"
            )
    suppress = options.get("suppress_tokens") or []
    bad = [t for t in suppress if int(t) != -1 and not 0 <= int(t) < vocab_size]
    if bad:
        problems.append(f"suppress_tokens ids {bad} are outside the vocabulary 0-{vocab_size - 1}")
    return problems


def check_token_ids(options: Mapping[str, Any], vocab_size: int) -> None:
    if problems := token_id_problems(options, vocab_size):
        raise InvalidOptionError("; ".join(problems))
