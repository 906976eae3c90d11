"""Where a recording is silent: what text-in-silence (hallucination) is measured against."""

from __future__ import annotations

import numpy as np

SILENCE_FRAME_S = 0.03
SILENCE_DBFS = -50.0  # below the room noise in the public recordings' pauses (-51..-58 dBFS)
SILENCE_MIN_S = 2.0  # shorter gaps are pauses between words and sentences


def silent_stretches(samples: np.ndarray, sample_rate: int) -> list[tuple[float, float]]:
    """(start, end) seconds of stretches at least SILENCE_MIN_S long whose 30 ms frames all stay
    below SILENCE_DBFS."""
    frame = int(SILENCE_FRAME_S * sample_rate)
    count = len(samples) // frame
    if count == 0:
        return []
    rms = np.sqrt(np.mean(samples[: count * frame].reshape(count, frame) ** 2, axis=1))
    silent = 20 * np.log10(rms + 1e-10) < SILENCE_DBFS
    # Run boundaries: where the silent flag flips (padded so runs touching the ends close).
    edges = np.flatnonzero(np.diff(np.concatenate(([0], silent.astype(np.int8), [0]))))
    stretches = []
    for start, end in zip(edges[::2], edges[1::2], strict=True):
        if (end - start) * SILENCE_FRAME_S >= SILENCE_MIN_S:
            stretches.append((round(start * SILENCE_FRAME_S, 3), round(end * SILENCE_FRAME_S, 3)))
    return stretches
