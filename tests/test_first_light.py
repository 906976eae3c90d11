"""benchmarks/device_first_light.py: the GPU first-light run, rehearsed on CPU (--cpu), and its
dry run (sizes, imports, requirements), which CI runs in `nox -s lint`."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "device_first_light.py"
PARTS = ("install", "nvml", "doctor", "audio", "build", "matrix", "memory", "energy")
PARTS += ("determinism", "pytest")
GPU_ONLY = ("nvml", "memory", "energy", "pytest")


def _first_light():
    spec = importlib.util.spec_from_file_location("device_first_light", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def _run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.slow
def test_cpu_mode_runs_every_part_and_writes_the_tables(tmp_path):
    out = tmp_path / "out"
    proc = _run("--cpu", "--run-dir", str(tmp_path / "run"), "--out", str(out), timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    for name in ("first_light.md", "first_light.json", "rows.jsonl", "matrix.toml", "logs.txt"):
        assert (out / name).is_file(), name
    assert (out / "pytest-junit.xml").is_file()
    assert len(list(out.iterdir())) <= 8  # what the device tool brings back
    parts = json.loads((out / "first_light.json").read_text())["parts"]
    assert tuple(parts) == PARTS
    for name in ("doctor", "audio", "build", "matrix", "determinism"):
        assert parts[name]["status"] == "ok", (name, parts[name].get("reason"))
    assert parts["install"]["status"] in ("ok", "skipped")  # ok where the wheels were fetched
    for name in GPU_ONLY:  # recorded, skipped, and saying why
        assert parts[name]["status"] == "skipped", (name, parts[name])
        assert parts[name]["reason"], name
    assert "no GPU" in parts["memory"]["reason"] and "no GPU" in parts["energy"]["reason"]
    assert parts["pytest"]["data"]["counts"]["skipped"] >= 1
    assert parts["pytest"]["data"]["counts"]["passed"] == 0

    rows = [json.loads(line) for line in (out / "rows.jsonl").read_text().splitlines()]
    engines = sorted(row["cell"]["args"]["backend"] for row in rows)
    assert engines == ["openai-whisper", "transformers"]
    assert all(row["status"] == "ok" for row in rows)
    assert all(row["result"]["model"]["synthetic"] for row in rows)
    assert all(row["result"]["memory"]["peak_gpu_mb"] is None for row in rows)  # null on CPU
    audio = parts["audio"]["data"]
    assert audio["windows"] >= audio["largest_batch"]
    assert parts["determinism"]["data"]["deterministic"] is True
    # --cpu folds gpu.toml's three transformers rows into one shrunk cell, and says so
    cells = parts["matrix"]["data"]["cells"]
    assert len(cells[0]["suite_rows"]) == 3

    markdown = (out / "first_light.md").read_text()
    for title in (
        "a. GPU suite rows",
        "b. NVML",
        "c. Joules",
        "d. Determinism",
        "e. tbench doctor",
    ):
        assert title in markdown
    assert "f. pytest -m gpu" in markdown
    assert "| part | what | status |" in markdown


def test_dry_run_passes_and_fails_when_a_needed_module_is_not_there(tmp_path):
    proc = _run("--dry-run")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "dry run: ok" in proc.stdout
    assert "total" in proc.stdout and "MiB" in proc.stdout
    assert "device call: run(command=" in proc.stdout

    image = (REPO / "benchmarks" / "device_image_packages.txt").read_text().splitlines()
    assert "numpy" in image
    without = tmp_path / "image.txt"
    without.write_text("\n".join(line for line in image if line != "numpy") + "\n")
    proc = _run("--dry-run", "--image-packages", str(without))
    assert proc.returncode == 1
    assert "import numpy" in proc.stdout and "neither carried nor in the image" in proc.stdout


def test_dry_run_fails_above_the_size_limit(tmp_path):
    carry = tmp_path / "carry"
    (carry / "wheels").mkdir(parents=True)
    with (carry / "wheels" / "inflated-1.0-py3-none-any.whl").open("wb") as fh:
        fh.truncate(61 * 1024 * 1024)  # sparse: 61 MiB on paper, nothing on disk
    proc = _run("--dry-run", "--carry-dir", str(carry))
    assert proc.returncode == 1, proc.stdout
    assert "EXTRA" in proc.stdout
    assert "is above 60 MiB" in proc.stdout


def test_dry_run_fails_when_a_carried_wheel_needs_what_is_not_there(tmp_path):
    text = (REPO / "benchmarks" / "device_first_light.carry.toml").read_text()
    carry_file = tmp_path / "carry.toml"
    carry_file.write_text(
        text.replace(
            'requires = ["click", "rapidfuzz"]', 'requires = ["click", "rapidfuzz", "nope"]'
        )
    )
    proc = _run("--dry-run", "--carry-file", str(carry_file))
    assert proc.returncode == 1
    assert "jiwer requires nope" in proc.stdout


def test_the_import_scan_reads_guards_and_type_checking(tmp_path):
    first_light = _first_light()
    source = tmp_path / "mod.py"
    source.write_text(
        "from typing import TYPE_CHECKING\n"
        "import numpy\n"
        "if TYPE_CHECKING:\n"
        "    import boto3\n"
        "try:\n"
        "    import ctranslate2\n"
        "except ImportError:\n"
        "    ctranslate2 = None\n"
        "def later():\n"
        "    from .sibling import thing\n"
        "    import torch\n"
    )
    sites = {s.name: s for s in first_light.import_sites(source, "pkg.mod", False)}
    assert "boto3" not in sites
    assert sites["ctranslate2"].guarded and not sites["numpy"].guarded
    assert sites["torch"].function == "later" and sites["numpy"].function is None
    assert "pkg.sibling.thing" in sites  # relative imports made absolute


def test_rows_come_from_gpu_toml():
    first_light = _first_light()
    cells, left_out = first_light.matrix_cells(first_light.GPU, "tiled.flac")
    models = [(c["model"], c["backend"]) for c in cells]
    assert models == [
        ("synthetic:whisper-large-v3", "transformers"),
        ("synthetic:distil-large-v3", "transformers"),
        ("synthetic:whisper-large-v3-turbo", "transformers"),
        ("synthetic:whisper-large-v3", "openai-whisper"),
    ]
    assert all(c["batch_size"] == 24 and c["dtype"] == "fp16" for c in cells[:3])
    assert {r["label"] for r in left_out} == {"fp16, batch=24", "fp16, batch=None, SDPA"}
    toml = first_light.matrix_toml(cells, "cuda")
    import tomllib

    from transcription_benchmarks.matrix.spec import parse_matrix

    assert len(parse_matrix(tomllib.loads(toml)).cells) == 4


def _gpu_row(model: str, runs_s: list[float], runs_j: list[float], nvml: float) -> dict:
    memory = {"peak_gpu_mb": nvml, "baseline_gpu_mb": 0.0, "gpu_method": "process"}
    memory |= {"torch_max_allocated_mb": 6000.0, "torch_max_reserved_mb": 7000.0}
    result = {"audio_duration_s": 720.0, "timing": {"runs_s": runs_s, "runs_j": runs_j}}
    result["memory"] = memory
    cell = {"model": model, "args": {"backend": "transformers"}, "label": "fp16"}
    return {"status": "ok", "cell": cell, "ran_model": model, "result": result}


def test_memory_and_energy_checks_on_gpu_shaped_rows(tmp_path):
    """The GPU-only checks, on rows shaped as a GPU writes them: NVML >= torch allocated and
    0 < J < limit x s pass; a peak under torch's count and joules above the limit fail."""
    first_light = _first_light()
    run = tmp_path / "run"
    (run / "parts").mkdir(parents=True)
    (run / "parts" / "nvml.json").write_text(json.dumps({"data": {"power_limit_w": 700.0}}))
    ctx = first_light.Ctx(run, first_light.GPU, 30.0, 0.0)

    good = _gpu_row("synthetic:whisper-large-v3", [2.0, 2.2], [900.0, 1000.0], 7600.0)
    (run / "rows.jsonl").write_text(json.dumps(good) + "\n")
    memory, energy = first_light.part_memory(ctx), first_light.part_energy(ctx)
    assert memory["status"] == "ok", memory
    assert memory["data"][0]["nvml_minus_allocated_mib"] == 1600.0
    assert memory["data"][0]["context_and_other_mib"] == 600.0  # NVML - reserved
    assert energy["status"] == "ok", energy
    assert energy["data"][0]["mean_w"] == [450.0, 454.5]

    bad = _gpu_row("synthetic:distil-large-v3", [2.0], [1500.0], 5000.0)  # 750 W > 700 W
    (run / "rows.jsonl").write_text(json.dumps(good) + "\n" + json.dumps(bad) + "\n")
    memory, energy = first_light.part_memory(ctx), first_light.part_energy(ctx)
    assert (
        memory["status"] == "failed" and "NVML peak 5000 < torch allocated 6000" in memory["reason"]
    )
    assert energy["status"] == "failed" and "distil-large-v3" in energy["reason"]


def test_a_part_past_its_limit_is_killed_with_everything_it_started(tmp_path):
    """`tbench doctor` probes in subprocesses for ~10 s here; with a 2 s limit the part is
    recorded as a timeout and no process of it survives (its own process group is killed)."""
    first_light = _first_light()
    run = tmp_path / "run"
    env = first_light.child_env(run, cpu=True)
    part = next(p for p in first_light.PARTS if p.name == "doctor")
    record = first_light.run_part(part, 2.0, run, True, env)
    assert record["status"] == "timeout" and record["limit_s"] == 2
    assert record["wall_s"] < 15
    survivors = []  # every process of the part carries the run dir in its environment
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if str(run).encode() in (proc / "environ").read_bytes():
                survivors.append((proc / "cmdline").read_bytes().replace(b"\0", b" ")[:200])
        except OSError:
            continue
    assert not survivors
