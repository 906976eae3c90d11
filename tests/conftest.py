"""Shared fixtures: real test audio from ../shared/test_audio, an isolated model cache, no hub."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from transcription_benchmarks.audio.catalog import AUDIO_PATH_ENV
from transcription_benchmarks.measure.gpus import (
    GpuPinningError,
    check_worker_count,
    nvidia_gpu_count,
    pin_worker_gpu,
    selects_gpu_tests,
    visible_gpus,
)
from transcription_benchmarks.models.cache import CACHE_ENV

REPO = Path(__file__).resolve().parents[1]
SHARED_AUDIO = REPO.parent / "shared" / "test_audio"
JFK_TEXT = "ask not what your country can do for you"
RESULTS = REPO / "results"
_NO_OWN_GPU: str | None = None
"""Why this xdist worker has no GPU (more workers than GPUs on a run that is not -m gpu)."""


def pytest_configure(config: pytest.Config) -> None:
    # Under pytest-xdist each worker gets its own GPU before anything initialises CUDA. A gpu run
    # (-m gpu) with more workers than GPUs stops on the controller before any worker starts; in
    # other runs a worker left without a GPU runs the CPU tests and skips the gpu ones.
    global _NO_OWN_GPU
    if nvidia_gpu_count():
        gpu_run = selects_gpu_tests(config.option.markexpr)
        workers = config.getoption("numprocesses", None)
        if gpu_run and not hasattr(config, "workerinput") and isinstance(workers, int):
            try:
                check_worker_count(workers)
            except GpuPinningError as exc:
                raise pytest.UsageError(str(exc)) from None
        try:
            pin_worker_gpu(os.environ.get("PYTEST_XDIST_WORKER"))
        except GpuPinningError as exc:
            if gpu_run:
                raise
            os.environ["CUDA_VISIBLE_DEVICES"] = ""
            _NO_OWN_GPU = str(exc)
    # Tests never reach the hub; the offline-error tests set their own hub environment.
    os.environ["HF_HUB_OFFLINE"] = "1"
    if SHARED_AUDIO.is_dir() and str(SHARED_AUDIO) not in os.environ.get(AUDIO_PATH_ENV, ""):
        existing = os.environ.get(AUDIO_PATH_ENV)
        os.environ[AUDIO_PATH_ENV] = os.pathsep.join(p for p in (existing, str(SHARED_AUDIO)) if p)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int | None:
    # `-n auto -m gpu`: one worker per GPU, not one per CPU core.
    if selects_gpu_tests(config.option.markexpr):
        return len(visible_gpus()) or None
    return None


def pytest_sessionfinish(session: pytest.Session) -> None:
    # On the controller (or a run without xdist), fold the per-worker result shards that suites
    # such as tests/gpu wrote into one JSONL per suite.
    if not hasattr(session.config, "workerinput"):
        from transcription_benchmarks.matrix.shards import merge_shards, results_dir

        merge_shards(results_dir(RESULTS))


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
    if not nvidia_gpu_count():
        reason = "needs a CUDA GPU: NVML finds no NVIDIA GPU or driver here"
    elif _NO_OWN_GPU is not None:
        reason = _NO_OWN_GPU
    else:
        return
    skip = pytest.mark.skip(reason=reason)
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
def jfk_bytes(jfk: Path) -> bytes:
    """jfk.flac as a request body."""
    return jfk.read_bytes()


@pytest.fixture(scope="session")
def short() -> Path:
    return shared_audio("short.flac")


@pytest.fixture
def cells_importable(monkeypatch: pytest.MonkeyPatch) -> None:
    """Matrix workers import `matrix_cells` (python:matrix_cells:...) from tests/."""
    tests = str(Path(__file__).resolve().parent)
    monkeypatch.syspath_prepend(tests)
    monkeypatch.setenv("PYTHONPATH", tests)
