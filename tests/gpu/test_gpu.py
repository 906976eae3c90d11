"""GPU paths: real CUDA runs with NVML memory. Marked gpu; skipped with a reason without one.

Each backend is checked for its own CUDA access: a machine can have a GPU that torch uses while
CTranslate2 cannot (its wheels need libcublas.so.12), and that is a finding, not a crash.
"""

from __future__ import annotations

import pytest
from tests.conftest import JFK_TEXT

from transcription_benchmarks import BenchArgs, bench
from transcription_benchmarks.models import PACKAGED_ID

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def ctranslate2_cuda() -> None:
    import ctranslate2

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
    assert result.device == "cuda"
    assert result.config["compute_type"] == compute_type
    assert JFK_TEXT in result.transcript.text.lower().replace(",", "")
    # NVML sees CTranslate2's allocations, which torch's counters cannot.
    assert result.memory.peak_gpu_mb is not None
    assert result.memory.peak_gpu_mb > 20
    assert result.environment.gpu_name
    assert result.environment.driver_version


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
    assert memory.torch_max_allocated_mb is not None
    assert memory.torch_max_allocated_mb > 50  # tiny.en in fp16 plus activations
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
    assert result.memory.peak_gpu_mb > 2500  # ~1.55 B parameters in fp16
    assert result.speed > 1
