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

CORE_PACKAGES = ("torch", "nvidia-cudnn-cu12", "nvidia-cudnn-cu13", "nvidia-cublas-cu12")
"""Recorded whatever the engine: what decides which CUDA libraries load. Each engine adds its
own (Backend.fingerprint_packages)."""


def fingerprint_packages() -> tuple[str, ...]:
    from transcription_benchmarks.backends.registry import fingerprint_packages as engines

    return tuple(dict.fromkeys((*CORE_PACKAGES, *engines())))


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
    cpu_flags: list[str] | None = None
    """The instruction-set extensions that select CPU kernels (CTranslate2's int8 GEMM, oneDNN,
    OpenBLAS): int8 WER itself moves with them. None: not recorded (results before it)."""


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


KERNEL_CPU_FLAGS = frozenset(
    {
        "sse4_1", "sse4_2", "avx", "avx2", "fma", "f16c", "avx_vnni", "avx512f", "avx512bw",
        "avx512vl", "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_int8",
        "amx_bf16", "asimd", "asimddp", "sve", "sve2", "i8mm", "bf16",
    }
)  # fmt: skip
"""x86 and Arm extensions that kernel dispatchers choose by (the rest of /proc/cpuinfo's flags,
hundreds of them, say nothing about speed or results)."""


@cache
def _cpu_flags() -> list[str] | None:
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.exists():
        return None
    for line in cpuinfo.read_text().splitlines():
        if line.startswith(("flags", "Features")):  # x86, Arm
            return sorted(set(line.split(":", 1)[1].split()) & KERNEL_CPU_FLAGS)
    return None


COMPARED_FIELDS = (
    "gpu_name",
    "gpu_count",
    "driver_version",
    "cuda_runtime",
    "cudnn_version",
    "cpu",
    "cpu_count",
    "cpu_flags",
    "python",
)
"""Fingerprint fields that make two results incomparable when they differ (with `packages`);
`platform` (the kernel build) and `preloaded_libraries` do not change what is measured."""


RECORDED_LATER = frozenset({"cpu_flags"})
"""Fields older results lack: their None means 'not recorded', never a difference (elsewhere
None is a value: no GPU, no driver)."""


def differences(a: Environment, b: Environment) -> list[str]:
    """What differs between two fingerprints, one 'field: A -> B' each."""

    def shown(value: object) -> str:
        if value is None:
            return "none"
        return " ".join(value) if isinstance(value, list) else str(value)

    found = []
    for name in COMPARED_FIELDS:
        left, right = getattr(a, name), getattr(b, name)
        if name in RECORDED_LATER and (left is None or right is None):
            continue
        if left != right:
            found.append(f"{name}: {shown(left)} -> {shown(right)}")
    for package in sorted(a.packages.keys() & b.packages.keys()):
        left, right = a.packages[package], b.packages[package]
        if left != right:
            found.append(f"{package}: {left or 'not installed'} -> {right or 'not installed'}")
    return found


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
    packages = {name: package_version(name) for name in fingerprint_packages()}
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
        cpu_flags=_cpu_flags(),
    )
