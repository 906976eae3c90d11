"""Deploy a model artifact to a SageMaker endpoint, wait for it, and tear it down: boto3 only.

The SageMaker Python SDK v2 (HuggingFaceModel.deploy) did this before; v3 removed those classes
and v2 is being retired, so the three calls it made (create_model, create_endpoint_config,
create_endpoint) are made here directly. Model, endpoint config and endpoint share one name,
`<name>-<UTC timestamp>`, as the SDK did: SageMaker keeps the three in separate namespaces, and
teardown can find all of them from the endpoint name alone.
"""

from __future__ import annotations

import re
import tarfile
import tempfile
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from transcription_benchmarks.aws.images import inference_image, is_gpu_instance
from transcription_benchmarks.aws.session import (
    AwsError,
    S3Uri,
    aws_call,
    client,
    default_bucket,
    resolve_role,
    upload,
)
from transcription_benchmarks.serving.config import REQUEST_TIMEOUT_ENV

CONTAINER_MANAGEMENT_ADDRESS = "unix:/tmp/mms-management.sock"

DEFAULT_INSTANCE_TYPE = "ml.g4dn.xlarge"
INFERENCE_AMI_VERSION = "al2-ami-sagemaker-inference-gpu-2"
"""The GPU inference AMI with NVIDIA driver 535 / CUDA 12, which the cu124 image needs; the
default AMI on older instance families still ships CUDA 11 drivers."""
S3_PREFIX = "transcription-benchmarks"
"""Where deploy and predict stage objects in the bucket, one folder per endpoint."""

MAX_REQUEST_BYTES = 1_000_000_000
"""MMS's request cap (MMS_MAX_REQUEST_SIZE); its 6.5 MB default would reject async audio."""
MAX_RESPONSE_BYTES = 100_000_000
"""MMS's response cap (MMS_MAX_RESPONSE_SIZE): a long transcript with word timestamps is big."""
RESPONSE_TIMEOUT_MIN = 60
"""MMS_DEFAULT_RESPONSE_TIMEOUT, in minutes (MMS's WorkerThread polls in minutes, whatever its
docs say; awslabs/multi-model-server#1019): async requests may run up to an hour."""
REALTIME_INVOCATION_TIMEOUT_S = 60
"""SageMaker's limit on one real-time invocation."""
CONTAINER_STARTUP_TIMEOUT_S = 1200
"""The handler pip-installs this package at start-up; SageMaker's default health-check wait can
run out first on a cold GPU host."""

_NAME_RE = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9])*$")
_TIMESTAMP_FORMAT = "%Y%m%d-%H%M%S"
_MAX_NAME_CHARS = 63 - len("-20261125-031500")
_PENDING = {"Creating", "Updating", "SystemUpdating", "RollingBack"}


class DeployedEndpoint(BaseModel):
    """What deploy created; teardown needs only `endpoint_name`."""

    endpoint_name: str
    model_data: str
    image_uri: str
    instance_type: str
    asynchronous: bool
    async_output: str | None = None
    async_failures: str | None = None


class TeardownReport(BaseModel):
    """What teardown deleted and what was already gone."""

    deleted: list[str]
    missing: list[str]


def endpoint_name(name: str, now: datetime | None = None) -> str:
    """`<name>-<UTC timestamp>`, checked against SageMaker's naming rule before any call."""
    if not _NAME_RE.match(name) or len(name) > _MAX_NAME_CHARS:
        raise AwsError(
            f"endpoint name {name!r} is not usable: SageMaker wants letters, digits and hyphens, "
            f"starting with a letter or digit, at most {_MAX_NAME_CHARS} characters before the "
            "timestamp is appended"
        )
    return f"{name}-{(now or datetime.now(UTC)).strftime(_TIMESTAMP_FORMAT)}"


def pack_artifact(model_data: Path, source_dir: Path | None, dest: Path) -> Path:
    """A model.tar.gz with the model files at its root and `source_dir` as `code/`.

    The Hugging Face inference toolkit imports `code/inference.py` and installs
    `code/requirements.txt` from inside the unpacked artifact; the SDK used to "repack" the
    archive to get them there, and this does the same with tarfile.
    """
    if not model_data.exists():
        raise AwsError(f"model artifact {model_data} does not exist")
    if source_dir is not None and not (source_dir / "inference.py").is_file():
        raise AwsError(f"source_dir {source_dir} has no inference.py for SageMaker to run")
    # Model weights barely compress; level 1 keeps packing a multi-GB model quick.
    with tarfile.open(dest, "w:gz", compresslevel=1) as out:
        if model_data.is_dir():
            for child in sorted(model_data.iterdir()):
                if source_dir is None or child.name != "code":
                    out.add(child, arcname=child.name)
        else:
            try:
                with tarfile.open(model_data, "r:*") as src:
                    for member in src:
                        top = member.name.lstrip("./").split("/", 1)[0]
                        if source_dir is not None and top == "code":
                            continue
                        data = src.extractfile(member) if member.isfile() else None
                        out.addfile(member, data)
            except tarfile.TarError as exc:
                raise AwsError(f"{model_data} is neither a directory nor a tar archive") from exc
        if source_dir is not None:
            out.add(source_dir, arcname="code")
    return dest


def deploy_on_aws(
    name: str,
    model_data: str | Path,
    source_dir: str | Path | None = None,
    role: str | None = None,
    instance_type: str = DEFAULT_INSTANCE_TYPE,
    asynchronous: bool = True,
    bucket: str | None = None,
    *,
    region: str | None = None,
    image_uri: str | None = None,
    instance_count: int = 1,
    max_concurrent_invocations: int | None = None,
    environment: Mapping[str, str] | None = None,
    wait: bool = True,
    timeout_s: float = 1800,
    poll_s: float = 30,
) -> str:
    """Create model, endpoint config and endpoint; wait until InService; return the endpoint name.

    `model_data` is an s3:// URI of a model.tar.gz, or a local directory or archive that is
    uploaded (packed with `source_dir` as `code/` when given). `role` is the execution role ARN
    SageMaker assumes, else $TRANSCRIPTION_BENCHMARKS_SAGEMAKER_ROLE; there is no default.
    """
    return deploy_endpoint(
        name,
        model_data,
        source_dir,
        role,
        instance_type,
        asynchronous,
        bucket,
        region=region,
        image_uri=image_uri,
        instance_count=instance_count,
        max_concurrent_invocations=max_concurrent_invocations,
        environment=environment,
        wait=wait,
        timeout_s=timeout_s,
        poll_s=poll_s,
    ).endpoint_name


def deploy_endpoint(
    name: str,
    model_data: str | Path,
    source_dir: str | Path | None = None,
    role: str | None = None,
    instance_type: str = DEFAULT_INSTANCE_TYPE,
    asynchronous: bool = True,
    bucket: str | None = None,
    *,
    region: str | None = None,
    image_uri: str | None = None,
    instance_count: int = 1,
    max_concurrent_invocations: int | None = None,
    environment: Mapping[str, str] | None = None,
    wait: bool = True,
    timeout_s: float = 1800,
    poll_s: float = 30,
) -> DeployedEndpoint:
    """deploy_on_aws, returning everything it created (for the CLI and for tests)."""
    role = resolve_role(role)
    if instance_count < 1:
        raise AwsError(f"instance_count must be at least 1, got {instance_count}")
    sagemaker = client("sagemaker", region)
    region = sagemaker.meta.region_name
    s3 = client("s3", region)
    endpoint = endpoint_name(name)
    source = Path(source_dir) if source_dir is not None else None
    prefix: S3Uri | None = None

    def staging() -> S3Uri:
        nonlocal prefix
        if prefix is None:
            staging_bucket = aws_call(
                "find or create the staging bucket", default_bucket, s3, region, bucket
            )
            prefix = S3Uri(staging_bucket, f"{S3_PREFIX}/{endpoint}")
        return prefix

    model_uri = str(model_data)
    if model_uri.startswith("s3://"):
        if source is not None:
            # The toolkit only reads code/ from inside the artifact: fetch, repack, upload.
            with tempfile.TemporaryDirectory() as tmp:
                original = S3Uri.parse(model_uri)
                local = Path(tmp) / "original.tar.gz"
                aws_call(
                    f"download {model_uri}",
                    s3.download_file,
                    original.bucket,
                    original.key,
                    str(local),
                )
                packed = pack_artifact(local, source, Path(tmp) / "model.tar.gz")
                model_uri = str(_upload(s3, packed, staging().join("model.tar.gz")))
    else:
        local = Path(model_data)
        with tempfile.TemporaryDirectory() as tmp:
            if source is not None or local.is_dir():
                local = pack_artifact(local, source, Path(tmp) / "model.tar.gz")
            elif not local.is_file():
                raise AwsError(f"model artifact {local} does not exist")
            model_uri = str(_upload(s3, local, staging().join("model.tar.gz")))

    gpu = is_gpu_instance(instance_type)
    image = image_uri or inference_image(region, gpu=gpu)
    env = {
        "SAGEMAKER_PROGRAM": "inference.py",
        "SAGEMAKER_REGION": region,
        "MMS_MAX_REQUEST_SIZE": str(MAX_REQUEST_BYTES),
        "MMS_MAX_RESPONSE_SIZE": str(MAX_RESPONSE_BYTES),
        "MMS_DEFAULT_RESPONSE_TIMEOUT": str(RESPONSE_TIMEOUT_MIN),
        # The toolkit binds MMS's management API to the inference port; SageMaker forwards only
        # /invocations and /ping, and this moves it off the port inside the container as well
        # (MMS reads MMS_* variables over its properties: enable_envvars_config=true).
        "MMS_MANAGEMENT_ADDRESS": CONTAINER_MANAGEMENT_ADDRESS,
    }
    if not asynchronous:
        # SageMaker answers a real-time caller after 60 s whatever the worker does; the worker
        # ends a request at that budget too instead of decoding on for MMS's hour.
        env[REQUEST_TIMEOUT_ENV] = str(REALTIME_INVOCATION_TIMEOUT_S)
    if source is not None:
        env["SAGEMAKER_SUBMIT_DIRECTORY"] = "/opt/ml/model/code"
    env.update(environment or {})

    variant: dict[str, Any] = {
        "VariantName": "AllTraffic",
        "ModelName": endpoint,
        "InstanceType": instance_type,
        "InitialInstanceCount": instance_count,
        "InitialVariantWeight": 1.0,
        "ContainerStartupHealthCheckTimeoutInSeconds": CONTAINER_STARTUP_TIMEOUT_S,
    }
    if gpu:
        variant["InferenceAmiVersion"] = INFERENCE_AMI_VERSION
    config: dict[str, Any] = {"EndpointConfigName": endpoint, "ProductionVariants": [variant]}
    output = failures = None
    if asynchronous:
        output, failures = staging().join("async-output"), staging().join("async-failures")
        config["AsyncInferenceConfig"] = {
            "OutputConfig": {"S3OutputPath": str(output), "S3FailurePath": str(failures)}
        }
        if max_concurrent_invocations is not None:
            config["AsyncInferenceConfig"]["ClientConfig"] = {
                "MaxConcurrentInvocationsPerInstance": max_concurrent_invocations
            }

    aws_call(
        f"create model {endpoint}",
        sagemaker.create_model,
        ModelName=endpoint,
        ExecutionRoleArn=role,
        PrimaryContainer={"Image": image, "ModelDataUrl": model_uri, "Environment": env},
    )
    aws_call(f"create endpoint config {endpoint}", sagemaker.create_endpoint_config, **config)
    aws_call(
        f"create endpoint {endpoint}",
        sagemaker.create_endpoint,
        EndpointName=endpoint,
        EndpointConfigName=endpoint,
    )
    if wait:
        wait_for_endpoint(endpoint, region=region, timeout_s=timeout_s, poll_s=poll_s)
    return DeployedEndpoint(
        endpoint_name=endpoint,
        model_data=model_uri,
        image_uri=image,
        instance_type=instance_type,
        asynchronous=asynchronous,
        async_output=str(output) if output else None,
        async_failures=str(failures) if failures else None,
    )


def wait_for_endpoint(
    endpoint: str,
    *,
    region: str | None = None,
    timeout_s: float = 1800,
    poll_s: float = 30,
    sagemaker: Any = None,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """Poll describe_endpoint until InService; Failed or the timeout raise AwsError.

    Hand-written rather than boto3's `endpoint_in_service` waiter so the error carries the
    endpoint's FailureReason and the timeout is in seconds, not attempts.
    """
    sagemaker = sagemaker or client("sagemaker", region)
    deadline = time.monotonic() + timeout_s
    while True:
        described = aws_call(
            f"describe endpoint {endpoint}", sagemaker.describe_endpoint, EndpointName=endpoint
        )
        status = described["EndpointStatus"]
        if status == "InService":
            return described
        if status not in _PENDING:
            reason = described.get("FailureReason", "no FailureReason given")
            raise AwsError(
                f"endpoint {endpoint} is {status}: {reason}. Its CloudWatch logs are under "
                f"/aws/sagemaker/Endpoints/{endpoint}; remove it with `tbench teardown {endpoint}`"
            )
        if time.monotonic() >= deadline:
            raise AwsError(
                f"endpoint {endpoint} is still {status} after {timeout_s:.0f} s; wait longer or "
                f"remove it with `tbench teardown {endpoint}` (it is billed while it exists)"
            )
        sleep(poll_s)


def teardown(endpoint: str, *, region: str | None = None) -> TeardownReport:
    """Delete the endpoint, its config and its model(s); pieces already gone are reported, not
    errors, so a half-failed deploy can be cleaned up with the same call."""
    sagemaker = client("sagemaker", region)
    deleted: list[str] = []
    missing: list[str] = []

    config_name = endpoint
    described = _describe_or_none(sagemaker.describe_endpoint, EndpointName=endpoint)
    if described is not None:
        config_name = described["EndpointConfigName"]
    model_names = [endpoint]
    config = _describe_or_none(sagemaker.describe_endpoint_config, EndpointConfigName=config_name)
    if config is not None:
        model_names = [v["ModelName"] for v in config["ProductionVariants"]] or model_names

    steps: list[tuple[str, Callable[..., Any], dict[str, str]]] = [
        (f"endpoint {endpoint}", sagemaker.delete_endpoint, {"EndpointName": endpoint}),
        (
            f"endpoint config {config_name}",
            sagemaker.delete_endpoint_config,
            {"EndpointConfigName": config_name},
        ),
        *(
            (f"model {model}", sagemaker.delete_model, {"ModelName": model})
            for model in dict.fromkeys(model_names)
        ),
    ]
    for what, delete, kwargs in steps:
        if _delete(what, delete, **kwargs):
            deleted.append(what)
        else:
            missing.append(what)
    return TeardownReport(deleted=deleted, missing=missing)


def _not_found(exc: Exception) -> bool:
    """SageMaker answers a missing resource with ValidationException 'Could not find ...'."""
    from botocore.exceptions import ClientError

    if not isinstance(exc, ClientError):
        return False
    error = exc.response.get("Error", {})
    return error.get("Code") in {"ValidationException", "ResourceNotFound"} and (
        "could not find" in error.get("Message", "").lower()
    )


def _describe_or_none(describe: Callable[..., dict[str, Any]], **kwargs: str) -> Any:
    from botocore.exceptions import ClientError

    try:
        return describe(**kwargs)
    except ClientError as exc:
        if _not_found(exc):
            return None
        raise AwsError(f"{describe.__name__} failed: {exc}") from exc


def _delete(what: str, delete: Callable[..., Any], **kwargs: str) -> bool:
    from botocore.exceptions import ClientError

    try:
        delete(**kwargs)
    except ClientError as exc:
        if _not_found(exc):
            return False
        raise AwsError(f"could not delete {what}: {exc}") from exc
    return True


def _upload(s3: Any, path: Path, uri: S3Uri) -> S3Uri:
    return aws_call(f"upload {path} to {uri}", upload, s3, path, uri)
