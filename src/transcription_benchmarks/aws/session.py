"""Where every AWS call gets its client, role and S3 paths: one place for region, endpoint and
credentials, so deploy, predict, teardown and remote runs agree and tests can point them all at a
moto server with one environment variable (AWS_ENDPOINT_URL, which boto3 itself honours)."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from transcription_benchmarks.errors import BenchError

ROLE_ENV = "TRANSCRIPTION_BENCHMARKS_SAGEMAKER_ROLE"
"""The IAM role SageMaker assumes; required, never defaulted (no account ids in code)."""
BUCKET_ENV = "TRANSCRIPTION_BENCHMARKS_S3_BUCKET"


class AwsError(BenchError):
    """An AWS call failed, or AWS is not configured; the message names the step and the fix."""


def client(service: str, region: str | None = None) -> Any:
    """A boto3 client; region from the argument, else AWS_REGION / AWS_DEFAULT_REGION / profile."""
    try:
        import boto3
    except ModuleNotFoundError as exc:
        raise AwsError(
            "AWS commands need boto3: pip install 'transcription-benchmarks[aws]'"
        ) from exc
    # botocore reads AWS_DEFAULT_REGION and the profile; AWS_REGION is what the AWS SDKs and
    # SageMaker's own containers set, so honour it too.
    region = region or os.environ.get("AWS_REGION") or None
    session = boto3.session.Session(region_name=region)
    if session.region_name is None:
        raise AwsError("no AWS region: pass region= or set AWS_REGION")
    return session.client(service)


def resolve_role(role: str | None) -> str:
    """The SageMaker execution role: the argument, else $TRANSCRIPTION_BENCHMARKS_SAGEMAKER_ROLE."""
    role = role or os.environ.get(ROLE_ENV)
    if not role:
        raise AwsError(
            f"a SageMaker execution role is required: pass role= (--role) or set {ROLE_ENV} "
            "to the ARN of a role SageMaker can assume"
        )
    return role


@dataclass(frozen=True)
class S3Uri:
    bucket: str
    key: str

    @classmethod
    def parse(cls, uri: str) -> S3Uri:
        bucket, _, key = uri.removeprefix("s3://").partition("/")
        if not uri.startswith("s3://") or not bucket:
            raise AwsError(f"not an S3 URI: {uri!r} (expected s3://bucket/key)")
        return cls(bucket, key)

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    def join(self, *parts: str) -> S3Uri:
        key = "/".join(p.strip("/") for p in (self.key, *parts) if p.strip("/"))
        return S3Uri(self.bucket, key)


def default_bucket(s3: Any, region: str | None = None, bucket: str | None = None) -> str:
    """The bucket to stage artifacts in: the argument, $TRANSCRIPTION_BENCHMARKS_S3_BUCKET, or
    sagemaker-<region>-<account> (SageMaker's own convention), created when missing."""
    bucket = bucket or os.environ.get(BUCKET_ENV)
    if bucket:
        return bucket
    region = region or s3.meta.region_name
    account = client("sts", region).get_caller_identity()["Account"]
    name = f"sagemaker-{region}-{account}"
    existing = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
    if name not in existing:
        kwargs: dict[str, Any] = {"Bucket": name}
        if region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
        s3.create_bucket(**kwargs)
    return name


def upload(s3: Any, path: Path, uri: S3Uri) -> S3Uri:
    s3.upload_file(str(path), uri.bucket, uri.key)
    return uri


def download(s3: Any, uri: S3Uri, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    s3.download_file(uri.bucket, uri.key, str(path))
    return path


def aws_call(what: str, call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run one AWS call; a botocore/boto3 failure becomes an AwsError naming the step, the AWS
    error code and AWS's message (AccessDenied, ValidationException, ...)."""
    from boto3.exceptions import Boto3Error
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return call(*args, **kwargs)
    except ClientError as exc:
        error = exc.response.get("Error", {})
        raise AwsError(
            f"could not {what}: {error.get('Code', 'error')}: {error.get('Message', exc)}"
        ) from exc
    except (BotoCoreError, Boto3Error) as exc:
        raise AwsError(f"could not {what}: {exc}") from exc
