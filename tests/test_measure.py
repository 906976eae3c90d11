"""Measurement on its own: statistics, the timing loop, memory sampling, the fingerprint."""

from __future__ import annotations

import mmap
import os
import time

import pytest

from transcription_benchmarks.measure.environment import fingerprint
from transcription_benchmarks.measure.memory import MemorySampler
from transcription_benchmarks.measure.timer import Stats, time_runs


def test_stats_from_runs():
    stats = Stats.from_runs([1.0, 3.0, 2.0], warmup=[5.0])
    assert (stats.median, stats.min, stats.max, stats.mean) == (2.0, 1.0, 3.0, 2.0)
    assert stats.stdev == pytest.approx(1.0)
    assert stats.unstable and "unstable timing" in stats.stability_warning()
    assert stats.warmup_s == [5.0]


def test_stable_stats_have_no_warning():
    stats = Stats.from_runs([1.00, 1.01, 0.99])
    assert not stats.unstable and stats.stability_warning() is None
    assert Stats.from_runs([2.0]).stdev == 0.0


def test_stats_need_runs():
    with pytest.raises(ValueError, match=r"^no timed runs$"):
        Stats.from_runs([])


def test_time_runs_warms_up_then_times_and_synchronizes():
    calls: list[str] = []

    def run() -> int:
        calls.append("run")
        time.sleep(0.01)
        return calls.count("run")

    stats, last = time_runs(run, warmup=2, repeats=3, synchronize=lambda: calls.append("sync"))
    assert calls.count("run") == 5 and calls.count("sync") == 10
    assert len(stats.warmup_s) == 2 and len(stats.runs_s) == 3
    assert stats.min >= 0.01
    assert last == 5  # the output of the final timed run


def test_memory_sampler_sees_an_allocation_inside_it():
    size = 200 * 1024 * 1024
    with MemorySampler(interval_s=0.005) as sampler:
        # Fresh anonymous pages, touched: malloc could reuse pages earlier tests freed but the
        # process kept resident, which would not raise RSS.
        block = mmap.mmap(-1, size)
        block.write(b"\x01" * size)
        time.sleep(0.05)
        block.close()
    stats = sampler.stats()
    assert stats.peak_rss_mb - stats.baseline_rss_mb > 150
    assert stats.peak_gpu_mb is None and stats.baseline_gpu_mb is None  # no GPU here: null


def test_fingerprint_names_versions():
    from importlib.metadata import version

    import torch

    env = fingerprint()
    assert env.packages["faster-whisper"] == version("faster-whisper")
    assert env.packages["torch"] == version("torch")
    assert env.cpu_count == os.cpu_count()
    assert env.cuda_runtime == torch.version.cuda  # None for this project's CPU torch


class FakeNvml:
    """NVML cannot exist on this machine; this stands in for the driver's two readings."""

    available = True

    def __init__(self, pid_visible: bool) -> None:
        self.pid_visible = pid_visible
        self.ours = None  # no CUDA context yet
        self.others = 1000 * 1024 * 1024

    def process_bytes(self):
        return self.ours if self.pid_visible else None

    def device_bytes(self):
        return self.others + (self.ours or 0)

    def shutdown(self):
        pass


@pytest.mark.parametrize(("pid_visible", "method"), [(True, "process"), (False, "device")])
def test_gpu_peak_counts_this_process_once_its_context_exists(pid_visible, method):
    nvml = FakeNvml(pid_visible)
    with MemorySampler(interval_s=0.002, nvml=nvml) as sampler:
        time.sleep(0.01)
        nvml.ours = 600 * 1024 * 1024  # the model loads: a context and weights appear
        time.sleep(0.02)
        nvml.ours = 200 * 1024 * 1024  # freed after transcription
        time.sleep(0.01)
    stats = sampler.stats()
    assert stats.gpu_method == method
    # Another process's 1000 MiB are never counted: process figures exclude them, and the
    # device figure subtracts them as part of the baseline.
    assert stats.peak_gpu_mb == pytest.approx(600)


def test_stats_of_two_runs_have_their_spread():
    stats = Stats.from_runs([1.0, 3.0])
    assert (stats.median, stats.mean, stats.min, stats.max) == (2.0, 2.0, 1.0, 3.0)
    assert stats.stdev == pytest.approx(2**0.5)  # sample standard deviation, from two runs on
    assert Stats.from_runs([2.0]).stdev == 0.0
    with pytest.raises(ValueError, match=r"^no timed runs$"):
        Stats.from_runs([])
    assert stats.describe() == "2 x median 2.000 s ±71%"  # stdev / mean
    assert Stats.from_runs([2.0]).describe() == "1 x median 2.000 s"  # one run: no spread


class _EnergyNvml:
    """A stand-in for the NVML reading EnergyMeter makes (no GPU here): two devices whose
    millijoule counters advance by `per_read` each time they are read."""

    def __init__(self, per_read: tuple[float, float] | None) -> None:
        self.available = True
        self.handles = [0, 1]
        self.per_read = per_read
        self.counters = [1_000_000.0, 5_000_000.0]
        self.pynvml = self
        self.shut = False

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: int) -> float:  # noqa: N802
        if self.per_read is None:
            raise RuntimeError("NVMLError_NotSupported")
        self.counters[handle] += self.per_read[handle]
        return self.counters[handle]

    def shutdown(self) -> None:
        self.shut = True


def test_energy_per_run_from_the_counters_at_the_clock_boundary() -> None:
    from transcription_benchmarks.measure.energy import EnergyMeter

    meter = EnergyMeter(_EnergyNvml((2_000.0, 500.0)))  # type: ignore[arg-type]
    # Each read advances device 0 by 2 J and device 1 by 0.5 J: a run spans one read, 2.5 J.
    stats, _ = time_runs(lambda: None, warmup=1, repeats=3, energy=meter.read)
    assert stats.runs_j == pytest.approx([2.5, 2.5, 2.5])  # the warm-up's energy is not kept
    assert stats.median_j == pytest.approx(2.5)
    meter.close()
    assert meter._nvml.shut  # type: ignore[attr-defined]

    unsupported = EnergyMeter(_EnergyNvml(None))  # type: ignore[arg-type]
    assert not unsupported.available and unsupported.read() is None
    stats, _ = time_runs(lambda: None, warmup=0, repeats=2, energy=unsupported.read)
    assert stats.runs_j is None and stats.median_j is None  # not reported: None, never 0


def test_energy_per_audio_hour_is_the_median_runs_joules_scaled() -> None:
    from pathlib import Path

    from transcription_benchmarks import BenchResult

    frozen = Path(__file__).parent / "data" / "formats" / "result-v1.json"
    result = BenchResult.from_json(frozen.read_text())  # 11.0 s of jfk.flac, a CPU run
    assert result.energy_j_per_audio_hour is None and "Energy" not in result.get_stats()
    timing = result.timing.model_copy(update={"runs_j": [30.0, 10.0, 20.0]})
    on_gpu = result.model_copy(update={"timing": timing})
    assert on_gpu.energy_j_per_audio_hour == pytest.approx(20.0 * 3600 / 11.0)  # 6545 J
    assert "Energy: 6.5 kJ / audio h" in on_gpu.get_stats()


def test_a_cpu_machine_records_no_energy() -> None:
    from transcription_benchmarks.measure.energy import EnergyMeter

    meter = EnergyMeter()
    assert meter.read() is None
    meter.close()


def test_without_an_energy_reading_runs_have_no_energy_not_zero() -> None:
    stats, _ = time_runs(lambda: None, warmup=0, repeats=2)
    assert stats.runs_j is None
    readings = iter([10.0, 12.5, 12.5, None])  # the counter stops answering during run 2
    stats, _ = time_runs(lambda: None, warmup=0, repeats=2, energy=lambda: next(readings))
    assert stats.runs_j is None  # one run without a figure: no energy for any, never a guess
