"""Which container image SageMaker runs: AWS's Hugging Face Deep Learning Containers, per region.

The SageMaker Python SDK used to look these up (`image_uris.retrieve`); SDK v3 dropped that for
Hugging Face, so the table lives here. Sources: AWS's published list of DLC images
(https://github.com/aws/deep-learning-containers/blob/master/available_images.md) and the registry
accounts per region that the SageMaker SDK shipped in `image_uri_config/huggingface.json`.
The accounts below are AWS's public ECR registries, not anyone's AWS account.

Versions are pinned so a deploy today and a deploy next month run the same stack; pass
`version=`/`tag=` (or `image_uri=` to deploy) to use another. The endpoint's handler installs this
package from the artifact's `code/requirements.txt`, so the image only has to supply Python, CUDA
and PyTorch. The local endpoint imitates this image (serving/artifact/container.txt pins its
transformers); tests/aws/test_images.py keeps the two in step.
"""

from __future__ import annotations

from transcription_benchmarks.aws.session import AwsError

DLC_REGISTRY_DEFAULT = "763104351884"
"""AWS's DLC registry in most commercial regions."""

DLC_REGISTRY_BY_REGION: dict[str, str] = {
    "af-south-1": "626614931356",
    "ap-east-1": "871362719292",
    "ap-east-2": "975050140332",
    "ap-northeast-3": "364406365360",
    "ap-south-2": "772153158452",
    "ap-southeast-3": "907027046896",
    "ap-southeast-4": "457447274322",
    "ap-southeast-5": "550225433462",
    "ap-southeast-7": "590183813437",
    "ca-west-1": "204538143572",
    "cn-north-1": "727897471807",
    "cn-northwest-1": "727897471807",
    "eu-central-2": "380420809688",
    "eu-south-1": "692866216735",
    "eu-south-2": "503227376785",
    "il-central-1": "780543022126",
    "me-central-1": "914824155844",
    "me-south-1": "217643126080",
    "mx-central-1": "637423239942",
    "us-gov-east-1": "446045086412",
    "us-gov-west-1": "442386744353",
}
"""Regions whose DLC registry is not DLC_REGISTRY_DEFAULT."""

DLC_DEFAULT_REGISTRY_REGIONS = frozenset(
    {
        "ap-northeast-1",
        "ap-northeast-2",
        "ap-south-1",
        "ap-southeast-1",
        "ap-southeast-2",
        "ca-central-1",
        "eu-central-1",
        "eu-north-1",
        "eu-west-1",
        "eu-west-2",
        "eu-west-3",
        "sa-east-1",
        "us-east-1",
        "us-east-2",
        "us-west-1",
        "us-west-2",
    }
)

INFERENCE_REPOSITORY = "huggingface-pytorch-inference"
INFERENCE_GPU_TAG = "2.6.0-transformers4.51.3-gpu-py312-cu124-ubuntu22.04"
"""PyTorch 2.6, CUDA 12.4: needs the CUDA 12 drivers of the al2-ami-sagemaker-inference-gpu-2 AMI."""
INFERENCE_CPU_TAG = "2.6.0-transformers4.51.3-cpu-py312-ubuntu22.04"

TRAINING_REPOSITORY = "huggingface-pytorch-training"
TRAINING_GPU_TAG = "2.5.1-transformers4.49.0-gpu-py311-cu124-ubuntu22.04"
"""The newest Hugging Face PyTorch training DLC; Hugging Face publishes training images for GPU
only, so CPU runs use AWS's plain PyTorch training DLC below (the remote run installs this
package, which brings transformers)."""
TRAINING_CPU_REPOSITORY = "pytorch-training"
TRAINING_CPU_TAG = "2.5.1-cpu-py311-ubuntu22.04-sagemaker"


def dlc_registry(region: str) -> str:
    """The ECR registry host serving AWS's Deep Learning Containers in `region`."""
    if region in DLC_REGISTRY_BY_REGION:
        account = DLC_REGISTRY_BY_REGION[region]
    elif region in DLC_DEFAULT_REGISTRY_REGIONS:
        account = DLC_REGISTRY_DEFAULT
    else:
        known = sorted(DLC_DEFAULT_REGISTRY_REGIONS | DLC_REGISTRY_BY_REGION.keys())
        raise AwsError(
            f"no Deep Learning Container registry known for region {region!r}; pass image_uri= "
            f"explicitly or use one of: {', '.join(known)}"
        )
    domain = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    return f"{account}.dkr.ecr.{region}.{domain}"


def inference_image(region: str, *, gpu: bool = True, tag: str | None = None) -> str:
    """The Hugging Face PyTorch inference image URI that deploy uses in `region`."""
    tag = tag or (INFERENCE_GPU_TAG if gpu else INFERENCE_CPU_TAG)
    return f"{dlc_registry(region)}/{INFERENCE_REPOSITORY}:{tag}"


def training_image(region: str, *, gpu: bool = True, tag: str | None = None) -> str:
    """The PyTorch training image URI that remote (training-job) runs use in `region`."""
    if gpu:
        return f"{dlc_registry(region)}/{TRAINING_REPOSITORY}:{tag or TRAINING_GPU_TAG}"
    return f"{dlc_registry(region)}/{TRAINING_CPU_REPOSITORY}:{tag or TRAINING_CPU_TAG}"


def is_gpu_instance(instance_type: str) -> bool:
    """Whether a SageMaker instance type has an NVIDIA GPU (ml.g*, ml.p*), to pick the image."""
    family = instance_type.removeprefix("ml.").split(".", 1)[0]
    return family[:1] in {"g", "p"}
