"""Accuracy and stability: normalised WER/CER, repetition and hallucination measures, determinism."""

from transcription_benchmarks.quality.metrics import Quality, assess, error_rates

__all__ = ["Quality", "assess", "error_rates"]
