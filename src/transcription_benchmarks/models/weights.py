"""How big a model's weights are: the floor under any honest peak-memory reading.

A GPU run's peak memory cannot be below the weights it loaded in their dtype; a reading that is
(a sampler that missed the process, a driver query that failed) is a mis-measurement, and the
GPU suite's thresholds and tests use this to say so.
"""

from __future__ import annotations

import math
from pathlib import Path

DTYPE_BYTES = {"fp32": 4, "float32": 4, "fp16": 2, "float16": 2, "bf16": 2, "bfloat16": 2}
"""Bytes per parameter; int8 compute types keep roughly one byte per weight matrix element."""
DTYPE_BYTES.update({"int8": 1, "int8_float16": 1, "int8_float32": 1, "int8_bfloat16": 1})


def parameter_count(model_dir: str | Path) -> int:
    """Parameters of a transformers-format model (its *.safetensors files), read from the
    tensor headers only: nothing is loaded."""
    from safetensors import safe_open

    files = sorted(Path(model_dir).glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"no *.safetensors in {model_dir}")
    total = 0
    for file in files:
        with safe_open(str(file), "np") as tensors:
            for name in tensors.keys():  # noqa: SIM118 - safe_open is not a mapping
                total += math.prod(tensors.get_slice(name).get_shape())
    return total


def weights_mib(model_dir: str | Path, dtype: str) -> float:
    """The weights' size in MiB when held in `dtype` (fp16, bf16, fp32, float16, int8...)."""
    return parameter_count(model_dir) * DTYPE_BYTES[dtype] / 2**20
