"""Hugging Face Whisper weights -> whisper.cpp's ggml file (f16), built once and cached.

So that the packaged tiny.en and every `synthetic:` architecture run on whisper.cpp offline, on
the weights the other engines measure. The layout is the one whisper.cpp's own converters write
(a fact of the format, re-implemented here from HF weights rather than openai checkpoints):

  int32 magic 0x67676d6c ("ggml"); int32 x 11 hyper-parameters (n_vocab, n_audio_ctx,
  n_audio_state, n_audio_head, n_audio_layer, n_text_ctx, n_text_state, n_text_head,
  n_text_layer, n_mels, f16 flag); the mel filter bank (int32 rows, int32 columns, float32
  values); the BPE vocabulary without special tokens (int32 count, then int32 length + bytes
  each, in id order); then each tensor under openai-whisper's name: int32 n_dims, int32 name
  length, int32 type (0 f32, 1 f16), the dimensions innermost first, the name, the data.

The 2-D and 3-D weights are f16; biases, norms, the conv biases (stored as [n, 1]) and the
positional embeddings stay f32, as whisper.cpp expects. The format has an all-f32 variant (f16
flag 0), which the whisper.cpp in pywhispercpp 1.5.1 aborts on (an f16 assertion in its
convolution, then a segmentation fault with f16 kernels): only f16 files are written. Quantized types need
whisper.cpp's own quantize tool, which pywhispercpp's wheels do not ship.
"""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path

from transcription_benchmarks.models.cache import cached_directory
from transcription_benchmarks.models.hf_to_openai import dimensions, openai_name

CONVERTER_VERSION = 1
MAGIC = 0x67676D6C
HEADER_ORDER = (
    "n_vocab",
    "n_audio_ctx",
    "n_audio_state",
    "n_audio_head",
    "n_audio_layer",
    "n_text_ctx",
    "n_text_state",
    "n_text_head",
    "n_text_layer",
    "n_mels",
)
F32_ALWAYS = frozenset(
    {
        "encoder.conv1.bias",
        "encoder.conv2.bias",
        "encoder.positional_embedding",
        "decoder.positional_embedding",
    }
)


FILE_NAME = "ggml-model.bin"


def byte_decoder() -> dict[str, int]:
    """GPT-2's byte-level BPE alphabet, inverted: printable bytes stand for themselves, the
    others are shifted to code points from 256 up, in byte order."""
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    chars = {byte: chr(byte) for byte in printable}
    shifted = 0
    for byte in range(256):
        if byte not in chars:
            chars[byte] = chr(256 + shifted)
            shifted += 1
    return {char: byte for byte, char in chars.items()}


def vocabulary(hf_dir: Path) -> list[bytes]:
    """The regular BPE tokens of the HF tokenizer as bytes, in id order (special tokens,
    which whisper.cpp derives from n_vocab itself, left out)."""
    tokenizer = json.loads((hf_dir / "tokenizer.json").read_text(encoding="utf-8"))
    special = {entry["id"] for entry in tokenizer.get("added_tokens", [])}
    decode = byte_decoder()
    ranked = sorted((i, t) for t, i in tokenizer["model"]["vocab"].items() if i not in special)
    return [bytes(decode[char] for char in token) for _, token in ranked]


def mel_filters(hf_dir: Path, n_mels: int):
    """The model's own filter bank, (n_mels, n_fft / 2 + 1) float32."""
    import numpy as np
    from transformers import WhisperFeatureExtractor

    extractor = WhisperFeatureExtractor.from_pretrained(str(hf_dir), feature_size=n_mels)
    return np.ascontiguousarray(np.asarray(extractor.mel_filters, dtype=np.float32).T)


def convert_hf_to_ggml(hf_dir: Path, out: Path) -> None:
    import numpy as np
    from safetensors.numpy import load_file

    config = json.loads((hf_dir / "config.json").read_text())
    dims = dimensions(config)
    tensors: dict[str, np.ndarray] = {}
    for file in sorted(hf_dir.glob("*.safetensors")):
        tensors.update(load_file(str(file)))
    if not tensors:
        raise FileNotFoundError(f"{hf_dir} holds no .safetensors weights")
    filters = mel_filters(hf_dir, dims["n_mels"])
    tokens = vocabulary(hf_dir)
    with (out / FILE_NAME).open("wb") as f:
        f.write(struct.pack("<i", MAGIC))
        f.write(struct.pack("<11i", *(dims[k] for k in HEADER_ORDER), 1))
        f.write(struct.pack("<ii", *filters.shape))
        f.write(filters.astype("<f4").tobytes())
        f.write(struct.pack("<i", len(tokens)))
        for token in tokens:
            f.write(struct.pack("<i", len(token)) + token)
        for key, tensor in tensors.items():
            name = openai_name(key)
            if name is None:
                continue
            data = np.asarray(tensor, dtype=np.float32)
            if name in ("encoder.conv1.bias", "encoder.conv2.bias"):
                data = data.reshape(data.shape[0], 1)
            half = data.ndim >= 2 and name not in F32_ALWAYS
            data = data.astype("<f2" if half else "<f4")
            encoded = name.encode()
            f.write(struct.pack("<iii", data.ndim, len(encoded), int(half)))
            f.write(struct.pack(f"<{data.ndim}i", *reversed(data.shape)))
            f.write(encoded)
            f.write(np.ascontiguousarray(data).tobytes())


def cache_key(hf_dir: Path) -> str:
    digest = hashlib.sha256(f"hf-to-ggml:v{CONVERTER_VERSION}".encode())
    for path in sorted(
        [hf_dir / "config.json", hf_dir / "tokenizer.json", *hf_dir.glob("*.safetensors")]
    ):
        with path.open("rb") as file:
            digest.update(path.name.encode() + hashlib.file_digest(file, "sha256").digest())
    return f"{hf_dir.name}-f16-{digest.hexdigest()[:16]}"


def ggml_from_hf(hf_dir: Path) -> Path:
    """A directory holding the ggml file of the HF Whisper model in `hf_dir`."""
    hf_dir = Path(hf_dir)
    return cached_directory(
        "ggml-from-hf", cache_key(hf_dir), lambda out: convert_hf_to_ggml(hf_dir, out)
    )


def is_ggml(path: Path) -> bool:
    """Whether the file starts with the ggml magic."""
    try:
        with path.open("rb") as f:
            head = f.read(4)
    except OSError:
        return False
    return len(head) == 4 and struct.unpack("<i", head)[0] == MAGIC
