"""CTranslate2 Whisper (faster-whisper's format) -> Hugging Face transformers, cached.

Hand-written because no library converts in this direction: ctranslate2 only converts *to* its
format, and neither transformers nor faster-whisper can read `model.bin`. The reader follows the
writer, `ModelSpec._serialize` in ctranslate2/specs/model_spec.py, and its C++ loader
(src/models/model.cc); the weight mapping inverts `WhisperLoader` in
ctranslate2/converters/transformers.py.

Weights are written as float32 safetensors whatever the stored float type: float16/bfloat16 ->
float32 is exact, so transformers computes with exactly the CTranslate2 weights, and float32 is
what torch wants on CPU (pass `dtype=torch.float16` to `from_pretrained` to halve GPU memory).
Quantized models (int8*, int16) are refused: their weights are rounded copies of the originals.
"""

from __future__ import annotations

import hashlib
import json
import mmap
import re
import shutil
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from transcription_benchmarks.models.cache import cached_directory

CONVERTER_VERSION = 2  # bump when the output changes, so cached conversions are rebuilt
SUPPORTED_BINARY_VERSIONS = range(4, 7)  # 4 introduced explicit dtype ids; 6 is current
WHISPER_SPEC_REVISION = 3

# Index = the type id stored per variable: the DataType enum of include/ctranslate2/types.h.
_DTYPES = ("float32", "int8", "int16", "int32", "float16", "bfloat16")


@dataclass(frozen=True)
class Ct2Model:
    """The contents of a CTranslate2 model.bin. Aliases (a variable stored once under the first
    name in sorted order, e.g. the tied output projection) are resolved in `variables`; bfloat16
    variables are widened to float32 (numpy has no bfloat16), everything else keeps its dtype."""

    binary_version: int
    spec_name: str
    spec_revision: int
    variables: dict[str, np.ndarray]
    aliases: dict[str, str]

    def float32(self, name: str) -> np.ndarray:
        return np.ascontiguousarray(self.variables[name], dtype=np.float32)

    def scalar(self, name: str, default: int) -> int:
        value = self.variables.get(name)
        return default if value is None else int(value)


def read_ct2_model(path: Path) -> Ct2Model:
    """Parse a CTranslate2 model.bin. Arrays are read-only views of a memory map, not copies.

    Layout, all little-endian; a string is a uint16 length (counting a trailing NUL), the bytes,
    then the NUL:
        uint32 binary_version, string spec_name, uint32 spec_revision,
        uint32 n, then n x (string name, uint8 rank, rank x uint32 dim, uint8 type id,
                            uint32 byte count, raw row-major data),
        uint32 m, then m x (string alias, string target)
    Scalars (head counts, flags, enums) are rank-0 variables.
    """
    with Path(path).open("rb") as file:
        buffer = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ)
    pos = 0

    def unpack(fmt: str) -> tuple[Any, ...]:
        nonlocal pos
        values = struct.unpack_from("<" + fmt, buffer, pos)
        pos += struct.calcsize("<" + fmt)
        return values

    def string() -> str:
        nonlocal pos
        (length,) = unpack("H")
        text = buffer[pos : pos + length - 1].decode("utf-8")
        pos += length
        return text

    (binary_version,) = unpack("I")
    if binary_version not in SUPPORTED_BINARY_VERSIONS:
        raise ValueError(
            f"{path}: CTranslate2 binary version {binary_version} is not supported (this reader "
            f"handles {SUPPORTED_BINARY_VERSIONS.start}-{SUPPORTED_BINARY_VERSIONS.stop - 1})"
        )
    spec_name = string()
    (spec_revision,) = unpack("I")
    variables: dict[str, np.ndarray] = {}
    (count,) = unpack("I")
    for _ in range(count):
        name = string()
        (rank,) = unpack("B")
        shape = unpack(f"{rank}I")
        type_id, num_bytes = unpack("BI")
        dtype = _DTYPES[type_id]
        raw_dtype = np.uint16 if dtype == "bfloat16" else np.dtype(dtype)
        array = np.frombuffer(buffer, raw_dtype, num_bytes // np.dtype(raw_dtype).itemsize, pos)
        if dtype == "bfloat16":  # bfloat16 is the upper half of a float32
            array = (array.astype(np.uint32) << 16).view(np.float32)
        variables[name] = array.reshape(shape)
        pos += num_bytes
    aliases: dict[str, str] = {}
    (count,) = unpack("I")
    for _ in range(count):
        alias = string()
        aliases[alias] = string()
    for alias, target in aliases.items():
        variables[alias] = variables[target]
    return Ct2Model(binary_version, spec_name, spec_revision, variables, aliases)


@dataclass(frozen=True)
class _Dims:
    vocab_size: int
    d_model: int
    num_mel_bins: int
    encoder_layers: int
    decoder_layers: int
    encoder_heads: int
    decoder_heads: int
    encoder_ffn_dim: int
    decoder_ffn_dim: int
    max_source_positions: int
    max_target_positions: int


def _dimensions(model: Ct2Model) -> _Dims:
    v = model.variables

    def layers(side: str) -> int:
        pattern = re.compile(rf"{side}/layer_(\d+)/")
        return 1 + max(int(m.group(1)) for name in v if (m := pattern.match(name)))

    vocab_size, d_model = v["decoder/embeddings/weight"].shape
    # The converter stores the head counts; Whisper's head size is 64 in every published size.
    return _Dims(
        vocab_size=vocab_size,
        d_model=d_model,
        num_mel_bins=v["encoder/conv1/weight"].shape[1],
        encoder_layers=layers("encoder"),
        decoder_layers=layers("decoder"),
        encoder_heads=model.scalar("encoder/num_heads", d_model // 64),
        decoder_heads=model.scalar("decoder/num_heads", d_model // 64),
        encoder_ffn_dim=v["encoder/layer_0/ffn/linear_0/weight"].shape[0],
        decoder_ffn_dim=v["decoder/layer_0/ffn/linear_0/weight"].shape[0],
        max_source_positions=v["encoder/position_encodings/encodings"].shape[0],
        max_target_positions=v["decoder/position_encodings/encodings"].shape[0],
    )


def _check_convertible(model: Ct2Model, path: Path) -> None:
    if model.spec_name != "WhisperSpec":
        raise ValueError(f"{path} holds a {model.spec_name} model, not a Whisper model")
    if model.spec_revision > WHISPER_SPEC_REVISION:
        raise ValueError(
            f"{path}: WhisperSpec revision {model.spec_revision} is newer than this converter "
            f"knows ({WHISPER_SPEC_REVISION})"
        )
    weights = {
        str(a.dtype) for n, a in model.variables.items() if n.endswith("weight") and a.ndim > 1
    }
    if weights & {"int8", "int16"}:
        others = {
            str(a.dtype)
            for n, a in model.variables.items()
            if a.ndim > 0 and not n.endswith(("weight", "_scale"))
        }
        quantization = "int16" if "int16" in weights else "int8"
        if quantization == "int8" and "float16" in others:
            quantization = "int8_float16"
        raise ValueError(
            f"{path} is quantized ({quantization}); converting quantized CTranslate2 weights to "
            "transformers is not supported. Use a float16 or float32 CTranslate2 model "
            "(e.g. ct2-transformers-converter --quantization float16)."
        )
    # The architecture transformers' Whisper implements: pre-norm, exact GELU, unscaled embeddings.
    flags = {"decoder/pre_norm": 1, "decoder/activation": 3, "decoder/scale_embeddings": 0}
    for name, expected in flags.items():
        if model.scalar(name, expected) != expected:
            raise ValueError(f"{path}: unexpected {name}={model.scalar(name, expected)}")


def _state_dict(model: Ct2Model, dims: _Dims) -> tuple[dict[str, np.ndarray], bool]:
    """The WhisperForConditionalGeneration state dict, and whether proj_out is tied to the
    token embeddings."""
    state: dict[str, np.ndarray] = {}

    def put(hf: str, ct2: str) -> None:
        state[hf] = model.float32(ct2)

    def linear(hf: str, ct2: str) -> None:
        put(f"{hf}.weight", f"{ct2}/weight")
        put(f"{hf}.bias", f"{ct2}/bias")

    def norm(hf: str, ct2: str) -> None:
        put(f"{hf}.weight", f"{ct2}/gamma")
        put(f"{hf}.bias", f"{ct2}/beta")

    def fused(hfs: list[str], ct2: str) -> None:
        # The converter concatenates the q/k/v (self-attention) or k/v (cross-attention) output
        # rows into one linear; the bias gets zeros where k_proj, which has no bias, sits.
        weights = np.split(model.float32(f"{ct2}/weight"), len(hfs))
        biases = np.split(model.float32(f"{ct2}/bias"), len(hfs))
        for hf, weight, bias in zip(hfs, weights, biases, strict=True):
            state[f"{hf}.weight"] = weight
            if not hf.endswith("k_proj"):
                state[f"{hf}.bias"] = bias
            elif bias.any():
                raise ValueError(f"{ct2}: non-zero key bias, which Whisper's k_proj cannot hold")

    linear("model.encoder.conv1", "encoder/conv1")  # same [out, in, kernel] layout as torch
    linear("model.encoder.conv2", "encoder/conv2")
    put("model.decoder.embed_tokens.weight", "decoder/embeddings/weight")
    for side in ("encoder", "decoder"):
        put(f"model.{side}.embed_positions.weight", f"{side}/position_encodings/encodings")
        norm(f"model.{side}.layer_norm", f"{side}/layer_norm")
        for i in range(getattr(dims, f"{side}_layers")):
            hf, ct2 = f"model.{side}.layers.{i}", f"{side}/layer_{i}"
            fused([f"{hf}.self_attn.{p}_proj" for p in "qkv"], f"{ct2}/self_attention/linear_0")
            linear(f"{hf}.self_attn.out_proj", f"{ct2}/self_attention/linear_1")
            norm(f"{hf}.self_attn_layer_norm", f"{ct2}/self_attention/layer_norm")
            if side == "decoder":
                linear(f"{hf}.encoder_attn.q_proj", f"{ct2}/attention/linear_0")
                fused([f"{hf}.encoder_attn.{p}_proj" for p in "kv"], f"{ct2}/attention/linear_1")
                linear(f"{hf}.encoder_attn.out_proj", f"{ct2}/attention/linear_2")
                norm(f"{hf}.encoder_attn_layer_norm", f"{ct2}/attention/layer_norm")
            linear(f"{hf}.fc1", f"{ct2}/ffn/linear_0")
            linear(f"{hf}.fc2", f"{ct2}/ffn/linear_1")
            norm(f"{hf}.final_layer_norm", f"{ct2}/ffn/layer_norm")

    bias = model.variables.get("decoder/projection/bias")
    if bias is not None and bias.any():
        raise ValueError("decoder/projection/bias is non-zero; Whisper's proj_out has no bias")
    projection = model.variables["decoder/projection/weight"]
    tied = model.aliases.get("decoder/projection/weight") == "decoder/embeddings/weight" or (
        np.array_equal(projection, model.variables["decoder/embeddings/weight"])
    )
    if not tied:
        put("proj_out.weight", "decoder/projection/weight")
    return state, tied


def _read_vocabulary(ct2_dir: Path) -> list[str]:
    if (ct2_dir / "vocabulary.json").is_file():
        return list(json.loads((ct2_dir / "vocabulary.json").read_text(encoding="utf-8")))
    # One token a line, split on "\n" only, as CTranslate2 reads it.
    return (ct2_dir / "vocabulary.txt").read_text(encoding="utf-8").removesuffix("\n").split("\n")


def convert_ct2_to_hf(ct2_dir: Path, out_dir: Path) -> None:
    """Write the transformers version of the CTranslate2 Whisper model in `ct2_dir` (model.bin,
    config.json, tokenizer.json, vocabulary.txt/.json) to `out_dir`: model.safetensors (float32),
    config.json, generation_config.json, tokenizer and preprocessor files."""
    from safetensors.numpy import save_file
    from transformers import (
        GenerationConfig,
        WhisperConfig,
        WhisperFeatureExtractor,
        WhisperTokenizerFast,
    )

    ct2_dir, out_dir = Path(ct2_dir), Path(out_dir)
    model = read_ct2_model(ct2_dir / "model.bin")
    _check_convertible(model, ct2_dir / "model.bin")
    if not (ct2_dir / "tokenizer.json").is_file():
        raise FileNotFoundError(
            f"{ct2_dir} has no tokenizer.json; vocabulary.txt alone lacks the BPE merges that "
            "transformers' tokenizer needs"
        )
    ct2_config = json.loads((ct2_dir / "config.json").read_text(encoding="utf-8"))
    dims = _dimensions(model)
    state, tied = _state_dict(model, dims)
    # Every special token (<|endoftext|>, <|startoftranscript|>, languages, tasks,
    # <|notimestamps|>) is declared special, as in openai's checkpoints: decode(...,
    # skip_special_tokens=True) drops them and the first timestamp id is the last special + 1.
    added = json.loads((ct2_dir / "tokenizer.json").read_text(encoding="utf-8"))["added_tokens"]
    specials = [t["content"] for t in sorted(added, key=lambda t: t["id"]) if t["special"]]
    tokenizer = WhisperTokenizerFast(
        tokenizer_file=str(ct2_dir / "tokenizer.json"),
        pad_token="<|endoftext|>",
        model_max_length=dims.max_target_positions,
        additional_special_tokens=specials,
    )
    token_id = dict(zip(specials, tokenizer.convert_tokens_to_ids(specials), strict=True))
    vocabulary = _read_vocabulary(ct2_dir)
    if len(vocabulary) != dims.vocab_size or any(vocabulary[i] != t for t, i in token_id.items()):
        raise ValueError(f"{ct2_dir}: tokenizer.json does not match the model's vocabulary")
    out_dir.mkdir(parents=True, exist_ok=True)
    save_file(state, str(out_dir / "model.safetensors"), metadata={"format": "pt"})
    eot, sot = token_id["<|endoftext|>"], token_id["<|startoftranscript|>"]
    no_timestamps = token_id["<|notimestamps|>"]
    transcribe, translate = token_id["<|transcribe|>"], token_id["<|translate|>"]
    # The rule openai-whisper, transformers and CTranslate2 all use. (The CT2 config's lang_ids
    # is no guide: Systran's tiny.en lists 98 ids there.)
    multilingual = dims.vocab_size >= 51865

    config = WhisperConfig(
        vocab_size=dims.vocab_size,
        num_mel_bins=dims.num_mel_bins,
        d_model=dims.d_model,
        encoder_layers=dims.encoder_layers,
        decoder_layers=dims.decoder_layers,
        encoder_attention_heads=dims.encoder_heads,
        decoder_attention_heads=dims.decoder_heads,
        encoder_ffn_dim=dims.encoder_ffn_dim,
        decoder_ffn_dim=dims.decoder_ffn_dim,
        max_source_positions=dims.max_source_positions,
        max_target_positions=dims.max_target_positions,
        pad_token_id=eot,
        bos_token_id=eot,
        eos_token_id=eot,
        decoder_start_token_id=sot,
        tie_word_embeddings=tied,
        architectures=["WhisperForConditionalGeneration"],
        dtype="float32",  # what the safetensors hold; from_pretrained(dtype="auto") reads it
    )
    config.save_pretrained(out_dir)

    generation: dict[str, Any] = {
        "decoder_start_token_id": sot,
        "bos_token_id": eot,
        "eos_token_id": eot,
        "pad_token_id": eot,
        "max_length": dims.max_target_positions,
        # Only here, not in config.json: transformers 4.x warns (and means to refuse) when a
        # model config carries generation values.
        "suppress_tokens": ct2_config.get("suppress_ids", []),
        "begin_suppress_tokens": ct2_config.get("suppress_ids_begin", [220, eot]),
        "alignment_heads": ct2_config.get("alignment_heads")
        or [
            [layer, head]
            for layer in range(dims.decoder_layers // 2, dims.decoder_layers)
            for head in range(dims.decoder_heads)
        ],
        "no_timestamps_token_id": no_timestamps,
        "prev_sot_token_id": token_id["<|startofprev|>"],
        "max_initial_timestamp_index": 50,  # 1 s, openai's default
        "return_timestamps": False,
        "is_multilingual": multilingual,
    }
    # No forced_decoder_ids (openai's checkpoints have them): transformers >= 4.50 re-applies a
    # checkpoint's generation values as "model defaults" when it was saved by >= 4.50, which
    # brings them back after Whisper's generate() consumed them, and generate() then refuses
    # them. Whisper builds the same prompt without them: English-only <|sot|><|notimestamps|>;
    # multilingual detects the language and, with task below, adds <|transcribe|>.
    if multilingual:  # language tokens sit between <|startoftranscript|> and <|translate|>
        languages = tokenizer.convert_ids_to_tokens(list(range(sot + 1, translate)))
        generation["lang_to_id"] = dict(zip(languages, range(sot + 1, translate), strict=True))
        generation["task_to_id"] = {"transcribe": transcribe, "translate": translate}
        generation["task"] = "transcribe"
    GenerationConfig(**generation).save_pretrained(out_dir)

    feature_extractor = WhisperFeatureExtractor(
        feature_size=dims.num_mel_bins,
        sampling_rate=16000,
        hop_length=160,
        chunk_length=30,
        n_fft=400,
        padding_value=0.0,
        return_attention_mask=False,
    )
    # Saved one by one, not through WhisperProcessor: in transformers 4.x that processor only
    # takes the slow WhisperTokenizer (vocab.json + merges.txt, which tokenizer.json replaces),
    # and AutoProcessor finds WhisperProcessor from config.json's model_type in 4.x and 5.
    feature_extractor.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    # safetensors creates its file 0600; give it the (umask-derived) mode of the other files.
    shutil.copymode(out_dir / "config.json", out_dir / "model.safetensors")


def cache_key(ct2_dir: Path) -> str:
    """Content key of a CTranslate2 model directory.

    A full sha256 of model.bin: measured at 65 ms for tiny.en's 75 MB (~1.2 GB/s here, ~3 s for
    large-v3 in float16), small beside the conversion, and unlike sampling a few MiB it tells
    fine-tunes apart (model.bin starts with the decoder embeddings and ends with the fixed
    sinusoidal encoder positions, so frozen-embedding fine-tunes would share both ends).
    """
    digest = hashlib.sha256(f"ct2-to-hf:v{CONVERTER_VERSION}".encode())
    for name in ("model.bin", "config.json", "tokenizer.json", "vocabulary.json", "vocabulary.txt"):
        path = Path(ct2_dir) / name
        if path.is_file():
            with path.open("rb") as file:
                digest.update(name.encode() + hashlib.file_digest(file, "sha256").digest())
    return f"{Path(ct2_dir).name}-{digest.hexdigest()[:16]}"


def hf_from_ct2(ct2_dir: Path) -> Path:
    """The transformers conversion of the CTranslate2 Whisper model in `ct2_dir`, built on first
    use under the project cache and reused while model.bin, config and tokenizer are unchanged."""
    ct2_dir = Path(ct2_dir)
    return cached_directory(
        "hf-from-ct2", cache_key(ct2_dir), lambda out: convert_ct2_to_hf(ct2_dir, out)
    )
