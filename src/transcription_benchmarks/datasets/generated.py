"""Offline datasets to test and demonstrate with.

- `generated_dataset(count)`: about `count` utterances of 2 to 20 seconds of English speech with
  exact references, cut from one generated recording (audio/generate.py) at the middle of the
  silences between sentences: each utterance is one to three whole sentences, chosen by a seeded
  random generator, and its reference is exactly their text. Cached as a folder dataset
  (`utt-NNN.flac` + `utt-NNN.txt`) with a NeMo manifest beside the files.
- `shared_clips()`: the real recordings of the test-audio folder that have a full English
  reference (jfk, short, 1min), as a manifest.
"""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

import numpy as np

from transcription_benchmarks.audio.decode import SAMPLE_RATE, decode_audio
from transcription_benchmarks.datasets.sources import DatasetError
from transcription_benchmarks.models.cache import cache_root, cached_directory

DATASET_VERSION = 1
"""Bump when the cutting changes what a generated dataset holds."""
MIN_UTTERANCE_S = 2.0
MAX_UTTERANCE_S = 20.0
SECONDS_PER_UTTERANCE = 8.0
"""A first guess of recording length per utterance (sentences average about 4 s, plus pauses)."""
SHARED_CLIPS = ("jfk.flac", "short.flac", "1min.flac")


def generated_dataset(count: int = 100, seed: int = 0) -> Path:
    """A folder of `count` utterances (fewer only if the recording runs out), cached."""
    if count < 1:
        raise DatasetError(f"a generated dataset needs at least one utterance, got {count}")
    from transcription_benchmarks.audio.generate import generate_speech

    speech = generate_speech(count * SECONDS_PER_UTTERANCE + 30, seed=seed)
    key = f"generated-{count}-seed{seed}-v{DATASET_VERSION}-{speech.sha256[:12]}"

    def build(target: Path) -> None:
        metadata = json.loads(speech.metadata_path.read_text(encoding="utf-8"))
        _cut(decode_audio(speech.path), metadata["sentences"], count, seed, target)

    return cached_directory("datasets", key, build)


def _cut(samples: np.ndarray, sentences: list[dict], count: int, seed: int, target: Path) -> None:
    from transcription_benchmarks.audio.generate import write_flac

    chooser = random.Random(seed)
    groups: list[list[dict]] = []
    index = 0
    while index < len(sentences) and len(groups) < count:
        size = chooser.choice((1, 1, 2, 2, 3))
        group = sentences[index : index + size]
        # Shrink a group that would run past the longest utterance; grow one under the shortest.
        while len(group) > 1 and group[-1]["end_s"] - group[0]["start_s"] > MAX_UTTERANCE_S - 1:
            group = group[:-1]
        while group[-1]["end_s"] - group[0]["start_s"] < MIN_UTTERANCE_S and index + len(
            group
        ) < len(sentences):
            group = sentences[index : index + len(group) + 1]
        groups.append(group)
        index += len(group)
    lines = []
    for number, group in enumerate(groups):
        before = sentences[group[0]["index"] - 1]["end_sample"] if group[0]["index"] else 0
        after_index = group[-1]["index"] + 1
        after = (
            sentences[after_index]["start_sample"] if after_index < len(sentences) else len(samples)
        )
        start = (before + group[0]["start_sample"]) // 2
        end = (group[-1]["end_sample"] + after) // 2
        clip = np.round(samples[start:end] * 32768).clip(-32768, 32767).astype(np.int16)
        # Keep every clip inside the bounds (pauses are at most 1.2 s a side).
        duration = len(clip) / SAMPLE_RATE
        if not MIN_UTTERANCE_S <= duration <= MAX_UTTERANCE_S:
            continue
        name = f"utt-{number:03d}"
        write_flac(target / f"{name}.flac", clip)
        text = " ".join(s["text"] for s in group)
        (target / f"{name}.txt").write_text(text + "\n", encoding="utf-8")
        lines.append(
            json.dumps(
                {"audio_filepath": f"{name}.flac", "duration": round(duration, 3), "text": text}
            )
        )
    (target / "manifest.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")


def shared_clips() -> Path:
    """A manifest of the shared real clips with full English references."""
    from transcription_benchmarks.audio.catalog import find_test_audio, reference_for

    entries = []
    for name in SHARED_CLIPS:
        path = find_test_audio(name)
        reference = reference_for(path)
        if reference is None or reference.text is None:
            raise DatasetError(f"{name} has no reference transcript in the test-audio catalogue")
        entries.append(
            {"audio_filepath": str(path.resolve()), "text": reference.text, "id": path.stem}
        )
    text = "".join(json.dumps(e) + "\n" for e in entries)
    digest = hashlib.sha256(text.encode()).hexdigest()[:12]
    manifest = cache_root() / "datasets" / f"shared-{digest}.jsonl"
    manifest.parent.mkdir(parents=True, exist_ok=True)
    if not manifest.is_file():
        partial = manifest.with_suffix(".partial")
        partial.write_text(text, encoding="utf-8")
        partial.replace(manifest)
    return manifest
