"""Child processes that end with the process that started them, however it ends."""

from __future__ import annotations

import os
import signal
import sys

PR_SET_PDEATHSIG = 1  # linux/prctl.h


def die_with_parent(parent_pid: int | None, signum: int = signal.SIGKILL) -> None:
    """Linux: ask the kernel to send `signum` to this process when its parent dies (kill -9 of
    the parent included, which no cleanup code of the parent survives). Called in the child
    rather than in a preexec_fn, which is unsafe in a parent with threads; `parent_pid`, passed
    by the parent, closes the race of a parent that died before the request was made (this
    process then exits at once). Elsewhere, or without a parent pid, nothing is asked."""
    if not parent_pid or not sys.platform.startswith("linux"):
        return
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signum, 0, 0, 0)
    if os.getppid() != parent_pid:  # the parent is already gone
        os._exit(1)
