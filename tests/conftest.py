"""Shared fixtures: real test audio from ../shared/test_audio, an isolated model cache, no hub."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from transcription_benchmarks.audio.catalog import AUDIO_PATH_ENV
from transcription_benchmarks.measure.gpus import nvidia_gpu_count, pin_worker_gpu
from transcription_benchmarks.models.cache import CACHE_ENV

REPO = Path(__file__).resolve().parents[1]
SHARED_AUDIO = REPO.parent / "shared" / "test_audio"
JFK_TEXT = "ask not what your country can do for you"


def pytest_configure(config: pytest.Config) -> None:
    # Under pytest-xdist each worker gets its own GPU before anything initialises CUDA; with a
    # GPU-marked run and more workers than GPUs this fails loudly instead of sharing devices.
    if nvidia_gpu_count():
        pin_worker_gpu(os.environ.get("PYTEST_XDIST_WORKER"))
    # Tests never reach the hub; the offline-error tests set their own hub environment.
    os.environ["HF_HUB_OFFLINE"] = "1"
    if SHARED_AUDIO.is_dir() and str(SHARED_AUDIO) not in os.environ.get(AUDIO_PATH_ENV, ""):
        existing = os.environ.get(AUDIO_PATH_ENV)
        os.environ[AUDIO_PATH_ENV] = os.pathsep.join(p for p in (existing, str(SHARED_AUDIO)) if p)


@pytest.fixture(scope="session", autouse=True)
def _model_cache(tmp_path_factory: pytest.TempPathFactory):
    """Converted and synthetic models go to a per-session cache unless one is configured."""
    if os.environ.get(CACHE_ENV):
        yield
        return
    os.environ[CACHE_ENV] = str(tmp_path_factory.mktemp("model-cache"))
    yield
    del os.environ[CACHE_ENV]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if nvidia_gpu_count():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU: NVML finds no NVIDIA GPU or driver here")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


def shared_audio(name: str) -> Path:
    """A catalogued test file; skips when it is not on this machine, never on a bad checksum."""
    from transcription_benchmarks.audio import find_test_audio
    from transcription_benchmarks.errors import AudioChecksumError, AudioError

    try:
        return find_test_audio(name)
    except AudioChecksumError:
        raise
    except AudioError as exc:
        pytest.skip(f"real test audio {name} not available ({exc})")


@pytest.fixture(scope="session")
def jfk() -> Path:
    return shared_audio("jfk.flac")


@pytest.fixture(scope="session")
def short() -> Path:
    return shared_audio("short.flac")
