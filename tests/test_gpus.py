"""One GPU per pytest-xdist worker, checked against fake device lists (no GPU needed)."""

from __future__ import annotations

import pytest

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


class _StandInNvml:
    """A stand-in for pynvml (no GPU driver here): two H200s behind driver 580.65, CUDA 13.0."""

    def __init__(self, fail_init: bool = False) -> None:
        self.fail_init = fail_init
        self.shut_down = False

    def nvmlInit(self) -> None:  # noqa: N802 - pynvml's names
        if self.fail_init:
            raise OSError("libnvidia-ml.so.1: cannot open shared object file")

    def nvmlDeviceGetCount(self) -> int:  # noqa: N802 - pynvml's names
        return 2

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:  # noqa: N802 - pynvml's names
        return index

    def nvmlDeviceGetName(self, handle: int) -> bytes:  # noqa: N802 - pynvml's names
        return b"NVIDIA H200"

    def nvmlSystemGetDriverVersion(self) -> str:  # noqa: N802 - pynvml's names
        return "580.65"

    def nvmlSystemGetCudaDriverVersion(self) -> int:  # noqa: N802 - pynvml's names
        return 13000

    def nvmlShutdown(self) -> None:  # noqa: N802 - pynvml's names
        self.shut_down = True


def test_the_gpu_count_is_what_the_driver_reports(monkeypatch):
    import sys

    from transcription_benchmarks.measure.gpus import nvidia_driver

    nvml = _StandInNvml()
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    driver = nvidia_driver()
    assert (driver.gpu_count, driver.first_gpu, driver.version, driver.max_cuda) == (
        2,
        "NVIDIA H200",
        "580.65",
        "13.0",
    )
    assert nvidia_gpu_count() == 2 and nvml.shut_down

    monkeypatch.setitem(sys.modules, "pynvml", _StandInNvml(fail_init=True))
    assert nvidia_gpu_count() == 0
    assert "no NVIDIA driver (OSError)" in nvidia_driver().error
