"""The compat probe: stdlib only, survives aborting steps, and reads this project's own env.

Two real reproductions use small PyPI wheels (unpacked once into the compat side cache, skipped
offline) and no torch: ctranslate2 4.5.0's bundled cuDNN loader aborting with the FAQ's
message, and torch 2.5's libcusparse.so.12 bound to CUDA 12.1's libnvJitLink.so.12.
"""

from __future__ import annotations

import ast
import ctypes.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from transcription_benchmarks.compat import probe
from transcription_benchmarks.compat.registry import match
from transcription_benchmarks.compat.scenarios import run_probe, side_install
from transcription_benchmarks.compat.verdict import observed_issues, runtime_facts


def test_probe_imports_only_the_standard_library() -> None:
    tree = ast.parse(Path(probe.__file__).read_text())
    modules = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            modules.add((node.module or "").split(".")[0])
    assert modules - {"__future__"} <= set(sys.stdlib_module_names)


def test_an_aborting_step_is_recorded_not_fatal() -> None:
    record = probe.run_step("boom", "sys.stderr.write('native loader said no\\n'); os.abort()")
    assert record["status"] == "error"
    assert record["returncode"] == -6
    assert "native loader said no" in record["error"] and "signal 6" in record["error"]


def test_step_results_params_and_skips() -> None:
    ok = probe.run_step("echo", "emit({'got': VALUE})", {"VALUE": [1, "a"]})
    assert ok["status"] == "ok" and ok["data"] == {"got": [1, "a"]}
    skipped = probe.run_step("skip", "emit({'skipped': 'why'})")
    assert skipped["status"] == "skipped"
    slow = probe.run_step("slow", "import time; time.sleep(5)", timeout=0.5)
    assert slow["status"] == "error" and "timed out" in slow["error"]


def test_probe_on_this_projects_env() -> None:
    """CPU torch and ctranslate2: the probe names what ctranslate2 would load on a GPU."""
    pytest.importorskip("torch")
    pytest.importorskip("ctranslate2")
    report = run_probe(sys.executable, [])
    steps = {s["name"]: s for s in report["steps"]}
    assert steps["torch_import"]["status"] == "ok"
    assert steps["ct2_import"]["status"] == "ok"
    facts = runtime_facts(report)
    import ctranslate2
    import torch

    assert facts["torch"] == torch.__version__ and facts["torch_cuda"] == torch.version.cuda
    assert facts["ct2"] == ctranslate2.__version__
    assert facts["ct2_cublas"] == "libcublas.so.12"
    assert steps["gpu_transcribe"]["status"] == "skipped"
    observed, unexplained = observed_issues(report)
    assert unexplained == []
    if torch.version.cuda is None and ctypes.util.find_library("cublas") is None:
        # CPU torch brings no cuBLAS at all: on a GPU, ctranslate2 would not find one.
        assert observed == ["cublas12-missing"]


def test_probe_script_runs_standalone_as_json() -> None:
    out = subprocess.run(
        [sys.executable, probe.__file__, "--help"], capture_output=True, text=True, check=True
    )
    assert "--model" in out.stdout


def _side(requirement: str) -> Path:
    try:
        return side_install(requirement)
    except (subprocess.CalledProcessError, FileNotFoundError) as exc:
        pytest.skip(f"cannot fetch {requirement} (offline?): {exc}")


CUDNN_CALL = """
import ctypes, sys
lib = ctypes.CDLL(sys.argv[1])
desc = ctypes.c_void_p()
print(lib.cudnnCreateTensorDescriptor(ctypes.byref(desc)))
"""


@pytest.mark.slow
def test_reproduce_ctranslate2_450_cudnn_ops_load_failure() -> None:
    """ctranslate2 4.5.0's bundled cuDNN 9 dispatcher, asked for a host-only call, aborts with
    the FAQ's exact message when libcudnn_ops.so.9 is not on the search path (~38 MB wheel)."""
    target = _side("ctranslate2==4.5.0")
    (loader,) = (target / "ctranslate2.libs").glob("libcudnn*.so*")
    env = {k: v for k, v in os.environ.items() if k != "LD_LIBRARY_PATH"}
    proc = subprocess.run(
        [sys.executable, "-c", CUDNN_CALL, str(loader)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert proc.returncode == -6  # abort()
    assert (
        "Unable to load any of {libcudnn_ops.so.9.1.0, libcudnn_ops.so.9.1, libcudnn_ops.so.9, "
        "libcudnn_ops.so}" in proc.stdout + proc.stderr
    )
    assert [i.id for i in match(proc.stdout + proc.stderr)] == ["cudnn9-ops-load"]


DLOPEN = """
import ctypes, sys
try:
    ctypes.CDLL(sys.argv[1])
except OSError as exc:
    print(exc)
    sys.exit(1)
"""


@pytest.mark.slow
def test_reproduce_nvjitlink_symbol_and_its_fix() -> None:
    """torch 2.5.1's cuSPARSE (CUDA 12.4) against CUDA 12.1's libnvJitLink.so.12 first on
    LD_LIBRARY_PATH: the FAQ's undefined symbol; with 12.4's nvJitLink first it loads.
    Downloads nvidia-cusparse-cu12 (~200 MB) and two nvJitLink wheels (~20 MB) once."""
    cusparse = _side("nvidia-cusparse-cu12==12.3.1.170") / "nvidia/cusparse/lib/libcusparse.so.12"
    old = _side("nvidia-nvjitlink-cu12==12.1.105") / "nvidia/nvjitlink/lib"
    new = _side("nvidia-nvjitlink-cu12==12.4.127") / "nvidia/nvjitlink/lib"

    def dlopen(*path: Path) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "LD_LIBRARY_PATH": os.pathsep.join(map(str, path))}
        return subprocess.run(
            [sys.executable, "-c", DLOPEN, str(cusparse)],
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )

    broken = dlopen(old)
    assert broken.returncode == 1
    assert (
        "libcusparse.so.12: undefined symbol: __nvJitLinkComplete_12_4, version libnvJitLink.so.12"
        in (broken.stdout)
    )
    assert [i.id for i in match(broken.stdout)] == ["nvjitlink-symbol"]
    fixed = dlopen(new, old)
    assert fixed.returncode == 0, fixed.stdout
