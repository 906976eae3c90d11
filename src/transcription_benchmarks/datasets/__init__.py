"""Many-utterance runs: sources (folder, NeMo manifest, Hugging Face datasets), the project's
generated dataset, and run_dataset(), scored like the Open ASR Leaderboard."""

from transcription_benchmarks.datasets.result import DatasetResult, read_dataset_results
from transcription_benchmarks.datasets.run import run_dataset
from transcription_benchmarks.datasets.sources import (
    Dataset,
    DatasetError,
    Utterance,
    folder_dataset,
    hf_dataset,
    manifest_dataset,
    open_dataset,
)

__all__ = [
    "Dataset",
    "DatasetError",
    "DatasetResult",
    "Utterance",
    "folder_dataset",
    "hf_dataset",
    "manifest_dataset",
    "open_dataset",
    "read_dataset_results",
    "run_dataset",
]
