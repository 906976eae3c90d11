"""The NVIDIA GPU of each SageMaker GPU instance family (name, compute capability, memory), and
whether an image's CUDA runs on it.

Auto-tune takes its memory budgets from here, and bench-remote asks it before it starts anything, so that a plan that cannot work (a CUDA 13
image on a V100, a CUDA 12 image on a K80, an x86-64 image on a Graviton host) is said next to
its price instead of being paid for. The GPU of each family is AWS's published fact (the
accelerated-computing instance pages), the compute capability NVIDIA's; the CUDA majors' minimum
compute capability come from the same compat facts the stack chooser reads (compat/matrix.toml).
The training hosts' NVIDIA driver is not published per family, so the driver is checked where
it can be read: on the instance, by `tbench doctor --summary` before the first cell.
"""

from __future__ import annotations

import re

from packaging.version import Version
from pydantic import BaseModel, ConfigDict

from transcription_benchmarks.compat.matrix import CompatMatrix, default_matrix


class InstanceGpu(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    compute_capability: str
    memory_gb: int
    """One GPU's memory, GB as AWS states it."""
    arm64_host: bool = False
    """A Graviton host: x86-64 images do not run there at all."""


GPU_BY_FAMILY: dict[str, InstanceGpu] = {
    "p2": InstanceGpu(name="NVIDIA K80", memory_gb=12, compute_capability="3.7"),
    "p3": InstanceGpu(name="NVIDIA V100", memory_gb=16, compute_capability="7.0"),
    "p3dn": InstanceGpu(name="NVIDIA V100", memory_gb=32, compute_capability="7.0"),
    "p4d": InstanceGpu(name="NVIDIA A100", memory_gb=40, compute_capability="8.0"),
    "p4de": InstanceGpu(name="NVIDIA A100", memory_gb=80, compute_capability="8.0"),
    "p5": InstanceGpu(name="NVIDIA H100", memory_gb=80, compute_capability="9.0"),
    "p5e": InstanceGpu(name="NVIDIA H200", memory_gb=141, compute_capability="9.0"),
    "p5en": InstanceGpu(name="NVIDIA H200", memory_gb=141, compute_capability="9.0"),
    "p6-b200": InstanceGpu(name="NVIDIA B200", memory_gb=180, compute_capability="10.0"),
    "g4dn": InstanceGpu(name="NVIDIA T4", memory_gb=16, compute_capability="7.5"),
    "g5": InstanceGpu(name="NVIDIA A10G", memory_gb=24, compute_capability="8.6"),
    "g5g": InstanceGpu(name="NVIDIA T4G", memory_gb=16, compute_capability="7.5", arm64_host=True),
    "g6": InstanceGpu(name="NVIDIA L4", memory_gb=24, compute_capability="8.9"),
    "g6e": InstanceGpu(name="NVIDIA L40S", memory_gb=48, compute_capability="8.9"),
}
"""SageMaker GPU instance families (the part of ml.<family>.<size> before the size)."""

_CUDA_TAG = re.compile(r"(?:^|[-_:])cu(\d{2})(\d)(?:[-_.]|$)")


def instance_family(instance_type: str) -> str:
    """'ml.g5.xlarge' -> 'g5'; 'ml.p6-b200.48xlarge' -> 'p6-b200'."""
    return instance_type.removeprefix("ml.").rsplit(".", 1)[0]


def image_cuda(image: str) -> str | None:
    """The CUDA version an image's tag names ('...-gpu-py311-cu124-ubuntu22.04' -> '12.4'),
    or None where the tag names none."""
    tag = image.rsplit("/", 1)[-1].partition(":")[2]
    match = _CUDA_TAG.search(tag)
    return f"{int(match[1])}.{match[2]}" if match else None


def stack_warning(instance_type: str, image: str, matrix: CompatMatrix | None = None) -> str | None:
    """Why `image` cannot run CUDA work on `instance_type`, or None where nothing known stands
    in the way (an unknown family or an image tag without CUDA is said, since nothing could be
    checked)."""
    family = instance_family(instance_type)
    gpu = GPU_BY_FAMILY.get(family)
    cuda = image_cuda(image)
    if gpu is None:
        return (
            f"no GPU facts for the {family} family here: its CUDA stack is checked on the "
            "instance, before the first cell"
        )
    if gpu.arm64_host:
        return (
            f"{instance_type} is a Graviton (arm64) host with an {gpu.name}: the x86-64 "
            f"image {image} does not run there"
        )
    if cuda is None:
        return (
            f"the image {image} names no CUDA version in its tag (cuXYZ): not checked against "
            f"the {gpu.name} (compute capability {gpu.compute_capability})"
        )
    needs = (matrix or default_matrix()).cuda.get(cuda.split(".")[0])
    if needs and Version(gpu.compute_capability) < Version(needs.min_compute_capability):
        return (
            f"the image's CUDA {cuda} needs compute capability >= "
            f"{needs.min_compute_capability}, and {instance_type}'s {gpu.name} has "
            f"{gpu.compute_capability}: every GPU cell would fail; choose a newer instance "
            "family or an image of an older CUDA (--image)"
        )
    return None
