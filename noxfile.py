"""nox sessions: tests, bench (the embedded CPU default), lint.

Sessions use pip in a plain venv (not uv) so that pip's configuration applies: on machines that
keep a CPU build of torch on local disk, TORCH_SPEC selects it before anything asks for torch,
instead of a 3 GB CUDA download. Elsewhere set TORCH_SPEC, e.g.
TORCH_SPEC="torch --index-url https://download.pytorch.org/whl/cpu".
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path

import nox

nox.options.default_venv_backend = "venv"
nox.options.sessions = ["lint", "tests"]

ROOT = Path(__file__).parent
SHARED_AUDIO = ROOT.parent / "shared" / "test_audio"
SUITES = ROOT / "src" / "transcription_benchmarks" / "matrix" / "suites"
TORCH_SPEC = os.environ.get("TORCH_SPEC", "torch==2.13.0")


def _audio_env() -> dict[str, str]:
    """Point the test-audio search path at ../shared/test_audio when it exists."""
    paths = [
        p for p in os.environ.get("TRANSCRIPTION_BENCHMARKS_AUDIO_PATH", "").split(os.pathsep) if p
    ]
    if SHARED_AUDIO.is_dir():
        paths.append(str(SHARED_AUDIO))
    return {"TRANSCRIPTION_BENCHMARKS_AUDIO_PATH": os.pathsep.join(paths)}


def _install_torch(session: nox.Session) -> None:
    session.install(*shlex.split(TORCH_SPEC))


@nox.session
def tests(session: nox.Session) -> None:
    """CPU test suite with branch coverage (HTML report in htmlcov/)."""
    _install_torch(session)
    session.install("-e", ".[dev]")
    env = _audio_env()
    session.run("coverage", "erase")
    session.run("coverage", "run", "--branch", "-m", "pytest", *session.posargs, env=env)
    session.run("coverage", "html", "-q")
    session.run("coverage", "report", "--skip-empty", "--format=total", silent=False)


@nox.session
def bench(session: nox.Session) -> None:
    """The main job, offline on CPU: tiny.en (embedded) on short.flac, then the CPU default suite
    with its report and thresholds. Options after -- run one `tbench bench` instead."""
    _install_torch(session)
    session.install("-e", ".[all]")
    env = {**_audio_env(), "HF_HUB_OFFLINE": "1"}
    if session.posargs:
        session.run("tbench", "bench", *session.posargs, env=env)
        return
    session.run("tbench", "bench", "Systran/faster-whisper-tiny.en", "--device", "cpu", env=env)
    out = ROOT / "results"
    session.run("tbench", "matrix", "cpu", "--out", str(out / "cpu.jsonl"), env=env)
    session.run("tbench", "report", str(out / "cpu.jsonl"), "--out", str(out / "cpu-report"))
    session.run(
        "tbench",
        "check",
        str(out / "cpu.jsonl"),
        "--thresholds",
        str(SUITES / "cpu_thresholds.toml"),
    )


@nox.session
def gpu_bench(session: nox.Session) -> None:
    """The GPU suite (the original table's rows) with its thresholds; exits 0 without CUDA."""
    session.install("-e", ".[all]")
    has_gpu = session.run(
        "python",
        "-c",
        "from transcription_benchmarks.measure.gpus import nvidia_gpu_count as n; print(n())",
        silent=True,
    )
    if not has_gpu or has_gpu.strip() == "0":
        session.log("no CUDA GPU here (NVML finds no NVIDIA GPU or driver): GPU suite skipped")
        return
    out = ROOT / "results"
    env = _audio_env()
    session.run(
        "tbench", "matrix", "gpu", "--out", str(out / "gpu.jsonl"), *session.posargs, env=env
    )
    session.run("tbench", "report", str(out / "gpu.jsonl"), "--out", str(out / "gpu-report"))
    session.run(
        "tbench",
        "check",
        str(out / "gpu.jsonl"),
        "--thresholds",
        str(SUITES / "gpu_thresholds.toml"),
    )


@nox.session
def lint(session: nox.Session) -> None:
    session.install("ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
