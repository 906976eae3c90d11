"""whisper.cpp through pywhispercpp (its manylinux wheels are CPU builds).

Weights: ggml files; whisper.cpp's own model names through pywhispercpp's download code; any
model this harness resolves converted from HF weights to an f16 ggml file (models.hf_to_ggml),
cached, so tiny.en and the synthetic architectures run
offline on the same weights as the other engines. Audio is decoded by our decoder inside the
timing boundary and handed over as 16 kHz float32 samples. Options beyond the common ones go
through `transcribe_options`, checked against pywhispercpp's parameter names.

On random weights whisper.cpp cannot be made to decode a fixed number of tokens (it exposes no
way to suppress end-of-text): the result says so and reports the tokens it decoded per window.
"""

from __future__ import annotations

import math
import struct
from pathlib import Path
from typing import Any

from transcription_benchmarks.args import BenchArgs
from transcription_benchmarks.audio import AudioInfo
from transcription_benchmarks.backends.base import (
    AudioInput,
    Backend,
    Checkpoint,
    LoadedModel,
    ProgressCallback,
    RequestOptions,
    audio_duration_s,
    audio_samples,
    check_english_only,
    force_options,
    jsonable,
)
from transcription_benchmarks.errors import InvalidOptionError, ModelNotFoundError
from transcription_benchmarks.models import ResolvedModel, resolve
from transcription_benchmarks.models.resolve import PACKAGED_ALIASES, SYNTHETIC_PREFIX
from transcription_benchmarks.transcript import DecodingInfo, Segment, Transcript

COMPUTE_TYPES = ("default", "float16")
"""f16 files only: the whisper.cpp in pywhispercpp 1.5.1 aborts on all-f32 ones (hf_to_ggml)."""
# Set through BenchArgs' own options, or by this backend: not in transcribe_options.
OWN_PARAMS = frozenset(
    {"n_threads", "language", "translate", "no_timestamps", "temperature", "greedy", "beam_search"}
)


class WhisperCppBackend(Backend):
    name = "whisper.cpp"
    model_format = "ggml"
    install_extra = "whisper-cpp"
    required_modules = ("pywhispercpp",)
    fingerprint_packages = ("pywhispercpp",)
    reads = frozenset({"compute_type", "cpu_threads", "transcribe_options"})
    container_requirements = ("pywhispercpp==1.5.1",)  # the artifact holds a ggml file
    precision_option = "compute_type"
    supports_batching = False
    cpu_precisions = ("float16",)
    # benchmarks/request_memory.py, tiny.en (ggml f16) on CPU, 1 and 6 minutes of speech
    # (2026-12-07): 14.7 MiB per audio minute: whisper.cpp takes the whole file's samples and
    # computes its whole mel spectrogram at once.
    request_mib_per_audio_minute = 15.5

    def validate(self, args: BenchArgs, audio: AudioInfo) -> None:
        from pywhispercpp.constants import PARAMS_SCHEMA

        if args.batch_size is not None:
            raise InvalidOptionError("whisper.cpp decodes one window at a time: no batch_size")
        if args.compute_type not in COMPUTE_TYPES:
            raise InvalidOptionError(
                f"whisper.cpp here runs float16 ggml files, not {args.compute_type!r}: "
                "quantized files need whisper.cpp's quantize tool, which pywhispercpp does not "
                "ship, and its whisper.cpp aborts on all-float32 files"
            )
        if args.word_timestamps:
            raise InvalidOptionError("word_timestamps is not supported on whisper.cpp here")
        known = set(PARAMS_SCHEMA) - OWN_PARAMS
        if unknown := sorted(set(args.transcribe_options) - known):
            raise InvalidOptionError(
                f"unknown whisper.cpp parameter(s) {', '.join(unknown)}; valid: "
                + ", ".join(sorted(known))
            )

    def resolve_device(self, device: str) -> str:
        if device.startswith("cuda"):
            raise InvalidOptionError(
                "pywhispercpp's wheels are CPU builds: whisper.cpp on CUDA needs a build of its "
                "own (GGML_CUDA=1), outside this harness; use device='cpu'"
            )
        return "cpu"

    def resolve_model(self, model: str, args: BenchArgs) -> ResolvedModel:
        """whisper.cpp's own names through pywhispercpp's download (tiny.en stays the packaged
        one, offline); anything else converted to an f16 ggml file."""
        from pywhispercpp.constants import AVAILABLE_MODELS

        own = model in AVAILABLE_MODELS and model.lower() not in PACKAGED_ALIASES
        if own and not model.startswith(SYNTHETIC_PREFIX):
            from pywhispercpp.utils import download_model

            try:
                path = download_model(model)
            except Exception as exc:  # offline, refused
                raise ModelNotFoundError(
                    f"whisper.cpp cannot download {model!r} ({type(exc).__name__}: {exc}); "
                    "offline, use tiny.en (packaged), synthetic:<arch> or a local model directory"
                ) from None
            if path is None:
                raise ModelNotFoundError(f"whisper.cpp cannot download {model!r}")
            return ResolvedModel(model, Path(path).parent, self.model_format, "hub")
        return resolve(model, self.model_format)

    def load(self, model: ResolvedModel, args: BenchArgs, device: str) -> LoadedModel:
        return WhisperCppModel(model, args)


class WhisperCppModel(LoadedModel):
    def __init__(self, model: ResolvedModel, args: BenchArgs) -> None:
        from pywhispercpp.model import Model

        self.warnings = []
        self.synthetic = model.synthetic
        self.length_noted = False
        self.file = _ggml_file(model)
        with self.file.open("rb") as f:
            n_vocab = struct.unpack("<ii", f.read(8))[1]
        # English-only models have the GPT-2 vocabulary (51864 ids); multilingual ones more.
        self.multilingual = n_vocab >= 51865
        self.language = args.language or (None if self.multilingual else "en")
        params: dict[str, Any] = {"print_progress": False, "print_realtime": False}
        if args.cpu_threads:
            params["n_threads"] = args.cpu_threads
        if args.language:
            params["language"] = args.language
        if args.task == "translate":
            params["translate"] = True
        if args.without_timestamps:
            params["no_timestamps"] = True
        if args.temperature is not None:
            params.update(_temperature_params(args.temperature))
        beam = args.beam_size or 1
        if beam > 1:
            params["beam_search"] = {"beam_size": beam, "patience": -1.0}
        params.update(args.transcribe_options)
        if model.synthetic and (warning := force_options(params, _capped_decoding())):
            self.warnings.append(warning)
        self.beam_size = beam
        self.model = Model(
            str(self.file),
            params_sampling_strategy=1 if beam > 1 else 0,
            redirect_whispercpp_logs_to=None,
            **params,
        )
        self.config = jsonable(
            {
                "ggml_file": str(self.file),
                "compute_type": "float16",
                "beam_size": beam,
                **{k: v for k, v in params.items() if not k.startswith("print_")},
            }
        )
        if model.synthetic:
            self.config["synthetic_tokens_per_window"] = None

    def transcribe(
        self,
        audio: AudioInput,
        request: RequestOptions | None = None,
        *,
        progress: ProgressCallback | None = None,
        checkpoint: Checkpoint | None = None,
    ) -> Transcript:
        samples = audio_samples(audio)
        duration = audio_duration_s(audio)
        overrides = {} if request is None else self._request_params(request)
        if not overrides:
            found = self.model.transcribe(samples)
        else:
            before = self.model.get_params()
            try:
                found = self.model.transcribe(samples, **overrides)
            finally:
                # pywhispercpp keeps a call's parameters for later calls: put them back.
                self.model._set_params({k: before[k] for k in overrides if k in before})
        segments = [Segment(start=s.t0 / 100, end=s.t1 / 100, text=s.text) for s in found]
        if progress is not None:
            progress(duration)
        if self.synthetic and not self.length_noted:
            self.warnings.append(self._length_note(duration))
            self.length_noted = True
        language = overrides.get("language") or self.language
        info = None
        if request is not None:
            info = DecodingInfo(
                pipeline="whisper_full",
                options=jsonable({**self.config, **overrides, "beam_size": self.beam_size}),
            )
        return Transcript(segments=segments, language=language, info=info)

    def _request_params(self, request: RequestOptions) -> dict[str, Any]:
        """A request's options as whisper.cpp parameters. The sampling strategy (greedy or
        beam search) is chosen when the model loads, so a request's beam size must match it."""
        asked = request.model_dump(exclude_unset=True)
        if asked.get("beam_size", self.beam_size) != self.beam_size:
            raise InvalidOptionError(
                f"this whisper.cpp model decodes with beam size {self.beam_size}, chosen when it "
                f"loaded; a request cannot change it (asked {asked['beam_size']})"
            )
        if asked.get("word_timestamps"):
            raise InvalidOptionError("word_timestamps is not supported on whisper.cpp here")
        if not self.multilingual:
            check_english_only("this model", asked.get("language"), asked.get("task"))
        params: dict[str, Any] = {}
        if "language" in asked:
            params["language"] = asked["language"] or ""
        if "task" in asked:
            params["translate"] = asked["task"] == "translate"
        if "without_timestamps" in asked:
            params["no_timestamps"] = bool(asked["without_timestamps"])
        if "initial_prompt" in asked:
            params["initial_prompt"] = asked["initial_prompt"] or ""
        if (temperature := asked.get("temperature")) is not None:
            params.update(_temperature_params(temperature))
        return params

    def _length_note(self, duration_s: float) -> str:
        import _pywhispercpp as pw

        context = self.model._ctx
        tokens = sum(
            pw.whisper_full_n_tokens(context, i) for i in range(pw.whisper_full_n_segments(context))
        )
        windows = max(1, math.ceil(duration_s / 30))
        return (
            "whisper.cpp cannot fix the decoded length on random weights (end-of-text cannot be "
            f"suppressed), only cap it: {tokens} tokens in {windows} window(s), "
            f"{tokens / windows:.0f} per window"
        )


def _temperature_params(temperature: float | list[float]) -> dict[str, float]:
    """A temperature or a fallback list as whisper.cpp takes it: a start and a fixed
    increment (the list's first step; 0 for a single temperature)."""
    temperatures = temperature if isinstance(temperature, list) else [temperature]
    step = temperatures[1] - temperatures[0] if len(temperatures) > 1 else 0.0
    return {"temperature": temperatures[0], "temperature_inc": step}


def _capped_decoding() -> dict[str, Any]:
    """Random weights: greedy at temperature 0 without fallback, at most
    SYNTHETIC_TOKENS_PER_WINDOW tokens per segment, no timestamps."""
    from transcription_benchmarks.models.synthetic import SYNTHETIC_TOKENS_PER_WINDOW

    return {
        "temperature": 0.0,
        "temperature_inc": 0.0,
        "max_tokens": SYNTHETIC_TOKENS_PER_WINDOW,
        "no_timestamps": True,
    }


def _ggml_file(model: ResolvedModel) -> Path:
    from transcription_benchmarks.models.hf_to_ggml import is_ggml

    files = sorted(p for p in model.path.glob("*.bin") if is_ggml(p))
    if not files:
        raise ModelNotFoundError(f"{model.path} holds no ggml file")
    return files[0]
