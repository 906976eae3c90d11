"""bench-remote against moto running as a real server on 127.0.0.1.

The training job's output is planted in S3 the way SageMaker uploads it (model.tar.gz under
<output path>/<job>/output/), and what is planted was produced by really running the job's
entry point from the shipped source archive on a tiny CPU matrix here. Moto reports every
training job Completed at once; a Failed job is made by answering describe_training_job for
that one job from a botocore before-call hook, while everything else stays on moto.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import boto3
import pytest
from tests.aws.conftest import REGION, ROLE
from tests.conftest import JFK_TEXT

from transcription_benchmarks.aws.images import training_image
from transcription_benchmarks.aws.remote import (
    ENTRY_POINT,
    MATRIX_NAME,
    SOURCE_ARCHIVE,
    CostNotConfirmedError,
    bench_remote,
    package_source,
)
from transcription_benchmarks.aws.remote_entry import SKIP_INSTALL_ENV
from transcription_benchmarks.aws.session import AwsError, S3Uri
from transcription_benchmarks.matrix.rows import read_rows
from transcription_benchmarks.matrix.spec import load_matrix
from transcription_benchmarks.report import compare
from transcription_benchmarks.report.by_instance import rows_for_host, side_by_side_table
from transcription_benchmarks.report.prices import load_prices

MATRIX_TOML = """
name = "remote-tiny"
[defaults]
device = "cpu"
warmup = 0
repeats = 1
backend = "faster-whisper"
compute_type = "int8"
test_file = "jfk.flac"

[[cells]]
model = "Systran/faster-whisper-tiny.en"
label = "int8, beam 1"
beam_size = 1

[[cells]]
model = "Systran/faster-whisper-tiny.en"
label = "int8, beam 2"
beam_size = 2
"""
BUCKET = "tbench-test-bucket"
G4DN, P3 = "ml.g4dn.xlarge", "ml.p3.2xlarge"


@pytest.fixture
def matrix_file(tmp_path: Path) -> Path:
    path = tmp_path / "remote-tiny.toml"
    path.write_text(MATRIX_TOML)
    return path


def _run_job(root: Path, **extra_env: str) -> subprocess.CompletedProcess[str]:
    """The shipped archive unpacked in `root` and its entry point run as a training job runs it
    (install skipped: the package is installed here), with SageMaker's directory layout."""
    (root / "matrix").mkdir(parents=True)
    (root / "matrix" / MATRIX_NAME).write_text(MATRIX_TOML)
    archive = package_source(load_matrix(root / "matrix" / MATRIX_NAME), root / SOURCE_ARCHIVE)
    code = root / "code"
    with tarfile.open(archive) as tar:
        tar.extractall(code, filter="data")
    env = {
        **os.environ,
        SKIP_INSTALL_ENV: "1",
        "SM_MODEL_DIR": str(root / "model"),
        "SM_OUTPUT_DATA_DIR": str(root / "output" / "data"),
        "SM_OUTPUT_DIR": str(root / "output"),
        "SM_CHANNEL_MATRIX": str(root / "matrix"),
        # Only the shipped audio: the job has no ../shared/test_audio.
        "TRANSCRIPTION_BENCHMARKS_AUDIO_PATH": "",
        **extra_env,
    }
    return subprocess.run(
        [sys.executable, str(code / ENTRY_POINT), "--matrix", MATRIX_NAME],
        cwd=code,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def job_results(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """results.jsonl as a training job leaves it."""
    root = tmp_path_factory.mktemp("job")
    run = _run_job(root)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    results = root / "model" / "results.jsonl"
    assert (root / "output" / "data" / "results.jsonl").read_bytes() == results.read_bytes()
    rows = read_rows(results)
    assert [r.status for r in rows] == ["ok", "ok"], [r.reason for r in rows]
    assert all(JFK_TEXT in r.result.transcript.text.lower() for r in rows)
    return results.read_bytes()


NVJITLINK = (
    "libcusparse.so.12: undefined symbol: __nvJitLinkComplete_12_4, version libnvJitLink.so.12"
)


def test_a_job_on_a_broken_cuda_stack_stops_with_the_fix_before_any_cell(tmp_path: Path):
    # A stand-in for a CUDA torch whose cuSPARSE meets an older system nvJitLink (the original
    # FAQ's failure; a real one needs a CUDA build of torch): a torch package that raises its
    # message on import, first on the job's python path.
    broken = tmp_path / "broken-torch" / "torch"
    broken.mkdir(parents=True)
    (broken / "__init__.py").write_text(f"raise ImportError({NVJITLINK!r})\n")
    run = _run_job(tmp_path / "job", PYTHONPATH=str(broken.parent))
    assert run.returncode != 0
    failure = (tmp_path / "job" / "output" / "failure").read_text()
    assert failure.startswith("tbench remote run failed: the CUDA stack will not run on this ")
    assert "nvjitlink-symbol: torch_import: ImportError: libcusparse.so.12" in failure
    assert "Fix: " in failure
    assert not (tmp_path / "job" / "model" / "results.jsonl").exists()  # no cell ran


def _tar_gz(path: Path, name: str, data: bytes) -> Path:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    with tarfile.open(path, "w:gz") as tar:
        tar.addfile(info, io.BytesIO(data))
    return path


class Recorder:
    """What bench-remote sent to SageMaker, and (optionally) jobs to report as Failed."""

    def __init__(self, tmp_path: Path, plant: dict[str, bytes], failed: dict[str, str]):
        self.sagemaker = boto3.client("sagemaker", region_name=REGION)
        self.s3 = boto3.client("s3", region_name=REGION)
        self.requests: list[dict[str, Any]] = []
        self.tmp_path = tmp_path
        self.plant, self.failed = plant, failed
        events = self.sagemaker.meta.events
        events.register("provide-client-params.sagemaker.CreateTrainingJob", self._record)
        events.register("after-call.sagemaker.CreateTrainingJob", self._upload_output)
        events.register("before-call.sagemaker.DescribeTrainingJob", self._describe)

    def _record(self, params: dict[str, Any], **_: Any) -> None:
        self.requests.append(json.loads(json.dumps(params)))

    def _upload_output(self, **_: Any) -> None:
        # What SageMaker does when the job's container exits: upload /opt/ml/model.
        request = self.requests[-1]
        instance_type = request["ResourceConfig"]["InstanceType"]
        if instance_type in self.plant:
            uri = S3Uri.parse(request["OutputDataConfig"]["S3OutputPath"]).join(
                request["TrainingJobName"], "output", "model.tar.gz"
            )
            archive = _tar_gz(
                self.tmp_path / f"{instance_type}.tar.gz",
                "results.jsonl",
                self.plant[instance_type],
            )
            self.s3.upload_file(str(archive), uri.bucket, uri.key)

    def _describe(self, params: dict[str, Any], **_: Any):
        from botocore.awsrequest import AWSResponse

        name = json.loads(params["body"])["TrainingJobName"]
        sent = next(r for r in self.requests if r["TrainingJobName"] == name)
        reason = self.failed.get(sent["ResourceConfig"]["InstanceType"])
        if reason is None:
            return None  # moto answers
        real = boto3.client("sagemaker", region_name=REGION).describe_training_job(
            TrainingJobName=name
        )
        real.update(TrainingJobStatus="Failed", SecondaryStatus="Failed", FailureReason=reason)
        real.pop("ModelArtifacts", None)
        return AWSResponse(f"{self.sagemaker.meta.endpoint_url}/", 200, {}, None), real


def _run(recorder: Recorder, matrix_file: Path, tmp_path: Path, **kwargs: Any):
    return bench_remote(
        matrix_file,
        kwargs.pop("instance_types", [G4DN, P3]),
        role=ROLE,
        confirm=True,
        out=tmp_path / "out",
        bucket=BUCKET,
        poll_s=0,
        progress=False,
        echo=lambda _: None,
        sagemaker=recorder.sagemaker,
        s3=recorder.s3,
        **kwargs,
    )


def _create_bucket() -> None:
    boto3.client("s3", region_name=REGION).create_bucket(Bucket=BUCKET)


def test_training_jobs_carry_image_instance_role_hyperparameters_and_output(
    aws, tmp_path: Path, matrix_file: Path
):
    _create_bucket()
    recorder = Recorder(tmp_path, plant={}, failed={})
    run = _run(recorder, matrix_file, tmp_path, spot=True, max_runtime_s=1800, max_wait_s=3600)
    assert [r["ResourceConfig"]["InstanceType"] for r in recorder.requests] == [G4DN, P3]
    for request, job in zip(recorder.requests, run.jobs, strict=True):
        name = request["TrainingJobName"]
        assert name == job.job_name
        assert name.startswith("tbench-" + job.instance_type[3:].replace(".", "-") + "-")
        assert len(name) <= 63
        # What moto stored is what was sent.
        described = recorder.sagemaker.describe_training_job(TrainingJobName=name)
        image = training_image(REGION, gpu=True)
        assert described["AlgorithmSpecification"]["TrainingImage"] == image
        assert described["AlgorithmSpecification"]["TrainingInputMode"] == "File"
        assert described["RoleArn"] == ROLE
        assert described["ResourceConfig"] == {
            "InstanceType": job.instance_type,
            "InstanceCount": 1,
            "VolumeSizeInGB": 50,
        }
        assert described["StoppingCondition"] == {
            "MaxRuntimeInSeconds": 1800,
            "MaxWaitTimeInSeconds": 3600,
        }
        assert described["EnableManagedSpotTraining"] is True
        output = described["OutputDataConfig"]["S3OutputPath"]
        assert output.startswith(f"s3://{BUCKET}/transcription-benchmarks/remote/")
        hyper = {k: json.loads(v) for k, v in described["HyperParameters"].items()}
        assert hyper["sagemaker_program"] == ENTRY_POINT
        assert hyper["matrix"] == MATRIX_NAME
        assert hyper["sagemaker_region"] == REGION
        source = S3Uri.parse(hyper["sagemaker_submit_directory"])
        channel = described["InputDataConfig"][0]
        assert channel["ChannelName"] == "matrix"
        matrix_uri = S3Uri.parse(channel["DataSource"]["S3DataSource"]["S3Uri"])
        assert request["Environment"]["TBENCH_INSTANCE_TYPE"] == job.instance_type
    # The shipped inputs are in S3: the matrix as given, and a source archive that runs.
    body = recorder.s3.get_object(Bucket=matrix_uri.bucket, Key=f"{matrix_uri.key}/{MATRIX_NAME}")
    assert body["Body"].read().decode() == MATRIX_TOML
    archive = tmp_path / "source.tar.gz"
    recorder.s3.download_file(source.bucket, source.key, str(archive))
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
    assert {ENTRY_POINT, "project/pyproject.toml", "audio/jfk.flac"} <= names
    assert "project/src/transcription_benchmarks/aws/remote.py" in names
    assert not any("__pycache__" in n for n in names)
    # Moto completes jobs without running them: nothing was uploaded, and the rows say so.
    assert {r.status for r in run.rows} == {"error"}
    assert all("Completed without a row" in r.reason for r in run.rows)


def test_completed_output_is_merged_and_a_failed_job_becomes_rows(
    aws, tmp_path: Path, matrix_file: Path, job_results: bytes
):
    _create_bucket()
    reason = "AlgorithmError: CUDA driver version is insufficient for CUDA runtime version"
    recorder = Recorder(tmp_path, plant={G4DN: job_results}, failed={P3: reason})
    run = _run(recorder, matrix_file, tmp_path)

    assert [(j.instance_type, j.status) for j in run.jobs] == [(G4DN, "Completed"), (P3, "Failed")]
    merged = read_rows(run.results)
    assert merged == run.rows
    assert len(merged) == 4  # two cells on each instance type
    g4dn = rows_for_host(merged, G4DN)
    assert [r.status for r in g4dn] == ["ok", "ok"]
    assert all(JFK_TEXT in r.result.transcript.text.lower() for r in g4dn)
    p3 = rows_for_host(merged, P3)
    assert [r.status for r in p3] == ["error", "error"]
    assert all(reason in r.reason and run.jobs[1].job_name in r.reason for r in p3)
    assert {r.cell_id for r in g4dn} == {r.cell_id for r in p3}
    jobs = [json.loads(line) for line in (tmp_path / "out" / "jobs.jsonl").read_text().splitlines()]
    assert [(j["instance_type"], j["status"], j["rows"]) for j in jobs] == [
        (G4DN, "Completed", 2),
        (P3, "Failed", 2),
    ]

    table = side_by_side_table(merged, load_prices(), REGION)
    header = table.splitlines()[0]
    assert f"{G4DN} Speed" in header
    assert f"{G4DN} $/audio h" in header
    assert f"{P3} Speed" in header
    line = table.splitlines()[2]
    speed = g4dn[0].result.speed
    assert f"{speed:.1f}x" in line
    assert f"${0.736 / speed:.3f}" in line
    assert f"error: SageMaker training job {run.jobs[1].job_name}" in line

    # compare across instance types: the same cells matched, P3 failed where G4DN ran.
    comparison = compare(g4dn, p3)
    assert len(comparison.cells) == 2
    assert all(c.status_regression for c in comparison.cells)


def test_a_job_that_cannot_be_created_becomes_rows_and_the_others_go_on(
    aws, tmp_path: Path, matrix_file: Path, job_results: bytes
):
    _create_bucket()
    recorder = Recorder(tmp_path, plant={G4DN: job_results}, failed={})

    def no_quota(params: dict[str, Any], **_: Any):
        if params["ResourceConfig"]["InstanceType"] == P3:
            from botocore.exceptions import ClientError

            error = {"Code": "ResourceLimitExceeded", "Message": "account-level quota is 0"}
            raise ClientError({"Error": error}, "CreateTrainingJob")

    recorder.sagemaker.meta.events.register(
        "provide-client-params.sagemaker.CreateTrainingJob", no_quota
    )
    run = _run(recorder, matrix_file, tmp_path)
    assert [j.status for j in run.jobs] == ["Completed", "NotCreated"]
    assert [r.status for r in rows_for_host(run.rows, G4DN)] == ["ok", "ok"]
    reasons = [r.reason for r in rows_for_host(run.rows, P3)]
    assert all("was not created" in r and "ResourceLimitExceeded" in r for r in reasons)


def test_the_cost_guard_refuses_without_confirmation(aws, tmp_path: Path, matrix_file: Path):
    shown: list[str] = []
    sagemaker = boto3.client("sagemaker", region_name=REGION)
    with pytest.raises(CostNotConfirmedError, match=r"2\.00 instance-hours.*pass --yes"):
        bench_remote(
            matrix_file,
            [G4DN, "ml.g6.xlarge"],
            role=ROLE,
            max_runtime_s=3600,
            out=tmp_path / "out",
            echo=shown.append,
            progress=False,
        )
    plan = shown[0]
    assert "ml.g4dn.xlarge x 1 x 1.00 h = 1.00 instance-hours x $0.736/h = $0.736" in plan
    assert "ml.g6.xlarge x 1 x 1.00 h = 1.00 instance-hours" in plan
    assert "at most 2.00 instance-hours" in plan
    assert "warning" not in plan  # the CUDA 12.4 image runs on a T4 and an L4
    # Nothing was started or staged.
    assert sagemaker.list_training_jobs()["TrainingJobSummaries"] == []
    assert boto3.client("s3", region_name=REGION).list_buckets()["Buckets"] == []


def test_the_plan_warns_of_an_image_whose_cuda_the_gpu_cannot_run(
    aws, tmp_path: Path, matrix_file: Path
):
    """A CUDA 13 image on a V100 (compute capability 7.0 < 7.5) is said next to its price,
    before anything starts; the H100 line beside it carries no warning."""
    shown: list[str] = []
    image = "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.11.0-gpu-py312-cu130"
    with pytest.raises(CostNotConfirmedError):
        bench_remote(
            matrix_file,
            ["ml.p3.2xlarge", "ml.p5.48xlarge"],
            role=ROLE,
            image=image,
            out=tmp_path / "out",
            echo=shown.append,
            progress=False,
        )
    lines = shown[0].splitlines()
    p3 = lines.index(next(line for line in lines if line.startswith("  ml.p3.2xlarge")))
    assert lines[p3 + 1] == (
        "    warning: the image's CUDA 13.0 needs compute capability >= 7.5, and "
        "ml.p3.2xlarge's NVIDIA V100 has 7.0: every GPU cell would fail; choose a newer "
        "instance family or an image of an older CUDA (--image)"
    )
    assert lines[p3 + 2].startswith("  ml.p5.48xlarge")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"instance_types": []}, "at least one instance type"),
        ({"instance_types": ["g5.xlarge"]}, "not a SageMaker instance type"),
        ({"instance_types": [G4DN, G4DN]}, "listed more than once"),
        ({"spot": True, "max_runtime_s": 3600, "max_wait_s": 60}, "at least the max runtime"),
        ({"max_wait_s": 7200}, "managed spot training only"),
        ({"role": None}, "execution role is required"),
    ],
)
def test_bad_input_is_a_clear_error(aws, tmp_path: Path, matrix_file: Path, kwargs, message):
    args: dict[str, Any] = {"role": ROLE, "out": tmp_path, "progress": False, "confirm": True}
    args.update(kwargs)
    instance_types = args.pop("instance_types", [G4DN])
    with pytest.raises(AwsError, match=message):
        bench_remote(matrix_file, instance_types, echo=lambda _: None, **args)


def tbench(*args: str) -> subprocess.CompletedProcess[str]:
    # The child inherits the aws fixture's environment: AWS_ENDPOINT_URL points at moto.
    return subprocess.run(
        [sys.executable, "-m", "transcription_benchmarks", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cli_refuses_without_yes_then_runs_with_it(aws, tmp_path: Path, matrix_file: Path):
    args = ["bench-remote", str(matrix_file), "-i", G4DN, "-i", P3, "--role", ROLE]
    args += ["--max-runtime", "1800", "--out", str(tmp_path / "out"), "--poll", "0"]
    refused = tbench(*args)
    assert refused.returncode == 2
    assert "ml.g4dn.xlarge x 1 x 0.50 h = 0.50 instance-hours" in refused.stderr
    assert "pass --yes" in refused.stderr
    assert "Traceback" not in refused.stderr
    sagemaker = boto3.client("sagemaker", region_name=REGION)
    assert sagemaker.list_training_jobs()["TrainingJobSummaries"] == []

    done = tbench(*args, "--yes")  # default bucket: sagemaker-<region>-<account>, created
    assert done.returncode == 0, done.stderr
    jobs = sagemaker.list_training_jobs()["TrainingJobSummaries"]
    assert sorted(j["TrainingJobName"].split("-")[1] for j in jobs) == ["g4dn", "p3"]
    rows = read_rows(tmp_path / "out" / "results.jsonl")
    assert sorted((r.host, r.cell.label) for r in rows) == [
        (G4DN, "int8, beam 1"),
        (G4DN, "int8, beam 2"),
        (P3, "int8, beam 1"),
        (P3, "int8, beam 2"),
    ]
    assert f"| Model | Config | Test File | {G4DN} Speed |" in done.stdout
