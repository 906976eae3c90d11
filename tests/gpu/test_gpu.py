"""GPU paths: real CUDA runs with NVML memory. Marked gpu; skipped with a reason without one.

Each backend is checked for its own CUDA access: a machine can have a GPU that torch uses while
CTranslate2 cannot (its wheels need libcublas.so.12), and that is a finding, not a crash.

The bounds are ones a data-centre GPU passes and a broken measurement fails: peak memory at
least the weights in their dtype (models/weights.py), and for synthetic models, which decode a
fixed SYNTHETIC_TOKENS_PER_WINDOW tokens per 30 s window, a speed band derived from that work:
- floor 10x: the original table's slowest GPU rows ran at 10x and more on a T4; large-v3 on two
  CPU cores runs at 0.5-3x, so a run that fell back to the CPU fails it;
- ceiling 5000x for large-v3 on jfk.flac (one window): its 32-layer decoder streams about
  1.6 GB of fp16 weights per step, 64 steps take >= 21 ms at an H200's 4.8 TB/s, plus >= 2 ms
  for the encoder's ~2 TFLOP: at least ~23 ms for 11 s of audio, under 500x; 5000x leaves a
  10x margin and still fails a clock that missed the decoding (which reads millions).
"""

from __future__ import annotations

import pytest
from tests.conftest import JFK_TEXT

from transcription_benchmarks import BenchArgs, bench
from transcription_benchmarks.models import PACKAGED_ID, resolve
from transcription_benchmarks.models.weights import weights_mib

SYNTHETIC_SPEED_BAND = (10.0, 5000.0)
"""x real time for synthetic:whisper-large-v3 on jfk.flac; derived in the module docstring."""


def _weights(model: str, dtype: str) -> float:
    """MiB of `model`'s weights in `dtype`, counted from its transformers-format tensors."""
    return weights_mib(resolve(model, "transformers").path, dtype)


def _nvml_gpu_name() -> str:
    from transcription_benchmarks.measure.gpus import nvidia_driver

    return nvidia_driver().first_gpu or ""


pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def ctranslate2_cuda() -> None:
    # A GPU machine may have no CTranslate2 at all (the lent GPU's image: CUDA 13, no wheel).
    ctranslate2 = pytest.importorskip("ctranslate2", reason="CTranslate2 is not installed")
    if ctranslate2.get_cuda_device_count() == 0:
        pytest.skip("CTranslate2 sees no CUDA device (missing libcublas.so.12 or driver)")


@pytest.fixture(scope="module")
def torch_cuda() -> None:
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip(f"torch {torch.__version__} cannot use CUDA here")


@pytest.mark.parametrize("compute_type", ["float16", "int8_float16"])
def test_faster_whisper_on_cuda(ctranslate2_cuda, jfk, compute_type):
    result = bench(
        PACKAGED_ID,
        BenchArgs(
            device="cuda",
            compute_type=compute_type,
            test_file=str(jfk),
            beam_size=1,
            temperature=0.0,
        ),
    )
    assert result.config["compute_type"] == compute_type  # what CTranslate2 reports it runs
    assert JFK_TEXT in result.transcript.text.lower().replace(",", "")
    # NVML sees CTranslate2's allocations, which torch's counters cannot: at least the weights
    # in their compute type, and not the whole card (an NVML reading of another process).
    weights = _weights(PACKAGED_ID, compute_type)
    assert result.memory.peak_gpu_mb is not None
    assert weights <= result.memory.peak_gpu_mb < 4096, (weights, result.memory.peak_gpu_mb)
    assert result.environment.gpu_name == _nvml_gpu_name()


def test_faster_whisper_batched_on_cuda(ctranslate2_cuda, short):
    result = bench(PACKAGED_ID, BenchArgs(device="cuda", batch_size=8, test_file=str(short)))
    assert "ladies and gentlemen" in result.transcript.text.lower()


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_transformers_fp16_on_cuda(torch_cuda, jfk, attn):
    result = bench(
        PACKAGED_ID,
        BenchArgs(
            backend="transformers",
            device="cuda",
            dtype="fp16",
            attn_implementation=attn,
            test_file=str(jfk),
            beam_size=1,
        ),
    )
    assert result.config["attn_implementation"] == attn
    assert JFK_TEXT in result.transcript.text.lower().replace(",", "")
    memory = result.memory
    weights = _weights(PACKAGED_ID, "fp16")
    assert memory.torch_max_allocated_mb is not None
    assert memory.torch_max_allocated_mb >= weights  # tiny.en in fp16, plus activations
    assert memory.peak_gpu_mb is not None
    assert memory.peak_gpu_mb >= memory.torch_max_allocated_mb  # NVML adds the CUDA context


def test_synthetic_large_v3_speed_and_memory_on_cuda(torch_cuda, jfk):
    result = bench(
        "synthetic:whisper-large-v3",
        BenchArgs(
            backend="transformers", device="cuda", dtype="fp16", test_file=str(jfk), repeats=2
        ),
    )
    assert result.model.synthetic
    weights = _weights("synthetic:whisper-large-v3", "fp16")  # ~1.55 B parameters: ~2.9 GiB
    assert result.memory.torch_max_allocated_mb >= weights
    assert result.memory.peak_gpu_mb >= weights
    low, high = SYNTHETIC_SPEED_BAND
    assert low <= result.speed <= high, result.speed
    # Volta and later report total energy: each run drew some, and no data-centre GPU draws
    # more than 1 kW, so a run's joules stay under 1000 x its seconds.
    assert result.timing.runs_j is not None and len(result.timing.runs_j) == 2
    for joules, seconds in zip(result.timing.runs_j, result.timing.runs_s, strict=True):
        assert 0 < joules < 1000 * seconds, (joules, seconds)


def test_both_engines_on_the_same_synthetic_weights(torch_cuda, ctranslate2_cuda, jfk):
    """The same random large-v3 weights (converted for CTranslate2), the same forced decode
    length: the engines differ in kernels, not in work, so each lands in the band, each holds
    at least the weights, and neither is more than 20x the other."""
    runs = {}
    for backend, options in (
        ("transformers", {"dtype": "fp16"}),
        ("faster-whisper", {"compute_type": "float16"}),
    ):
        runs[backend] = bench(
            "synthetic:whisper-large-v3",
            BenchArgs(backend=backend, device="cuda", test_file=str(jfk), repeats=2, **options),
        )
    weights = _weights("synthetic:whisper-large-v3", "fp16")
    low, high = SYNTHETIC_SPEED_BAND
    for backend, result in runs.items():
        assert result.model.synthetic, backend
        assert result.config["synthetic_tokens_per_window"] == 64
        assert low <= result.speed <= high, (backend, result.speed)
        assert result.memory.peak_gpu_mb >= weights, (backend, result.memory.peak_gpu_mb)
    ratio = runs["faster-whisper"].speed / runs["transformers"].speed
    assert 1 / 20 <= ratio <= 20, ratio
