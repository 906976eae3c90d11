"""Invoke a SageMaker endpoint, real-time or async, with the same wire protocol as the local one.

`SageMakerEndpoint` speaks the endpoint-client interface of `serving.client` (invoke -> status,
body, content type), so the shared endpoint suite and `predict_aws` treat a deployed endpoint
exactly like the local server. Real-time invocations carry at most 6 MB; larger audio goes
through async inference: the audio is staged in S3, SageMaker writes the answer (or the error)
to S3, and this module polls both places.
"""

from __future__ import annotations

import os
import re
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from transcription_benchmarks.aws.deploy import S3_PREFIX
from transcription_benchmarks.aws.session import (
    BUCKET_ENV,
    AwsError,
    S3Uri,
    aws_call,
    client,
)
from transcription_benchmarks.serving.client import (
    EndpointResponse,
    custom_attributes_for,
    predict,
)
from transcription_benchmarks.serving.protocol import (
    MAX_REALTIME_BODY_BYTES,
    EndpointError,
    ErrorBody,
    TranscriptionInfo,
    WireSegment,
)

ASYNC_TIMEOUT_S = 900.0
"""How long predict waits for an async answer; SageMaker itself allows up to an hour."""

_STATUS_IN_FAILURE = re.compile(r"\((\d{3})\)")


class RequestTooLargeError(AwsError, ValueError):
    """The body exceeds SageMaker's 6 MB real-time limit."""


class SageMakerEndpoint:
    """One deployed endpoint, invoked through sagemaker-runtime.

    `asynchronous=None` asks SageMaker once whether the endpoint config has an
    AsyncInferenceConfig. Async inputs are staged under `bucket`, by default the bucket the
    endpoint writes its async output to.
    """

    def __init__(
        self,
        endpoint: str,
        *,
        region: str | None = None,
        asynchronous: bool | None = None,
        bucket: str | None = None,
        timeout_s: float = ASYNC_TIMEOUT_S,
        poll_s: float = 2.0,
        sleep: Callable[[float], None] = time.sleep,
        runtime: Any = None,
    ) -> None:
        self.endpoint = endpoint
        self.runtime = runtime or client("sagemaker-runtime", region)
        self.region = self.runtime.meta.region_name
        self.timeout_s = timeout_s
        self.poll_s = poll_s
        self._sleep = sleep
        self._asynchronous = asynchronous
        self._bucket = bucket
        self._async_output: str | None = None

    @property
    def asynchronous(self) -> bool:
        """Whether requests go through S3 (async inference) rather than in the call."""
        if self._asynchronous is None:
            self._describe()
        return bool(self._asynchronous)

    def _describe(self) -> None:
        sagemaker = client("sagemaker", self.region)
        described = aws_call(
            f"describe endpoint {self.endpoint}",
            sagemaker.describe_endpoint,
            EndpointName=self.endpoint,
        )
        if described["EndpointStatus"] != "InService":
            raise AwsError(
                f"endpoint {self.endpoint} is {described['EndpointStatus']}, not InService"
                + (f": {described['FailureReason']}" if described.get("FailureReason") else "")
            )
        config = aws_call(
            f"describe endpoint config {described['EndpointConfigName']}",
            sagemaker.describe_endpoint_config,
            EndpointConfigName=described["EndpointConfigName"],
        )
        output = config.get("AsyncInferenceConfig", {}).get("OutputConfig", {})
        self._async_output = output.get("S3OutputPath")
        if self._asynchronous is None:
            self._asynchronous = "AsyncInferenceConfig" in config

    def staging_bucket(self) -> str:
        """Where async inputs go: bucket=, $TRANSCRIPTION_BENCHMARKS_S3_BUCKET, or the bucket of
        the endpoint's own async output path."""
        if self._bucket is None:
            self._bucket = os.environ.get(BUCKET_ENV)
        if self._bucket is None:
            if self._async_output is None:
                self._describe()
            if self._async_output is None:
                raise AwsError(
                    f"endpoint {self.endpoint} has no async output path to stage inputs next to; "
                    f"pass bucket= or set {BUCKET_ENV}"
                )
            self._bucket = S3Uri.parse(self._async_output).bucket
        return self._bucket

    def invoke(
        self,
        body: bytes,
        *,
        content_type: str = "application/octet-stream",
        params: Mapping[str, Any] | BaseModel | None = None,
        custom_attributes: str | None = None,
    ) -> EndpointResponse:
        """Send one request; the container's answer comes back as status, body, content type
        (errors included, as LocalEndpoint returns them); a request SageMaker itself refuses
        raises EndpointError, and AWS trouble (access, S3, timeout) raises AwsError."""
        custom_attributes = custom_attributes_for(params, custom_attributes)
        if self.asynchronous:
            return self._invoke_async(body, content_type, custom_attributes)
        return self._invoke_realtime(body, content_type, custom_attributes)

    def _invoke_realtime(
        self, body: bytes, content_type: str, custom_attributes: str | None
    ) -> EndpointResponse:
        if len(body) > MAX_REALTIME_BODY_BYTES:
            raise RequestTooLargeError(
                f"the request is {len(body) / 1e6:.1f} MB; SageMaker real-time invocations carry "
                f"at most {MAX_REALTIME_BODY_BYTES / 1024 / 1024:.0f} MB. Deploy the endpoint "
                "with asynchronous=True (tbench deploy --async) to send larger audio through S3"
            )
        from botocore.exceptions import ClientError

        kwargs: dict[str, Any] = {
            "EndpointName": self.endpoint,
            "Body": body,
            "ContentType": content_type,
            "Accept": "application/json",
        }
        if custom_attributes is not None:
            kwargs["CustomAttributes"] = custom_attributes
        try:
            answer = self.runtime.invoke_endpoint(**kwargs)
        except ClientError as exc:
            return _model_error_response(exc, self.endpoint)
        return EndpointResponse(
            status=200, body=answer["Body"].read(), content_type=answer.get("ContentType")
        )

    def _invoke_async(
        self, body: bytes, content_type: str, custom_attributes: str | None
    ) -> EndpointResponse:
        s3 = client("s3", self.region)
        staged = S3Uri(
            self.staging_bucket(), f"{S3_PREFIX}/{self.endpoint}/async-input/{uuid.uuid4()}"
        )
        aws_call(
            f"stage the request at {staged}",
            s3.put_object,
            Bucket=staged.bucket,
            Key=staged.key,
            Body=body,
            ContentType=content_type,
        )
        kwargs: dict[str, Any] = {
            "EndpointName": self.endpoint,
            "InputLocation": str(staged),
            "ContentType": content_type,
            "Accept": "application/json",
        }
        if custom_attributes is not None:
            kwargs["CustomAttributes"] = custom_attributes
        from botocore.exceptions import ClientError

        try:
            started = self.runtime.invoke_endpoint_async(**kwargs)
        except ClientError as exc:
            return _model_error_response(exc, self.endpoint)
        response = self._await(s3, started["OutputLocation"], started.get("FailureLocation"))
        # Only once there is an answer has SageMaker finished with the staged audio; after a
        # timeout the request is still queued and needs it.
        aws_call(f"delete {staged}", s3.delete_object, Bucket=staged.bucket, Key=staged.key)
        return response

    def _await(self, s3: Any, output: str, failure: str | None) -> EndpointResponse:
        """Poll the output and failure objects until one exists or the timeout passes."""
        deadline = time.monotonic() + self.timeout_s
        while True:
            found = _get_if_exists(s3, S3Uri.parse(output))
            if found is not None:
                data, content_type = found
                return EndpointResponse(status=200, body=data, content_type=content_type)
            if failure is not None:
                found = _get_if_exists(s3, S3Uri.parse(failure))
                if found is not None:
                    data, content_type = found
                    return EndpointResponse(_failure_status(data), data, content_type)
            if time.monotonic() >= deadline:
                raise AwsError(
                    f"no answer from endpoint {self.endpoint} after {self.timeout_s:.0f} s; "
                    f"the result will appear at {output}"
                    + (f" (or the error at {failure})" if failure else "")
                )
            self._sleep(self.poll_s)


def _failure_status(data: bytes) -> int:
    """The status of an async failure: our ErrorBody's, else the "(4xx)" SageMaker quotes in
    its own message ("Received client error (400) from primary ..."), else 500."""
    try:
        status = ErrorBody.model_validate_json(data).status
    except ValidationError:
        match = _STATUS_IN_FAILURE.search(data.decode("utf-8", "replace"))
        status = int(match.group(1)) if match else 500
    return status


def _get_if_exists(s3: Any, uri: S3Uri) -> tuple[bytes, str | None] | None:
    from botocore.exceptions import ClientError

    try:
        got = s3.get_object(Bucket=uri.bucket, Key=uri.key)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in {"NoSuchKey", "404", "NotFound"}:
            return None
        raise AwsError(f"could not read {uri}: {exc}") from exc
    return got["Body"].read(), got.get("ContentType")


def _model_error_response(exc: Any, endpoint: str) -> EndpointResponse:
    """A ModelError carries the container's own answer: hand it back like any response.
    Anything else SageMaker refused (unknown endpoint, throttling, access) raises."""
    error = exc.response.get("Error", {})
    code = error.get("Code", "")
    if code == "ModelError":
        status = int(exc.response.get("OriginalStatusCode") or 500)
        message = exc.response.get("OriginalMessage") or error.get("Message", "")
        return EndpointResponse(status=status, body=message.encode(), content_type=None)
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 500)
    raise EndpointError(
        status, f"SageMaker refused the request to {endpoint}: {code}: {error.get('Message')}"
    ) from exc


def predict_aws(
    endpoint: str,
    test_file: str | Path | bytes,
    params: Mapping[str, Any] | BaseModel | None = None,
    *,
    region: str | None = None,
    asynchronous: bool | None = None,
    bucket: str | None = None,
    timeout_s: float = ASYNC_TIMEOUT_S,
) -> tuple[list[WireSegment], TranscriptionInfo]:
    """Transcribe a file (path, test-audio name or bytes) on a deployed endpoint: the same
    (segments, info) as predict_local. An error answer raises EndpointError with the
    container's status and message."""
    remote = SageMakerEndpoint(
        endpoint, region=region, asynchronous=asynchronous, bucket=bucket, timeout_s=timeout_s
    )
    return predict(remote, test_file, params)
