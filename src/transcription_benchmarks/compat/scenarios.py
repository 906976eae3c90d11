"""Run the probe in one cell's env under each scenario's library path and record what it saw.

Runs in the orchestrating interpreter (the project's env), never in the cell env: the cell env
holds only torch and ctranslate2, and is reached through its python and the stdlib-only probe.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from transcription_benchmarks.compat import probe as probe_module
from transcription_benchmarks.compat.matrix import (
    CompatMatrix,
    Scenario,
    StackPair,
    default_matrix,
    select,
)
from transcription_benchmarks.compat.verdict import observed_issues

PROBE_SCRIPT = Path(probe_module.__file__)
DEFAULT_SIDE_DIR = Path.home() / ".cache" / "transcription-benchmarks" / "compat"


class ScenarioRun(BaseModel):
    scenario: str
    ld_library_path: list[str]
    python_path: list[str] = []
    seconds: float
    observed: list[str]
    unexplained: list[str]
    report: dict[str, Any]


class PairEvidence(BaseModel):
    """One cell's evidence, written as results/compat/<cell>.json for the table to read."""

    cell: str
    torch: str
    ctranslate2: str
    index: str
    python: str
    site: str
    build_seconds: float | None = None
    finished_at: str
    runs: list[ScenarioRun]


def uv_command() -> list[str]:
    """uv as a module of this interpreter (the dev extra installs it), else from PATH."""
    if importlib.util.find_spec("uv") is not None:
        return [sys.executable, "-m", "uv"]
    found = shutil.which("uv")
    if found is None:
        raise FileNotFoundError("uv is needed for the compat side installs: pip install uv")
    return [found]


def side_install(requirement: str, side_dir: Path = DEFAULT_SIDE_DIR) -> Path:
    """`requirement` unpacked into its own --target folder (once): libraries to put on a
    library path without installing them into any env."""
    target = side_dir / requirement.replace("==", "-")
    marker = target / ".complete"
    if not marker.exists():
        shutil.rmtree(target, ignore_errors=True)
        subprocess.run(
            [*uv_command(), "pip", "install", "--quiet", "--no-deps", "--python", sys.executable,
             "--target", str(target), requirement],
            check=True,
        )  # fmt: skip
        marker.touch()
    return target


def old_nvjitlink_lib(matrix: CompatMatrix, side_dir: Path = DEFAULT_SIDE_DIR) -> Path:
    return side_install(matrix.old_nvjitlink, side_dir) / "nvidia" / "nvjitlink" / "lib"


def site_packages(python: str) -> str:
    code = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    return subprocess.run(
        [python, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()


def run_probe(
    python: str,
    ld_library_path: list[str],
    model: str | None = None,
    audio: str | None = None,
    python_path: list[str] | None = None,
) -> dict[str, Any]:
    """The probe with `python`, LD_LIBRARY_PATH exactly `ld_library_path` and PYTHONPATH
    exactly `python_path` (each unset when empty)."""
    env = {k: v for k, v in os.environ.items() if k not in ("LD_LIBRARY_PATH", "PYTHONPATH")}
    if ld_library_path:
        env["LD_LIBRARY_PATH"] = os.pathsep.join(ld_library_path)
    if python_path:
        env["PYTHONPATH"] = os.pathsep.join(python_path)
    cmd = [python, str(PROBE_SCRIPT)]
    if model and audio:
        cmd += ["--model", model, "--audio", audio]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"the probe itself failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return json.loads(proc.stdout)


def gpu_model_and_audio() -> tuple[str | None, str | None]:
    """The packaged tiny.en and this project's 1-min clip, only when a GPU exists."""
    from transcription_benchmarks.measure.gpus import nvidia_gpu_count

    if nvidia_gpu_count() == 0:
        return None, None
    try:
        from transcription_benchmarks.audio.catalog import find_test_audio
        from transcription_benchmarks.models.resolve import resolve

        model = resolve("Systran/faster-whisper-tiny.en", "ctranslate2").path
        audio = find_test_audio("generated-1min-seed0-piper.flac")
    except Exception:  # no packaged model or audio here: the probe skips its GPU step
        return None, None
    return str(model), str(audio)


def probe_pair(
    matrix: CompatMatrix,
    cell: StackPair,
    python: str,
    scenarios: tuple[Scenario, ...],
    side_dir: Path = DEFAULT_SIDE_DIR,
    index: str = "pypi",
    build_seconds: float | None = None,
) -> PairEvidence:
    site = site_packages(python)
    old = str(old_nvjitlink_lib(matrix, side_dir))
    cublas12 = ""
    if any(scenario.python_path for scenario in scenarios):
        cublas12 = str(side_install(matrix.cublas12, side_dir))
    model, audio = gpu_model_and_audio()
    runs = []
    for scenario in scenarios:
        path = scenario.library_path(site, old)
        start = time.perf_counter()
        report = run_probe(python, path, model, audio, scenario.module_path(cublas12))
        observed, unexplained = observed_issues(report, harness=scenario.observe == "harness")
        runs.append(
            ScenarioRun(
                scenario=scenario.id,
                ld_library_path=path,
                python_path=scenario.module_path(cublas12),
                seconds=round(time.perf_counter() - start, 1),
                observed=observed,
                unexplained=unexplained,
                report=report,
            )
        )
    return PairEvidence(
        cell=cell.id,
        torch=cell.torch,
        ctranslate2=cell.ctranslate2,
        index=index,
        python=python,
        site=site,
        build_seconds=build_seconds,
        finished_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        runs=runs,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m transcription_benchmarks.compat.scenarios")
    parser.add_argument("--cell", required=True)
    parser.add_argument("--python", required=True, help="the cell env's interpreter")
    parser.add_argument("--out", type=Path, required=True, help="results folder")
    parser.add_argument("--side-dir", type=Path, default=DEFAULT_SIDE_DIR)
    parser.add_argument("--build-seconds", type=float)
    parser.add_argument("args", nargs="*", help="scenario=ID and index=... as for the session")
    ns = parser.parse_args(argv)
    matrix = default_matrix()
    cell = matrix.cell(ns.cell)
    selection = select(matrix, [cell.id, *ns.args])
    result = probe_pair(
        matrix, cell, ns.python, selection.scenarios, ns.side_dir, selection.index, ns.build_seconds
    )
    ns.out.mkdir(parents=True, exist_ok=True)
    (ns.out / f"{cell.id}.json").write_text(result.model_dump_json(indent=1))
    for run in result.runs:
        seen = ", ".join(run.observed + run.unexplained) or "ok"
        print(f"{cell.id} / {run.scenario}: {seen}  ({run.seconds} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
