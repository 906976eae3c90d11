"""What a Python environment's CUDA stack can load: torch, ctranslate2, cuBLAS, cuDNN, a GPU run.

Standard library only, and nothing from this package: the compat matrix runs this file with
each target env's own python (`python probe.py > report.json`), and those envs hold only torch
and ctranslate2. Every step runs in a child interpreter of that python because a failed native
load can abort the process (cuDNN's dispatcher calls abort()); the step then reports the exit
status and the message instead of taking the probe down with it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from typing import Any

RESULT_MARKER = "PROBE-RESULT "
PRELOAD_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "preload.py")
ERROR_TAIL_CHARS = 2000

# Each step's code runs as `python -c`; it prints one RESULT_MARKER line with a JSON object.
# `emit` keeps the marker out of every step body.
_PRELUDE = f"""
import json, os, sys
def emit(obj):
    sys.stdout.write({RESULT_MARKER!r} + json.dumps(obj) + "\\n")
    sys.stdout.flush()
"""

TORCH_STEP = """
import torch
info = {"version": torch.__version__, "cuda": torch.version.cuda}
try:
    info["cudnn"] = torch.backends.cudnn.version()
except Exception as exc:  # a CUDA build whose cuDNN cannot load
    info["cudnn_error"] = repr(exc)
info["cuda_available"] = torch.cuda.is_available()
emit(info)
"""

# The sonames come from the library's bytes: the DT_NEEDED entries and the names its
# dlopen() calls use are both plain strings in the ELF file.
CT2_STEP = """
import pathlib, re
import ctranslate2
pkg = pathlib.Path(ctranslate2.__file__).parent
files = sorted(pkg.parent.joinpath("ctranslate2.libs").glob("*.so*")) + sorted(pkg.glob("*.so*"))
main = [f for f in files if f.name.startswith("libctranslate2")]
pattern = re.compile(rb"lib(?:cublas|cudnn|cuda)\\.so\\.[0-9]+")
needs = sorted({m.decode() for f in main for m in pattern.findall(f.read_bytes())})
cudnn = [n for n in needs if n.startswith("libcudnn.so.")]
major = int(cudnn[0].rsplit(".", 1)[1]) if cudnn else None
# cuDNN's dispatcher is bundled; what must resolve is its ops library, named per major.
ops = {8: "libcudnn_ops_infer.so.8"}.get(major, f"libcudnn_ops.so.{major}") if major else None
loaders = [str(f) for f in files if f.name.startswith("libcudnn")]
info = {
    "version": ctranslate2.__version__,
    "needs": needs,
    "cublas_soname": next((n for n in needs if n.startswith("libcublas.so.")), None),
    "cudnn_major": major,
    "cudnn_ops_soname": ops,
    "cudnn_loader": loaders[0] if loaders else None,
}
try:
    info["cuda_devices"] = ctranslate2.get_cuda_device_count()
except Exception as exc:
    info["cuda_devices"] = 0
    info["cuda_devices_error"] = repr(exc)
emit(info)
"""

# dlopen by soname, as ctranslate2 does, then report which file the loader chose. PRELOAD, when
# set, is preload.py's path: its preload runs first, as the faster-whisper backend runs it.
RESOLVE_STEP = """
import ctypes
if WITH_TORCH:
    import torch
if PRELOAD:
    import importlib.util
    spec = importlib.util.spec_from_file_location("tb_preload", PRELOAD)
    preload = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(preload)
    preload.preload_pip_cuda_libraries(tuple(SONAMES))
out = {}
for name in SONAMES:
    try:
        ctypes.CDLL(name)
    except OSError as exc:
        out[name] = {"found": False, "error": str(exc)}
        continue
    with open("/proc/self/maps") as maps:
        paths = {line.split()[-1] for line in maps if name in line}
    out[name] = {"found": True, "path": sorted(paths)[0] if paths else None}
emit(out)
"""

# Host-only cuDNN calls through the dispatcher ctranslate2 bundles: creating a tensor
# descriptor needs the ops library but no GPU, so the load failure shows on any machine.
CUDNN_CALL_STEP = """
import ctypes, glob
if WITH_TORCH:
    import torch
import ctranslate2
libs = os.path.join(os.path.dirname(os.path.dirname(ctranslate2.__file__)), "ctranslate2.libs")
loaders = sorted(glob.glob(os.path.join(libs, "libcudnn*.so*")))
if not loaders:
    emit({"skipped": "this ctranslate2 bundles no cuDNN loader (it uses no cuDNN)"})
    sys.exit(0)
lib = ctypes.CDLL(loaders[0])
# cudnnCreateTensorDescriptor first: it lives in the ops library, the one users see missing.
desc = ctypes.c_void_p()
status = lib.cudnnCreateTensorDescriptor(ctypes.byref(desc))
if status == 0:
    lib.cudnnDestroyTensorDescriptor(desc)
lib.cudnnGetVersion.restype = ctypes.c_size_t
version = lib.cudnnGetVersion()
emit({"loader": loaders[0], "cudnn_version": version, "create_tensor_descriptor_status": status})
sys.exit(0 if status == 0 else 1)
"""

GPU_STEP = """
from faster_whisper import WhisperModel
model = WhisperModel(MODEL, device="cuda", compute_type="float16")
segments, info = model.transcribe(AUDIO, beam_size=1)
emit({"text": " ".join(s.text.strip() for s in segments)[:200], "language": info.language})
"""


def run_step(
    name: str, body: str, params: dict[str, Any] | None = None, timeout: float = 300
) -> dict[str, Any]:
    """Run one step in a child of this interpreter; never raises for the step's own failure."""
    assignments = "".join(f"{key} = {value!r}\n" for key, value in (params or {}).items())
    code = _PRELUDE + assignments + body
    record: dict[str, Any] = {"name": name, "status": "ok", "returncode": 0, "data": None}
    try:
        proc = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        record.update(status="error", returncode=None, error=f"timed out after {exc.timeout} s")
        return record
    record["returncode"] = proc.returncode
    noise = []
    for line in proc.stdout.splitlines():
        if line.startswith(RESULT_MARKER):
            record["data"] = json.loads(line[len(RESULT_MARKER) :])
        else:
            noise.append(line)
    if isinstance(record["data"], dict) and "skipped" in record["data"]:
        record["status"] = "skipped"
    if proc.returncode != 0:
        record["status"] = "error"
        # stderr holds the traceback or the loader's message; stdout may hold C-level prints.
        text = "\n".join([*noise, proc.stderr]).strip()
        if proc.returncode < 0:
            text += f"\n(killed by signal {-proc.returncode})"
        record["error"] = text[-ERROR_TAIL_CHARS:]
    return record


def _skipped(name: str, reason: str) -> dict[str, Any]:
    return {"name": name, "status": "skipped", "returncode": None, "data": {"skipped": reason}}


def probe(model: str | None = None, audio: str | None = None) -> dict[str, Any]:
    """All steps, in order; later steps are skipped with a reason when a prerequisite failed."""
    steps = [run_step("torch_import", TORCH_STEP)]
    torch_ok = steps[0]["status"] == "ok"
    ct2 = run_step("ct2_import", CT2_STEP)
    steps.append(ct2)
    ct2_ok = ct2["status"] == "ok"
    info = ct2["data"] or {}
    wanted = [info.get("cublas_soname"), info.get("cudnn_ops_soname"), "libcuda.so.1"]
    sonames = [name for name in wanted if name] if ct2_ok else []
    for with_torch in (False, True):
        suffix = "_after_torch" if with_torch else ""
        if with_torch and not torch_ok:
            steps.append(_skipped(f"resolve{suffix}", "torch import failed"))
            steps.append(_skipped(f"cudnn_call{suffix}", "torch import failed"))
            continue
        if not ct2_ok:
            steps.append(_skipped(f"resolve{suffix}", "ctranslate2 import failed"))
            steps.append(_skipped(f"cudnn_call{suffix}", "ctranslate2 import failed"))
            continue
        params = {"WITH_TORCH": with_torch, "SONAMES": sonames, "PRELOAD": None}
        steps.append(run_step(f"resolve{suffix}", RESOLVE_STEP, params))
        steps.append(run_step(f"cudnn_call{suffix}", CUDNN_CALL_STEP, {"WITH_TORCH": with_torch}))
    if ct2_ok:  # what this project's faster-whisper backend sees: the preload, no torch
        params = {"WITH_TORCH": False, "SONAMES": sonames, "PRELOAD": str(PRELOAD_FILE)}
        steps.append(run_step("resolve_after_preload", RESOLVE_STEP, params))
    else:
        steps.append(_skipped("resolve_after_preload", "ctranslate2 import failed"))
    if not ct2_ok or not info.get("cuda_devices"):
        steps.append(_skipped("gpu_transcribe", "no CUDA device visible to ctranslate2"))
    elif not model or not audio:
        steps.append(_skipped("gpu_transcribe", "no model or audio given"))
    else:
        params = {"MODEL": model, "AUDIO": audio}
        steps.append(run_step("gpu_transcribe", GPU_STEP, params, timeout=600))
    return {
        "python": sys.executable,
        "ld_library_path": os.environ.get("LD_LIBRARY_PATH", ""),
        "steps": steps,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="faster-whisper model dir for the GPU step")
    parser.add_argument("--audio", help="audio file for the GPU step")
    args = parser.parse_args(argv)
    json.dump(probe(args.model, args.audio), sys.stdout, indent=1)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
