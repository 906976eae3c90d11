"""How an artifact's handler loads its model: data in code/serving.json, not code per model.

`package` writes the file; the handler reads it at model_fn time. Every field has a default, so
a hand-made artifact without the file still serves (on the best device, default compute type).
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from transcription_benchmarks.args import BackendName, ComputeType, TorchDType
from transcription_benchmarks.errors import InvalidOptionError

CONFIG_FILE = "serving.json"


class ServingConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    backend: BackendName = "faster-whisper"
    device: str = Field("auto", description="auto, cpu, cuda or cuda:N")
    compute_type: ComputeType = "default"
    """faster-whisper: CTranslate2's compute type."""
    cpu_threads: int = Field(0, ge=0)
    """faster-whisper: 0 lets CTranslate2 choose."""
    dtype: TorchDType | None = None
    """transformers: None gives fp16 on CUDA, fp32 on CPU."""

    @classmethod
    def read(cls, model_dir: str | Path) -> ServingConfig:
        path = Path(model_dir) / "code" / CONFIG_FILE
        if not path.is_file():
            return cls()
        try:
            return cls.model_validate(json.loads(path.read_text()))
        except (json.JSONDecodeError, ValidationError) as exc:
            raise InvalidOptionError(f"{path} is not a valid serving config: {exc}") from exc
