"""Synthetic NeMo models: canary (FastConformer encoder + Transformer decoder, EncDecMultiTaskModel)
and parakeet-TDT (FastConformer encoder + TDT transducer, EncDecRNNTBPEModel) with random weights.

Neither NGC nor the Hugging Face hub is reachable where the benchmarks run, and the wheel ships
no example configs, so `build_synthetic_nemo(arch)` builds the model from a config dict written
here with the published hyper-parameters (NeMo's example configs for FastConformer-AED and
FastConformer-Transducer, the model cards), saves it as one `.nemo` file and caches it under
``<cache>/synthetic-nemo/<arch>-b<BUILDER_VERSION>/model.nemo``. Everything that depends on NeMo
is imported inside the functions: the architecture table reads without it.

Tokenizers
----------
SentencePiece BPE models trained here, offline, on a fixed English corpus: every regular token
of the packaged tiny.en tokenizer, decoded (50 256 English word pieces; deterministic, shipped
on PyPI). Parakeet has one tokenizer of `vocab_size` pieces; canary an aggregate of one per
language plus the special-token tokenizer NeMo's `CanaryTokenizer.build_special_tokenizer`
builds (task and language tokens), with `custom_tokenizer: CanaryTokenizer` as the real model's
config has. The trained pieces are not the real ones; the sizes, and so the shapes, are. (The corpus
keeps the ASCII words: the byte-level pieces decode to some 400 distinct characters, and each
would need a piece of its own.)

Fixed work on random weights
----------------------------
Random weights end a hypothesis at a random point. The build therefore biases the output layers
so that the amount of decoding is a property of the audio alone:

* canary: the output projection's bias for ``<|endoftext|>`` is `NEVER` (a large negative
  number), so decoding never stops by itself; the engine caps the generated length
  (`canary_tokens`: `TOKENS_PER_30S` per 30 s of audio, Whisper's synthetic rate) with greedy
  decoding. NeMo's Transformer decoder runs every step over the cached prefix; the fixed count
  keeps that real cost comparable between runs.
* TDT: the joint's output bias favours one ordinary token (`TDT_PIECE`) and the largest
  duration by `ALWAYS`, so greedy TDT decoding emits exactly one token per step and advances
  ``d`` frames: ``ceil(frames / d)`` tokens (`tdt_tokens`). With d = 4 and 80 ms frames that is
  3.1 tokens a second, about the rate of English speech in a 1024-piece vocabulary.

The model's config records what was forced (``cfg.synthetic``), so every loader of the file,
the endpoint included, knows the model is synthetic and what decoding it expects.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from transcription_benchmarks.models.cache import cached_directory

BUILDER_VERSION = 2
"""Part of the cache key: bump it whenever the built file would change."""

SEED = 0
TOKENS_PER_30S = 64
"""Canary's forced token count per 30 s of audio: Whisper's synthetic rate
(models.synthetic.SYNTHETIC_TOKENS_PER_WINDOW), so the decoders do comparable work."""
NEVER = -1.0e4
"""Bias that keeps a logit out of every argmax (finite in float16)."""
ALWAYS = 1.0e4
"""Bias that makes a logit win every argmax over random-weight outputs (finite in float16)."""
TDT_PIECE = "\u2581the"
"""The ordinary piece a synthetic TDT model always emits (any regular piece would do; a whole
word keeps the text's words apart)."""
SUBSAMPLING = 8
"""FastConformer's time reduction: 10 ms features -> 80 ms encoder frames."""
CANARY_PROMPT_LENGTH = 5
"""Canary-1B's decoder prompt: BOS, source language, task, target language, punctuation."""
MAX_DECODER_POSITIONS = 512

Family = Literal["canary", "parakeet-tdt"]


@dataclass(frozen=True)
class NemoArch:
    """Published dimensions of one NeMo ASR model (a FastConformer encoder and its decoder)."""

    name: str
    imitates: str
    family: Family
    d_model: int
    encoder_layers: int
    heads: int
    conv_kernel: int
    mel_bins: int
    xscaling: bool
    vocab_size: int
    """Pieces per language tokenizer."""
    languages: tuple[str, ...] = ("en",)
    decoder_layers: int = 0
    decoder_hidden: int = 0
    """canary: the Transformer decoder's depth and width."""
    pred_hidden: int = 640
    pred_rnn_layers: int = 1
    joint_hidden: int = 640
    durations: tuple[int, ...] = (0, 1, 2, 3, 4)
    """parakeet-tdt: the prediction network, joint and TDT durations."""
    published: bool = True
    """False for the small configurations of the same classes that tests run."""


# Hyper-parameters from NeMo's FastConformer example configs (the XL and XXL rows of the
# transducer config's table; the AED config's encoder and decoder) and the model cards: canary-1b
# has 24 + 24 layers at 1024 and 128 mel bins, 1024 pieces per language for en/de/es/fr;
# parakeet-tdt-0.6b-v2 is the XL FastConformer (24 x 1024, 2-layer prediction net) with 128 mel
# bins; parakeet-tdt-1.1b the XXL one (42 x 1024, kernel 5, no xscaling) on 80 mel bins.
_ARCH_LIST = (
    NemoArch("canary-1b", "nvidia/canary-1b", "canary", 1024, 24, 8, 9, 128, False, 1024,
             languages=("en", "de", "es", "fr"), decoder_layers=24, decoder_hidden=1024),
    NemoArch("parakeet-tdt-0.6b-v2", "nvidia/parakeet-tdt-0.6b-v2", "parakeet-tdt", 1024, 24, 8,
             9, 128, True, 1024, pred_rnn_layers=2),
    NemoArch("parakeet-tdt-1.1b", "nvidia/parakeet-tdt-1.1b", "parakeet-tdt", 1024, 42, 8, 5, 80,
             False, 1024, pred_rnn_layers=2),
    # Not published: the same classes at a size that builds and runs in about a second (tests).
    NemoArch("canary-tiny", "nvidia/canary-1b", "canary", 64, 2, 2, 9, 80, False, 256,
             languages=("en", "de", "es", "fr"), decoder_layers=2, decoder_hidden=64,
             published=False),
    NemoArch("parakeet-tdt-tiny", "nvidia/parakeet-tdt-0.6b-v2", "parakeet-tdt", 64, 2, 2, 9, 80,
             True, 256, pred_hidden=64, joint_hidden=64, published=False),
)  # fmt: skip
ARCHITECTURES: dict[str, NemoArch] = {a.name: a for a in _ARCH_LIST}


def nemo_arch(name: str) -> NemoArch | None:
    """The architecture `name` (``synthetic:canary-1b``, ``nvidia/canary-1b``, ``canary-1b``)
    names, or None when it names no NeMo architecture."""
    key = name.strip().lower().removeprefix("synthetic:").removeprefix("nvidia/")
    return ARCHITECTURES.get(key)


def known_architectures() -> str:
    return ", ".join(ARCHITECTURES)


def canary_tokens(duration_s: float) -> int:
    """Tokens a synthetic canary generates for a clip of `duration_s` seconds."""
    wanted = max(1, math.ceil(TOKENS_PER_30S * duration_s / 30.0))
    return min(wanted, MAX_DECODER_POSITIONS - CANARY_PROMPT_LENGTH)


def encoder_frames(samples: int, sample_rate: int = 16000) -> int:
    """Encoder frames for `samples` of audio: 10 ms features (n_fft centred, so one more than
    samples / hop), then three stride-2 convolutions."""
    frames = samples // (sample_rate // 100) + 1
    for _ in range(int(math.log2(SUBSAMPLING))):
        frames = (frames + 2 * 1 - 3) // 2 + 1
    return frames


def tdt_tokens(samples: int, duration: int = 4) -> int:
    """Tokens a synthetic TDT model emits for `samples` of 16 kHz audio."""
    return math.ceil(encoder_frames(samples) / duration)


@dataclass(frozen=True)
class BuiltNemoModel:
    arch: str
    path: Path
    """The `.nemo` file."""
    imitates: str
    parameters: int
    build_s: float
    size_bytes: int


def build_synthetic_nemo(name: str) -> BuiltNemoModel:
    """The `.nemo` file of architecture `name`, built once and cached."""
    arch = nemo_arch(name)
    if arch is None:
        raise ValueError(
            f"unknown synthetic NeMo architecture {name!r}; known: {known_architectures()}"
        )
    key = f"{arch.name}-b{BUILDER_VERSION}"
    directory = cached_directory("synthetic-nemo", key, lambda tmp: _build(arch, tmp))
    info = json.loads((directory / "build.json").read_text(encoding="utf-8"))
    path = directory / "model.nemo"
    return BuiltNemoModel(
        arch.name, path, arch.imitates, info["parameters"], info["build_s"], path.stat().st_size
    )


def _build(arch: NemoArch, out: Path) -> None:
    import torch

    started = time.perf_counter()
    tokenizers = _train_tokenizers(arch, out / "tokenizers")
    torch.manual_seed(SEED)
    model = _instantiate(arch, tokenizers)
    _force_fixed_work(arch, model)
    parameters = sum(p.numel() for p in model.parameters())
    model.save_to(str(out / "model.nemo"))
    del model
    info = {
        "arch": asdict(arch),
        "builder_version": BUILDER_VERSION,
        "parameters": parameters,
        "build_s": round(time.perf_counter() - started, 3),
    }
    (out / "build.json").write_text(json.dumps(info, indent=2), encoding="utf-8")


def _corpus(path: Path) -> Path:
    """The tokenizers' training text: the tiny.en BPE's regular tokens, decoded, one a line."""
    from tokenizers import decoders

    from transcription_benchmarks.models.synthetic import (
        ENGLISH_REGULAR_TOKENS,
        _english_tokenizer_json,
    )

    decoder = decoders.ByteLevel()
    vocab = _english_tokenizer_json()["model"]["vocab"]
    by_id = sorted((i, token) for token, i in vocab.items() if i < ENGLISH_REGULAR_TOKENS)
    words = (decoder.decode([token]).strip() for _, token in by_id)
    # ASCII only: the byte-level pieces decode to 400-odd characters, each of which would take
    # a piece of its own in a small vocabulary.
    lines = [word for word in words if word and word.isascii() and word.isprintable()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _train_bpe(corpus: Path, out: Path, vocab_size: int) -> Path:
    import sentencepiece as spm

    out.mkdir(parents=True, exist_ok=True)
    spm.SentencePieceTrainer.train(
        input=str(corpus),
        model_prefix=str(out / "tokenizer"),
        vocab_size=vocab_size,
        model_type="bpe",
        character_coverage=1.0,
        num_threads=1,  # one thread: the same pieces on every machine
        minloglevel=2,
    )
    vocab = [line.split("\t")[0] for line in (out / "tokenizer.vocab").read_text().splitlines()]
    (out / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    return out


def _train_tokenizers(arch: NemoArch, root: Path) -> dict[str, Path]:
    corpus = _corpus(root.parent / "corpus.txt")
    english = _train_bpe(corpus, root / "bpe", arch.vocab_size)
    if arch.family != "canary":
        return {"bpe": english}
    from nemo.collections.common.tokenizers.canary_tokenizer import CanaryTokenizer

    special = root / "spl_tokens"
    CanaryTokenizer.build_special_tokenizer(["translate", "transcribe", *arch.languages], special)
    return {"spl_tokens": special, **dict.fromkeys(arch.languages, english)}


def _encoder(arch: NemoArch) -> dict[str, Any]:
    return {
        "_target_": "nemo.collections.asr.modules.ConformerEncoder",
        "feat_in": arch.mel_bins,
        "feat_out": -1,
        "n_layers": arch.encoder_layers,
        "d_model": arch.d_model,
        "subsampling": "dw_striding",
        "subsampling_factor": SUBSAMPLING,
        "subsampling_conv_channels": 256,
        "causal_downsampling": False,
        "ff_expansion_factor": 4,
        "self_attention_model": "rel_pos",
        "n_heads": arch.heads,
        "att_context_size": [-1, -1],
        "xscaling": arch.xscaling,
        "untie_biases": True,
        "pos_emb_max_len": 5000,
        "conv_kernel_size": arch.conv_kernel,
        "conv_norm_type": "batch_norm",
        "dropout": 0.1,
        "dropout_pre_encoder": 0.1,
        "dropout_emb": 0.0,
        "dropout_att": 0.1,
    }


def _preprocessor(arch: NemoArch) -> dict[str, Any]:
    return {
        "_target_": "nemo.collections.asr.modules.AudioToMelSpectrogramPreprocessor",
        "sample_rate": 16000,
        "normalize": "per_feature",
        "window_size": 0.025,
        "window_stride": 0.01,
        "window": "hann",
        "features": arch.mel_bins,
        "n_fft": 512,
        "log": True,
        "frame_splicing": 1,
        "dither": 0.0,  # no random dither: the same input gives the same features
        "pad_to": 0,
        "pad_value": 0.0,
    }


def _dataset() -> dict[str, Any]:
    # The transducer's transcribe() reads validation_ds.use_start_end_token; with no manifest
    # nothing is set up. (The multitask model sets up any validation_ds it has: it gets none.)
    return {
        "manifest_filepath": None,
        "sample_rate": 16000,
        "batch_size": 1,
        "shuffle": False,
        "use_start_end_token": False,
    }


def _canary_config(arch: NemoArch, tokenizers: dict[str, Path]) -> dict[str, Any]:
    hidden = arch.decoder_hidden
    return {
        "sample_rate": 16000,
        "prompt_format": "canary",
        # canary-1b has no forced-alignment model for timestamps. Without this key NeMo looks for
        # one in the last .nemo the process restored (a global), and fails when there was one.
        "restore_timestamps_model": False,
        "context_len_for_AR_decoding": CANARY_PROMPT_LENGTH,
        "model_defaults": {
            "asr_enc_hidden": arch.d_model,
            "lm_enc_hidden": hidden,
            "lm_dec_hidden": hidden,
        },
        "tokenizer": {
            "dir": None,
            "type": "agg",
            "langs": {lang: {"dir": str(path), "type": "bpe"} for lang, path in tokenizers.items()},
            "custom_tokenizer": {
                "_target_": "nemo.collections.common.tokenizers.canary_tokenizer.CanaryTokenizer",
                "tokenizer": None,
            },
        },
        "preprocessor": _preprocessor(arch),
        "encoder": _encoder(arch),
        "transf_encoder": {
            "_target_": (
                "nemo.collections.asr.modules.transformer.transformer_encoders.TransformerEncoder"
            ),
            "num_layers": 0,
            "hidden_size": hidden,
            "inner_size": 4 * hidden,
            "num_attention_heads": 8,
            "ffn_dropout": 0.1,
            "attn_score_dropout": 0.1,
            "attn_layer_dropout": 0.1,
            "mask_future": False,
            "pre_ln": True,
            "pre_ln_final_layer_norm": True,
        },
        "transf_decoder": {
            "_target_": "nemo.collections.asr.modules.transformer.get_nemo_transformer",
            "model_name": None,
            "pretrained": False,
            "encoder": None,
            "pre_ln_final_layer_norm": True,
            "config_dict": {
                "max_sequence_length": MAX_DECODER_POSITIONS,
                "num_token_types": 0,
                "embedding_dropout": 0.1,
                "learn_positional_encodings": False,
                "hidden_size": hidden,
                "inner_size": 4 * hidden,
                "num_layers": arch.decoder_layers,
                "num_attention_heads": 8 if hidden >= 512 else 2,
                "ffn_dropout": 0.1,
                "attn_score_dropout": 0.1,
                "attn_layer_dropout": 0.1,
                "hidden_act": "relu",
                "pre_ln": True,
                "vocab_size": None,
            },
        },
        "head": {
            "_target_": "nemo.collections.asr.parts.submodules.token_classifier.TokenClassifier",
            "num_layers": 1,
            "activation": "relu",
            "log_softmax": True,
            "hidden_size": hidden,
            "num_classes": None,
            "dropout": 0.0,
            "use_transformer_init": True,
        },
        "decoding": {
            "strategy": "greedy",
            "return_best_hypothesis": True,
            "greedy": {"max_generation_delta": -1},
            "beam": {"beam_size": 1, "len_pen": 0.0, "max_generation_delta": 50},
        },
        "loss": {
            "_target_": "nemo.collections.common.losses.smoothed_cross_entropy.SmoothedCrossEntropyLoss",
            "label_smoothing": 0.0,
            "pad_id": None,
        },
    }


def _tdt_config(arch: NemoArch, tokenizers: dict[str, Path]) -> dict[str, Any]:
    durations = list(arch.durations)
    return {
        "sample_rate": 16000,
        "compute_eval_loss": False,
        "model_defaults": {
            "enc_hidden": arch.d_model,
            "pred_hidden": arch.pred_hidden,
            "joint_hidden": arch.joint_hidden,
            "tdt_durations": durations,
            "num_tdt_durations": len(durations),
        },
        "validation_ds": _dataset(),
        "tokenizer": {"dir": str(tokenizers["bpe"]), "type": "bpe"},
        "preprocessor": _preprocessor(arch),
        "encoder": _encoder(arch),
        "decoder": {
            "_target_": "nemo.collections.asr.modules.RNNTDecoder",
            "normalization_mode": None,
            "random_state_sampling": False,
            "blank_as_pad": True,
            "prednet": {
                "pred_hidden": arch.pred_hidden,
                "pred_rnn_layers": arch.pred_rnn_layers,
                "t_max": None,
                "dropout": 0.2,
            },
        },
        "joint": {
            "_target_": "nemo.collections.asr.modules.RNNTJoint",
            "log_softmax": None,
            "preserve_memory": False,
            "fuse_loss_wer": False,
            "jointnet": {"joint_hidden": arch.joint_hidden, "activation": "relu", "dropout": 0.2},
            "num_extra_outputs": len(durations),
        },
        "decoding": {
            "strategy": "greedy_batch",
            "model_type": "tdt",
            "durations": durations,
            "greedy": {"max_symbols": 10},
            "beam": {"beam_size": 2, "return_best_hypothesis": False, "score_norm": True},
        },
        "loss": {
            "loss_name": "tdt",
            "tdt_kwargs": {
                "fastemit_lambda": 0.0,
                "clamp": -1.0,
                "durations": durations,
                "sigma": 0.02,
                "omega": 0.1,
            },
        },
    }


def _instantiate(arch: NemoArch, tokenizers: dict[str, Path]):
    from nemo.collections.asr.models import EncDecMultiTaskModel, EncDecRNNTBPEModel
    from omegaconf import OmegaConf

    model_class: type = EncDecRNNTBPEModel
    if arch.family == "canary":
        from nemo.collections.asr.parts.submodules.multitask_decoding import (
            MultiTaskDecodingConfig,
        )

        config = _canary_config(arch, tokenizers)
        # The model reads every field of NeMo's decoding config: ours goes over its defaults.
        full = OmegaConf.to_container(OmegaConf.structured(MultiTaskDecodingConfig))
        config["decoding"] = OmegaConf.to_container(OmegaConf.merge(full, config["decoding"]))
        model_class = EncDecMultiTaskModel
    else:
        config = _tdt_config(arch, tokenizers)
    config["synthetic"] = {
        "arch": arch.name,
        "imitates": arch.imitates,
        "builder_version": BUILDER_VERSION,
        "family": arch.family,
        "tokens_per_30s": TOKENS_PER_30S if arch.family == "canary" else None,
        "tdt_duration": max(arch.durations) if arch.family == "parakeet-tdt" else None,
    }
    model = model_class(cfg=OmegaConf.create(config))
    return model.eval()


def _force_fixed_work(arch: NemoArch, model: Any) -> None:
    import torch

    with torch.no_grad():
        if arch.family == "canary":
            output = _last_linear(model.log_softmax)
            output.bias[model.tokenizer.eos_id] = NEVER
        else:
            output = _last_linear(model.joint.joint_net)
            # Outputs: the pieces, the blank, then one logit per duration.
            first_duration = output.out_features - len(arch.durations)
            output.bias[_word_piece(model.tokenizer)] = ALWAYS
            output.bias[first_duration + arch.durations.index(max(arch.durations))] = ALWAYS


def _word_piece(tokenizer: Any) -> int:
    """TDT_PIECE's id, or the first whole-word piece where a small vocabulary lacks it."""
    pieces = list(tokenizer.vocab)
    if TDT_PIECE in pieces:
        return pieces.index(TDT_PIECE)
    return next(i for i, p in enumerate(pieces) if p.startswith("\u2581") and len(p) > 2)


def _last_linear(module: Any):
    import torch

    linears = [m for m in module.modules() if isinstance(m, torch.nn.Linear)]
    if not linears:
        raise RuntimeError(f"{type(module).__name__} has no output layer to bias")
    return linears[-1]
