"""The errors `bench()` raises. Each names the problem and, where there is one, the way out."""


class BenchError(Exception):
    """Base class: anything the user can fix by changing the input or the environment."""


class AudioError(BenchError):
    """The audio file is missing, unreadable, corrupt or holds no samples."""


class ModelNotFoundError(BenchError):
    """The model id or path cannot be resolved to a model directory."""


class BackendNotInstalledError(BenchError):
    """The backend's Python packages are not installed."""


class InvalidOptionError(BenchError, ValueError):
    """An option has an invalid value, or options conflict."""


class BackendLoadError(BenchError):
    """The backend is installed but cannot run here (a CUDA library it needs does not load)."""


class AudioUnavailableError(AudioError):
    """A catalogued test file that cannot be shipped (proprietary) is not on this machine."""


class AudioChecksumError(AudioError):
    """A test file's bytes differ from the catalogue's sha256: corrupt, truncated or another file."""
