"""Invoking SageMaker endpoints: real-time and async through moto's server; errors via Stubber.

Moto cannot run the container, so what the endpoint answers is what the real faster-whisper
handler answers here (tiny.en on jfk.flac, and its refusals), queued on moto over HTTP.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.response import StreamingBody
from botocore.stub import Stubber
from tests.aws.conftest import REGION, ROLE, HandlerAnswers, queue_results
from tests.conftest import JFK_TEXT

from transcription_benchmarks.aws.deploy import deploy_on_aws
from transcription_benchmarks.aws.predict import (
    RequestTooLargeError,
    SageMakerEndpoint,
    predict_aws,
)
from transcription_benchmarks.aws.session import AwsError
from transcription_benchmarks.quality.normalize import normalize
from transcription_benchmarks.serving.client import EndpointClient, predict
from transcription_benchmarks.serving.protocol import (
    MAX_REALTIME_BODY_BYTES,
    EndpointError,
    ErrorBody,
    ParamsTooLongError,
    decode_params,
    encode_params,
)

PARAMS = {"single": {"beam_size": 1, "temperature": 0.0}}


def _deploy(asynchronous: bool) -> str:
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="staging")
    s3.put_object(Bucket="staging", Key="model.tar.gz", Body=b"x")
    return deploy_on_aws(
        "predict", "s3://staging/model.tar.gz", None, ROLE, "ml.g4dn.xlarge",
        asynchronous=asynchronous, bucket="staging", poll_s=0.01,
    )  # fmt: skip


def _staged_inputs() -> list[str]:
    listed = boto3.client("s3").list_objects_v2(Bucket="staging", Prefix="transcription-benchmarks")
    return [o["Key"] for o in listed.get("Contents", []) if "/async-input/" in o["Key"]]


def _text(segments: list) -> str:
    return normalize(" ".join(s.text for s in segments), "en")


def test_async_predict_goes_through_s3_and_returns_the_typed_result(
    aws: str, jfk: Path, answers: HandlerAnswers, monkeypatch: pytest.MonkeyPatch
) -> None:
    endpoint = _deploy(asynchronous=True)
    queue_results(aws, "async-endpoint-results", [{"data": answers.transcription.decode()}])
    received: dict[str, Any] = {}

    def record(params: dict[str, Any], **_: Any) -> None:
        # What SageMaker would get: the call's parameters, and the object InputLocation names,
        # read from (moto's) S3 at the moment of the call.
        bucket, _, key = params["InputLocation"].removeprefix("s3://").partition("/")
        received.update(params)
        received["audio"] = boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()

    from transcription_benchmarks.aws import predict as predict_module

    real_client = predict_module.client

    def recording_client(service: str, region: str | None = None) -> Any:
        made = real_client(service, region)
        if service == "sagemaker-runtime":
            made.meta.events.register(
                "before-parameter-build.sagemaker-runtime.InvokeEndpointAsync", record
            )
        return made

    monkeypatch.setattr(predict_module, "client", recording_client)
    segments, info = predict_aws(endpoint, jfk, PARAMS)
    assert received["audio"] == jfk.read_bytes()  # the very file, staged whole
    assert decode_params(received["CustomAttributes"]) == PARAMS
    assert received["EndpointName"] == endpoint
    assert JFK_TEXT in _text(segments)
    assert info.backend == "faster-whisper"
    assert info.duration == pytest.approx(11.0, abs=0.1)
    # The staged input was removed once the answer arrived.
    assert _staged_inputs() == []


def test_async_endpoint_client_finds_async_from_the_endpoint_config(
    aws: str, answers: HandlerAnswers
) -> None:
    endpoint = _deploy(asynchronous=True)
    queue_results(aws, "async-endpoint-results", [{"data": answers.transcription.decode()}])
    remote = SageMakerEndpoint(endpoint, poll_s=0.01)
    assert isinstance(remote, EndpointClient)
    assert remote.asynchronous
    response = remote.invoke(b"fLaC...", content_type="audio/flac", params=PARAMS)
    assert response.ok
    assert response.body == answers.transcription


def test_async_failure_raises_with_the_failure_body(
    aws: str, jfk: Path, answers: HandlerAnswers
) -> None:
    refusal = ErrorBody.model_validate_json(answers.not_audio)
    assert refusal.status == 400
    endpoint = _deploy(asynchronous=True)
    queue_results(
        aws, "async-endpoint-results", [{"is_failure": True, "data": answers.not_audio.decode()}]
    )
    with pytest.raises(EndpointError) as caught:
        predict_aws(endpoint, jfk)
    assert caught.value.status == 400
    assert caught.value.message == refusal.message


def test_async_failure_in_sagemakers_own_words_keeps_its_status(aws: str) -> None:
    endpoint = _deploy(asynchronous=True)
    failure = 'Received server error (503) from primary with message "worker died"'
    queue_results(aws, "async-endpoint-results", [{"is_failure": True, "data": failure}])
    response = SageMakerEndpoint(endpoint, poll_s=0.01).invoke(b"audio")
    assert (response.status, response.body.decode()) == (503, failure)


def test_async_timeout_names_where_the_answer_will_appear(aws: str) -> None:
    endpoint = _deploy(asynchronous=True)
    runtime = boto3.client("sagemaker-runtime")
    with Stubber(runtime) as stub:
        stub.add_response(
            "invoke_endpoint_async",
            {
                "InferenceId": "i",
                "OutputLocation": "s3://staging/out/never.out",
                "FailureLocation": "s3://staging/fail/never.out",
            },
        )
        remote = SageMakerEndpoint(
            endpoint, runtime=runtime, timeout_s=0, poll_s=3, sleep=lambda _: None
        )
        with pytest.raises(AwsError, match=r"no answer .* s3://staging/out/never\.out"):
            remote.invoke(b"audio")
    # The request may still be queued on the endpoint: its input stays for SageMaker to read.
    assert len(_staged_inputs()) == 1


def test_realtime_predict_returns_the_typed_result(jfk: Path, answers: HandlerAnswers) -> None:
    # moto's invoke_endpoint decodes the request body as UTF-8 and answers 500 to audio bytes,
    # so the real-time call is stubbed: it checks what is sent and returns the handler's answer.
    runtime = _offline_runtime()
    with Stubber(runtime) as stub:
        stub.add_response(
            "invoke_endpoint",
            {"Body": _streaming(answers.transcription), "ContentType": "application/json"},
            {
                "EndpointName": "e",
                "Body": jfk.read_bytes(),
                "ContentType": "application/octet-stream",
                "Accept": "application/json",
                "CustomAttributes": encode_params(PARAMS),
            },
        )
        remote = SageMakerEndpoint("e", runtime=runtime, asynchronous=False)
        segments, info = predict(remote, jfk, PARAMS)
        stub.assert_no_pending_responses()
    assert JFK_TEXT in _text(segments)
    assert info.language == "en"


def test_realtime_invoke_through_moto(aws: str) -> None:
    endpoint = _deploy(asynchronous=False)
    queue_results(aws, "endpoint-results", [{"Body": "{}", "ContentType": "application/json"}])
    remote = SageMakerEndpoint(endpoint)
    assert not remote.asynchronous  # found from the endpoint config, not told
    response = remote.invoke(b"text body moto can decode", params=PARAMS)
    assert (response.status, response.body, response.content_type) == (
        200,
        b"{}",
        "application/json",
    )


def test_realtime_refuses_more_than_6_mb_before_sending(aws: str) -> None:
    endpoint = _deploy(asynchronous=False)
    runtime = boto3.client("sagemaker-runtime")
    remote = SageMakerEndpoint(endpoint, runtime=runtime)
    too_large = pytest.raises(RequestTooLargeError, match=r"6\.3 MB.*at most 6 MB.*async")
    # Stubbed with no responses queued: any call to AWS would fail the test.
    with Stubber(runtime), too_large:
        remote.invoke(b"\0" * (MAX_REALTIME_BODY_BYTES + 1))
    # Exactly at the limit goes through.
    queue_results(aws, "endpoint-results", [{"Body": "{}", "ContentType": "application/json"}])
    assert remote.invoke(b"a" * MAX_REALTIME_BODY_BYTES).status == 200


def test_params_over_1024_characters_are_refused_before_anything_is_staged(aws: str) -> None:
    endpoint = _deploy(asynchronous=True)
    prompt = os.urandom(900).hex()  # incompressible: brotli cannot bring it under the limit
    with pytest.raises(ParamsTooLongError, match="at most 1024"):
        SageMakerEndpoint(endpoint).invoke(b"audio", params={"single": {"initial_prompt": prompt}})
    assert _staged_inputs() == []


def test_params_travel_as_custom_attributes() -> None:
    runtime = _offline_runtime()
    with Stubber(runtime) as stub:
        stub.add_response(
            "invoke_endpoint",
            {"Body": _streaming(b"{}"), "ContentType": "application/json"},
            {
                "EndpointName": "e",
                "Body": b"audio",
                "ContentType": "audio/flac",
                "Accept": "application/json",
                "CustomAttributes": encode_params(PARAMS),
            },
        )
        remote = SageMakerEndpoint("e", runtime=runtime, asynchronous=False)
        remote.invoke(b"audio", content_type="audio/flac", params=PARAMS)
        stub.assert_no_pending_responses()
    assert decode_params(encode_params(PARAMS)) == PARAMS


def test_model_error_becomes_endpoint_error_with_the_container_status(
    answers: HandlerAnswers,
) -> None:
    refusal = ErrorBody.model_validate_json(answers.wrong_content_type)
    assert refusal.status == 415
    runtime = _offline_runtime()
    with Stubber(runtime) as stub:
        stub.add_client_error(
            "invoke_endpoint",
            service_error_code="ModelError",
            service_message="Received client error (415) from primary",
            http_status_code=424,
            modeled_fields={
                "OriginalStatusCode": 415,
                "OriginalMessage": answers.wrong_content_type.decode(),
                "LogStreamArn": "arn:aws:logs:us-east-1:123456789012:log-group:x",
            },
        )
        response = SageMakerEndpoint("e", runtime=runtime, asynchronous=False).invoke(
            b"{}", content_type="application/json"
        )
    assert response.status == 415
    assert ErrorBody.model_validate_json(response.body) == refusal


def test_other_4xx_answers_raise_endpoint_error() -> None:
    runtime = _offline_runtime()
    with Stubber(runtime) as stub:
        stub.add_client_error(
            "invoke_endpoint",
            service_error_code="ValidationError",
            service_message="Endpoint e of account 123456789012 not found.",
            http_status_code=400,
        )
        with pytest.raises(EndpointError, match=r"400.*ValidationError: Endpoint e .* not found"):
            SageMakerEndpoint("e", runtime=runtime, asynchronous=False).invoke(b"audio")


def test_an_endpoint_that_is_not_in_service_is_named(aws: str) -> None:
    with pytest.raises(AwsError, match="could not describe endpoint absent"):
        predict_aws("absent", b"audio")


def _offline_runtime() -> Any:
    return boto3.client(
        "sagemaker-runtime", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x"
    )


def _streaming(data: bytes) -> StreamingBody:
    return StreamingBody(io.BytesIO(data), len(data))
