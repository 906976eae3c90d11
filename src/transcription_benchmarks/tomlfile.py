"""Reading the project's TOML files (matrices, thresholds, prices, the compat tables).

One place turns a missing file, bad syntax and a schema mismatch into one line naming the
file, so every TOML the user hands in fails the same way.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from transcription_benchmarks.errors import BenchError, describe_validation_error

Model = TypeVar("Model", bound=BaseModel)


def read_toml(path: str | Path, what: str, error: type[BenchError]) -> dict[str, Any]:
    """The document at `path`; `error` ("cannot read <what> <path>: ...", "<what> <path> is
    not valid TOML: ...") when it cannot be read or parsed."""
    path = Path(path)
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise error(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{what} {path} is not valid TOML: {exc}") from None


def load_toml(
    model: type[Model], path: str | Path, what: str, error: type[BenchError], hint: str = ""
) -> Model:
    """`read_toml` validated as `model`: every problem in one line, then `hint` (the layout)."""
    data = read_toml(path, what, error)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        tail = f" ({hint})" if hint else ""
        raise error(f"{what} {path}: {describe_validation_error(exc)}{tail}") from None
