"""One matrix on several SageMaker instance types at once, merged into one results file.

SageMaker training jobs are the engine: each instance type gets one job that unpacks this
project's source, installs it and runs `tbench matrix` (aws/remote_entry.py); SageMaker uploads
the job's results.jsonl to its output path, and the rows come back here with `host` set to the
instance type, so `tbench report` shows the types side by side and `tbench compare` can put one
against another. A job that fails, is stopped or cannot even be created becomes rows with the
reason for each of its cells; the other jobs go on.

Nothing starts without confirmation: the plan (instance type x 1 x max runtime = instance-hours,
priced where the price table knows the type) is printed first, and `confirm=True` (`--yes`) is
required.
"""

from __future__ import annotations

import json
import re
import tarfile
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

import transcription_benchmarks
from transcription_benchmarks.audio.catalog import find_test_audio
from transcription_benchmarks.aws import remote_entry
from transcription_benchmarks.aws.images import is_gpu_instance, training_image
from transcription_benchmarks.aws.session import (
    AwsError,
    S3Uri,
    aws_call,
    client,
    default_bucket,
    download,
    resolve_role,
    upload,
)
from transcription_benchmarks.compat.instances import stack_warning
from transcription_benchmarks.errors import BenchError
from transcription_benchmarks.matrix.rows import Row, Status, read_rows
from transcription_benchmarks.matrix.runner import append_row
from transcription_benchmarks.matrix.spec import Matrix, find_matrix, load_matrix
from transcription_benchmarks.report.prices import PriceTable, load_prices, money

DEFAULT_MAX_RUNTIME_S = 3 * 3600
DEFAULT_VOLUME_GB = 50
REMOTE_PREFIX = "transcription-benchmarks/remote"
"""Where runs stage their inputs and SageMaker writes outputs, one folder per run."""
SOURCE_ARCHIVE = "sourcedir.tar.gz"
MATRIX_NAME = "matrix.toml"
MATRIX_CHANNEL = "matrix"
ENTRY_POINT = "remote_entry.py"
RESULTS_NAME = remote_entry.RESULTS_NAME
FINISHED = frozenset({"Completed", "Failed", "Stopped"})

_INSTANCE_RE = re.compile(r"ml\.[a-z0-9-]+\.[a-z0-9]+")
_TIMESTAMP_FORMAT = "%Y%m%d-%H%M%S"
_MAX_JOB_NAME = 63
_PROJECT_FILES = ("pyproject.toml", "README.md")
_PROJECT_DIRS = ("src/transcription_benchmarks", "test_audio")


class CostNotConfirmedError(BenchError):
    """bench-remote was asked to start paid instances without confirmation."""


class PlannedJob(BaseModel):
    instance_type: str
    instance_count: int = 1
    max_runtime_s: int
    instance_hours: float
    price_per_hour: float | None = Field(None, description="from the price table; None: unknown")
    image: str | None = None
    warning: str | None = Field(
        None, description="why the image's CUDA may not run on this instance's GPU (instances.py)"
    )

    @property
    def max_cost(self) -> float | None:
        return None if self.price_per_hour is None else self.price_per_hour * self.instance_hours


class CostPlan(BaseModel):
    """What a remote run may cost at most: every job running to its max runtime."""

    jobs: list[PlannedJob]
    region: str
    spot: bool
    currency: str = "USD"
    prices_as_of: str | None = None

    @property
    def instance_hours(self) -> float:
        return sum(job.instance_hours for job in self.jobs)

    def describe(self) -> str:
        lines = [f"bench-remote will start {len(self.jobs)} SageMaker training job(s):"]
        for job in self.jobs:
            price = (
                f" x {money(job.price_per_hour, self.currency)}/h = "
                f"{money(job.max_cost, self.currency)}"
                if job.price_per_hour is not None
                else " (no price in the table)"
            )
            lines.append(
                f"  {job.instance_type} x {job.instance_count} x {job.max_runtime_s / 3600:.2f} h "
                f"= {job.instance_hours:.2f} instance-hours{price}"
            )
            if job.warning:
                lines.append(f"    warning: {job.warning}")
        costs = [job.max_cost for job in self.jobs]
        total = f"at most {self.instance_hours:.2f} instance-hours"
        if all(cost is not None for cost in costs):
            total += f", {money(sum(costs), self.currency)}"
            total += f" (on-demand, {self.region}, prices as of {self.prices_as_of})"
        elif any(cost is not None for cost in costs):
            total += ", price unknown for some instance types"
        if self.spot:
            total += "; managed spot: billed time is usually lower"
        lines.append(total)
        return "\n".join(lines)


class RemoteJob(BaseModel):
    """One instance type's training job and how it ended."""

    instance_type: str
    job_name: str
    image: str
    status: str = Field(description="SageMaker's TrainingJobStatus, or 'NotCreated'")
    secondary_status: str | None = None
    reason: str | None = None
    output: str | None = Field(None, description="s3:// URI of the uploaded results archive")
    rows: int = 0


class RemoteRun(BaseModel):
    plan: CostPlan
    jobs: list[RemoteJob]
    results: Path = Field(description="the merged JSONL, one row per cell per instance type")
    rows: list[Row]


def validate_instance_types(instance_types: list[str]) -> list[str]:
    if not instance_types:
        raise AwsError("give at least one instance type (--instance-type ml.g5.xlarge)")
    for instance_type in instance_types:
        if not _INSTANCE_RE.fullmatch(instance_type):
            raise AwsError(
                f"{instance_type!r} is not a SageMaker instance type (expected e.g. ml.g5.xlarge)"
            )
    duplicates = sorted({t for t in instance_types if instance_types.count(t) > 1})
    if duplicates:
        raise AwsError(f"instance type(s) listed more than once: {', '.join(duplicates)}")
    return list(instance_types)


def plan_cost(
    instance_types: list[str],
    *,
    max_runtime_s: int = DEFAULT_MAX_RUNTIME_S,
    spot: bool = False,
    region: str = "us-east-1",
    prices: PriceTable | None = None,
    images: dict[str, str] | None = None,
) -> CostPlan:
    """Every job at its max runtime, priced; with `images` (instance type -> image URI), each
    GPU job also says whether its image's CUDA runs on that instance's GPU."""
    hours = max_runtime_s / 3600
    images = images or {}
    return CostPlan(
        jobs=[
            PlannedJob(
                instance_type=t,
                max_runtime_s=max_runtime_s,
                instance_hours=hours,
                price_per_hour=prices.hourly(t, region) if prices else None,
                image=images.get(t),
                warning=stack_warning(t, images[t]) if t in images and is_gpu_instance(t) else None,
            )
            for t in validate_instance_types(instance_types)
        ],
        region=region,
        spot=spot,
        currency=prices.currency if prices else "USD",
        prices_as_of=prices.as_of if prices else None,
    )


def check_confirmed(plan: CostPlan, confirm: bool) -> None:
    """The cost guard: refuse to start anything unless the caller confirmed the plan."""
    if not confirm:
        raise CostNotConfirmedError(
            f"not starting {plan.instance_hours:.2f} instance-hours of SageMaker training jobs "
            "without confirmation: review the plan above and pass --yes (confirm=True)"
        )


def job_name(instance_type: str, now: datetime | None = None) -> str:
    """`tbench-<instance type>-<UTC timestamp>`, e.g. tbench-g5-xlarge-20261125-031500."""
    slug = re.sub(r"[^a-zA-Z0-9]+", "-", instance_type.removeprefix("ml.")).strip("-")
    stamp = (now or datetime.now(UTC)).strftime(_TIMESTAMP_FORMAT)
    room = _MAX_JOB_NAME - len("tbench--") - len(stamp)
    return f"tbench-{slug[:room].rstrip('-')}-{stamp}"


def project_root() -> Path:
    """The source checkout this package runs from; remote jobs install it from its source."""
    root = Path(transcription_benchmarks.__file__).resolve().parents[2]
    if not (root / "pyproject.toml").is_file() or not (root / "src").is_dir():
        raise AwsError(
            "bench-remote ships this project's source to the training job and needs a source "
            f"checkout (pip install -e .); {root} has no pyproject.toml"
        )
    return root


def matrix_audio(matrix: Matrix) -> dict[str, Path]:
    """The test files the matrix names, located here, to ship with the job."""
    audio: dict[str, Path] = {}
    for cell in matrix.cells:
        name = cell.test_file
        if Path(name).name != name:
            raise AwsError(
                f"cell {cell.label or cell.model!r} names the audio by path ({name}); remote runs "
                "ship test audio by catalogue name: put the file in a directory on "
                "$TRANSCRIPTION_BENCHMARKS_AUDIO_PATH and use its bare name"
            )
        if name not in audio:
            audio[name] = find_test_audio(name)
    return audio


def package_source(matrix: Matrix, dest: Path, root: Path | None = None) -> Path:
    """The source archive the training toolkit unpacks and runs: remote_entry.py at its root,
    the project (pyproject, package source, test-audio catalogue) under project/, and the
    matrix's test audio under audio/."""
    root = root or project_root()
    audio = matrix_audio(matrix)

    def skip_cache(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
        parts = Path(info.name).parts
        return None if "__pycache__" in parts or info.name.endswith(".pyc") else info

    with tarfile.open(dest, "w:gz") as archive:
        archive.add(Path(remote_entry.__file__), arcname=ENTRY_POINT)
        for name in _PROJECT_FILES:
            archive.add(root / name, arcname=f"project/{name}")
        for name in _PROJECT_DIRS:
            if (root / name).is_dir():
                archive.add(root / name, arcname=f"project/{name}", filter=skip_cache)
        for name, path in sorted(audio.items()):
            archive.add(path, arcname=f"audio/{name}")
    return dest


def training_job_request(
    *,
    name: str,
    instance_type: str,
    image: str,
    role: str,
    source: S3Uri,
    matrix_prefix: S3Uri,
    output: S3Uri,
    region: str,
    max_runtime_s: int,
    spot: bool,
    max_wait_s: int | None,
    volume_gb: int,
    cell_timeout_s: float | None,
) -> dict[str, Any]:
    """The create_training_job arguments for one instance type.

    Hyperparameters are JSON-encoded as the SageMaker SDK writes them: the training toolkit
    decodes them, downloads `sagemaker_submit_directory`, and runs `sagemaker_program` with the
    others as `--key value` arguments."""
    hyperparameters: dict[str, Any] = {
        "sagemaker_program": ENTRY_POINT,
        "sagemaker_submit_directory": str(source),
        "sagemaker_region": region,
        "sagemaker_container_log_level": 20,
        "matrix": MATRIX_NAME,
    }
    if cell_timeout_s:
        hyperparameters["timeout"] = cell_timeout_s
    stopping: dict[str, int] = {"MaxRuntimeInSeconds": max_runtime_s}
    request: dict[str, Any] = {
        "TrainingJobName": name,
        "AlgorithmSpecification": {"TrainingImage": image, "TrainingInputMode": "File"},
        "RoleArn": role,
        "InputDataConfig": [
            {
                "ChannelName": MATRIX_CHANNEL,
                "DataSource": {
                    "S3DataSource": {
                        "S3DataType": "S3Prefix",
                        "S3Uri": str(matrix_prefix),
                        "S3DataDistributionType": "FullyReplicated",
                    }
                },
                "ContentType": "application/toml",
            }
        ],
        "OutputDataConfig": {"S3OutputPath": str(output)},
        "ResourceConfig": {
            "InstanceType": instance_type,
            "InstanceCount": 1,
            "VolumeSizeInGB": volume_gb,
        },
        "StoppingCondition": stopping,
        "HyperParameters": {k: json.dumps(v) for k, v in hyperparameters.items()},
        "Environment": {
            "TBENCH_INSTANCE_TYPE": instance_type,
            "HF_HUB_DISABLE_TELEMETRY": "1",
            "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        },
        "Tags": [{"Key": "tbench:instance-type", "Value": instance_type}],
    }
    if spot:
        request["EnableManagedSpotTraining"] = True
        stopping["MaxWaitTimeInSeconds"] = max_wait_s or 2 * max_runtime_s
    return request


def bench_remote(
    matrix: str | Path,
    instance_types: list[str],
    *,
    role: str | None = None,
    confirm: bool = False,
    out: str | Path = Path("results") / "remote",
    region: str | None = None,
    bucket: str | None = None,
    image: str | None = None,
    spot: bool = False,
    max_wait_s: int | None = None,
    max_runtime_s: int = DEFAULT_MAX_RUNTIME_S,
    volume_gb: int = DEFAULT_VOLUME_GB,
    cell_timeout_s: float | None = None,
    prices: PriceTable | None = None,
    poll_s: float = 30,
    progress: bool = True,
    echo: Callable[[str], None] = print,
    sagemaker: Any = None,
    s3: Any = None,
) -> RemoteRun:
    """Run the matrix `matrix` (a TOML file, or 'cpu'/'gpu' for a built-in one) on each of `instance_types` as SageMaker training jobs, wait,
    and merge every job's rows into `out`/results.jsonl (rows of failed jobs included).

    `role` is the execution role ARN (else $TRANSCRIPTION_BENCHMARKS_SAGEMAKER_ROLE). `image`
    replaces the pinned Hugging Face PyTorch training image. With `spot`, `max_wait_s` (default
    twice the runtime) bounds waiting for capacity plus running. `sagemaker` / `s3` are boto3
    clients to use instead of new ones."""
    matrix_path = find_matrix(matrix)
    spec = load_matrix(matrix_path)
    instance_types = validate_instance_types(instance_types)
    if max_runtime_s <= 0:
        raise AwsError(f"max runtime must be a positive number of seconds, got {max_runtime_s}")
    if spot and max_wait_s is not None and max_wait_s < max_runtime_s:
        raise AwsError(
            f"max wait ({max_wait_s} s) must be at least the max runtime ({max_runtime_s} s): "
            "SageMaker counts spot waiting and running together"
        )
    if not spot and max_wait_s is not None:
        raise AwsError("max wait applies to managed spot training only: add --spot")
    role = resolve_role(role)
    sagemaker = sagemaker or client("sagemaker", region)
    region = sagemaker.meta.region_name
    prices = prices or load_prices()
    images = {t: image or training_image(region, gpu=is_gpu_instance(t)) for t in instance_types}
    plan = plan_cost(
        instance_types,
        max_runtime_s=max_runtime_s,
        spot=spot,
        region=region,
        prices=prices,
        images=images,
    )
    echo(plan.describe())
    check_confirmed(plan, confirm)

    s3 = s3 or client("s3", region)
    now = datetime.now(UTC)
    run_prefix = S3Uri(
        default_bucket(s3, region, bucket), f"{REMOTE_PREFIX}/{now.strftime(_TIMESTAMP_FORMAT)}"
    )
    source = run_prefix.join("input", SOURCE_ARCHIVE)
    matrix_prefix = run_prefix.join("input", MATRIX_CHANNEL)
    output = run_prefix.join("output")
    with tempfile.TemporaryDirectory(prefix="tbench-remote-") as tmp:
        archive = package_source(spec, Path(tmp) / SOURCE_ARCHIVE)
        aws_call(f"upload the source archive to {source}", upload, s3, archive, source)
    aws_call(
        f"upload the matrix to {matrix_prefix}",
        s3.put_object,
        Bucket=matrix_prefix.bucket,
        Key=matrix_prefix.join(MATRIX_NAME).key,
        Body=matrix_path.read_bytes(),
    )

    jobs: list[RemoteJob] = []
    for instance_type in instance_types:
        chosen = images[instance_type]
        job = RemoteJob(
            instance_type=instance_type,
            job_name=job_name(instance_type, now),
            image=chosen,
            status="NotCreated",
        )
        request = training_job_request(
            name=job.job_name,
            instance_type=instance_type,
            image=chosen,
            role=role,
            source=source,
            matrix_prefix=matrix_prefix,
            output=output,
            region=region,
            max_runtime_s=max_runtime_s,
            spot=spot,
            max_wait_s=max_wait_s,
            volume_gb=volume_gb,
            cell_timeout_s=cell_timeout_s,
        )
        try:
            aws_call(
                f"create training job {job.job_name}", sagemaker.create_training_job, **request
            )
            job.status = "InProgress"
            echo(f"started {job.job_name} on {instance_type} ({chosen})")
        except AwsError as exc:  # e.g. no quota for this type: its cells say so, others go on
            job.reason = str(exc)
            echo(f"could not start a job on {instance_type}: {exc}")
        jobs.append(job)

    wait_for_jobs(sagemaker, jobs, poll_s=poll_s, progress=progress)

    out = Path(out)
    results = out / RESULTS_NAME
    merged: list[Row] = []
    for job in jobs:
        rows = collect_rows(s3, job, spec, out / "jobs" / job.job_name)
        job.rows = len(rows)
        for row in rows:
            append_row(results, row)
        merged += rows
        echo(f"{job.instance_type}: {job.status}, {len(rows)} row(s)")
    jobs_file = out / "jobs.jsonl"  # which job produced which rows, for looking up its logs
    with jobs_file.open("a", encoding="utf-8") as f:
        f.writelines(job.model_dump_json() + "\n" for job in jobs)
    return RemoteRun(plan=plan, jobs=jobs, results=results, rows=merged)


def wait_for_jobs(sagemaker: Any, jobs: list[RemoteJob], *, poll_s: float, progress: bool) -> None:
    """Poll until every created job has finished, one progress line per job."""
    bar = _progress() if progress else None
    tasks = {}
    if bar is not None:
        bar.start()
        for job in jobs:
            tasks[job.job_name] = bar.add_task(job.instance_type, total=1, state=job.status)
    try:
        while True:
            pending = [job for job in jobs if job.status not in FINISHED | {"NotCreated"}]
            for job in pending:
                described = aws_call(
                    f"describe training job {job.job_name}",
                    sagemaker.describe_training_job,
                    TrainingJobName=job.job_name,
                )
                job.status = described["TrainingJobStatus"]
                job.secondary_status = described.get("SecondaryStatus")
                job.reason = described.get("FailureReason") or job.reason
                job.output = described.get("ModelArtifacts", {}).get("S3ModelArtifacts")
                if not job.output:
                    job.output = described["OutputDataConfig"]["S3OutputPath"]
                if bar is not None:
                    state = job.status + (
                        f" ({job.secondary_status})" if job.secondary_status else ""
                    )
                    bar.update(
                        tasks[job.job_name],
                        state=state,
                        completed=1 if job.status in FINISHED else 0,
                    )
            if not any(job.status not in FINISHED | {"NotCreated"} for job in jobs):
                return
            time.sleep(poll_s)
    except KeyboardInterrupt:
        names = ", ".join(job.job_name for job in jobs if job.status not in FINISHED)
        raise AwsError(
            f"stopped waiting; the jobs keep running (and billing) on SageMaker: {names}. "
            "Stop them with `aws sagemaker stop-training-job --training-job-name NAME`"
        ) from None
    finally:
        if bar is not None:
            bar.stop()


def collect_rows(s3: Any, job: RemoteJob, matrix: Matrix, directory: Path) -> list[Row]:
    """The job's rows with `host` set to its instance type, plus one row per cell it has no row
    for, saying why (the job failed, was stopped, or never started)."""
    rows = [
        row.model_copy(update={"host": job.instance_type})
        for row in _download_rows(s3, job, directory)
        if row.matrix == matrix.name
    ]
    have = {row.cell_id for row in rows}
    status, reason = _missing_reason(job)
    for cell in matrix.cells:
        if cell.id not in have:
            rows.append(
                Row(
                    matrix=matrix.name,
                    cell_id=cell.id,
                    cell=cell,
                    status=status,
                    reason=reason,
                    host=job.instance_type,
                )
            )
    return rows


def _download_rows(s3: Any, job: RemoteJob, directory: Path) -> list[Row]:
    """Rows from the job's model.tar.gz, else its output.tar.gz (uploaded even on failure)."""
    from botocore.exceptions import ClientError

    if job.status == "NotCreated" or not job.output:
        return []
    model = S3Uri.parse(job.output)
    if not model.key.endswith(".tar.gz"):
        model = model.join(job.job_name, "output", "model.tar.gz")
    candidates = [model, S3Uri(model.bucket, model.key.rsplit("/", 1)[0] + "/output.tar.gz")]
    for uri in candidates:
        archive = directory / Path(uri.key).name
        try:
            download(s3, uri, archive)
        except ClientError:  # not uploaded (a failed job has no model.tar.gz): try the next
            continue
        results = _extract_results(archive, directory)
        if results is not None:
            return read_rows(results)
    return []


def _extract_results(archive: Path, directory: Path) -> Path | None:
    try:
        with tarfile.open(archive, "r:gz") as tar:
            member = next(
                (m for m in tar.getmembers() if Path(m.name).name == RESULTS_NAME and m.isfile()),
                None,
            )
            if member is None:
                return None
            data = tar.extractfile(member)
            target = directory / RESULTS_NAME
            target.write_bytes(data.read() if data else b"")
            return target
    except (tarfile.TarError, OSError) as exc:
        raise AwsError(f"cannot read the job's output archive {archive}: {exc}") from exc


def _missing_reason(job: RemoteJob) -> tuple[Status, str]:
    where = f"SageMaker training job {job.job_name} on {job.instance_type}"
    if job.status == "NotCreated":
        return "error", f"{where} was not created: {job.reason}"
    if job.status == "Stopped":
        if job.secondary_status in {"MaxRuntimeExceeded", "MaxWaitTimeExceeded"}:
            return "timeout", f"{where} stopped: {job.secondary_status} before this cell finished"
        return "error", f"{where} was stopped before this cell ran ({job.reason or 'by request'})"
    if job.status == "Failed":
        return "error", f"{where} failed: {job.reason or 'no failure reason given'}"
    return "error", f"{where} {job.status} without a row for this cell"


def _progress():
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TextColumn("{task.fields[state]}"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
    )
