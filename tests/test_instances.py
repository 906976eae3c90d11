"""What bench-remote's plan says of an image's CUDA on an instance family's GPU."""

from __future__ import annotations

import pytest

from transcription_benchmarks.aws.images import TRAINING_GPU_TAG, training_image
from transcription_benchmarks.compat.instances import (
    GPU_BY_FAMILY,
    image_cuda,
    instance_family,
    stack_warning,
)
from transcription_benchmarks.studies.autotune import budget_for


@pytest.mark.parametrize(
    ("image", "cuda"),
    [
        (training_image("us-east-1"), "12.4"),
        ("x.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.11.0-gpu-py312-cu130", "13.0"),
        ("registry/repo:2.3.0-gpu-py311-cu121-ubuntu20.04-sagemaker", "12.1"),
        ("registry/my-cu124-image:latest", None),  # in the repository's name, not the tag
        ("registry/repo:2.5.1-cpu-py311-ubuntu22.04-sagemaker", None),
        ("registry/repo", None),
    ],
)
def test_image_cuda_reads_the_tag(image: str, cuda: str | None) -> None:
    assert image_cuda(image) == cuda


def test_each_family_has_its_gpu_memory_for_budgets() -> None:
    assert GPU_BY_FAMILY["g4dn"].memory_gb == 16 and GPU_BY_FAMILY["g6e"].memory_gb == 48
    assert budget_for("ml.g6e.xlarge").memory_mb == pytest.approx(48 * 1024 * 0.9)
    assert "NVIDIA L40S 48 GB" in budget_for("ml.g6e.xlarge").source


def test_instance_family() -> None:
    assert instance_family("ml.g5.xlarge") == "g5"
    assert instance_family("ml.p6-b200.48xlarge") == "p6-b200"
    assert instance_family("ml.p4de.24xlarge") == "p4de"


CU124 = f"r/huggingface-pytorch-training:{TRAINING_GPU_TAG}"
CU130 = "r/pytorch-training:2.11.0-gpu-py312-cu130-ubuntu22.04"


@pytest.mark.parametrize(
    "instance_type", ["ml.g4dn.xlarge", "ml.g5.xlarge", "ml.g6e.xlarge", "ml.p5.48xlarge"]
)
def test_nothing_to_say_where_the_image_runs(instance_type: str) -> None:
    assert stack_warning(instance_type, CU124) is None
    assert stack_warning(instance_type, CU130) is None  # all at compute capability >= 7.5


def test_cuda_12_needs_maxwell_and_cuda_13_turing() -> None:
    k80 = stack_warning("ml.p2.xlarge", CU124)
    assert k80 is not None
    assert "CUDA 12.4 needs compute capability >= 5.0" in k80 and "NVIDIA K80 has 3.7" in k80
    assert stack_warning("ml.p3.2xlarge", CU124) is None
    v100 = stack_warning("ml.p3.2xlarge", CU130)
    assert v100 is not None and "CUDA 13.0 needs compute capability >= 7.5" in v100


def test_what_could_not_be_checked_is_said() -> None:
    arm = stack_warning("ml.g5g.xlarge", CU124)
    assert arm is not None and "Graviton (arm64)" in arm
    unknown = stack_warning("ml.g7.xlarge", CU124)
    assert unknown is not None and "no GPU facts for the g7 family" in unknown
    untagged = stack_warning("ml.g5.xlarge", "r/my-image:latest")
    assert untagged is not None and "names no CUDA version" in untagged
