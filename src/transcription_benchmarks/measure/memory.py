"""Peak memory while a model loads and transcribes.

GPU memory comes from NVML (nvidia-ml-py), not from torch: CTranslate2 allocates outside torch's
caching allocator, so only the driver sees both backends. A background thread samples every
`interval_s` (20 ms by default) and keeps the peak, minus the baseline taken before the model
loaded. NVML reports per-process usage where the driver can see our pid; inside some containers
it cannot, and the sampler falls back to device-wide usage and says so in `gpu_method`.
Without NVML or a GPU every GPU field is None, never 0.
"""

from __future__ import annotations

import os
import sys
import threading
from types import TracebackType

import psutil
from pydantic import BaseModel, Field

MIB = 1024 * 1024


class MemoryStats(BaseModel):
    peak_gpu_mb: float | None = Field(None, description="NVML peak minus baseline, MiB")
    baseline_gpu_mb: float | None = None
    gpu_method: str | None = Field(None, description="'process' or 'device' (NVML query used)")
    torch_max_allocated_mb: float | None = None
    torch_max_reserved_mb: float | None = None
    peak_rss_mb: float = Field(description="peak resident set size of this process, MiB")
    baseline_rss_mb: float


class Nvml:
    """The NVML queries the samplers need (memory here, energy in energy.py); unavailable where
    NVML or a GPU is missing."""

    def __init__(self) -> None:
        self.pynvml = None
        self.handles: list = []
        self.pid = os.getpid()
        try:
            import pynvml

            pynvml.nvmlInit()
            count = pynvml.nvmlDeviceGetCount()
        except Exception:  # no library, no driver or no device: GPU fields stay None
            return
        if count == 0:
            pynvml.nvmlShutdown()
            return
        self.pynvml = pynvml
        self.handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in _visible_indices(count)]

    @property
    def available(self) -> bool:
        return self.pynvml is not None

    def process_bytes(self) -> int | None:
        """This process's GPU memory; None while it has no CUDA context, or where the driver
        cannot map our pid (some containers)."""
        total, seen = 0, False
        for handle in self.handles:
            try:
                processes = self.pynvml.nvmlDeviceGetComputeRunningProcesses(handle)
            except Exception:
                return None
            for proc in processes:
                if proc.pid == self.pid and proc.usedGpuMemory is not None:
                    total += proc.usedGpuMemory
                    seen = True
        return total if seen else None

    def device_bytes(self) -> int:
        return sum(self.pynvml.nvmlDeviceGetMemoryInfo(h).used for h in self.handles)

    def shutdown(self) -> None:
        if self.pynvml is not None:
            self.pynvml.nvmlShutdown()


def _visible_indices(count: int) -> list[int]:
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if not visible:
        return list(range(count))
    indices = [int(v) for v in visible.split(",") if v.strip().isdigit()]
    return [i for i in indices if i < count] or list(range(count))


class MemorySampler:
    """Context manager: samples GPU (NVML) and RSS memory in a thread until exit."""

    def __init__(self, interval_s: float = 0.02, nvml: Nvml | None = None) -> None:
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._process = psutil.Process()
        self._nvml = nvml or Nvml()
        self._thread = threading.Thread(
            target=self._sample_loop, name="memory-sampler", daemon=True
        )
        self.baseline_rss = self.peak_rss = 0
        # Both readings are kept: the process figure is preferred, but which one the driver can
        # give is only known once the model has created a CUDA context.
        self.baseline_process = self.baseline_device = 0
        self.peak_process: int | None = None
        self.peak_device = 0

    def __enter__(self) -> MemorySampler:
        _reset_torch_peaks()
        self.baseline_rss = self.peak_rss = self._process.memory_info().rss
        if self._nvml.available:
            self.baseline_process = self._nvml.process_bytes() or 0
            self.baseline_device = self.peak_device = self._nvml.device_bytes()
        self._thread.start()
        return self

    def _sample(self) -> None:
        self.peak_rss = max(self.peak_rss, self._process.memory_info().rss)
        if self._nvml.available:
            process = self._nvml.process_bytes()
            if process is not None:
                self.peak_process = max(self.peak_process or 0, process)
            self.peak_device = max(self.peak_device, self._nvml.device_bytes())

    def _sample_loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._sample()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()  # a run shorter than one interval still gets a sample
        self._nvml.shutdown()

    def stats(self) -> MemoryStats:
        allocated, reserved = _torch_peaks()
        peak = baseline = method = None
        if self._nvml.available:
            if self.peak_process is not None:
                method, peak, baseline = "process", self.peak_process, self.baseline_process
            else:
                method, peak, baseline = "device", self.peak_device, self.baseline_device
        return MemoryStats(
            peak_gpu_mb=(peak - baseline) / MIB if peak is not None else None,
            baseline_gpu_mb=baseline / MIB if baseline is not None else None,
            gpu_method=method,
            torch_max_allocated_mb=allocated,
            torch_max_reserved_mb=reserved,
            peak_rss_mb=self.peak_rss / MIB,
            baseline_rss_mb=self.baseline_rss / MIB,
        )


def _cuda_torch():
    """torch, if this process already imported it and initialised CUDA; never imports it."""
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_initialized():
        return None
    return torch


def _reset_torch_peaks() -> None:
    if (torch := _cuda_torch()) is not None:
        torch.cuda.reset_peak_memory_stats()


def _torch_peaks() -> tuple[float | None, float | None]:
    if (torch := _cuda_torch()) is None:
        return None, None
    return torch.cuda.max_memory_allocated() / MIB, torch.cuda.max_memory_reserved() / MIB
