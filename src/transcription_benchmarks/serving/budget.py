"""How much audio one request may carry: the limit in code/serving.json, and what the worker's
memory holds.

Every engine states what a request costs it per audio minute (`Backend.
request_mib_per_audio_minute`, measured by benchmarks/request_memory.py, the figure and the
run in the engine's module). A worker's budget is serving.json's `memory_budget_mb`, else the
machine's memory (the container's cgroup limit where one is set) shared by the model server's
workers, less what this worker holds once the model is loaded. The effective `max_audio_s` is
the smaller of the configured one and what the budget holds after the request's own body; the
decoder stops there whatever the file's header claims (audio.decode), so memory per request is
bounded before the work starts.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

MIB = 1024 * 1024
WORKERS_ENV = "SAGEMAKER_MODEL_SERVER_WORKERS"


@dataclass(frozen=True)
class AudioBudget:
    """One worker's audio limit per request, and where it comes from."""

    configured_s: float
    """limits.max_audio_s in code/serving.json."""
    budget_mib: float
    """Memory one request may take in this worker."""
    mib_per_audio_minute: float
    """What the engine holds per audio minute of a request."""
    source: str
    """How the budget was found, for the refusal's message and the log."""

    def max_audio_s(self, body_bytes: int = 0) -> float:
        """The longest audio a request with a body of `body_bytes` may carry (the body stays in
        memory while it decodes)."""
        room_mib = max(self.budget_mib - body_bytes / MIB, 0.0)
        return min(self.configured_s, 60.0 * room_mib / self.mib_per_audio_minute)

    def describe(self, body_bytes: int = 0) -> str:
        held = self.max_audio_s(body_bytes)
        if held >= self.configured_s:
            return f"limits.max_audio_s = {self.configured_s:g}"
        return (
            f"{held:.0f} s: a memory budget of {self.budget_mib:.0f} MiB per request "
            f"({self.source}) at {self.mib_per_audio_minute:g} MiB per audio minute for this "
            f"engine, less the {body_bytes / MIB:.1f} MiB body; limits.max_audio_s = "
            f"{self.configured_s:g}"
        )


def machine_memory_bytes() -> int:
    """The memory this process's container may use: the cgroup's limit (v2, then v1) where one
    is set below the physical memory, else the physical memory."""
    physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for limit_file in (
        Path("/sys/fs/cgroup/memory.max"),
        Path("/sys/fs/cgroup/memory/memory.limit_in_bytes"),
    ):
        try:
            value = limit_file.read_text().strip()
        except OSError:
            continue
        if value.isdigit() and 0 < int(value) < physical:
            return int(value)
    return physical


def workers_per_model(device: str) -> int:
    """How many workers share the machine: SAGEMAKER_MODEL_SERVER_WORKERS (the toolkit writes
    it into MMS's default_workers_per_model), else MMS's own default, one worker per GPU on a
    GPU machine and one per CPU core on a CPU one."""
    configured = os.environ.get(WORKERS_ENV, "").strip()
    if configured.isdigit() and int(configured) > 0:
        return int(configured)
    if device.startswith("cuda"):
        try:
            from transcription_benchmarks.measure.gpus import nvidia_gpu_count

            return max(nvidia_gpu_count(), 1)
        except Exception:  # no NVML here: one worker is the least any server runs
            return 1
    return max(os.cpu_count() or 1, 1)


def resident_bytes() -> int:
    """This process's resident memory now."""
    import psutil

    return psutil.Process().memory_info().rss


def audio_budget(
    configured_s: float,
    mib_per_audio_minute: float,
    *,
    budget_mb: float | None,
    device: str,
    loaded_bytes: int | None = None,
) -> AudioBudget:
    """The budget of one request in this worker, measured after the model loaded."""
    if budget_mb is not None:
        return AudioBudget(
            configured_s, budget_mb, mib_per_audio_minute, "memory_budget_mb in serving.json"
        )
    machine = machine_memory_bytes()
    workers = workers_per_model(device)
    loaded = resident_bytes() if loaded_bytes is None else loaded_bytes
    budget = max(machine / workers - loaded, 0) / MIB
    source = (
        f"{machine / 2**30:.1f} GiB over {workers} worker{'s' * (workers != 1)}, less "
        f"{loaded / 2**30:.2f} GiB this worker holds with its model loaded"
    )
    return AudioBudget(configured_s, budget, mib_per_audio_minute, source)
