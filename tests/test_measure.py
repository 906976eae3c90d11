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
    with pytest.raises(ValueError, match="no timed runs"):
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
    with pytest.raises(ValueError, match="no timed runs"):
        Stats.from_runs([])
    assert stats.describe() == "2 x median 2.000 s ±71%"  # stdev / mean
    assert Stats.from_runs([2.0]).describe() == "1 x median 2.000 s"  # one run: no spread
