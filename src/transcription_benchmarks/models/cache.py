"""Build-once directories under the project cache (converted and synthetic models).

Conversions take seconds to minutes; a content key makes them run once per input, and building
into a temporary sibling that is renamed into place means an interrupted build never leaves a
half-written model behind for the next run to trust.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

CACHE_ENV = "TRANSCRIPTION_BENCHMARKS_CACHE"


def cache_root() -> Path:
    """The cache directory: $TRANSCRIPTION_BENCHMARKS_CACHE, else ~/.cache/transcription-benchmarks."""
    configured = os.environ.get(CACHE_ENV)
    root = Path(configured) if configured else Path.home() / ".cache" / "transcription-benchmarks"
    root.mkdir(parents=True, exist_ok=True)
    return root


def cached_directory(kind: str, key: str, build: Callable[[Path], None]) -> Path:
    """Return cache_root()/kind/key, calling build(tmp_dir) to create it when it does not exist."""
    target = cache_root() / kind / key
    if target.is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=target.parent))
    try:
        build(tmp)
        try:
            tmp.rename(target)
        except OSError:
            if not target.is_dir():  # lost a race to a concurrent builder: theirs is as good
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target
