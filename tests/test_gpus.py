"""One GPU per pytest-xdist worker, checked against fake device lists (no GPU needed)."""

from __future__ import annotations

import pytest

from nvml_stand_in import StandInNvml
from transcription_benchmarks.measure.gpus import GpuPinningError, nvidia_gpu_count, pin_worker_gpu


def test_each_worker_gets_its_own_device():
    for worker, expected in (("gw0", "0"), ("gw1", "1"), ("gw3", "3")):
        env: dict[str, str] = {}
        assert pin_worker_gpu(worker, env, gpu_count=4) == expected
        assert env["CUDA_VISIBLE_DEVICES"] == expected


def test_pinning_respects_an_existing_device_list():
    env = {"CUDA_VISIBLE_DEVICES": "2, 5"}
    assert pin_worker_gpu("gw1", env) == "5"
    assert env["CUDA_VISIBLE_DEVICES"] == "5"


def test_more_workers_than_gpus_is_a_clear_error():
    with pytest.raises(
        GpuPinningError,
        match=r"gw2 has no GPU of its own: 2 GPU\(s\) visible \(0,1\); run with -n 2",
    ):
        pin_worker_gpu("gw2", {}, gpu_count=2)


def test_outside_xdist_nothing_changes():
    env = {"CUDA_VISIBLE_DEVICES": "1"}
    assert pin_worker_gpu(None, env, gpu_count=4) is None
    assert pin_worker_gpu("master", env, gpu_count=4) is None
    assert env == {"CUDA_VISIBLE_DEVICES": "1"}


def test_the_gpu_count_is_what_the_driver_reports(monkeypatch):
    import sys

    from transcription_benchmarks.measure.gpus import nvidia_driver

    nvml = StandInNvml()
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    driver = nvidia_driver()
    assert (driver.gpu_count, driver.first_gpu, driver.version, driver.max_cuda) == (
        2,
        "NVIDIA H200",
        "580.65",
        "13.0",
    )
    assert driver.compute_capability == "9.0"
    assert nvidia_gpu_count() == 2 and nvml.shut_down

    monkeypatch.setitem(sys.modules, "pynvml", StandInNvml(fail_init=True))
    assert nvidia_gpu_count() == 0
    assert "no NVIDIA driver (OSError)" in nvidia_driver().error
