"""What a load run sends requests to: one small interface over every kind of endpoint.

A `LoadTarget` takes audio bytes and returns an `Answer` (HTTP status, transcript or error
message), raising nothing: a request that got no answer is an Answer with status 0, so the
scenarios count it instead of losing it. Two wire protocols stand behind it:

- `SageMakerTarget`: the SageMaker-style protocol of serving.protocol (audio as the body,
  options in the custom-attributes header), over any serving.client.EndpointClient: the local
  Multi Model Server (`LocalEndpoint`) or a deployed endpoint, real-time or async
  (aws.predict.SageMakerEndpoint).
- `OpenAITarget`: any OpenAI-compatible `/v1/audio/transcriptions` server (vLLM, faster-whisper
  servers, OpenAI itself), through the official `openai` client with its retries turned off (a
  retried request would hide a failure and double-count time).

Each target also knows how to send the bad requests its protocol allows (empty, corrupt,
oversized audio, a wrong field), for `probe_bad_input`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable
from urllib.parse import urlparse

from pydantic import BaseModel, Field

from transcription_benchmarks.errors import InvalidOptionError
from transcription_benchmarks.serving.client import EndpointClient, LocalEndpoint
from transcription_benchmarks.serving.protocol import (
    MAX_REALTIME_BODY_BYTES,
    EndpointError,
    encode_params,
    error_message,
    parse_prediction,
)

TargetKind = Literal["sagemaker", "openai"]
OPENAI_UPLOAD_LIMIT_BYTES = 25 * 1024 * 1024
"""OpenAI's documented upload limit for /v1/audio/transcriptions (25 MB)."""
REQUEST_TIMEOUT_S = 120.0
CORRUPT_AUDIO = b"RIFF\x00\x00\x00\x00WAVEfmt " + b"\x17" * 2048
"""A WAV header that promises audio, then noise bytes no decoder can read."""


@dataclass(frozen=True)
class Answer:
    """One request's outcome as the client saw it."""

    status: int
    """HTTP status; 0 when no answer came (refused connection, timeout, dropped socket)."""
    text: str | None = None
    """The transcript, on success."""
    error: str | None = None
    """What went wrong, one line, on anything else."""

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300 and self.text is not None


class TargetInfo(BaseModel):
    """Which endpoint a load result measured."""

    name: str = Field(description="what tables call it, e.g. faster-whisper-server")
    kind: TargetKind
    location: str = Field(description="the URL, or the SageMaker endpoint name")
    model: str | None = Field(None, description="the model it serves, where known")
    local: bool = Field(description="served from this machine (its RSS is measured)")


@runtime_checkable
class LoadTarget(Protocol):
    info: TargetInfo

    def transcribe(self, audio: bytes, filename: str) -> Answer:
        """Send one transcription request; never raises for a failed request."""
        ...

    def bad_requests(self) -> dict[str, Callable[[], Answer]]:
        """Label -> a call that sends one malformed request of that kind."""
        ...

    def close(self) -> None: ...


def _one_line(text: str, limit: int = 300) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


class SageMakerTarget:
    """The SageMaker-style protocol over an EndpointClient (local or deployed)."""

    def __init__(
        self,
        client: EndpointClient,
        info: TargetInfo,
        params: Mapping[str, Any] | None = None,
    ) -> None:
        self.client = client
        self.info = info
        self.params = dict(params) if params else None

    def _send(self, body: bytes, **kwargs: Any) -> Answer:
        try:
            response = self.client.invoke(body, **kwargs)
        except EndpointError as exc:  # no answer at all
            return Answer(exc.status, error=_one_line(str(exc)))
        except Exception as exc:  # a client library's own failure: still a counted answer
            return Answer(0, error=_one_line(f"{type(exc).__name__}: {exc}"))
        if not response.ok:
            return Answer(response.status, error=_one_line(error_message(response.body)))
        try:
            segments, _ = parse_prediction(response.body)
        except Exception as exc:  # a 200 whose body is not a prediction is a failure too
            return Answer(response.status, error=_one_line(f"unreadable answer: {exc}"))
        return Answer(response.status, text="".join(s.text for s in segments).strip())

    def transcribe(self, audio: bytes, filename: str) -> Answer:
        return self._send(audio, params=self.params)

    def bad_requests(self) -> dict[str, Callable[[], Answer]]:
        return {
            "empty": lambda: self._send(b""),
            "corrupt": lambda: self._send(CORRUPT_AUDIO),
            "oversized": lambda: self._send(b"\0" * (MAX_REALTIME_BODY_BYTES + 1)),
            # A misspelt option (beams for beam_size), encoded as a client would send it.
            "wrong field": lambda: self._send(
                CORRUPT_AUDIO, custom_attributes=encode_params({"beams": 5})
            ),
        }

    def close(self) -> None:
        close = getattr(self.client, "close", None)
        if callable(close):
            close()


class OpenAITarget:
    """An OpenAI-compatible transcription server, through the official `openai` client.

    `model_field`: the form field naming the model. OpenAI's API reads `model`; some servers
    read another (faster-whisper-server reads `model_name`): both are sent then."""

    def __init__(
        self,
        base_url: str,
        info: TargetInfo,
        *,
        model: str = "whisper-1",
        model_field: str = "model",
        language: str | None = None,
        temperature: float | None = 0.0,
        response_format: Literal["json", "verbose_json"] = "json",
        api_key: str | None = None,
        timeout_s: float = REQUEST_TIMEOUT_S,
    ) -> None:
        try:
            import openai
        except ImportError as exc:  # the load extra
            raise InvalidOptionError(
                "an OpenAI-compatible target needs the openai client: "
                "pip install 'transcription-benchmarks[load]'"
            ) from exc
        self.base_url = base_url.rstrip("/")
        self.info = info
        self.model = model
        self.model_field = model_field
        self.language = language
        self.temperature = temperature
        self.response_format = response_format
        self.timeout_s = timeout_s
        # The key is read from the environment only, never stored in results; local servers
        # take any value.
        self._client = openai.OpenAI(
            base_url=self.base_url,
            api_key=api_key or os.environ.get("OPENAI_API_KEY") or "not-needed",
            max_retries=0,  # a retry would hide the failure the scenarios must count
            timeout=timeout_s,
        )

    def _create(self, audio: bytes, filename: str) -> Answer:
        import openai

        extra = {self.model_field: self.model} if self.model_field != "model" else None
        options: dict[str, Any] = {}
        if self.language is not None:
            options["language"] = self.language
        if self.temperature is not None:
            options["temperature"] = self.temperature
        try:
            result = self._client.audio.transcriptions.create(
                model=self.model,
                file=(filename, audio),
                response_format=self.response_format,
                extra_body=extra,
                **options,
            )
        except openai.APIStatusError as exc:
            return Answer(exc.status_code, error=_one_line(_status_message(exc)))
        except openai.APIConnectionError as exc:  # includes timeouts
            cause = exc.__cause__ or exc
            return Answer(0, error=_one_line(f"{type(exc).__name__}: {cause}"))
        except Exception as exc:
            return Answer(0, error=_one_line(f"{type(exc).__name__}: {exc}"))
        text = result if isinstance(result, str) else getattr(result, "text", None)
        if not isinstance(text, str):
            return Answer(200, error=f"unreadable answer: {result!r}"[:300])
        return Answer(200, text=text.strip())

    def transcribe(self, audio: bytes, filename: str) -> Answer:
        return self._create(audio, filename)

    def _wrong_field(self) -> Answer:
        """The audio under `audio` instead of `file` (the openai client cannot send that)."""
        import httpx

        try:
            response = httpx.post(
                f"{self.base_url}/audio/transcriptions",
                files={"audio": ("audio.wav", CORRUPT_AUDIO)},
                data={self.model_field: self.model},
                timeout=self.timeout_s,
            )
        except httpx.HTTPError as exc:
            return Answer(0, error=_one_line(f"{type(exc).__name__}: {exc}"))
        return Answer(response.status_code, error=_one_line(response.text))

    def bad_requests(self) -> dict[str, Callable[[], Answer]]:
        return {
            "empty": lambda: self._create(b"", "empty.wav"),
            "corrupt": lambda: self._create(CORRUPT_AUDIO, "corrupt.wav"),
            "oversized": lambda: self._create(
                b"\0" * (OPENAI_UPLOAD_LIMIT_BYTES + 1), "oversized.wav"
            ),
            "wrong field": self._wrong_field,
        }

    def close(self) -> None:
        self._client.close()


def _status_message(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        error = body.get("error", body.get("detail", body))
        if isinstance(error, dict) and "message" in error:
            return f"{exc.status_code}: {error['message']}"
        return f"{exc.status_code}: {error}"
    return str(exc)


def is_local_url(url: str) -> bool:
    return (urlparse(url).hostname or "") in ("127.0.0.1", "localhost", "::1")


def sagemaker_style(
    url: str,
    *,
    name: str = "SageMaker-style endpoint",
    timeout_s: float = REQUEST_TIMEOUT_S,
    params: Mapping[str, Any] | None = None,
) -> SageMakerTarget:
    """A SageMaker-style endpoint answering HTTP on `url` (the local Multi Model Server);
    `params` go with every request (the custom-attributes header)."""
    info = TargetInfo(name=name, kind="sagemaker", location=url, local=is_local_url(url))
    return SageMakerTarget(LocalEndpoint(url, timeout_s=timeout_s), info, params)


def deployed_sagemaker(
    endpoint: str, *, region: str | None = None, params: Mapping[str, Any] | None = None
) -> SageMakerTarget:
    """A deployed SageMaker endpoint (real-time or async: aws.predict asks which)."""
    from transcription_benchmarks.aws.predict import SageMakerEndpoint

    client = SageMakerEndpoint(endpoint, region=region)
    info = TargetInfo(
        name=f"SageMaker {endpoint}", kind="sagemaker", location=endpoint, local=False
    )
    return SageMakerTarget(client, info, params)


def openai_compatible(
    base_url: str, *, name: str = "OpenAI-compatible server", **options: Any
) -> OpenAITarget:
    """An OpenAI-compatible server; `base_url` ends in /v1 (added when missing)."""
    url = base_url.rstrip("/")
    if not url.endswith("/v1"):
        url += "/v1"
    info = TargetInfo(
        name=name,
        kind="openai",
        location=url,
        model=options.get("model"),
        local=is_local_url(url),
    )
    return OpenAITarget(url, info, **options)
