"""Many-utterance sources behind one interface: a folder of audio files with transcripts beside
them, a JSONL manifest in NeMo's shape, and a Hugging Face `datasets` dataset (saved to disk, or
streamed from the hub).

A source yields `Utterance`s in its own order: an id, where the audio comes from (a file, or the
bytes an HF dataset holds) and the reference text. Audio is decoded by the project's decoder
(PyAV), the same one bench() and the endpoint use, never by `datasets`' own audio feature. Limits
on the number of utterances and on their total duration stop reading early, so a hub dataset is
streamed only as far as needed. Every problem names the utterance: a missing or unreadable audio
file, a missing transcript.
"""

from __future__ import annotations

import json
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from transcription_benchmarks.audio.decode import SAMPLE_RATE, decode_audio
from transcription_benchmarks.errors import AudioError, BenchError

AUDIO_SUFFIXES = (".flac", ".wav", ".mp3", ".ogg", ".opus", ".m4a", ".webm")
TRANSCRIPT_SUFFIXES = (".txt", ".lab")
TEXT_COLUMNS = ("text", "sentence", "transcript", "transcription", "normalized_text")
"""Where an HF dataset keeps the reference, first match wins (the ESB sets use `text`)."""
ID_COLUMNS = ("id", "audio_id", "segment_id", "path")


class DatasetError(BenchError):
    """A dataset that cannot be read, or an utterance in it that is broken (named)."""


@dataclass(frozen=True)
class Utterance:
    id: str
    reference: str
    path: Path | None = None
    """The audio file, for file-based sources."""
    data: bytes | None = None
    """The encoded audio, for sources that hold it (an HF dataset's audio bytes)."""

    def samples(self) -> np.ndarray:
        """16 kHz mono float32, by the project's decoder; a DatasetError names the utterance."""
        try:
            if self.path is not None:
                if not self.path.is_file():
                    raise DatasetError(f"utterance {self.id!r}: audio file {self.path} is missing")
                return decode_audio(self.path)
            if self.data is None:
                raise DatasetError(f"utterance {self.id!r} has no audio")
            with tempfile.NamedTemporaryFile(suffix=".audio") as tmp:
                tmp.write(self.data)
                tmp.flush()
                return decode_audio(tmp.name)
        except AudioError as exc:
            raise DatasetError(f"utterance {self.id!r}: unreadable audio: {exc}") from exc


@dataclass(frozen=True)
class DecodedUtterance:
    utterance: Utterance
    samples: np.ndarray

    @property
    def duration_s(self) -> float:
        return len(self.samples) / SAMPLE_RATE


@dataclass(frozen=True)
class Dataset:
    """A source, named, with how to read it."""

    name: str
    kind: str
    """folder, manifest, hf-disk or hf-hub."""
    location: str
    read: Callable[[], Iterator[Utterance]]
    """A fresh pass over the utterances, lazily (a hub dataset streams as it is read)."""

    def decoded(
        self, limit: int | None = None, max_duration_s: float | None = None
    ) -> list[DecodedUtterance]:
        """Read and decode up to `limit` utterances, stopping before the total duration passes
        `max_duration_s` (at least one utterance is kept)."""
        found: list[DecodedUtterance] = []
        total = 0.0
        for utterance in self.read():
            if limit is not None and len(found) >= limit:
                break
            decoded = DecodedUtterance(utterance, utterance.samples())
            if max_duration_s is not None and found and total + decoded.duration_s > max_duration_s:
                break
            found.append(decoded)
            total += decoded.duration_s
        if not found:
            raise DatasetError(f"dataset {self.name} ({self.location}) has no utterances")
        counts = Counter(d.utterance.id for d in found)
        if duplicated := sorted(uid for uid, n in counts.items() if n > 1):
            raise DatasetError(f"dataset {self.name}: duplicated utterance id(s) {duplicated[:5]}")
        return found


def folder_dataset(path: str | Path) -> Dataset:
    """Every audio file under `path` (sorted by relative path) with a transcript beside it:
    `name.txt` (or `.lab`) next to `name.flac`."""
    root = Path(path)
    if not root.is_dir():
        raise DatasetError(f"{root} is not a directory")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES)
    if not files:
        raise DatasetError(
            f"{root} holds no audio files ({', '.join(AUDIO_SUFFIXES)}) to read as a dataset"
        )

    def read() -> Iterator[Utterance]:
        for audio in files:
            uid = str(audio.relative_to(root).with_suffix(""))
            transcripts = [audio.with_suffix(s) for s in TRANSCRIPT_SUFFIXES]
            found = next((t for t in transcripts if t.is_file()), None)
            if found is None:
                raise DatasetError(
                    f"utterance {uid!r}: no transcript beside {audio.name} "
                    f"(expected {audio.with_suffix('.txt').name})"
                )
            text = found.read_text(encoding="utf-8").strip()
            yield Utterance(uid, text, path=audio)

    return Dataset(root.name, "folder", str(root), read)


def manifest_dataset(path: str | Path) -> Dataset:
    """A JSONL manifest in NeMo's shape: one object per line with `audio_filepath` (relative
    paths are relative to the manifest's folder), `text` and, optionally, `duration`."""
    manifest = Path(path)
    if not manifest.is_file():
        raise DatasetError(f"manifest {manifest} does not exist")

    def read() -> Iterator[Utterance]:
        with manifest.open(encoding="utf-8") as lines:
            for number, line in enumerate(lines, start=1):
                if not line.strip():
                    continue
                try:
                    entry = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise DatasetError(
                        f"{manifest.name} line {number} is not JSON: {exc}"
                    ) from None
                if not isinstance(entry, dict) or "audio_filepath" not in entry:
                    raise DatasetError(
                        f"{manifest.name} line {number}: expected an object with audio_filepath"
                    )
                audio = Path(entry["audio_filepath"])
                if not audio.is_absolute():
                    audio = manifest.parent / audio
                uid = str(entry.get("id") or entry.get("utterance_id") or audio.stem)
                if not isinstance(entry.get("text"), str):
                    raise DatasetError(
                        f"utterance {uid!r} ({manifest.name} line {number}) has no text"
                    )
                yield Utterance(uid, entry["text"].strip(), path=audio)

    return Dataset(manifest.stem, "manifest", str(manifest), read)


def hf_dataset(
    name_or_path: str, config: str | None = None, split: str = "test", *, streaming: bool = True
) -> Dataset:
    """A Hugging Face `datasets` dataset: one saved with `save_to_disk` (a local directory), or
    a hub dataset streamed with `load_dataset(name, config, split=..., streaming=True)` (the
    ESB test sets the Open ASR Leaderboard uses, e.g. `hf-audio/esb-datasets-test-only-sorted`
    with config `librispeech`, split `test.clean`). The audio column is read undecoded
    (`Audio(decode=False)`) and decoded by the project's decoder."""
    try:
        import datasets
    except ImportError as exc:
        raise DatasetError(
            "Hugging Face datasets need the `datasets` package: "
            "pip install 'transcription-benchmarks[datasets]'"
        ) from exc
    local = Path(name_or_path)
    if local.is_dir():
        loaded: Any = datasets.load_from_disk(str(local))
        if isinstance(loaded, datasets.DatasetDict):
            if split not in loaded:
                raise DatasetError(f"{local} has splits {sorted(loaded)}; no split {split!r}")
            loaded = loaded[split]
        kind, label = "hf-disk", local.name
    else:
        loaded = datasets.load_dataset(name_or_path, config, split=split, streaming=streaming)
        kind, label = "hf-hub", f"{name_or_path}/{config or ''}/{split}".replace("//", "/")
    audio_column = _audio_column(loaded, label)
    text_column = next((c for c in TEXT_COLUMNS if c in (loaded.column_names or ())), None)
    if text_column is None:
        raise DatasetError(
            f"{label} has no transcript column (looked for {', '.join(TEXT_COLUMNS)}; "
            f"columns: {loaded.column_names})"
        )
    loaded = loaded.cast_column(audio_column, datasets.Audio(decode=False))

    def read() -> Iterator[Utterance]:
        for index, row in enumerate(loaded):
            uid = next((str(row[c]) for c in ID_COLUMNS if row.get(c)), str(index))
            audio = row[audio_column] or {}
            text = row[text_column]
            if not isinstance(text, str):
                raise DatasetError(f"utterance {uid!r} of {label} has no text")
            data = audio.get("bytes")
            path = audio.get("path")
            if data is None and path:
                yield Utterance(uid, text.strip(), path=Path(path))
            else:
                yield Utterance(uid, text.strip(), data=data)

    return Dataset(label, kind, name_or_path, read)


def _audio_column(dataset: Any, label: str) -> str:
    import datasets

    features = getattr(dataset, "features", None) or {}
    for name, feature in features.items():
        if isinstance(feature, datasets.Audio):
            return name
    if "audio" in (dataset.column_names or ()):
        return "audio"
    raise DatasetError(f"{label} has no audio column (columns: {dataset.column_names})")


def open_dataset(spec: str) -> Dataset:
    """What the CLI and matrix cells take:

    - `generated` / `generated:N`: the project's generated dataset of N utterances (default
      100), cached (datasets/generated.py);
    - `shared`: the real clips of the test-audio folder with their references;
    - a `.jsonl` file: a NeMo manifest;
    - a directory saved by `datasets` (it holds `dataset_info.json` or `dataset_dict.json`);
    - any other directory: audio files with transcripts beside them;
    - `hf:NAME[:CONFIG]:SPLIT`: a hub dataset, streamed.
    """
    if spec == "generated" or spec.startswith("generated:"):
        from transcription_benchmarks.datasets.generated import generated_dataset

        count = spec.partition(":")[2]
        if count and not count.isdigit():
            raise DatasetError(f"generated:N takes a number of utterances, got {count!r}")
        number = int(count) if count else 100
        return replace(folder_dataset(generated_dataset(number)), name=f"generated-{number}")
    if spec == "shared":
        from transcription_benchmarks.datasets.generated import shared_clips

        return replace(manifest_dataset(shared_clips()), name="shared")
    if spec.startswith("hf:"):
        parts = spec[3:].split(":")
        if len(parts) == 2:
            return hf_dataset(parts[0], None, parts[1])
        if len(parts) == 3:
            return hf_dataset(parts[0], parts[1] or None, parts[2])
        raise DatasetError(f"expected hf:NAME:SPLIT or hf:NAME:CONFIG:SPLIT, got {spec!r}")
    path = Path(spec)
    if path.suffix == ".jsonl":
        return manifest_dataset(path)
    if path.is_dir():
        if (path / "dataset_info.json").is_file() or (path / "dataset_dict.json").is_file():
            return hf_dataset(str(path))
        return folder_dataset(path)
    raise DatasetError(
        f"no dataset at {spec!r}: give a folder, a .jsonl manifest, a saved HF dataset, "
        "hf:NAME[:CONFIG]:SPLIT, generated[:N] or shared"
    )
