"""Measurement, kept apart from the models it measures: timing, memory, environment."""
