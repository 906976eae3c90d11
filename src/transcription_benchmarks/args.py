"""BenchArgs: every knob of one benchmark run, validated before any model is loaded.

The arguments are flat, as users type them (`BenchArgs(batch_size=24, beam_size=1)`). Each engine
declares the engine-specific options it reads (`Backend.reads`); setting one that only other
engines read gives a warning that names it rather than being silently dropped. `None` means "the
backend's own default", and the result records the value the backend actually used.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from transcription_benchmarks.decoding import (
    MAX_BATCH_SIZE,
    MAX_BEAM_SIZE,
    Text,
    check_temperatures,
)
from transcription_benchmarks.errors import InvalidOptionError, describe_validation_error

BackendName = str
"""A registered engine's name (backends/registry.py): faster-whisper, transformers, plug-ins."""

ComputeType = Literal[
    "default",
    "auto",
    "float16",
    "int8_float16",
    "int8",
    "int8_float32",
    "int8_bfloat16",
    "bfloat16",
    "float32",
]
TorchDType = Literal["fp16", "bf16", "fp32"]
AttnImplementation = Literal["sdpa", "eager", "flash_attention_2"]

MAX_THREADS = 512
"""ggml's GGML_MAX_N_THREADS (whisper.cpp), the one engine with a thread limit of its own."""

DEFAULT_MODEL = "Systran/faster-whisper-tiny.en"
DEFAULT_TEST_FILE = "short.flac"


class BenchArgs(BaseModel):
    """What to run and how. Unset options take the backend's default."""

    # allow_inf_nan=False: NaN and Infinity are refused in every float option.
    model_config = ConfigDict(
        extra="forbid", frozen=True, validate_default=True, allow_inf_nan=False
    )

    backend: BackendName | None = Field(
        None,
        description="None picks by model format: CTranslate2 -> faster-whisper, HF -> transformers",
    )
    test_file: str = Field(
        DEFAULT_TEST_FILE, description="a path, or a name in the test-audio path"
    )
    device: str = Field("auto", description="auto, cpu, cuda or cuda:N")

    # Run protocol
    warmup: int = Field(1, ge=0, description="untimed runs before the timed ones")
    repeats: int = Field(3, ge=1, description="timed runs; speed comes from their median")

    reference_file: str | None = Field(
        None, description="reference transcript (text file) for WER; default: the catalog's"
    )

    # Decoding, both backends. Bounds: decoding.py, shared with the endpoint's request options,
    # with the library fact each follows (temperature's range in check_temperatures).
    batch_size: int | None = Field(None, ge=1, le=MAX_BATCH_SIZE)
    beam_size: int | None = Field(None, ge=1, le=MAX_BEAM_SIZE)
    temperature: float | list[float] | None = None
    language: Text | None = None  # reaches every engine's tokenizer
    task: Literal["transcribe", "translate"] = "transcribe"
    without_timestamps: bool | None = None
    word_timestamps: bool = False

    # faster-whisper only
    compute_type: ComputeType = "default"
    chunk_length: int | None = Field(None, ge=1, le=30, description="seconds per window")
    vad_filter: bool | None = None
    condition_on_previous_text: bool | None = None
    # Threads: whisper.cpp's ggml holds at most GGML_MAX_N_THREADS = 512; CTranslate2 (a size_t,
    # intra_threads / inter_threads, one replica per worker) and torch (a C int) start as many
    # as asked, so 10**6 would start a million threads and 2**64 is a TypeError at load.
    cpu_threads: int = Field(0, ge=0, le=MAX_THREADS)
    num_workers: int = Field(1, ge=1, le=MAX_THREADS)
    transcribe_options: dict[str, Any] = Field(
        default_factory=dict, description="any other WhisperModel.transcribe keyword"
    )

    # transformers only
    dtype: TorchDType | None = Field(None, description="None: fp16 on CUDA, fp32 on CPU")
    attn_implementation: AttnImplementation | None = None
    chunk_length_s: float | None = Field(None, gt=0, le=30)
    generate_kwargs: dict[str, Any] = Field(default_factory=dict)

    @field_validator("backend")
    @classmethod
    def _registered(cls, value: str | None) -> str | None:
        from transcription_benchmarks.backends.registry import check_name

        return None if value is None else check_name(value)

    @field_validator("temperature")
    @classmethod
    def _temperature_non_negative(cls, value: float | list[float] | None):
        return check_temperatures(value)

    @field_validator("device")
    @classmethod
    def _known_device(cls, value: str) -> str:
        kind, _, index = value.partition(":")
        if kind not in ("auto", "cpu", "cuda") or (
            index and (kind != "cuda" or not index.isdigit())
        ):
            raise ValueError(f"device must be auto, cpu, cuda or cuda:N, got {value!r}")
        return value

    @model_validator(mode="after")
    def _no_conflicts(self) -> BenchArgs:
        if self.batch_size and self.condition_on_previous_text:
            raise ValueError(
                "condition_on_previous_text=True conflicts with batch_size: batched inference "
                "decodes windows independently"
            )
        if self.attn_implementation == "flash_attention_2":
            if self.dtype == "fp32":
                raise ValueError("flash_attention_2 needs dtype fp16 or bf16, got fp32")
            if self.device == "cpu":
                raise ValueError("flash_attention_2 needs a CUDA device, got device='cpu'")
        return self

    @classmethod
    def build(cls, **values: Any) -> BenchArgs:
        """Like BenchArgs(**values) but raises InvalidOptionError with one line per problem."""
        try:
            return cls(**values)
        except ValidationError as exc:
            raise InvalidOptionError(
                describe_validation_error(exc, each="invalid option ", empty="arguments")
            ) from None

    def set_options(self) -> set[str]:
        """The options the user set explicitly (what an ignored-option warning can name)."""
        return {name for name in self.model_fields_set if getattr(self, name) != _default(name)}


def _default(name: str) -> Any:
    field = BenchArgs.model_fields[name]
    return field.default_factory() if field.default_factory else field.default  # type: ignore[call-arg]
