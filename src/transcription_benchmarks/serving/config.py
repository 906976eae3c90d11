"""How an artifact's handler loads its model: data in code/serving.json, not code per model.

`package` writes the file; the handler reads it at model_fn time. Every field has a default, so
a hand-made artifact without the file still serves (on the best device, default compute type).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from transcription_benchmarks.args import MAX_THREADS, ComputeType, TorchDType
from transcription_benchmarks.backends.registry import check_name
from transcription_benchmarks.errors import InvalidOptionError, describe_validation_error

ServedBackend = Annotated[str, AfterValidator(check_name)]
"""A registered engine (backends/registry.py): the one handler (serving/handler.py) serves each."""

CONFIG_FILE = "serving.json"
MAX_BODY_ENV = "TRANSCRIPTION_BENCHMARKS_MAX_BODY_BYTES"
"""The handler's request-body cap in bytes, where set (the local endpoint sets it below MMS's)."""
REQUEST_TIMEOUT_ENV = "TRANSCRIPTION_BENCHMARKS_REQUEST_TIMEOUT_S"
"""The request budget in seconds where serving.json sets none (deploy sets it on real-time
endpoints to SageMaker's 60 s invocation limit)."""


class LimitExceededError(InvalidOptionError):
    """A request asks for more than this endpoint's limits allow one request."""


class RequestLimits(BaseModel):
    """What one request may ask of a worker. Each default keeps a request of the largest
    Whisper inside a few GB and a few minutes; raise one in code/serving.json for a workload
    that needs it. best_of and beam_size multiply the decoder's batch (and memory) per window,
    fallback temperatures the number of decodes per window, batch_size the windows in flight."""

    model_config = ConfigDict(extra="forbid")

    max_beam_size: int = Field(10, ge=1)
    max_best_of: int = Field(10, ge=1)
    max_temperatures: int = Field(10, ge=1, description="fallback temperatures in one request")
    max_batch_size: int = Field(64, ge=1)
    max_new_tokens: int = Field(448, ge=1, description="Whisper's decoder holds 448 positions")
    max_audio_s: float = Field(4 * 3600.0, gt=0, description="seconds of decoded audio")
    min_chunk_length_s: float = Field(
        5.0, gt=0, description="shortest chunk_length / chunk_length_s (windows per request)"
    )

    def check(self, audio_s: float | None, **asked: float | None) -> None:
        """asked: beam_size, best_of, temperatures, batch_size, max_new_tokens, chunk_length_s;
        None for what the request leaves at the engine's default. `audio_s`: None where the
        audio is checked as it decodes (the handler: serving/budget.py's effective limit)."""
        problems = []
        if audio_s is not None and audio_s > self.max_audio_s:
            problems.append(
                f"the audio is {audio_s:.0f} s (limits.max_audio_s = {self.max_audio_s:g})"
            )
        for name, value in asked.items():
            if value is None:
                continue
            if name == "chunk_length_s":
                if value < self.min_chunk_length_s:
                    problems.append(
                        f"chunk length {value:g} s (limits.min_chunk_length_s = "
                        f"{self.min_chunk_length_s:g})"
                    )
                continue
            field = name if name.startswith("max_") else f"max_{name}"
            limit = getattr(self, field)
            if value > limit:
                problems.append(f"{name}={value:g} (limits.{field} = {limit})")
        if problems:
            raise LimitExceededError(
                "over this endpoint's per-request limits: "
                + "; ".join(problems)
                + f" (set in code/{CONFIG_FILE})"
            )


class ServingConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    backend: ServedBackend = "faster-whisper"
    device: str = Field("auto", description="auto, cpu, cuda or cuda:N")
    compute_type: ComputeType = "default"
    """CTranslate2's compute type (faster-whisper), ggml's (whisper.cpp)."""
    cpu_threads: int = Field(0, ge=0, le=MAX_THREADS)
    """Engines that read it (faster-whisper, openai-whisper, whisper.cpp): 0 lets them choose."""
    dtype: TorchDType | None = None
    """Torch engines (transformers, openai-whisper): None gives fp16 on CUDA, fp32 on CPU."""
    limits: RequestLimits = Field(default_factory=RequestLimits)
    memory_budget_mb: float | None = Field(None, gt=0)
    """Memory one request may take in a worker (MiB); with the engine's cost per audio minute it
    bounds the audio a request may carry below limits.max_audio_s. None: the machine's memory
    over the model server's workers, less what a worker holds with its model loaded
    (serving/budget.py)."""
    request_timeout_s: float | None = Field(None, gt=0)
    """How long one request may run before its worker is ended; None: the model server's
    response timeout (SAGEMAKER_MODEL_SERVER_TIMEOUT / MMS_DEFAULT_RESPONSE_TIMEOUT)."""

    @classmethod
    def read(cls, model_dir: str | Path) -> ServingConfig:
        path = Path(model_dir) / "code" / CONFIG_FILE
        if not path.is_file():
            return cls()
        return cls.read_file(path)

    @classmethod
    def read_file(cls, path: str | Path) -> ServingConfig:
        path = Path(path)
        try:
            return cls.model_validate(json.loads(path.read_text()))
        except OSError as exc:
            raise InvalidOptionError(f"cannot read serving config {path}: {exc}") from exc
        except json.JSONDecodeError as exc:
            raise InvalidOptionError(f"{path} is not a valid serving config: {exc}") from exc
        except ValidationError as exc:
            raise InvalidOptionError(
                f"{path} is not a valid serving config: {describe_validation_error(exc)}"
            ) from None
