"""Hugging Face Whisper -> CTranslate2, with ctranslate2's own converter, cached.

So that `bench("openai/whisper-large-v3", BenchArgs(backend="faster-whisper"))` measures the
same weights under both engines.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from transcription_benchmarks.models.cache import cached_directory

# Copied beside model.bin: faster-whisper reads the tokenizer and the mel-bin count from them
# (without tokenizer.json it would try to download one).
FILES_FOR_FASTER_WHISPER = ("tokenizer.json", "preprocessor_config.json")
CONVERTER_VERSION = 1


def ct2_from_hf(hf_dir: Path, quantization: str = "float16") -> Path:
    """The CTranslate2 conversion of `hf_dir`, built on first use (weights stored in `quantization`;
    faster-whisper's compute_type still chooses the type computed in)."""
    key = _content_key(hf_dir, quantization)

    def build(out: Path) -> None:
        from ctranslate2.converters import TransformersConverter

        copy = [name for name in FILES_FOR_FASTER_WHISPER if (hf_dir / name).is_file()]
        TransformersConverter(str(hf_dir), copy_files=copy).convert(
            str(out), quantization=quantization, force=True
        )

    return cached_directory("ct2-from-hf", key, build)


def _content_key(hf_dir: Path, quantization: str) -> str:
    digest = hashlib.sha256(f"v{CONVERTER_VERSION}:{quantization}".encode())
    for path in sorted(hf_dir.iterdir()):
        if path.is_file():
            stat = path.stat()
            # Weights are large: name + size + config contents identify a checkpoint cheaply.
            digest.update(f"{path.name}:{stat.st_size}".encode())
            if path.suffix == ".json":
                digest.update(path.read_bytes())
    return f"{hf_dir.name}-{digest.hexdigest()[:16]}"
