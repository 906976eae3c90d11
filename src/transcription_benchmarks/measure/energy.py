"""Energy the GPUs drew during each timed run, from NVML's total-energy counter.

NVML keeps a per-device counter of millijoules since the driver loaded (Volta and later;
older GPUs answer NotSupported). Reading it on both sides of a run, at the same boundary as the
clock, gives the joules of that run for every visible device together. Where the counter is
missing (no NVML, no GPU, an older GPU) the energy is None, never 0.
"""

from __future__ import annotations

from transcription_benchmarks.measure.memory import Nvml


class EnergyMeter:
    """`read()`: joules the visible GPUs have drawn so far (a running total), or None."""

    def __init__(self, nvml: Nvml | None = None) -> None:
        self._nvml = nvml or Nvml()
        self.available = self._nvml.available and self._read_mj() is not None

    def _read_mj(self) -> float | None:
        total = 0.0
        for handle in self._nvml.handles:
            try:
                total += self._nvml.pynvml.nvmlDeviceGetTotalEnergyConsumption(handle)
            except Exception:  # NotSupported before Volta, or the query is refused
                return None
        return total

    def read(self) -> float | None:
        if not self.available:
            return None
        millijoules = self._read_mj()
        return None if millijoules is None else millijoules / 1000

    def close(self) -> None:
        self._nvml.shutdown()
