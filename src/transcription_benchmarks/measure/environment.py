"""The environment fingerprint every result carries (pytest-benchmark's machine_info, for GPUs).

It never imports torch or ctranslate2 itself: importing torch loads its own cuDNN and CUDA
libraries, which changes what a faster-whisper process resolves (the very failures the compat
matrix studies). Versions come from package metadata; CUDA details from modules already loaded.
"""

from __future__ import annotations

import os
import platform
import sys
from functools import cache
from importlib import metadata
from pathlib import Path

from pydantic import BaseModel, Field

from transcription_benchmarks.compat.preload import preloaded
from transcription_benchmarks.measure.gpus import nvidia_driver

PACKAGES = (
    "torch",
    "ctranslate2",
    "faster-whisper",
    "transformers",
    "nvidia-cudnn-cu12",
    "nvidia-cudnn-cu13",
    "nvidia-cublas-cu12",
)


class Environment(BaseModel):
    python: str
    platform: str
    cpu: str
    cpu_count: int | None
    gpu_name: str | None = None
    gpu_count: int = 0
    driver_version: str | None = None
    cuda_runtime: str | None = None
    cudnn_version: str | None = None
    packages: dict[str, str | None]
    preloaded_libraries: list[str] = Field(default_factory=list)
    """CUDA libraries loaded by path before an engine asked for them (compat/preload.py)."""


def package_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


@cache
def _cpu_name() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _gpu() -> tuple[str | None, int, str | None]:
    found = nvidia_driver()
    return found.first_gpu, found.gpu_count, found.version


def _cuda_runtime_and_cudnn(packages: dict[str, str | None]) -> tuple[str | None, str | None]:
    torch = sys.modules.get("torch")
    cuda = cudnn = None
    if torch is not None:
        cuda = torch.version.cuda
        if torch.backends.cudnn.is_available():
            cudnn = str(torch.backends.cudnn.version())
    elif (version := packages.get("torch")) and "+cu" in version:
        cuda = version.split("+cu", 1)[1]  # e.g. 2.4.1+cu121 -> 121
    cudnn = cudnn or packages.get("nvidia-cudnn-cu12") or packages.get("nvidia-cudnn-cu13")
    return cuda, cudnn


def fingerprint() -> Environment:
    packages = {name: package_version(name) for name in PACKAGES}
    gpu_name, gpu_count, driver = _gpu()
    cuda, cudnn = _cuda_runtime_and_cudnn(packages)
    return Environment(
        python=platform.python_version(),
        platform=platform.platform(),
        cpu=_cpu_name(),
        cpu_count=os.cpu_count(),
        gpu_name=gpu_name,
        gpu_count=gpu_count,
        driver_version=driver,
        cuda_runtime=cuda,
        cudnn_version=cudnn,
        packages=packages,
        preloaded_libraries=preloaded(),
    )
