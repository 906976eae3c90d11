"""Which GPUs this machine has, and one GPU per pytest-xdist worker.

`pytest -n auto -m gpu` runs one worker per GPU; each worker must see only its own device
before CUDA initialises, or every worker lands on GPU 0 and the figures measure contention.
"""

from __future__ import annotations

import os
import re
from collections.abc import MutableMapping
from dataclasses import dataclass


class GpuPinningError(RuntimeError):
    """More pytest workers than GPUs: the runs would share devices and skew each other."""


@dataclass(frozen=True)
class NvidiaDriver:
    """What NVML reports without creating a CUDA context; `error` says why not (a CPU machine)."""

    version: str | None = None
    max_cuda: str | None = None  # the newest CUDA the driver supports, e.g. "12.2"
    gpu_count: int = 0
    first_gpu: str | None = None
    compute_capability: str | None = None  # the oldest GPU's, e.g. "7.5" for a T4
    error: str | None = None


def nvidia_driver() -> NvidiaDriver:
    """The one NVML reading the fingerprint, doctor and GPU pinning share."""
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception as exc:  # no libnvidia-ml.so or no driver loaded: a CPU machine
        return NvidiaDriver(error=f"no NVIDIA driver ({type(exc).__name__})")
    try:
        count = pynvml.nvmlDeviceGetCount()
        handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
        name = pynvml.nvmlDeviceGetName(handles[0]) if handles else None
        capabilities = [pynvml.nvmlDeviceGetCudaComputeCapability(h) for h in handles]
        version = pynvml.nvmlSystemGetDriverVersion()
        cuda = pynvml.nvmlSystemGetCudaDriverVersion()  # e.g. 12020 for 12.2
        return NvidiaDriver(
            version=version.decode() if isinstance(version, bytes) else version,
            max_cuda=f"{cuda // 1000}.{cuda % 1000 // 10}",
            gpu_count=count,
            first_gpu=name.decode() if isinstance(name, bytes) else name,
            compute_capability="{}.{}".format(*min(capabilities)) if capabilities else None,
        )
    except Exception as exc:  # a driver that answers init but not the queries
        return NvidiaDriver(error=f"NVML query failed ({type(exc).__name__}: {exc})")
    finally:
        pynvml.nvmlShutdown()


def nvidia_gpu_count() -> int:
    """GPUs the NVIDIA driver reports (NVML, no CUDA context); 0 without driver or library."""
    return nvidia_driver().gpu_count


def visible_gpus(
    env: MutableMapping[str, str] | None = None, gpu_count: int | None = None
) -> list[str]:
    """The devices workers may use: those listed in CUDA_VISIBLE_DEVICES, else 0..count-1."""
    env = os.environ if env is None else env
    listed = [d.strip() for d in env.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
    if listed:
        return listed
    count = nvidia_gpu_count() if gpu_count is None else gpu_count
    return [str(i) for i in range(count)]


def selects_gpu_tests(markexpr: str | None) -> bool:
    """Whether a pytest -m expression runs gpu-marked tests ('gpu', 'gpu and not slow'; not
    'not gpu'). A word test, not pytest's expression parser, which is private API."""
    markexpr = markexpr or ""
    return bool(re.search(r"\bgpu\b", markexpr)) and not re.search(r"\bnot\s+gpu\b", markexpr)


def check_worker_count(
    workers: int, env: MutableMapping[str, str] | None = None, gpu_count: int | None = None
) -> None:
    """Before any worker starts: a GPU run with more xdist workers than GPUs is an error."""
    listed = visible_gpus(env, gpu_count)
    if listed and workers > len(listed):
        raise GpuPinningError(
            f"{workers} pytest-xdist workers but {len(listed)} GPU(s) visible "
            f"({','.join(listed)}): each GPU test needs a GPU of its own; run with "
            f"-n {len(listed)} (or -n auto, which is one worker per GPU on a gpu run)"
        )


def pin_worker_gpu(
    worker_id: str | None,
    env: MutableMapping[str, str] | None = None,
    gpu_count: int | None = None,
) -> str | None:
    """Set CUDA_VISIBLE_DEVICES for xdist worker `gwN` to the N-th GPU it may use.

    The candidates are the devices already listed in CUDA_VISIBLE_DEVICES, else 0..gpu_count-1.
    Returns the device now visible, or None outside xdist ('master' or no worker id).
    """
    env = os.environ if env is None else env
    match = re.fullmatch(r"gw(\d+)", worker_id or "")
    if match is None:
        return None
    index = int(match.group(1))
    listed = visible_gpus(env, gpu_count)
    if index >= len(listed):
        raise GpuPinningError(
            f"pytest-xdist worker {worker_id} has no GPU of its own: {len(listed)} GPU(s) "
            f"visible ({','.join(listed) or 'none'}); run with -n {len(listed) or 1} or fewer"
        )
    env["CUDA_VISIBLE_DEVICES"] = listed[index]
    return listed[index]
