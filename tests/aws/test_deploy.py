"""Deploy, wait and teardown against moto running as a real server (see conftest.py)."""

from __future__ import annotations

import io
import tarfile
from datetime import UTC, datetime
from pathlib import Path

import boto3
import pytest
from botocore.stub import Stubber
from tests.aws.conftest import REGION, ROLE

from transcription_benchmarks.aws.deploy import (
    INFERENCE_AMI_VERSION,
    deploy_endpoint,
    deploy_on_aws,
    endpoint_name,
    pack_artifact,
    teardown,
    wait_for_endpoint,
)
from transcription_benchmarks.aws.images import inference_image
from transcription_benchmarks.aws.session import ROLE_ENV, AwsError, S3Uri
from transcription_benchmarks.models.resolve import resolve


@pytest.fixture(scope="module")
def tiny_model() -> Path:
    return resolve("Systran/faster-whisper-tiny.en", "ctranslate2").path


@pytest.fixture
def source_dir(tmp_path: Path) -> Path:
    code = tmp_path / "code"
    code.mkdir()
    (code / "inference.py").write_text("from transcription_benchmarks.serving import *\n")
    (code / "requirements.txt").write_text("transcription-benchmarks[serving]\n")
    return code


def _members(s3, uri: str) -> set[str]:
    parsed = S3Uri.parse(uri)
    body = s3.get_object(Bucket=parsed.bucket, Key=parsed.key)["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body), mode="r:gz") as archive:
        return set(archive.getnames())


def test_deploy_creates_model_config_and_endpoint_then_teardown_removes_them(
    aws: str, tiny_model: Path, source_dir: Path
) -> None:
    deployed = deploy_endpoint(
        "whisper-tiny",
        tiny_model,
        source_dir,
        ROLE,
        "ml.g4dn.xlarge",
        asynchronous=True,
        max_concurrent_invocations=2,
        poll_s=0.01,
    )
    name = deployed.endpoint_name
    assert name.startswith("whisper-tiny-20")
    sagemaker = boto3.client("sagemaker")
    s3 = boto3.client("s3")

    # The local model directory was packed with code/ and uploaded to the default bucket.
    assert deployed.model_data == (
        f"s3://sagemaker-{REGION}-123456789012/transcription-benchmarks/{name}/model.tar.gz"
    )
    members = _members(s3, deployed.model_data)
    assert {"model.bin", "config.json", "tokenizer.json", "code/inference.py"} <= members
    assert "code/requirements.txt" in members

    model = sagemaker.describe_model(ModelName=name)
    assert model["ExecutionRoleArn"] == ROLE
    container = model["PrimaryContainer"]
    assert container["Image"] == inference_image(REGION, gpu=True)
    assert container["ModelDataUrl"] == deployed.model_data
    env = container["Environment"]
    assert env["SAGEMAKER_PROGRAM"] == "inference.py"
    assert env["SAGEMAKER_SUBMIT_DIRECTORY"] == "/opt/ml/model/code"
    assert int(env["MMS_MAX_REQUEST_SIZE"]) > 6 * 1024 * 1024
    assert int(env["MMS_MAX_RESPONSE_SIZE"]) > 0
    assert env["MMS_DEFAULT_RESPONSE_TIMEOUT"] == "60"  # minutes: an hour for async requests
    assert "TRANSCRIPTION_BENCHMARKS_REQUEST_TIMEOUT_S" not in env  # async: the hour holds

    config = sagemaker.describe_endpoint_config(EndpointConfigName=name)
    (variant,) = config["ProductionVariants"]
    assert variant["ModelName"] == name
    assert variant["InstanceType"] == "ml.g4dn.xlarge"
    assert variant["InferenceAmiVersion"] == INFERENCE_AMI_VERSION
    async_config = config["AsyncInferenceConfig"]
    assert async_config["OutputConfig"] == {
        "S3OutputPath": deployed.async_output,
        "S3FailurePath": deployed.async_failures,
    }
    assert deployed.async_output.endswith(f"{name}/async-output")
    assert async_config["ClientConfig"] == {"MaxConcurrentInvocationsPerInstance": 2}

    endpoint = sagemaker.describe_endpoint(EndpointName=name)
    assert endpoint["EndpointStatus"] == "InService"
    assert endpoint["EndpointConfigName"] == name

    report = teardown(name)
    assert report.deleted == [f"endpoint {name}", f"endpoint config {name}", f"model {name}"]
    assert report.missing == []
    assert sagemaker.list_endpoints()["Endpoints"] == []
    assert sagemaker.list_endpoint_configs()["EndpointConfigs"] == []
    assert sagemaker.list_models()["Models"] == []


def test_realtime_deploy_of_an_s3_artifact_has_no_async_config(aws: str) -> None:
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="artifacts")
    s3.put_object(Bucket="artifacts", Key="m/model.tar.gz", Body=b"not inspected")
    name = deploy_on_aws(
        "rt",
        "s3://artifacts/m/model.tar.gz",
        None,
        ROLE,
        "ml.m5.large",
        asynchronous=False,
        bucket="artifacts",
        poll_s=0.01,
    )
    sagemaker = boto3.client("sagemaker")
    config = sagemaker.describe_endpoint_config(EndpointConfigName=name)
    assert "AsyncInferenceConfig" not in config
    # A CPU instance gets the CPU image and no GPU AMI.
    (variant,) = config["ProductionVariants"]
    assert "InferenceAmiVersion" not in variant
    container = sagemaker.describe_model(ModelName=name)["PrimaryContainer"]
    assert container["Image"] == inference_image(REGION, gpu=False)
    assert container["ModelDataUrl"] == "s3://artifacts/m/model.tar.gz"
    assert "SAGEMAKER_SUBMIT_DIRECTORY" not in container["Environment"]
    # Real-time: the worker ends a request at SageMaker's own 60 s, not at MMS's hour.
    assert container["Environment"]["TRANSCRIPTION_BENCHMARKS_REQUEST_TIMEOUT_S"] == "60"
    # MMS's management API off the inference port inside the container too
    assert container["Environment"]["MMS_MANAGEMENT_ADDRESS"].startswith("unix:/")
    # Nothing was staged: the artifact was already in S3.
    assert [o["Key"] for o in s3.list_objects_v2(Bucket="artifacts")["Contents"]] == [
        "m/model.tar.gz"
    ]


def test_role_is_required_and_never_defaulted(
    aws: str, tiny_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(AwsError, match=ROLE_ENV):
        deploy_on_aws("no-role", tiny_model)
    assert boto3.client("sagemaker").list_models()["Models"] == []
    # The environment variable is the documented alternative to the argument.
    monkeypatch.setenv(ROLE_ENV, ROLE)
    monkeypatch.setenv("TRANSCRIPTION_BENCHMARKS_S3_BUCKET", "staging")
    boto3.client("s3").create_bucket(Bucket="staging")
    s3_model = "s3://staging/model.tar.gz"
    boto3.client("s3").put_object(Bucket="staging", Key="model.tar.gz", Body=b"x")
    name = deploy_on_aws("env-role", s3_model, poll_s=0.01)
    model = boto3.client("sagemaker").describe_model(ModelName=name)
    assert model["ExecutionRoleArn"] == ROLE


def test_teardown_tolerates_missing_pieces(aws: str) -> None:
    sagemaker = boto3.client("sagemaker")
    sagemaker.create_model(
        ModelName="half-deployed",
        ExecutionRoleArn=ROLE,
        PrimaryContainer={"Image": inference_image(REGION), "ModelDataUrl": "s3://b/m.tar.gz"},
    )
    report = teardown("half-deployed")
    assert report.deleted == ["model half-deployed"]
    assert report.missing == ["endpoint half-deployed", "endpoint config half-deployed"]
    assert sagemaker.list_models()["Models"] == []
    again = teardown("half-deployed")
    assert again.deleted == []


def test_a_failed_endpoint_raises_with_its_failure_reason() -> None:
    sagemaker = boto3.client(
        "sagemaker", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x"
    )
    with Stubber(sagemaker) as stub:
        stub.add_response("describe_endpoint", _described("Creating"), {"EndpointName": "e"})
        stub.add_response(
            "describe_endpoint",
            _described("Failed", FailureReason="CUDA driver version is insufficient"),
            {"EndpointName": "e"},
        )
        naps: list[float] = []
        with pytest.raises(AwsError, match="is Failed: CUDA driver version is insufficient"):
            wait_for_endpoint("e", sagemaker=sagemaker, poll_s=7, sleep=naps.append)
        stub.assert_no_pending_responses()
    assert naps == [7]


def test_waiting_gives_up_after_the_timeout_and_names_the_teardown() -> None:
    sagemaker = boto3.client(
        "sagemaker", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x"
    )
    with Stubber(sagemaker) as stub:
        stub.add_response("describe_endpoint", _described("Creating"), {"EndpointName": "e"})
        with pytest.raises(AwsError, match=r"still Creating after 0 s.*tbench teardown e"):
            wait_for_endpoint("e", sagemaker=sagemaker, timeout_s=0, sleep=lambda _: None)


def _described(status: str, **extra: str) -> dict:
    now = datetime.now(UTC)
    return {
        "EndpointName": "e",
        "EndpointArn": "arn:aws:sagemaker:us-east-1:123456789012:endpoint/e",
        "EndpointConfigName": "e",
        "EndpointStatus": status,
        "CreationTime": now,
        "LastModifiedTime": now,
        **extra,
    }


def test_endpoint_names_follow_sagemaker_rules() -> None:
    at = datetime(2026, 11, 25, 3, 15, 0, tzinfo=UTC)
    assert endpoint_name("whisper-tiny", at) == "whisper-tiny-20261125-031500"
    assert len(endpoint_name("a" * 47, at)) == 63
    for bad in ("", "-lead", "under_score", "a" * 48, "dot.ted"):
        with pytest.raises(AwsError, match="not usable"):
            endpoint_name(bad, at)


def test_pack_artifact_replaces_code_in_an_existing_archive(
    tmp_path: Path, source_dir: Path
) -> None:
    model = tmp_path / "model"
    (model / "code").mkdir(parents=True)
    (model / "weights.bin").write_bytes(b"\0" * 10)
    (model / "code" / "stale.py").write_text("old")
    first = pack_artifact(model, None, tmp_path / "first.tar.gz")
    with tarfile.open(first) as archive:
        assert {"weights.bin", "code/stale.py"} <= set(archive.getnames())
    second = pack_artifact(first, source_dir, tmp_path / "second.tar.gz")
    with tarfile.open(second) as archive:
        names = set(archive.getnames())
        assert archive.extractfile("weights.bin").read() == b"\0" * 10
    assert "code/stale.py" not in names
    assert {"code/inference.py", "code/requirements.txt"} <= names

    with pytest.raises(AwsError, match=r"no inference\.py"):
        pack_artifact(model, tmp_path, tmp_path / "x.tar.gz")
    with pytest.raises(AwsError, match="does not exist"):
        pack_artifact(tmp_path / "absent", None, tmp_path / "x.tar.gz")
    (tmp_path / "plain.bin").write_bytes(b"not a tar")
    with pytest.raises(AwsError, match="neither a directory nor a tar archive"):
        pack_artifact(tmp_path / "plain.bin", source_dir, tmp_path / "x.tar.gz")
