"""A pytest plugin for the GPU-pinning tests on machines without a GPU: NVML "reports"
$TBENCH_FAKE_GPU_COUNT GPUs. Loaded with `-p tests.fake_gpus`, before conftest imports the
function, so the whole pinning path (controller check, worker pinning, auto worker count) runs
as it would on a multi-GPU machine; nothing here touches CUDA."""

from __future__ import annotations

import os

from transcription_benchmarks.measure import gpus

FAKE_GPU_COUNT_ENV = "TBENCH_FAKE_GPU_COUNT"

gpus.nvidia_gpu_count = lambda: int(os.environ[FAKE_GPU_COUNT_ENV])
