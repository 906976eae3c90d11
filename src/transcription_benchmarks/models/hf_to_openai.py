"""Hugging Face Whisper weights -> openai-whisper's checkpoint layout, built once and cached.

So that the packaged tiny.en (CTranslate2, converted to HF first) and every `synthetic:`
architecture run on the reference implementation offline, on the same weights the other engines
measure. openai-whisper loads a torch file `{"dims": ModelDimensions fields, "model_state_dict":
...}`; the tensors are HF's under openai's names (HF's own conversion script maps them the other
way; the table below is the inverse, written here). HF ties `proj_out` to the token embedding,
which openai-whisper also uses as its output projection, so it is dropped.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

from transcription_benchmarks.models.cache import cached_directory

CONVERTER_VERSION = 1
CHECKPOINT = "model.pt"

# (HF pattern, openai replacement), applied in order to each key after "model." is removed.
_RENAMES: tuple[tuple[str, str], ...] = (
    (r"\.layers\.", ".blocks."),
    (r"\.self_attn\.q_proj\.", ".attn.query."),
    (r"\.self_attn\.k_proj\.", ".attn.key."),
    (r"\.self_attn\.v_proj\.", ".attn.value."),
    (r"\.self_attn\.out_proj\.", ".attn.out."),
    (r"\.self_attn_layer_norm\.", ".attn_ln."),
    (r"\.encoder_attn\.q_proj\.", ".cross_attn.query."),
    (r"\.encoder_attn\.k_proj\.", ".cross_attn.key."),
    (r"\.encoder_attn\.v_proj\.", ".cross_attn.value."),
    (r"\.encoder_attn\.out_proj\.", ".cross_attn.out."),
    (r"\.encoder_attn_layer_norm\.", ".cross_attn_ln."),
    (r"\.fc1\.", ".mlp.0."),
    (r"\.fc2\.", ".mlp.2."),
    (r"\.final_layer_norm\.", ".mlp_ln."),
    (r"^encoder\.layer_norm\.", "encoder.ln_post."),
    (r"^decoder\.layer_norm\.", "decoder.ln."),
    (r"^encoder\.embed_positions\.weight$", "encoder.positional_embedding"),
    (r"^decoder\.embed_positions\.weight$", "decoder.positional_embedding"),
    (r"^decoder\.embed_tokens\.", "decoder.token_embedding."),
)


def openai_name(hf_key: str) -> str | None:
    """openai-whisper's name for an HF tensor; None for one it does not keep (proj_out)."""
    key = hf_key.removeprefix("model.")
    if key.startswith("proj_out."):
        return None
    for pattern, replacement in _RENAMES:
        key = re.sub(pattern, replacement, key)
    return key


def dimensions(config: dict) -> dict[str, int]:
    """ModelDimensions from an HF WhisperConfig."""
    return {
        "n_mels": config["num_mel_bins"],
        "n_vocab": config["vocab_size"],
        "n_audio_ctx": config["max_source_positions"],
        "n_audio_state": config["d_model"],
        "n_audio_head": config["encoder_attention_heads"],
        "n_audio_layer": config["encoder_layers"],
        "n_text_ctx": config["max_target_positions"],
        "n_text_state": config["d_model"],
        "n_text_head": config["decoder_attention_heads"],
        "n_text_layer": config["decoder_layers"],
    }


def convert_hf_to_openai(hf_dir: Path, out: Path) -> None:
    import torch
    from safetensors.torch import load_file

    config = json.loads((hf_dir / "config.json").read_text())
    tensors: dict[str, torch.Tensor] = {}
    for file in sorted(hf_dir.glob("*.safetensors")):
        tensors.update(load_file(str(file)))
    if not tensors:
        raise FileNotFoundError(f"{hf_dir} holds no .safetensors weights")
    state = {}
    for key, tensor in tensors.items():
        if (name := openai_name(key)) is not None:
            state[name] = tensor.float().contiguous()
    torch.save({"dims": dimensions(config), "model_state_dict": state}, out / CHECKPOINT)
    (out / "config.json").write_text(json.dumps({"converted_from": str(hf_dir), **config}))


def cache_key(hf_dir: Path) -> str:
    digest = hashlib.sha256(f"hf-to-openai:v{CONVERTER_VERSION}".encode())
    for path in sorted([hf_dir / "config.json", *hf_dir.glob("*.safetensors")]):
        with path.open("rb") as file:
            digest.update(path.name.encode() + hashlib.file_digest(file, "sha256").digest())
    return f"{hf_dir.name}-{digest.hexdigest()[:16]}"


def openai_from_hf(hf_dir: Path) -> Path:
    """The openai-whisper checkpoint of the HF Whisper model in `hf_dir` (a directory holding
    model.pt), built on first use under the project cache."""
    hf_dir = Path(hf_dir)
    return cached_directory(
        "openai-from-hf", cache_key(hf_dir), lambda out: convert_hf_to_openai(hf_dir, out)
    )
