"""bench(): the path of one benchmark, from a model name to a BenchResult.

  args -> backend (installed? options valid?) -> audio (exists? decodes? duration)
       -> model (resolved, converted if needed) -> load (timed, memory sampled)
       -> warm-up + timed runs -> result with environment fingerprint

Every check that can fail fast runs before the model loads, so a typo costs no load time.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable

from transcription_benchmarks.args import DEFAULT_MODEL, BenchArgs
from transcription_benchmarks.audio import find_test_audio, probe_audio
from transcription_benchmarks.backends import backend_for_format, get_backend, ignored_options
from transcription_benchmarks.backends.base import Backend
from transcription_benchmarks.measure.energy import EnergyMeter
from transcription_benchmarks.measure.environment import fingerprint
from transcription_benchmarks.measure.memory import MemorySampler
from transcription_benchmarks.measure.timer import time_runs
from transcription_benchmarks.models import guess_format
from transcription_benchmarks.quality.metrics import assess
from transcription_benchmarks.quality.reference import load_reference
from transcription_benchmarks.result import BenchResult, ModelInfo, text_sha256
from transcription_benchmarks.transcript import Transcript


class IgnoredOptionWarning(UserWarning):
    """An option was set that the chosen backend does not read."""


class UnstableBenchmarkWarning(UserWarning):
    """The timed runs spread too widely for the median to be trusted."""


# Called as progress(run_index, total_runs, audio_seconds_done, audio_duration_s).
RunProgress = Callable[[int, int, float, float], None]


def choose_backend(model: str, args: BenchArgs) -> tuple[str, Backend, list[str]]:
    """The engine a run uses (args.backend, else the one that reads the model's format),
    installed, and the notes for the result: options it ignores, also warned about."""
    backend_name = args.backend or backend_for_format(guess_format(model))
    backend = get_backend(backend_name)
    backend.check_installed()
    notes: list[str] = []
    if ignored := ignored_options(args, backend_name):
        notes.append(f"{backend_name} ignores option(s): {', '.join(ignored)}")
        warnings.warn(notes[-1], IgnoredOptionWarning, stacklevel=3)
    return backend_name, backend, notes


def bench(
    model: str = DEFAULT_MODEL,
    args: BenchArgs | None = None,
    *,
    progress: RunProgress | None = None,
    keep_run_texts: bool = False,
) -> BenchResult:
    """Benchmark `model` (hub id, local directory, packaged id or synthetic:<arch>) on one file.

    Every run's text is hashed into the result; `keep_run_texts` keeps the texts too."""
    args = args or BenchArgs()
    backend_name, backend, notes = choose_backend(model, args)
    audio = probe_audio(find_test_audio(args.test_file))
    reference = load_reference(args.reference_file, audio.path)
    backend.validate(args, audio)
    device = backend.resolve_device(args.device)
    environment = fingerprint()
    if args.device == "auto" and device == "cpu" and environment.gpu_count:
        notes.append(
            f"{environment.gpu_name} is present but {backend_name} cannot use it: ran on CPU "
            "(pass device='cuda' to see why)"
        )
        warnings.warn(notes[-1], RuntimeWarning, stacklevel=2)
    resolved = backend.resolve_model(model, args)

    with MemorySampler() as memory:
        start = time.perf_counter()
        loaded = backend.load(resolved, args, device)
        load_time = time.perf_counter() - start
        total_runs = args.warmup + args.repeats
        transcripts: list[Transcript] = []  # every run's output, for the determinism record

        def transcribe_once() -> Transcript:
            report = None
            if progress is not None:
                index = len(transcripts)
                report = lambda seconds: progress(index, total_runs, seconds, audio.duration_s)  # noqa: E731
            transcripts.append(loaded.transcribe(audio, progress=report))
            return transcripts[-1]

        meter = EnergyMeter()
        try:
            timing, transcript = time_runs(
                transcribe_once,
                warmup=args.warmup,
                repeats=args.repeats,
                synchronize=loaded.synchronize,
                energy=meter.read,
            )
        finally:
            meter.close()

    notes.extend(loaded.warnings)
    config = dict(loaded.config)
    if resolved.synthetic:
        from transcription_benchmarks.models.synthetic import SYNTHETIC_TOKENS_PER_WINDOW

        # An engine that cannot fix the length records None (and says so in its warnings).
        config.setdefault("synthetic_tokens_per_window", SYNTHETIC_TOKENS_PER_WINDOW)
    quality = assess(
        transcript,
        silences=audio.silences,
        reference=reference.text if reference else None,
        reference_source=reference.source if reference else None,
        language=args.language or transcript.language,
    )
    if unstable := timing.stability_warning():
        notes.append(unstable)
        warnings.warn(unstable, UnstableBenchmarkWarning, stacklevel=2)
    return BenchResult(
        backend=backend_name,
        model=ModelInfo.of(model, resolved),
        test_file=args.test_file,
        audio_path=str(audio.path),
        audio_duration_s=audio.duration_s,
        device=device,
        args=args.model_dump(mode="json"),
        config=config,
        load_time_s=load_time,
        timing=timing,
        memory=memory.stats(),
        transcript=transcript,
        run_text_sha256=[text_sha256(t.text) for t in transcripts],
        run_texts=[t.text for t in transcripts] if keep_run_texts else None,
        quality=quality,
        environment=environment,
        warnings=notes,
    )
