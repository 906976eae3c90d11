"""The one interface every endpoint client speaks, and the typed calls built on it.

The endpoint suite (tests/endpoint), predict_local and the load benchmark talk to an endpoint
only through `EndpointClient.invoke`, which returns the container's answer as it came (errors
included) and raises only when no answer came at all. `LocalEndpoint` implements it over HTTP
for the local Multi Model Server; aws.predict.SageMakerEndpoint implements it over
sagemaker-runtime, so one test suite runs against both.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel

from transcription_benchmarks.serving.protocol import (
    CUSTOM_ATTRIBUTES_HEADER,
    EndpointError,
    LanguageDetection,
    ParamsError,
    TranscriptionInfo,
    WireSegment,
    encode_params,
    error_message,
    parse_language_detection,
    parse_prediction,
    wire_params,
)

DEFAULT_LOCAL_URL = "http://127.0.0.1:8080"
INVOKE_TIMEOUT_S = 60.0
"""SageMaker ends a real-time call after 60 s; the local client waits as long."""


@dataclass(frozen=True)
class EndpointResponse:
    """The container's answer: HTTP status, body and content type, whatever the status."""

    status: int
    body: bytes
    content_type: str | None

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def json(self) -> Any:
        return json.loads(self.body)


@runtime_checkable
class EndpointClient(Protocol):
    def invoke(
        self,
        body: bytes,
        *,
        content_type: str = "application/octet-stream",
        params: Mapping[str, Any] | BaseModel | None = None,
        custom_attributes: str | None = None,
    ) -> EndpointResponse:
        """Send one request. `params` are encoded into the custom-attributes header;
        `custom_attributes` sends a raw header value instead (tests of malformed values)."""
        ...


def custom_attributes_for(
    params: Mapping[str, Any] | BaseModel | None, custom_attributes: str | None
) -> str | None:
    """The header value for a request: encoded params, a raw value, or none."""
    if params is not None and custom_attributes is not None:
        raise ParamsError("pass params or custom_attributes, not both")
    if params is not None:
        return encode_params(wire_params(params))
    return custom_attributes


class LocalEndpoint:
    """The local Multi Model Server (serving.local), or anything serving the same HTTP API."""

    def __init__(self, url: str = DEFAULT_LOCAL_URL, *, timeout_s: float = INVOKE_TIMEOUT_S):
        import httpx  # the serving extra

        self.url = url.rstrip("/")
        self._http = httpx.Client(timeout=timeout_s)

    def ping(self) -> str | None:
        """/ping's body ("Healthy" or "Unhealthy" in its status), or None when nothing answers.

        MMS answers /ping with 200 even when a worker is down; only the body tells."""
        import httpx

        try:
            response = self._http.get(f"{self.url}/ping", timeout=5.0)
        except httpx.TransportError:
            return None
        return response.text

    def healthy(self) -> bool:
        answer = self.ping()
        if answer is None:
            return False
        try:
            return json.loads(answer).get("status") == "Healthy"
        except (json.JSONDecodeError, AttributeError):
            return "Healthy" in answer and "Unhealthy" not in answer

    def invoke(
        self,
        body: bytes,
        *,
        content_type: str = "application/octet-stream",
        params: Mapping[str, Any] | BaseModel | None = None,
        custom_attributes: str | None = None,
    ) -> EndpointResponse:
        import httpx

        headers = {"Content-Type": content_type, "Accept": "application/json"}
        if (value := custom_attributes_for(params, custom_attributes)) is not None:
            headers[CUSTOM_ATTRIBUTES_HEADER] = value
        try:
            response = self._http.post(f"{self.url}/invocations", content=body, headers=headers)
        except httpx.TransportError as exc:
            raise EndpointError(0, f"no answer from {self.url}/invocations: {exc!r}") from exc
        return EndpointResponse(
            response.status_code, response.content, response.headers.get("content-type")
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> LocalEndpoint:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def _audio_bytes(audio: bytes | str | Path) -> bytes:
    if isinstance(audio, bytes):
        return audio
    from transcription_benchmarks.audio import find_test_audio

    return find_test_audio(audio).read_bytes()


def predict(
    client: EndpointClient,
    audio: bytes | str | Path,
    params: Mapping[str, Any] | BaseModel | None = None,
) -> tuple[list[WireSegment], TranscriptionInfo]:
    """Transcribe audio (bytes, a path or a test-audio name); an error answer raises
    EndpointError with the server's status and message."""
    response = client.invoke(_audio_bytes(audio), params=params)
    if not response.ok:
        raise EndpointError(response.status, error_message(response.body))
    return parse_prediction(response.body)


def detect_language(
    client: EndpointClient, audio: bytes | str | Path, params: Mapping[str, Any] | None = None
) -> LanguageDetection:
    """task=detect_language on a faster-whisper endpoint."""
    response = client.invoke(
        _audio_bytes(audio), params={**(params or {}), "task": "detect_language"}
    )
    if not response.ok:
        raise EndpointError(response.status, error_message(response.body))
    return parse_language_detection(response.body)
