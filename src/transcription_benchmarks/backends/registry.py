"""Which engines exist: one table of the built-in ones, plus an entry-point group through which
another installed package adds its own without editing this one (pyperf's hooks and asv's
plugins are found the same way).

An engine is a `Backend` subclass in a module of its own, named here as "module:Class" so that
nothing heavier than that module loads until the engine is asked for. A package adds one with

    [project.entry-points."transcription_benchmarks.backends"]
    my-engine = "my_package.engine:MyEngineBackend"

and `BenchArgs(backend="my-engine")`, `tbench bench --backend my-engine`, the matrix and the
studies reach it by that name.
"""

from __future__ import annotations

import importlib
import warnings
from functools import cache
from importlib.metadata import entry_points
from typing import TYPE_CHECKING

from transcription_benchmarks.errors import BenchError, InvalidOptionError

if TYPE_CHECKING:
    from transcription_benchmarks.args import BenchArgs
    from transcription_benchmarks.backends.base import Backend

ENTRY_POINT_GROUP = "transcription_benchmarks.backends"

BUILTIN: dict[str, str] = {
    "faster-whisper": "transcription_benchmarks.backends.faster_whisper:FasterWhisperBackend",
    "transformers": "transcription_benchmarks.backends.transformers:TransformersBackend",
    "openai-whisper": "transcription_benchmarks.backends.openai_whisper:OpenAIWhisperBackend",
    "whisper.cpp": "transcription_benchmarks.backends.whisper_cpp:WhisperCppBackend",
    "nemo": "transcription_benchmarks.backends.nemo:NemoBackend",
}


class EnginePluginWarning(UserWarning):
    """An entry point of the engines group was not taken (a name already taken)."""


@cache
def _table() -> dict[str, str]:
    table = dict(BUILTIN)
    for point in entry_points(group=ENTRY_POINT_GROUP):
        if point.name in table and table[point.name] != point.value:
            warnings.warn(
                f"engine {point.name!r} from {point.value} is not registered: the name is "
                f"taken by {table[point.name]}",
                EnginePluginWarning,
                stacklevel=2,
            )
            continue
        table[point.name] = point.value
    return table


def backend_names() -> tuple[str, ...]:
    """Every registered engine: the built-in ones first, then plug-ins by name."""
    table = _table()
    return tuple(BUILTIN) + tuple(sorted(set(table) - set(BUILTIN)))


def check_name(name: str) -> str:
    if name not in _table():
        raise InvalidOptionError(
            f"unknown backend {name!r}; choose one of {', '.join(backend_names())}"
        )
    return name


@cache
def backend_class(name: str) -> type[Backend]:
    """The engine's class, its module imported (not the engine's own packages)."""
    from transcription_benchmarks.backends.base import Backend

    target = _table()[check_name(name)]
    module_name, _, attribute = target.partition(":")
    try:
        found = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise BenchError(f"engine {name!r} ({target}) cannot be loaded: {exc}") from exc
    if not (isinstance(found, type) and issubclass(found, Backend)):
        raise BenchError(f"engine {name!r} ({target}) is not a Backend subclass")
    if found.name != name:
        raise BenchError(f"engine {name!r} ({target}) calls itself {found.name!r}")
    return found


def get_backend(name: str) -> Backend:
    return backend_class(name)()


def backend_for_format(model_format: str) -> str:
    """The first registered engine that reads `model_format` (the default for a model)."""
    for name in backend_names():
        if backend_class(name).model_format == model_format:
            return name
    raise InvalidOptionError(f"no registered engine reads {model_format} models")


def installed_backends(model: str | None = None) -> list[str]:
    """The engines whose packages import here; with `model`, those that run its family (a
    Whisper model on the Whisper engines, a NeMo one on NeMo)."""
    from transcription_benchmarks.models import model_family

    family = model_family(model) if model is not None else None
    found = []
    for name in backend_names():
        try:
            backend = get_backend(name)
            if family is not None and family not in backend.families:
                continue
            backend.check_installed()
        except BenchError:
            continue
        found.append(name)
    return found


def fingerprint_packages() -> tuple[str, ...]:
    """Every registered engine's packages, for the environment fingerprint."""
    packages: dict[str, None] = {}
    for name in backend_names():
        try:
            packages.update(dict.fromkeys(backend_class(name).fingerprint_packages))
        except BenchError:
            continue  # a plug-in that does not load has no packages to record
    return tuple(packages)


def ignored_options(args: BenchArgs, backend: str) -> list[str]:
    """Options the user set that `backend` does not read: those only other engines read."""
    own = backend_class(backend).reads
    others: set[str] = set()
    for name in backend_names():
        if name != backend:
            others |= backend_class(name).reads
    return sorted(args.set_options() & (others - own))
