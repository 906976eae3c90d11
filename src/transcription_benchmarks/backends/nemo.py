"""NVIDIA NeMo ASR models (canary's multitask encoder-decoder, parakeet's TDT and RNN-T
transducers, CTC models) through NeMo's own `transcribe()`.

Models: a hub or NGC name through NeMo's own `ASRModel.from_pretrained` (what its users run;
the file is fetched while the model resolves, so the load time is the restore alone), a local
`.nemo` file, or `synthetic:<arch>` (models.synthetic_nemo: the published architectures with
random weights and offline tokenizers, forced to a fixed amount of decoding).

Audio is decoded by the project's decoder inside the timing boundary and handed over as 16 kHz
samples. Without `chunk_length_s` a file is one clip (NeMo's FastConformer attends over all of
it); with it, the file is cut into clips of that length, decoded `batch_size` at a time, and the
segments are put back in order with their offsets. A `batch_size` above 1 without
`chunk_length_s` cuts 30 s clips (one file is one clip, and a batch needs several). Precision: fp32 as loaded, fp16 or bf16
through torch autocast, as NeMo's transcription script runs its `amp` option (the mel front end
stays in float32). Timestamps: `word_timestamps=True` asks NeMo for them (segment-level ones
become the transcript's segments); canary-1b gives none. canary's prompt: `language` is the
source language, `task` transcribe or translate, `transcribe_options` may set `target_lang`
(default: the source language when transcribing, English when translating) and `pnc`
(punctuation and capitals, default on).

NeMo logs a great deal at import and load; `quiet_nemo()` keeps it out of the output unless
TRANSCRIPTION_BENCHMARKS_NEMO_LOG=1.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from transcription_benchmarks.args import BenchArgs
from transcription_benchmarks.audio import SAMPLE_RATE, AudioInfo
from transcription_benchmarks.backends.base import (
    AudioInput,
    Backend,
    Checkpoint,
    LoadedModel,
    ProgressCallback,
    TorchLoadedModel,
    audio_samples,
    jsonable,
    torch_device,
)
from transcription_benchmarks.decoding import Text
from transcription_benchmarks.errors import (
    InvalidOptionError,
    ModelNotFoundError,
    describe_validation_error,
)
from transcription_benchmarks.models import ResolvedModel
from transcription_benchmarks.models.resolve import SYNTHETIC_PREFIX
from transcription_benchmarks.transcript import DecodedSegment, DecodingInfo, Segment, Transcript

LOG_ENV = "TRANSCRIPTION_BENCHMARKS_NEMO_LOG"
DTYPES = {"fp16": "float16", "bf16": "bfloat16"}
CANARY_TASKS = {"transcribe": "asr", "translate": "ast"}
DEFAULT_BATCH_CLIP_S = 30.0


@contextlib.contextmanager
def quiet_nemo() -> Iterator[None]:
    """NeMo's import, restore and transcribe without their log lines, warnings and prints
    (TRANSCRIPTION_BENCHMARKS_NEMO_LOG=1 lets them through). Errors still propagate."""
    if os.environ.get(LOG_ENV, "") not in ("", "0"):
        yield
        return
    # Records up to ERROR are dropped for the call: NeMo's own logger, and hydra's, which logs
    # an "Error getting class" on every canary restore that is not one. NeMo's logger also
    # resets its level on import: it stays at ERROR afterwards.
    disabled = logging.root.manager.disable
    logging.disable(logging.ERROR)
    sink = io.StringIO()
    try:
        with (
            warnings.catch_warnings(),
            contextlib.redirect_stdout(sink),
            contextlib.redirect_stderr(sink),
        ):
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.disable(disabled)
        logging.getLogger("nemo_logger").setLevel(logging.ERROR)


class NemoOptions(BaseModel):
    """What `transcribe_options` may set on a NeMo model."""

    model_config = ConfigDict(extra="forbid")

    # Text (decoding.py): no lone surrogates, which a JSON answer recording the language cannot
    # encode. NeMo takes no numeric option from a request.
    target_lang: Text | None = Field(None, description="canary: the output language")
    pnc: bool = Field(True, description="canary: punctuation and capitals")


class NemoRequestOptions(BaseModel):
    """What one endpoint request may set on a NeMo model (unset: the load-time options)."""

    model_config = ConfigDict(extra="forbid")

    task: Literal["transcribe", "translate"] = "transcribe"
    language: Text | None = None
    target_lang: Text | None = None
    pnc: bool | None = None
    word_timestamps: bool | None = None


class NemoBackend(Backend):
    name = "nemo"
    model_format = "nemo"
    install_extra = "nemo"
    required_modules = ("nemo", "nemo.collections.asr", "torch")
    fingerprint_packages = ("nemo_toolkit", "lightning", "torch")
    reads = frozenset({"dtype", "cpu_threads", "chunk_length_s", "transcribe_options"})
    # With the DLC's own transformers pinned, so pip never swaps it (they resolve together),
    # and a pyarrow that imports with the container's numpy 1.x (NeMo imports datasets, which
    # imports pyarrow; pyarrow 26 refuses numpy 1.26, 21 takes it).
    container_requirements = ("nemo_toolkit[asr]==3.0.0", "transformers==4.51.3", "pyarrow==21.0.0")
    families = frozenset({"nemo"})
    precision_option = "dtype"
    sequential_batch_size = 1
    # bf16 runs on CPU for canary but not for transducers (oneDNN's LSTM under autocast), so
    # auto-tune's CPU default searches fp32 alone; bf16 stays a choice.
    cpu_precisions = ("fp32",)
    gpu_precisions = ("fp16", "bf16", "fp32")
    # benchmarks/request_memory.py in NeMo's env, synthetic:parakeet-tdt-tiny on CPU, 1 and 6
    # minutes of speech (2026-12-07): 284.5 MiB per audio minute. One file is one clip: the
    # conformer encoder holds every frame's activations (and attention over all of them) at
    # once, so this grows faster than linearly past the lengths measured; batch_size above 1
    # cuts the file into 30 s clips.
    request_mib_per_audio_minute = 290.0

    def check_installed(self) -> None:
        with quiet_nemo():
            super().check_installed()

    def validate(self, args: BenchArgs, audio: AudioInfo) -> None:
        nemo_options(args)
        if args.temperature not in (None, 0, 0.0, [0.0], [0]):
            raise InvalidOptionError(
                "NeMo decodes greedily or by beam search: temperature sampling is not supported "
                f"(temperature={args.temperature})"
            )

    def resolve_device(self, device: str) -> str:
        return torch_device(device)

    def resolve_model(self, model: str, args: BenchArgs) -> ResolvedModel:
        """synthetic:<arch> built and cached; a local `.nemo` file; otherwise a hub or NGC name
        fetched by NeMo's own from_pretrained (into its cache, so load() restores it)."""
        from transcription_benchmarks.models import synthetic_nemo

        if model.startswith(SYNTHETIC_PREFIX):
            arch = synthetic_nemo.nemo_arch(model)
            if arch is None:
                raise ModelNotFoundError(
                    f"unknown synthetic NeMo architecture {model!r}; known: "
                    f"{synthetic_nemo.known_architectures()}"
                )
            with quiet_nemo():
                built = synthetic_nemo.build_synthetic_nemo(arch.name)
            return ResolvedModel(model, built.path, "nemo", "synthetic", synthetic=True)
        if not model.strip():
            raise ModelNotFoundError("model id is empty")
        path = Path(model).expanduser()
        if path.is_dir():  # a served model's directory: its one .nemo file
            found = sorted(path.glob("*.nemo"))
            if len(found) != 1:
                raise ModelNotFoundError(
                    f"{path} holds {len(found)} .nemo files; a NeMo model directory holds one"
                )
            path = found[0]
        if path.suffix == ".nemo" or path.exists():
            if not path.is_file() or path.suffix != ".nemo":
                raise ModelNotFoundError(
                    f"{path} is not a .nemo file" if path.exists() else f"{path} does not exist"
                )
            return ResolvedModel(model, path.resolve(), "nemo", "local")
        from_pretrained(model, config_only=True)
        return ResolvedModel(model, path, "nemo", "hub")

    def load(self, model: ResolvedModel, args: BenchArgs, device: str) -> LoadedModel:
        return NemoModel(model, args, device)


def nemo_options(args: BenchArgs) -> NemoOptions:
    try:
        return NemoOptions(**args.transcribe_options)
    except ValidationError as exc:
        raise InvalidOptionError(
            describe_validation_error(exc, each="invalid NeMo transcribe_options ", empty="")
        ) from None


def from_pretrained(name: str, *, config_only: bool = False, device: str = "cpu") -> Any:
    """NeMo's own hub/NGC path; an unreachable or unknown name is ModelNotFoundError."""
    with quiet_nemo():
        from nemo.collections.asr.models import ASRModel

        try:
            if config_only:
                return ASRModel.from_pretrained(name, return_config=True)
            return ASRModel.from_pretrained(name, map_location=device)
        except Exception as exc:  # offline, unknown name, refused, corrupt download
            first = str(exc).splitlines()[0] if str(exc) else "no detail"
            raise ModelNotFoundError(
                f"NeMo cannot fetch {name!r} ({type(exc).__name__}: {first}); offline, use a "
                "local .nemo file or synthetic:<arch> (synthetic:canary-1b, "
                "synthetic:parakeet-tdt-0.6b-v2, ...)"
            ) from None


def _restore(model: ResolvedModel, device: str) -> Any:
    if model.source == "hub":
        return from_pretrained(model.requested, device=device)
    with quiet_nemo():
        from nemo.collections.asr.models import ASRModel

        try:
            return ASRModel.restore_from(str(model.path), map_location=device)
        except Exception as exc:
            raise ModelNotFoundError(
                f"{model.path} cannot be restored as a NeMo ASR model "
                f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
            ) from None


class NemoModel(TorchLoadedModel):
    request_options: ClassVar[type[BaseModel]] = NemoRequestOptions

    def __init__(self, model: ResolvedModel, args: BenchArgs, device: str) -> None:
        import torch

        self.warnings = []
        self.device = device
        if args.cpu_threads:
            torch.set_num_threads(args.cpu_threads)
        dtype = args.dtype or ("fp16" if device.startswith("cuda") else "fp32")
        if dtype == "fp16" and not device.startswith("cuda"):
            raise InvalidOptionError("NeMo runs fp16 on CUDA only; on CPU use dtype fp32 or bf16")
        self.dtype = dtype
        self.model = _restore(model, device)
        self.model.eval()
        self.kind = _kind(self.model)
        if dtype == "bf16" and device == "cpu" and self.kind == "transducer":
            raise InvalidOptionError(
                "bf16 on CPU fails in oneDNN's LSTM (the transducer's prediction network) under "
                "autocast: use dtype fp32 on CPU"
            )
        self.synthetic: dict[str, Any] | None = _synthetic_record(self.model)
        options = nemo_options(args)
        self.batch_size = args.batch_size or 1
        # One file is one clip: a batch of more than one needs clips, so batching cuts the file
        # into 30 s ones unless chunk_length_s says otherwise.
        self.chunk_s = args.chunk_length_s or (
            DEFAULT_BATCH_CLIP_S if self.batch_size > 1 else None
        )
        self.timestamps = bool(args.word_timestamps)
        beam = args.beam_size or 1
        if self.synthetic and beam != 1:
            self.warnings.append(
                f"synthetic model: fixed-length decoding overrides beam_size ({beam} -> 1)"
            )
            beam = 1
        if self.synthetic and self.timestamps and self.kind == "aed":
            self.timestamps = False
            self.warnings.append("canary-1b gives no timestamps: word_timestamps ignored")
        self.beam_size = beam
        self._set_decoding(beam)
        self.prompt = self._prompt(args.language, args.task, options.target_lang, options.pnc)
        # What the transcript says it is in: canary's target; for the others, what the user
        # said (they take no prompt), English by default.
        self.language = self.prompt.get("target_lang") or args.language or "en"
        self.config = jsonable(
            {
                "model_class": type(self.model).__name__,
                "kind": self.kind,
                "dtype": dtype,
                "batch_size": self.batch_size,
                "beam_size": beam,
                "chunk_length_s": self.chunk_s,
                "timestamps": self.timestamps,
                "prompt": self.prompt,
                "decoding_strategy": str(self.model.cfg.decoding.get("strategy")),
                "parameters": sum(p.numel() for p in self.model.parameters()),
                **self._synthetic_config(),
            }
        )

    # -- configuration -------------------------------------------------------------------

    def _set_decoding(self, beam: int) -> None:
        """Greedy at beam 1 (batched for transducers and CTC), NeMo's beam search above it."""
        from omegaconf import open_dict

        current = self.model.cfg.decoding
        greedy = "greedy" if self.kind == "aed" else "greedy_batch"
        strategy = greedy if beam == 1 else "beam"
        if current.get("strategy") == strategy and (
            beam == 1 or (current.get("beam") or {}).get("beam_size") == beam
        ):
            return
        decoding = current.copy()
        with open_dict(decoding):
            decoding.strategy = strategy
            decoding.beam.beam_size = beam
        with quiet_nemo():
            if self.kind == "aed":
                self.model.change_decoding_strategy(decoding)
            else:
                self.model.change_decoding_strategy(decoding, verbose=False)

    def _prompt(
        self, language: str | None, task: str, target: str | None, pnc: bool
    ) -> dict[str, str]:
        """canary's prompt slots; other models take none (and cannot translate)."""
        if self.kind != "aed":
            if task == "translate":
                raise InvalidOptionError(
                    f"{type(self.model).__name__} transcribes only; it cannot translate"
                )
            if language not in (None, "en", "english"):
                self.warnings.append(
                    f"{type(self.model).__name__} takes no language prompt: language="
                    f"{language!r} is recorded, not passed to it"
                )
            return {}
        source = (language or "en").lower()
        known = self._languages()
        target = (target or (source if task == "transcribe" else "en")).lower()
        for name, value in (("language", source), ("target_lang", target)):
            if known and value not in known:
                raise InvalidOptionError(
                    f"{name}={value!r}: this canary model knows {', '.join(sorted(known))}"
                )
        if task == "translate" and source == target:
            raise InvalidOptionError(
                f"translate needs a target language other than the source ({source}): set "
                "transcribe_options target_lang"
            )
        return {
            "source_lang": source,
            "target_lang": target,
            "task": CANARY_TASKS[task],
            "pnc": "yes" if pnc else "no",
        }

    def _languages(self) -> set[str]:
        langs = getattr(self.model.tokenizer, "langs", None) or []
        return {lang for lang in langs if lang != "spl_tokens"}

    def _synthetic_config(self) -> dict[str, Any]:
        if not self.synthetic:
            return {}
        if self.kind == "aed":
            return {
                "synthetic_tokens_per_window": self.synthetic.get("tokens_per_30s"),
                "synthetic_decoding": "end-of-text masked; tokens per clip capped at "
                f"{self.synthetic.get('tokens_per_30s')} per 30 s",
            }
        return {
            "synthetic_tokens_per_window": None,
            "synthetic_decoding": "one token and duration "
            f"{self.synthetic.get('tdt_duration')} at every step: ceil(frames / "
            f"{self.synthetic.get('tdt_duration')}) tokens",
        }

    # -- transcription -------------------------------------------------------------------

    def _clips(self, samples: np.ndarray) -> list[tuple[float, np.ndarray]]:
        if not self.chunk_s:
            return [(0.0, samples)]
        step = int(self.chunk_s * SAMPLE_RATE)
        return [
            (start / SAMPLE_RATE, samples[start : start + step])
            for start in range(0, max(len(samples), 1), step)
        ]

    def _decode(
        self,
        clips: list[np.ndarray],
        prompt: dict[str, str],
        timestamps: bool,
        batch_size: int | None = None,
    ) -> list[Any]:
        import torch

        if not clips:
            return []
        size = batch_size or self.batch_size
        if self.synthetic and self.kind == "aed" and len(clips) > size:
            # The cap is per call: one batch at a time, each capped for its longest clip (as a
            # real batch runs until its longest hypothesis ends).
            return [
                hypothesis
                for start in range(0, len(clips), size)
                for hypothesis in self._decode(
                    clips[start : start + size], prompt, timestamps, size
                )
            ]
        if self.synthetic and self.kind == "aed":
            self._cap_canary(max(len(c) for c in clips) / SAMPLE_RATE)
        autocast = torch.autocast(
            device_type="cuda" if self.device.startswith("cuda") else "cpu",
            dtype=getattr(torch, DTYPES.get(self.dtype, "float32")),
            enabled=self.dtype in DTYPES,
        )
        with quiet_nemo(), torch.inference_mode(), autocast:
            output = self.model.transcribe(
                [np.ascontiguousarray(c, dtype=np.float32) for c in clips],
                batch_size=size,
                return_hypotheses=True,
                verbose=False,
                timestamps=timestamps or None,
                **prompt,
            )
        if isinstance(output, tuple):  # older transducer API: (best, all)
            output = output[0]
        return list(output)

    def _cap_canary(self, longest_s: float) -> None:
        """A synthetic canary never ends by itself: cap its length for this call."""
        from transcription_benchmarks.models.synthetic_nemo import (
            CANARY_PROMPT_LENGTH,
            canary_tokens,
        )

        generator = self.model.decoding.decoding.greedy_search
        generator.max_seq_length = CANARY_PROMPT_LENGTH + canary_tokens(longest_s)
        generator.max_delta_len = -1

    def _segments(
        self, offset: float, clip: np.ndarray, hypothesis: Any, timestamps: bool
    ) -> list[Segment]:
        tokens = [int(t) for t in _sequence(hypothesis)]
        found = getattr(hypothesis, "timestamp", None)  # a tensor of steps unless asked for
        stamps = (found.get("segment") or []) if isinstance(found, dict) else []
        if timestamps and stamps:
            return [
                DecodedSegment(
                    start=offset + float(s["start"]),
                    end=offset + float(s["end"]),
                    text=str(s["segment"]),
                    tokens=tokens if i == 0 else [],
                )
                for i, s in enumerate(stamps)
            ]
        return [
            DecodedSegment(
                start=offset,
                end=offset + len(clip) / SAMPLE_RATE,
                text=str(hypothesis.text),
                tokens=tokens,
            )
        ]

    def transcribe(
        self,
        audio: AudioInput,
        request: NemoRequestOptions | None = None,
        *,
        progress: ProgressCallback | None = None,
        checkpoint: Checkpoint | None = None,
    ) -> Transcript:
        samples = audio_samples(audio)
        prompt, timestamps = self.prompt, self.timestamps
        if request is not None:
            prompt, timestamps = self._request(request)
        clips = self._clips(samples)
        hypotheses = self._decode([c for _, c in clips], prompt, timestamps)
        segments: list[Segment] = []
        for (offset, clip), hypothesis in zip(clips, hypotheses, strict=True):
            segments.extend(self._segments(offset, clip, hypothesis, timestamps))
        if progress is not None:
            progress(len(samples) / SAMPLE_RATE)
        info = None
        if request is not None:
            info = DecodingInfo(
                pipeline=f"{type(self.model).__name__}.transcribe",
                options=jsonable({**self.config, "prompt": prompt, "timestamps": timestamps}),
            )
        language = prompt.get("target_lang") or self.language
        return Transcript(segments=segments, language=language, info=info)

    def transcribe_many(self, clips: list[np.ndarray]) -> list[Transcript]:
        """A dataset's utterances, `batch_size` at a time through one transcribe() call."""
        hypotheses = self._decode(clips, self.prompt, self.timestamps)
        return [
            Transcript(
                segments=self._segments(0.0, clip, hypothesis, self.timestamps),
                language=self.language,
            )
            for clip, hypothesis in zip(clips, hypotheses, strict=True)
        ]

    def _request(self, request: NemoRequestOptions) -> tuple[dict[str, str], bool]:
        asked = request.model_dump(exclude_unset=True)
        timestamps = bool(asked.get("word_timestamps", self.timestamps))
        if not {"task", "language", "target_lang", "pnc"} & set(asked):
            return self.prompt, timestamps
        if self.kind != "aed":
            if asked.get("task") == "translate":
                raise InvalidOptionError(f"{type(self.model).__name__} cannot translate")
            return {}, timestamps
        prompt = self._prompt(
            asked.get("language", self.prompt.get("source_lang")),
            asked.get("task", "transcribe"),
            asked.get("target_lang"),
            asked.get("pnc", self.prompt.get("pnc") == "yes"),
        )
        return prompt, timestamps


def _kind(model: Any) -> Literal["aed", "transducer", "ctc"]:
    from nemo.collections.asr.models import EncDecMultiTaskModel

    if isinstance(model, EncDecMultiTaskModel):
        return "aed"
    return "transducer" if hasattr(model, "joint") else "ctc"


def _synthetic_record(model: Any) -> dict[str, Any] | None:
    from omegaconf import OmegaConf

    record = model.cfg.get("synthetic")
    return OmegaConf.to_container(record) if record is not None else None  # type: ignore[return-value]


def _sequence(hypothesis: Any) -> list[int]:
    sequence = getattr(hypothesis, "y_sequence", None)
    if sequence is None:
        return []
    return sequence.tolist() if hasattr(sequence, "tolist") else list(sequence)


def expected_tokens(model: LoadedModel, samples: int) -> int | None:
    """The exact token count a synthetic NeMo model decodes for one clip of `samples`."""
    from transcription_benchmarks.models.synthetic_nemo import canary_tokens, tdt_tokens

    if not isinstance(model, NemoModel) or not model.synthetic:
        return None
    if model.kind == "aed":
        return canary_tokens(samples / SAMPLE_RATE)
    return tdt_tokens(samples, int(model.synthetic.get("tdt_duration") or 1))
