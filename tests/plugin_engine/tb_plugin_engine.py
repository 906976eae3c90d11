"""A third-party engine as another package would ship it: registered through the
`transcription_benchmarks.backends` entry-point group (see the dist-info beside this file),
never named inside transcription_benchmarks. It runs faster-whisper under its own name, so the
test exercises the whole path on real weights."""

from transcription_benchmarks.backends.faster_whisper import FasterWhisperBackend


class PluginWhisperBackend(FasterWhisperBackend):
    name = "plugin-whisper"
    fingerprint_packages = ("faster-whisper", "tb-plugin-engine")


class ShadowBackend(FasterWhisperBackend):
    """Claims a built-in name: the registry keeps the built-in and warns."""

    name = "transformers"
