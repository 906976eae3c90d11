"""Accuracy measures: normalised WER/CER, repetition and hallucination, first differences."""

from transcription_benchmarks.quality.metrics import Quality, assess, error_rates

__all__ = ["Quality", "assess", "error_rates"]
