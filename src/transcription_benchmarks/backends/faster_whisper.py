"""faster-whisper (CTranslate2): WhisperModel, or BatchedInferencePipeline when batch_size is set."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import inspect
from collections.abc import Iterator
from typing import Any

import numpy as np
from pydantic import ValidationError

from transcription_benchmarks.args import BenchArgs
from transcription_benchmarks.audio import SAMPLE_RATE, AudioInfo
from transcription_benchmarks.backends.base import (
    AudioInput,
    Backend,
    Checkpoint,
    LoadedModel,
    ProgressCallback,
    audio_duration_s,
    audio_samples,
    force_options,
    jsonable,
    restored_attributes,
)
from transcription_benchmarks.compat.preload import preload_pip_cuda_libraries
from transcription_benchmarks.decoding import (
    FasterWhisperParams,
    check_token_ids,
    options_model,
    token_id_problems,
)
from transcription_benchmarks.errors import (
    BackendLoadError,
    InvalidOptionError,
    describe_validation_error,
)
from transcription_benchmarks.models import ResolvedModel
from transcription_benchmarks.transcript import (
    DecodedSegment,
    DecodingInfo,
    LanguageGuess,
    Segment,
    Transcript,
)

# BenchArgs fields that map one-to-one onto transcribe() keywords; setting one of these inside
# transcribe_options as well is a conflict, not a silent override.
FLAT_TRANSCRIBE_OPTIONS = (
    "beam_size",
    "temperature",
    "language",
    "task",
    "without_timestamps",
    "word_timestamps",
    "vad_filter",
    "condition_on_previous_text",
    "chunk_length",
    "batch_size",
)
# Arguments that bench() owns: the audio, and progress display.
RESERVED_TRANSCRIBE_OPTIONS = frozenset({"audio", "log_progress", "self"})


def _transcribe_parameters(batched: bool) -> dict[str, inspect.Parameter]:
    from faster_whisper import BatchedInferencePipeline, WhisperModel

    method = BatchedInferencePipeline.transcribe if batched else WhisperModel.transcribe
    return dict(inspect.signature(method).parameters)


def _parameter_defaults(batched: bool) -> dict[str, Any]:
    """The pipeline's own defaults for the options a caller may set."""
    return {
        name: p.default
        for name, p in _transcribe_parameters(batched).items()
        if name not in RESERVED_TRANSCRIBE_OPTIONS
    }


class FasterWhisperBackend(Backend):
    name = "faster-whisper"
    model_format = "ctranslate2"
    install_extra = "faster-whisper"
    required_modules = ("faster_whisper", "ctranslate2")
    fingerprint_packages = ("ctranslate2", "faster-whisper", "nvidia-cublas-cu12")
    reads = frozenset(
        {
            "compute_type",
            "chunk_length",
            "vad_filter",
            "condition_on_previous_text",
            "cpu_threads",
            "num_workers",
            "transcribe_options",
        }
    )
    # Chosen by compat/stack.py for the container's CUDA (serving.package.CONTAINER_CUDA): the
    # newest ctranslate2 that needs no cuDNN (4.6.3+), so no cuDNN load can fail on the first
    # request; its libcublas.so.12 comes from the DLC's CUDA 12 libraries, else pip's
    # nvidia-cublas-cu12, which resolve_device preloads.
    container_requirements = ("faster-whisper==1.2.1", "ctranslate2=={ctranslate2}")
    precision_option = "compute_type"
    # CPU: int8_float32 is int8 there, and (b)float16 is emulated on most CPUs.
    cpu_precisions = ("int8", "float32")
    gpu_precisions = ("float16", "int8_float16")
    # benchmarks/request_memory.py, tiny.en on CPU, 1 and 6 minutes of speech (2026-12-07):
    # 7.4 MiB per audio minute with the features in pieces (the decoded samples 3.7, the mel
    # power 1.8, the decoder's int16 frames while decoding); 46.5 with faster-whisper's
    # whole-file features. A larger model adds no growth per minute (30 s windows), 128-bin
    # models (large-v3) 1.1 more for their mel power.
    request_mib_per_audio_minute = 8.5

    def validate(self, args: BenchArgs, audio: AudioInfo) -> None:
        batched = args.batch_size is not None
        known = _transcribe_parameters(batched)
        given = set(args.transcribe_options)
        unknown = sorted((given - set(known)) | (given & RESERVED_TRANSCRIBE_OPTIONS))
        if unknown:
            valid = sorted(set(known) - RESERVED_TRANSCRIBE_OPTIONS - set(FLAT_TRANSCRIBE_OPTIONS))
            raise InvalidOptionError(
                f"unknown faster-whisper transcribe option(s) {', '.join(unknown)} for "
                f"{'BatchedInferencePipeline' if batched else 'WhisperModel'}.transcribe; "
                f"valid: {', '.join(valid)}"
            )
        duplicated = sorted(set(args.transcribe_options) & set(FLAT_TRANSCRIBE_OPTIONS))
        if duplicated:
            raise InvalidOptionError(
                f"transcribe_options sets {', '.join(duplicated)}, which BenchArgs has as its "
                "own option(s): set them there"
            )
        check_transcribe_options(args.transcribe_options, batched)

    def resolve_device(self, device: str) -> str:
        if device != "cpu":  # before ctranslate2 dlopens libcublas.so.12 by name
            preload_pip_cuda_libraries()
        import ctranslate2

        cuda_devices = ctranslate2.get_cuda_device_count()
        if device == "auto":
            return "cuda" if cuda_devices else "cpu"
        if device.startswith("cuda") and not cuda_devices:
            raise InvalidOptionError(
                f"device={device!r} but CTranslate2 sees no CUDA device (no GPU, driver or "
                "libcublas.so.12); use device='cpu'"
            )
        return device

    def load(self, model: ResolvedModel, args: BenchArgs, device: str) -> LoadedModel:
        return FasterWhisperModel(model, args, device)


class FasterWhisperModel(LoadedModel):
    request_options = FasterWhisperParams

    def __init__(self, model: ResolvedModel, args: BenchArgs, device: str) -> None:
        from faster_whisper import BatchedInferencePipeline, WhisperModel

        kind, _, index = device.partition(":")
        self.warnings = []
        with explain_cuda_library_errors():
            self.model = WhisperModel(
                str(model.path),
                device=kind,
                device_index=int(index or 0),
                compute_type=args.compute_type,
                cpu_threads=args.cpu_threads,
                num_workers=args.num_workers,
                local_files_only=True,
            )
        # Features in pieces: a request's memory no longer grows with its length but by the
        # samples and the mel power alone (PiecewiseFeatureExtractor).
        self.model.feature_extractor = piecewise_features(self.model.feature_extractor)
        self.batched = args.batch_size is not None
        # Both pipelines over the same weights: a request chooses one (bench() the one its
        # arguments chose at load time).
        self.batched_pipeline = BatchedInferencePipeline(self.model)
        self.vocab_size = vocabulary_size(self.model)
        self.options = self._transcribe_options(model, args)
        check_token_ids(self.options, self.vocab_size)
        defaults = _parameter_defaults(self.batched)
        self.config = {
            "compute_type": self.model.model.compute_type,
            "requested_compute_type": args.compute_type,
            "pipeline": "BatchedInferencePipeline" if self.batched else "WhisperModel",
            "cpu_threads": args.cpu_threads,
            "num_workers": args.num_workers,
            **jsonable({**defaults, **self.options}),
        }

    def _transcribe_options(self, model: ResolvedModel, args: BenchArgs) -> dict[str, Any]:
        options: dict[str, Any] = {"task": args.task, "word_timestamps": args.word_timestamps}
        for name in FLAT_TRANSCRIBE_OPTIONS:
            value = getattr(args, name)
            if value is not None and name not in ("task", "word_timestamps"):
                options[name] = value
        if self.batched:
            options.pop("condition_on_previous_text", None)  # batched never conditions
        options.update(args.transcribe_options)
        if model.synthetic:
            from transcription_benchmarks.models.synthetic import (
                SYNTHETIC_TOKENS_PER_WINDOW,
                faster_whisper_forcing,
            )

            forcing = faster_whisper_forcing(SYNTHETIC_TOKENS_PER_WINDOW, self.model)
            if warning := force_options(options, forcing):
                self.warnings.append(warning)
        return options

    def transcribe(
        self,
        audio: AudioInput,
        request: FasterWhisperParams | None = None,
        *,
        progress: ProgressCallback | None = None,
        checkpoint: Checkpoint | None = None,
    ) -> Transcript:
        """A file goes to faster-whisper as a path (its own decoder, PyAV, inside the
        boundary); samples as they are. task=detect_language in a request answers with the
        language alone (no segments): faster-whisper detects it before the first window."""
        duration = audio_duration_s(audio)
        source = str(audio.path) if isinstance(audio, AudioInfo) else audio
        if request is None:
            options, batched = self.options, self.batched
        else:
            options, batched = self._request_options(request)
        if batched and not options.get("vad_filter", True) and "clip_timestamps" not in options:
            # Batched decoding without VAD needs explicit windows; fixed 30 s ones match how
            # WhisperModel walks the audio.
            options = {**options, "clip_timestamps": _fixed_windows(duration)}
        elif batched and isinstance(options.get("clip_timestamps"), list):
            options = {**options, "clip_timestamps": _within(options["clip_timestamps"], duration)}
        pipeline = self.batched_pipeline if batched else self.model
        session = (
            restored_attributes(self.model, self.model.feature_extractor, self.batched_pipeline)
            if request is not None
            else contextlib.nullcontext()
        )
        with explain_cuda_library_errors(), session:
            segments, info = pipeline.transcribe(source, **options)
            collected = []
            if request is None or request.task != "detect_language":
                for segment in segments:  # lazy: consuming the generator is the transcription
                    collected.append(
                        _decoded_segment(segment)
                        if request is not None  # an endpoint answers with the details
                        else Segment(start=segment.start, end=segment.end, text=segment.text)
                    )
                    if progress is not None:
                        progress(segment.end)
                    if checkpoint is not None:
                        checkpoint()
        return Transcript(
            segments=collected,
            language=info.language,
            language_probability=info.language_probability,
            info=None if request is None else self._decoding_info(options, batched, info),
        )

    def transcribe_many(self, clips: list[np.ndarray]) -> list[Transcript]:
        """Batched (batch_size set): the clips laid end to end and handed to
        BatchedInferencePipeline as explicit windows (clip_timestamps, one per clip, split at
        30 s), so that windows of different clips share a batch; each segment goes back to the
        clip its window came from. Sequential: one WhisperModel.transcribe per clip."""
        if not self.batched or len(clips) < 2:
            return [self.transcribe(clip) for clip in clips]
        starts = np.cumsum([0] + [len(c) for c in clips[:-1]]) / SAMPLE_RATE
        windows, owner = [], []
        for index, (clip, start) in enumerate(zip(clips, starts, strict=True)):
            end = start + len(clip) / SAMPLE_RATE
            edge = start
            while edge < end:
                windows.append({"start": float(edge), "end": float(min(edge + 30.0, end))})
                owner.append(index)
                edge += 30.0
        options = {**self.options, "clip_timestamps": windows, "vad_filter": False}
        with explain_cuda_library_errors():
            segments, info = self.batched_pipeline.transcribe(np.concatenate(clips), **options)
            found: list[list[Segment]] = [[] for _ in clips]
            window_starts = [w["start"] for w in windows]
            for segment in segments:
                window = _window_of(segment.start, window_starts)
                offset = starts[owner[window]]
                found[owner[window]].append(
                    Segment(
                        start=segment.start - offset, end=segment.end - offset, text=segment.text
                    )
                )
        return [
            Transcript(
                segments=s, language=info.language, language_probability=info.language_probability
            )
            for s in found
        ]

    def _request_options(self, request: FasterWhisperParams) -> tuple[dict[str, Any], bool]:
        """A request's transcribe() keywords, checked before they reach CTranslate2 (which
        crashes natively on an out-of-range token id)."""
        batched = request.batch is not None
        options = request.options.decoding_kwargs()
        known = set(_transcribe_parameters(batched)) - RESERVED_TRANSCRIBE_OPTIONS
        if unknown := sorted(set(options) - known):
            import faster_whisper

            # The request types follow faster-whisper 1.2; an older one lacks some options.
            raise InvalidOptionError(
                f"option(s) {', '.join(unknown)} not taken by faster-whisper "
                f"{faster_whisper.__version__} "
                f"{'BatchedInferencePipeline' if batched else 'WhisperModel'}.transcribe"
            )
        if problems := token_id_problems(options, self.vocab_size):
            raise InvalidOptionError("; ".join(problems))
        if not self.model.model.is_multilingual and options.get("language") not in (None, "en"):
            # faster-whisper would ignore the language and transcribe English: say so instead.
            raise InvalidOptionError(
                f"this model is English-only; language={options['language']!r}"
            )
        return {"task": "transcribe", **options}, batched

    def _decoding_info(self, options: dict[str, Any], batched: bool, info: Any) -> DecodingInfo:
        """The pipeline's defaults, what the request set, then what faster-whisper says it used."""
        effective = jsonable(
            {
                **_parameter_defaults(batched),
                **{k: v for k, v in options.items() if k != "task"},
                **dataclasses.asdict(info.transcription_options),
            }
        )
        effective["vad_parameters"] = jsonable(info.vad_options)
        return DecodingInfo(
            pipeline="BatchedInferencePipeline" if batched else "WhisperModel",
            options=effective,
            duration_after_vad=info.duration_after_vad,
            native=info,
        )

    def detect_language(
        self, audio: AudioInput, request: FasterWhisperParams | None = None
    ) -> LanguageGuess:
        """WhisperModel.detect_language. An English-only model has no language tokens to
        score; faster-whisper's transcribe reports such a model's language as English with
        probability 1, and so does this."""
        if not self.model.model.is_multilingual:
            return LanguageGuess(language="en", probability=1.0, all_probabilities=[("en", 1.0)])
        options = (request or FasterWhisperParams()).options.decoding_kwargs()
        kwargs = {
            k: v
            for k, v in options.items()
            if k
            in (
                "vad_filter",
                "vad_parameters",
                "language_detection_segments",
                "language_detection_threshold",
            )
        }
        with restored_attributes(self.model, self.model.feature_extractor):
            language, probability, all_probs = self.model.detect_language(
                audio_samples(audio), **kwargs
            )
        return LanguageGuess(
            language=language, probability=probability, all_probabilities=list(all_probs)
        )


def _window_of(time_s: float, window_starts: list[float]) -> int:
    """The window a segment starting at `time_s` came from (windows are consecutive, each at
    least a second long). faster-whisper rounds segment times to the millisecond, so a
    segment can start up to half a millisecond before its window: a 10 ms tolerance."""
    import bisect

    index = bisect.bisect_right(window_starts, time_s + 0.01) - 1
    return max(index, 0)


def _decoded_segment(segment: Any) -> DecodedSegment:
    return DecodedSegment.model_validate(dataclasses.asdict(segment))


@contextlib.contextmanager
def explain_cuda_library_errors() -> Iterator[None]:
    """CTranslate2 loads cuBLAS/cuDNN lazily and reports a missing one as a bare RuntimeError;
    turn that into an error that says what is missing and what to do."""
    try:
        yield
    except RuntimeError as exc:
        message = str(exc)
        if "Library lib" not in message and "libcudnn" not in message:
            raise
        raise BackendLoadError(
            f"faster-whisper (CTranslate2) cannot load a CUDA library: {message}. CTranslate2 "
            "wheels need the CUDA 12 cuBLAS (libcublas.so.12) and, for 4.5.0-4.6.2, cuDNN 9: "
            "install nvidia-cublas-cu12 (and nvidia-cudnn-cu12) and put their lib directories "
            "on LD_LIBRARY_PATH, or run with device='cpu'"
        ) from exc


def check_transcribe_options(options: dict[str, Any], batched: bool) -> None:
    """The values of transcribe_options by the rules the endpoint applies (decoding.py): the
    options the project types; others the installed faster-whisper takes pass as they are."""
    model = options_model(batched)
    typed = {k: v for k, v in options.items() if k in model.model_fields}
    try:
        model.model_validate(typed)
    except ValidationError as exc:
        raise InvalidOptionError(
            describe_validation_error(exc, each="invalid option ", under="transcribe_options")
        ) from None


def vocabulary_size(whisper: Any) -> int:
    """The token ids a faster_whisper.WhisperModel can embed."""
    return int(whisper.hf_tokenizer.get_vocab_size(with_added_tokens=True))


def _within(windows: list[dict[str, float]], duration_s: float) -> list[dict[str, float]]:
    """Batched windows cut at the end of the audio, as WhisperModel cuts its clips: a window
    past the end failed inside faster-whisper (an assertion formatting its timestamps)."""
    kept = [
        {"start": w["start"], "end": min(w["end"], duration_s)}
        for w in windows
        if w["start"] < duration_s
    ]
    if not kept:
        raise InvalidOptionError(
            f"every clip window starts at or after the end of the audio ({duration_s:.2f} s)"
        )
    return kept


def _fixed_windows(duration_s: float, window_s: float = 30.0) -> list[dict[str, float]]:
    """Consecutive windows in seconds, the unit BatchedInferencePipeline takes them in."""
    starts = [
        i * window_s for i in range(int(duration_s // window_s) + 1) if i * window_s < duration_s
    ]
    return [{"start": start, "end": min(start + window_s, duration_s)} for start in starts]


PIECE_FRAMES = 3000
"""Feature frames (30 s) per piece of a long file's log-mel features."""


@functools.cache
def _piecewise_extractor_class() -> type:
    from faster_whisper.feature_extractor import FeatureExtractor

    class PiecewiseFeatureExtractor(FeatureExtractor):
        """faster-whisper's log-mel features, computed in pieces of 30 to 60 s of frames.

        WhisperModel.transcribe computes the whole file's features at once, and its STFT holds
        every frame windowed (float32), its spectrum (complex128, then complex64) and the power
        at once: this project measured about 46 MiB per audio minute for a request, so 4 h of
        digital silence in a 97 KB FLAC grew a worker past 9 GB. Each STFT frame reads only its
        own 400 samples, so the pieces compute the same frames; only the mel power (80 or 128
        floats a frame) is kept for the whole file, and the log, the global-max floor and the
        scaling run over it as before. The output is bitwise the whole-file path's
        (tests/test_request_memory.py compares them over many lengths), on two conditions
        found by that comparison: a piece starts on a multiple of 3000 frames and holds at
        least 3000 (the remainder joins the last piece), and the last piece also computes the
        frame the whole-file path drops, so that numpy's FFT groups every piece's rows as it
        groups the whole file's."""

        def __call__(
            self, waveform: np.ndarray, padding: int = 160, chunk_length: int | None = None
        ) -> np.ndarray:
            if chunk_length is not None:
                self.n_samples = chunk_length * self.sampling_rate
                self.nb_max_frames = self.n_samples // self.hop_length
            if waveform.dtype is not np.float32:
                waveform = waveform.astype(np.float32)
            n_fft, hop, pad = self.n_fft, self.hop_length, self.n_fft // 2
            length = len(waveform) + (padding or 0)  # zeros appended by the whole-file path
            frames = 1 + (length + 2 * pad - n_fft) // hop
            if frames <= 2 * PIECE_FRAMES or length <= pad + 1:
                return super().__call__(waveform, padding=padding)
            window = np.hanning(n_fft + 1)[:-1].astype("float32")
            kept = frames - 1
            mel = np.empty((self.mel_filters.shape[0], kept), dtype=np.float32)
            first = 0
            while first < kept:
                last = first + PIECE_FRAMES
                if kept - last < PIECE_FRAMES:
                    last = frames  # the remainder, and the frame dropped below
                piece = _reflect_padded(
                    waveform, length, pad, first * hop, (last - 1) * hop + n_fft
                )
                windows = np.lib.stride_tricks.as_strided(
                    piece, (last - first, n_fft), (hop * piece.strides[0], piece.strides[0])
                )
                spectrum = np.fft.rfft(windows * window, n=n_fft, axis=-1).T.astype("complex64")
                power = np.abs(spectrum) ** 2
                if last == frames:
                    power, last = power[:, :-1], kept
                mel[:, first:last] = self.mel_filters @ power
                first = last
            np.clip(mel, 1e-10, None, out=mel)
            np.log10(mel, out=mel)
            np.maximum(mel, mel.max() - 8.0, out=mel)
            mel += 4.0
            mel /= 4.0
            return mel

    return PiecewiseFeatureExtractor


def _reflect_padded(
    waveform: np.ndarray, length: int, pad: int, start: int, stop: int
) -> np.ndarray:
    """Samples start:stop of the signal the whole-file STFT reads: `waveform` followed by zeros
    up to `length`, reflected by `pad` samples at both ends (numpy's "reflect" padding)."""
    index = np.abs(np.arange(start, stop) - pad)
    index = np.where(index >= length, 2 * (length - 1) - index, index)
    piece = np.zeros(stop - start, dtype=np.float32)
    inside = index < len(waveform)
    piece[inside] = waveform[index[inside]]
    return piece


def piecewise_features(extractor: Any) -> Any:
    """`extractor` (a WhisperModel's FeatureExtractor) as a PiecewiseFeatureExtractor with the
    same settings: memory for features flat in the file's length, the same numbers."""
    cls = _piecewise_extractor_class()
    piecewise = cls.__new__(cls)
    piecewise.__dict__.update(vars(extractor))
    return piecewise
