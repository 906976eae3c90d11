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


def test_this_machine_has_no_nvidia_gpu_or_reports_a_count():
    assert nvidia_gpu_count() >= 0
