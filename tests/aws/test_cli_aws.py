"""tbench deploy / predict / teardown as users run them: a real process talking to moto."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import boto3
from tests.aws.conftest import ROLE, HandlerAnswers, queue_results
from tests.conftest import JFK_TEXT

from transcription_benchmarks.aws.deploy import deploy_on_aws
from transcription_benchmarks.quality.normalize import normalize


def tbench(*args: str) -> subprocess.CompletedProcess[str]:
    # The child inherits the aws fixture's environment: AWS_ENDPOINT_URL points at moto.
    return subprocess.run(
        [sys.executable, "-m", "transcription_benchmarks", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_deploy_then_teardown(aws: str) -> None:
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="artifacts")
    s3.put_object(Bucket="artifacts", Key="model.tar.gz", Body=b"x")

    refused = tbench("deploy", "cli", "s3://artifacts/model.tar.gz")
    assert refused.returncode == 2
    assert "TRANSCRIPTION_BENCHMARKS_SAGEMAKER_ROLE" in refused.stderr
    assert "Traceback" not in refused.stderr

    malformed = tbench("deploy", "cli", "s3://artifacts/model.tar.gz", "--role", ROLE, "--env", "X")
    assert malformed.returncode == 2
    assert "--env expects KEY=VALUE, got 'X'" in malformed.stderr

    vmargs = "-XX:-UseContainerSupport -Xmx1g"
    done = tbench(
        "deploy", "cli", "s3://artifacts/model.tar.gz", "--role", ROLE, "--realtime",
        "--instance-type", "ml.g4dn.xlarge", "--env", f"SAGEMAKER_MODEL_SERVER_VMARGS={vmargs}",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    endpoint = done.stdout.strip()
    assert endpoint.startswith("cli-20")
    sagemaker = boto3.client("sagemaker")
    described = sagemaker.describe_endpoint(EndpointName=endpoint)
    assert described["EndpointStatus"] == "InService"
    environment = sagemaker.describe_model(ModelName=endpoint)["PrimaryContainer"]["Environment"]
    assert environment["SAGEMAKER_MODEL_SERVER_VMARGS"] == vmargs
    assert environment["MMS_DEFAULT_RESPONSE_TIMEOUT"] == "60"

    removed = tbench("teardown", endpoint)
    assert removed.returncode == 0, removed.stderr
    assert f"deleted endpoint {endpoint}" in removed.stdout
    assert f"deleted model {endpoint}" in removed.stdout
    assert boto3.client("sagemaker").list_endpoints()["Endpoints"] == []


def test_predict_on_an_async_endpoint(
    aws: str, jfk: Path, answers: HandlerAnswers, tmp_path: Path
) -> None:
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="artifacts")
    s3.put_object(Bucket="artifacts", Key="model.tar.gz", Body=b"x")
    endpoint = deploy_on_aws("cli", "s3://artifacts/model.tar.gz", role=ROLE, poll_s=0.01)
    queue_results(aws, "async-endpoint-results", [{"data": answers.transcription.decode()}])

    out = tmp_path / "prediction.json"
    done = tbench(
        "predict", endpoint, "-f", str(jfk), "--params", '{"single": {"beam_size": 1}}',
        "--json", str(out),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert JFK_TEXT in normalize(done.stdout, "en")
    assert "11.0 s of audio, language en" in done.stderr
    saved = json.loads(out.read_text())
    assert saved["info"]["backend"] == "faster-whisper"
    assert JFK_TEXT in normalize(" ".join(s["text"] for s in saved["segments"]), "en")

    bad = tbench("predict", endpoint, "-f", str(jfk), "--params", "[1]")
    assert bad.returncode == 2
    assert "--params must be a JSON object" in bad.stderr
