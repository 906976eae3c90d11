"""The container image table: registry per region, pinned tags, overrides, clear errors."""

from __future__ import annotations

import re

import pytest

from transcription_benchmarks.aws.images import (
    INFERENCE_CPU_TAG,
    INFERENCE_GPU_TAG,
    TRAINING_GPU_TAG,
    inference_image,
    is_gpu_instance,
    training_image,
)
from transcription_benchmarks.aws.session import AwsError


def test_inference_image_per_region_and_processor() -> None:
    assert inference_image("us-east-1") == (
        "763104351884.dkr.ecr.us-east-1.amazonaws.com/huggingface-pytorch-inference:"
        + INFERENCE_GPU_TAG
    )
    assert inference_image("eu-south-1", gpu=False).startswith(
        "692866216735.dkr.ecr.eu-south-1.amazonaws.com/huggingface-pytorch-inference:"
    )
    assert inference_image("eu-south-1", gpu=False).endswith(INFERENCE_CPU_TAG)
    assert inference_image("cn-north-1").startswith(
        "727897471807.dkr.ecr.cn-north-1.amazonaws.com.cn/"
    )
    assert "cu12" in INFERENCE_GPU_TAG and "gpu" in INFERENCE_GPU_TAG
    assert inference_image("us-west-2", tag="custom").endswith(":custom")


def test_training_image_gpu_and_cpu() -> None:
    assert training_image("us-west-2") == (
        "763104351884.dkr.ecr.us-west-2.amazonaws.com/huggingface-pytorch-training:"
        + TRAINING_GPU_TAG
    )
    cpu = training_image("af-south-1", gpu=False)
    assert cpu.startswith("626614931356.dkr.ecr.af-south-1.amazonaws.com/pytorch-training:")
    assert "cpu" in cpu


def test_unknown_region_is_a_clear_error() -> None:
    with pytest.raises(AwsError, match=r"no Deep Learning Container registry.*'mars-north-1'"):
        inference_image("mars-north-1")
    with pytest.raises(AwsError, match="image_uri="):
        training_image("mars-north-1")


@pytest.mark.parametrize(
    ("instance_type", "gpu"),
    [
        ("ml.g4dn.xlarge", True),
        ("ml.g6.2xlarge", True),
        ("ml.p4d.24xlarge", True),
        ("ml.m5.large", False),
        ("ml.c7i.xlarge", False),
        ("ml.inf2.xlarge", False),
    ],
)
def test_gpu_instance_families(instance_type: str, gpu: bool) -> None:
    assert is_gpu_instance(instance_type) is gpu


def test_the_deployed_image_is_the_one_the_local_endpoint_imitates() -> None:
    """The local endpoint's env pins the DLC's transformers (serving/artifact/container.txt);
    bumping the image tag without it would test locally what is not deployed."""
    from importlib import resources

    pins = resources.files("transcription_benchmarks.serving.artifact").joinpath("container.txt")
    transformers = re.search(r"^transformers==(\S+)$", pins.read_text(), re.MULTILINE)
    assert transformers is not None
    assert f"-transformers{transformers.group(1)}-" in INFERENCE_GPU_TAG
    assert f"-transformers{transformers.group(1)}-" in INFERENCE_CPU_TAG
