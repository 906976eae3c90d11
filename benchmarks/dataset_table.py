"""The generated dataset through every installed engine on the same tiny.en weights, on CPU,
scored like the Open ASR Leaderboard: corpus WER, RTFx = audio seconds / transcription seconds,
peak RSS. faster-whisper and transformers also batched across utterances (the figures the
leaderboard's sequential faster-whisper runner lacks).

Each run is a dataset cell in its own process (so the peak RSS is that run's own); the rows go to
a JSONL file that `tbench report` turns into report.md and report.html.

    python benchmarks/dataset_table.py [--dataset generated:100] [--batch-size 8] [--out F]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from transcription_benchmarks.backends.registry import backend_class, installed_backends
from transcription_benchmarks.matrix.rows import Cell
from transcription_benchmarks.matrix.runner import run_cell
from transcription_benchmarks.models import PACKAGED_ID
from transcription_benchmarks.report.datasets import dataset_table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="generated:100")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--out", type=Path, default=Path("results/datasets.jsonl"))
    options = parser.parse_args()
    options.out.parent.mkdir(parents=True, exist_ok=True)
    results = []
    for engine in installed_backends(PACKAGED_ID):
        sizes = [None, options.batch_size] if backend_class(engine).supports_batching else [None]
        for size in sizes:
            args = {"backend": engine, "device": "cpu", "beam_size": 1, "temperature": 0.0}
            if size is not None:
                args["batch_size"] = size
            row = run_cell("datasets", Cell(model=PACKAGED_ID, args=args, dataset=options.dataset))
            print(f"{engine} batch {size}: {row.status} {row.reason or ''}", flush=True)
            with options.out.open("a", encoding="utf-8") as f:
                f.write(row.model_dump_json() + "\n")
            if row.dataset_result is not None:
                results.append(row.dataset_result)
    print()
    print(dataset_table(results))
    for result in results:
        print(result.stats_line(), f"(kaldialign WER {result.score.kaldialign_wer:.2%})")


if __name__ == "__main__":
    main()
