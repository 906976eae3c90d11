"""Full-size synthetic NeMo models on CPU beside synthetic whisper-large-v3, on one 30 s file.

canary-1b and parakeet-tdt-0.6b-v2 (NeMo, random weights, fixed decoding: see
models/synthetic_nemo.py) next to whisper-large-v3 on faster-whisper (int8 and float32) and
transformers (fp32), each a matrix cell in its own process, so that the peak RSS is that model's
own. The file is the first 30 s of 1min.flac (the leaderboard's short-form regime: one window).
For the NeMo models the table adds the build time, the `.nemo` size and the parameter count.

NeMo lives in an environment of its own (`nox -s nemo`), so run the script once in each; the
rows go to one JSONL file, each run adds the rows its environment can run and prints the table
of everything in the file:

    .nox/nemo/bin/python benchmarks/nemo_synthetic.py
    .venv/bin/python benchmarks/nemo_synthetic.py
"""

from __future__ import annotations

import argparse
import importlib.util
import json
from pathlib import Path

import numpy as np

from transcription_benchmarks.audio import decode_audio, find_test_audio
from transcription_benchmarks.audio.generate import write_flac
from transcription_benchmarks.backends.registry import backend_class
from transcription_benchmarks.matrix.rows import Cell, read_rows
from transcription_benchmarks.matrix.runner import run_matrix
from transcription_benchmarks.matrix.spec import Matrix
from transcription_benchmarks.models.cache import cache_root
from transcription_benchmarks.report.table import markdown_header

ROWS = (
    ("synthetic:canary-1b", "nemo", {"dtype": "fp32"}, "fp32"),
    ("synthetic:parakeet-tdt-0.6b-v2", "nemo", {"dtype": "fp32"}, "fp32"),
    ("synthetic:whisper-large-v3", "faster-whisper", {"compute_type": "int8"}, "int8"),
    ("synthetic:whisper-large-v3", "faster-whisper", {"compute_type": "float32"}, "float32"),
    ("synthetic:whisper-large-v3", "transformers", {"dtype": "fp32"}, "fp32"),
)
NEEDS = {"nemo": ("nemo",), "faster-whisper": ("ctranslate2",), "transformers": ("ctranslate2",)}
"""What a row needs beyond its engine: synthetic Whisper models are built with CTranslate2's
converter (the synthetic extra), which NeMo's environment lacks."""


def thirty_seconds() -> Path:
    path = cache_root() / "benchmarks" / "1min-first-30s.flac"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        samples = decode_audio(find_test_audio("1min.flac"))[: 30 * 16000]
        write_flac(path, np.round(np.clip(samples, -1, 1) * 32767).astype(np.int16))
    return path


def cells(test_file: Path, threads: int, warmup: int, repeats: int) -> list[Cell]:
    found = []
    for model, backend, options, label in ROWS:
        args = {
            "backend": backend,
            "test_file": str(test_file),
            "device": "cpu",
            "warmup": warmup,
            "repeats": repeats,
            "beam_size": 1,
            "cpu_threads": threads,
            **options,
        }
        found.append(Cell(model=model, args=args, label=f"{backend} {label}", timeout_s=3600))
    return found


def nemo_builds() -> dict[str, dict]:
    """Build time, size and parameters of the synthetic NeMo models (built here if missing)."""
    from transcription_benchmarks.backends.nemo import quiet_nemo
    from transcription_benchmarks.models.synthetic_nemo import build_synthetic_nemo

    builds = {}
    for model, backend, _, _ in ROWS:
        if backend == "nemo":
            with quiet_nemo():
                built = build_synthetic_nemo(model)
            builds[model] = {
                "build_s": built.build_s,
                "size_gb": built.size_bytes / 1e9,
                "parameters_m": built.parameters / 1e6,
            }
            print(f"{model}: {built.parameters / 1e6:.1f} M parameters, built in "
                  f"{built.build_s:.0f} s, {built.size_bytes / 1e9:.2f} GB", flush=True)  # fmt: skip
    return builds


def table(out: Path, builds: dict[str, dict]) -> str:
    latest = {}
    for row in read_rows(out):
        latest[row.cell_id] = row
    header = ["Model", "Engine", "Speed (x real time)", "s per file", "Peak RSS (GiB)",
              "Load (s)", "Build (s)", ".nemo (GB)", "Params (M)", "Status"]  # fmt: skip
    lines = markdown_header(header)
    for row in latest.values():
        build = builds.get(row.cell.model, {})
        cells_ = [row.cell.model.removeprefix("synthetic:"), row.cell.label or "", "-", "-", "-",
                  "-", f"{build['build_s']:.0f}" if build else "-",
                  f"{build['size_gb']:.2f}" if build else "-",
                  f"{build['parameters_m']:.1f}" if build else "-", row.status]  # fmt: skip
        if row.result is not None:
            result = row.result
            median = result.timing.median
            cells_[2] = f"{result.audio_duration_s / median:.2f}"
            cells_[3] = f"{median:.1f}"
            cells_[4] = f"{result.memory.peak_rss_mb / 1024:.1f}"
            cells_[5] = f"{result.load_time_s:.1f}"
        elif row.reason:
            cells_[-1] = f"{row.status}: {row.reason[:60]}"
        lines.append("| " + " | ".join(cells_) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("results/nemo-synthetic.jsonl"))
    parser.add_argument("--cpu-threads", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=2)
    options = parser.parse_args()
    test_file = thirty_seconds()
    runnable = [
        c
        for c in cells(test_file, options.cpu_threads, options.warmup, options.repeats)
        if backend_class(c.args["backend"]).missing_packages() is None
        and all(importlib.util.find_spec(m) for m in NEEDS[c.args["backend"]])
    ]
    builds_file = options.out.with_suffix(".builds.json")
    builds = json.loads(builds_file.read_text()) if builds_file.is_file() else {}
    if any(c.args["backend"] == "nemo" for c in runnable):
        builds = nemo_builds()
        builds_file.parent.mkdir(parents=True, exist_ok=True)
        builds_file.write_text(json.dumps(builds, indent=2))
    options.out.parent.mkdir(parents=True, exist_ok=True)
    run_matrix(Matrix(name="nemo-synthetic", cells=runnable), options.out, progress=False)
    print(table(options.out, builds))


if __name__ == "__main__":
    main()
