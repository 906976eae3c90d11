"""Cells for the matrix isolation tests (`model = "python:matrix_cells:<function>"`).

Each is called in a matrix worker process with the cell's options as keyword arguments."""

from __future__ import annotations

import os
import time
from typing import Any


def raise_error(**_: Any):
    raise ValueError("this cell always fails")


def abort(**_: Any):
    os.abort()


def sleep(**_: Any):
    time.sleep(60)


def out_of_memory(**_: Any):
    raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")


def sigkill(**_: Any):
    import signal

    os.kill(os.getpid(), signal.SIGKILL)  # what the kernel's OOM killer sends
