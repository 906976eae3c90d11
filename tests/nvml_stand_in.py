"""A stand-in for pynvml: there is no NVIDIA driver on this machine or in CI. It answers the
calls measure/gpus.py makes with a recorded machine (by default two H200s behind driver
580.65, CUDA 13.0); put it in sys.modules["pynvml"] with monkeypatch."""

from __future__ import annotations


class StandInNvml:
    def __init__(
        self,
        driver: str = "580.65",
        cuda: int = 13000,
        capabilities: tuple[tuple[int, int], ...] = ((9, 0), (9, 0)),
        name: bytes = b"NVIDIA H200",
        fail_init: bool = False,
    ) -> None:
        self.driver, self.cuda, self.capabilities, self.name = driver, cuda, capabilities, name
        self.fail_init = fail_init
        self.shut_down = False

    def nvmlInit(self) -> None:  # noqa: N802 - pynvml's names
        if self.fail_init:
            raise OSError("libnvidia-ml.so.1: cannot open shared object file")

    def nvmlDeviceGetCount(self) -> int:  # noqa: N802
        return len(self.capabilities)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:  # noqa: N802
        return index

    def nvmlDeviceGetName(self, handle: int) -> bytes:  # noqa: N802
        return self.name

    def nvmlDeviceGetCudaComputeCapability(self, handle: int) -> tuple[int, int]:  # noqa: N802
        return self.capabilities[handle]

    def nvmlSystemGetDriverVersion(self) -> str:  # noqa: N802
        return self.driver

    def nvmlSystemGetCudaDriverVersion(self) -> int:  # noqa: N802
        return self.cuda

    def nvmlShutdown(self) -> None:  # noqa: N802
        self.shut_down = True
