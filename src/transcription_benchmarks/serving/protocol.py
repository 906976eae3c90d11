"""What crosses the wire between a client and an endpoint; client and server both import it.

Parameters travel in SageMaker's custom-attributes header, the one request header SageMaker
forwards to the container (at most 1024 ASCII characters), as base64(brotli(json)). Brotli
because JSON option dicts compress 3-5x and the header is small; base64 because the header must
be ASCII. The server caps the decompressed size so a tiny header cannot inflate into gigabytes.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from typing import Any

from transcription_benchmarks.errors import BenchError

CUSTOM_ATTRIBUTES_HEADER = "X-Amzn-SageMaker-Custom-Attributes"
MAX_CUSTOM_ATTRIBUTES_CHARS = 1024
"""SageMaker's limit on the header value."""
MAX_DECODED_PARAMS_BYTES = 64 * 1024
"""The server's cap on the decompressed JSON: far above any real option set."""
MAX_REALTIME_BODY_BYTES = 6 * 1024 * 1024
"""SageMaker real-time invocations carry at most 6 MB; larger audio needs async inference."""


class ParamsError(BenchError, ValueError):
    """Parameters that cannot be encoded or decoded, or that the endpoint rejects."""


class ParamsTooLongError(ParamsError):
    """The encoded parameters exceed the custom-attributes header's 1024 characters."""


class EndpointError(BenchError):
    """An endpoint answered with an error status; carries the status and the server's message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"endpoint answered {status}: {message}")
        self.status = status
        self.message = message


def encode_params(params: Mapping[str, Any]) -> str:
    """Params -> header value; refuses anything SageMaker would truncate or reject."""
    try:
        raw = json.dumps(params, separators=(",", ":"), sort_keys=True).encode()
    except (TypeError, ValueError) as exc:
        raise ParamsError(f"parameters are not JSON-serialisable: {exc}") from exc
    import brotli  # the serving extra; imported here so the package imports without it

    value = base64.b64encode(brotli.compress(raw, quality=11)).decode("ascii")
    if len(value) > MAX_CUSTOM_ATTRIBUTES_CHARS:
        raise ParamsTooLongError(
            f"encoded parameters are {len(value)} characters; SageMaker's "
            f"{CUSTOM_ATTRIBUTES_HEADER} header allows at most {MAX_CUSTOM_ATTRIBUTES_CHARS}. "
            "Drop options that equal their defaults or shorten long values (initial_prompt, hotwords)."
        )
    return value


def decode_params(value: str, *, max_bytes: int = MAX_DECODED_PARAMS_BYTES) -> dict[str, Any]:
    """Header value -> params dict; every malformed input is a ParamsError naming what is wrong."""
    if len(value) > MAX_CUSTOM_ATTRIBUTES_CHARS:
        raise ParamsTooLongError(
            f"{CUSTOM_ATTRIBUTES_HEADER} is {len(value)} characters "
            f"(at most {MAX_CUSTOM_ATTRIBUTES_CHARS})"
        )
    try:
        compressed = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ParamsError(f"{CUSTOM_ATTRIBUTES_HEADER} is not base64: {exc}") from exc
    import brotli

    # Decompress incrementally so an oversized payload stops at the cap instead of filling memory.
    decompressor = brotli.Decompressor()
    try:
        raw = decompressor.process(compressed, output_buffer_limit=max_bytes + 1)
    except brotli.error as exc:
        raise ParamsError(f"{CUSTOM_ATTRIBUTES_HEADER} is not brotli-compressed JSON") from exc
    if len(raw) > max_bytes or not decompressor.is_finished():
        raise ParamsError(f"{CUSTOM_ATTRIBUTES_HEADER} decompresses to more than {max_bytes} bytes")
    try:
        params = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ParamsError(f"{CUSTOM_ATTRIBUTES_HEADER} does not hold valid JSON: {exc}") from exc
    if not isinstance(params, dict):
        raise ParamsError(
            f"{CUSTOM_ATTRIBUTES_HEADER} must hold a JSON object, not {type(params).__name__}"
        )
    return params
