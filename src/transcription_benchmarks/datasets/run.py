"""run_dataset(): one model over many utterances, scored the way the Open ASR Leaderboard
scores: RTFx = total audio seconds / total transcription seconds, and corpus WER after the
Whisper English normaliser (errors summed over the corpus).

The path: the dataset is read and every utterance decoded first (timed as decode_s, outside
the boundary, as the leaderboard does); the model loads once (timed, memory sampled from here to
the end); utterances are grouped into batches; the first batch is decoded once untimed
(warm-up); then every batch is timed from samples to text. Batched runs (batch_size set, on an
engine that batches) sort the utterances by duration, longest first, as NeMo's scripts do to cut
padding: Whisper pads every window to 30 s, so for Whisper sorting mostly groups decoder lengths,
and puts the largest batch first, where running out of memory shows at once. Sequential runs keep
the dataset's order and give per-utterance latency percentiles.
"""

from __future__ import annotations

import time
from pathlib import Path

from transcription_benchmarks.args import BenchArgs
from transcription_benchmarks.audio import AudioInfo
from transcription_benchmarks.bench import choose_backend
from transcription_benchmarks.datasets.result import (
    DatasetInfo,
    DatasetResult,
    UtteranceRow,
)
from transcription_benchmarks.datasets.sources import Dataset, DecodedUtterance, open_dataset
from transcription_benchmarks.measure.environment import fingerprint
from transcription_benchmarks.measure.memory import MemorySampler
from transcription_benchmarks.measure.timer import Latency
from transcription_benchmarks.quality.metrics import corpus_error_rates, error_rates
from transcription_benchmarks.result import ModelInfo


def run_dataset(
    model: str,
    dataset: Dataset | str,
    args: BenchArgs | None = None,
    *,
    limit: int | None = None,
    max_duration_s: float | None = None,
) -> DatasetResult:
    """Transcribe every utterance of `dataset` (a Dataset or what open_dataset takes) with
    `model`; `args` as for bench() (batch_size, beam_size, device, precision, ...; test_file,
    warmup and repeats do not apply: the first batch is the warm-up)."""
    args = args or BenchArgs()
    source = open_dataset(dataset) if isinstance(dataset, str) else dataset
    backend_name, backend, notes = choose_backend(model, args)

    started = time.perf_counter()
    utterances = source.decoded(limit, max_duration_s)
    decode_s = time.perf_counter() - started
    longest = max(utterances, key=lambda u: u.duration_s)
    backend.validate(args, _as_audio_info(longest))
    device = backend.resolve_device(args.device)
    resolved = backend.resolve_model(model, args)
    environment = fingerprint()

    batched = args.batch_size is not None and backend.supports_batching
    size = args.batch_size if batched else 1
    order = sorted(utterances, key=lambda u: -u.duration_s) if batched else list(utterances)
    batches = [order[i : i + size] for i in range(0, len(order), size)]

    with MemorySampler() as memory:
        start = time.perf_counter()
        loaded = backend.load(resolved, args, device)
        load_time = time.perf_counter() - start
        start = time.perf_counter()  # decoded() returned at least one utterance
        loaded.transcribe_many([u.samples for u in batches[0]])
        loaded.synchronize()
        warmup_s = time.perf_counter() - start
        rows: list[UtteranceRow] = []
        times: list[float] = []
        for number, batch in enumerate(batches):
            start = time.perf_counter()
            transcripts = loaded.transcribe_many([u.samples for u in batch])
            loaded.synchronize()
            elapsed = time.perf_counter() - start
            times.append(elapsed)
            audio_s = sum(u.duration_s for u in batch)
            for decoded, transcript in zip(batch, transcripts, strict=True):
                rows.append(
                    _row(decoded, transcript.text, elapsed * decoded.duration_s / audio_s, number)
                )
    notes.extend(loaded.warnings)
    by_id = {row.id: row for row in rows}
    rows = [by_id[u.utterance.id] for u in utterances]  # the dataset's order
    return DatasetResult(
        backend=backend_name,
        model=ModelInfo.of(model, resolved),
        dataset=DatasetInfo(
            name=source.name,
            kind=source.kind,
            location=source.location,
            utterances=len(rows),
            audio_s=sum(u.duration_s for u in utterances),
            limit=limit,
            max_duration_s=max_duration_s,
        ),
        device=device,
        args=args.model_dump(mode="json"),
        config=dict(loaded.config),
        batching=(
            f"batches of {size} across utterances, sorted by duration (longest first)"
            if batched
            else "sequential, one utterance at a time"
        ),
        batch_size=size if batched else None,
        decode_s=decode_s,
        load_time_s=load_time,
        warmup_s=warmup_s,
        transcribe_s=sum(times),
        batch_times_s=times,
        latency=None if batched else Latency.of([r.time_s for r in rows]),
        score=corpus_error_rates(
            [r.hypothesis for r in rows], [r.reference for r in rows], args.language or "en"
        ),
        memory=memory.stats(),
        environment=environment,
        warnings=notes,
        utterances=rows,
    )


def _row(decoded: DecodedUtterance, text: str, time_s: float, batch: int) -> UtteranceRow:
    utterance = decoded.utterance
    rates = error_rates(text, utterance.reference)
    return UtteranceRow(
        id=utterance.id,
        audio=str(utterance.path) if utterance.path else None,
        duration_s=decoded.duration_s,
        reference=utterance.reference,
        hypothesis=text,
        time_s=time_s,
        batch=batch,
        substitutions=rates.substitutions,
        deletions=rates.deletions,
        insertions=rates.insertions,
        reference_words=rates.reference_words,
    )


def _as_audio_info(decoded: DecodedUtterance) -> AudioInfo:
    """What a backend's validate() looks at (the longest utterance's duration)."""
    utterance = decoded.utterance
    return AudioInfo(
        path=utterance.path or Path(utterance.id),
        duration_s=decoded.duration_s,
        source_sample_rate=16_000,
        source_channels=1,
    )
