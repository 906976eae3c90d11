"""The NeMo engine where NeMo is not installed (the tests session's environment): found by the
registry and by a model's format, refused with the install command, and the synthetic
architectures' fixed-work arithmetic (pure Python)."""

from __future__ import annotations

import importlib.util
import math
import subprocess
import sys

import pytest

from transcription_benchmarks import BenchArgs, bench
from transcription_benchmarks.backends.registry import backend_for_format, backend_names
from transcription_benchmarks.errors import BackendNotInstalledError, ModelNotFoundError
from transcription_benchmarks.models import guess_format, resolve
from transcription_benchmarks.models.synthetic_nemo import (
    ARCHITECTURES,
    canary_tokens,
    encoder_frames,
    nemo_arch,
    tdt_tokens,
)

absent = pytest.mark.skipif(
    importlib.util.find_spec("nemo") is not None, reason="NeMo is installed here"
)
INSTALL = "pip install 'transcription-benchmarks[nemo]'"


def test_nemo_is_a_registered_engine_reached_by_its_formats():
    assert "nemo" in backend_names() and backend_for_format("nemo") == "nemo"
    for model in ("synthetic:canary-1b", "synthetic:parakeet-tdt-0.6b-v2", "nvidia/canary-1b",
                  "nvidia/parakeet-tdt-1.1b", "/models/my.nemo"):  # fmt: skip
        assert guess_format(model) == "nemo", model
    assert guess_format("synthetic:whisper-tiny") == "ctranslate2"
    assert guess_format("openai/whisper-large-v3") == "transformers"


def test_a_directory_holding_a_nemo_file_is_a_nemo_model(tmp_path):
    from transcription_benchmarks.models import detect_format

    (tmp_path / "model.nemo").write_bytes(b"")
    assert detect_format(tmp_path) == "nemo" and guess_format(str(tmp_path)) == "nemo"
    with pytest.raises(ModelNotFoundError, match="no converter to ctranslate2"):
        resolve(str(tmp_path), "ctranslate2")


def test_a_nemo_architecture_is_not_a_whisper_one():
    with pytest.raises(ModelNotFoundError, match="NeMo architecture: it runs on backend 'nemo'"):
        resolve("synthetic:canary-1b", "ctranslate2")


@absent
def test_without_nemo_bench_names_the_install_command(jfk):
    with pytest.raises(BackendNotInstalledError, match=INSTALL.replace("[", r"\[")):
        bench("synthetic:canary-1b", BenchArgs(test_file=str(jfk), device="cpu"))


@absent
def test_without_nemo_the_cli_says_so_and_fails(jfk):
    done = subprocess.run(
        [sys.executable, "-m", "transcription_benchmarks", "bench", "synthetic:parakeet-tdt-tiny",
         "-f", str(jfk), "--device", "cpu"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode != 0
    assert INSTALL in " ".join((done.stdout + done.stderr).split())


def test_published_architectures_have_their_published_shapes():
    canary = ARCHITECTURES["canary-1b"]
    assert (canary.encoder_layers, canary.decoder_layers, canary.d_model) == (24, 24, 1024)
    assert canary.languages == ("en", "de", "es", "fr") and canary.mel_bins == 128
    parakeet = ARCHITECTURES["parakeet-tdt-0.6b-v2"]
    assert (parakeet.encoder_layers, parakeet.d_model, parakeet.pred_rnn_layers) == (24, 1024, 2)
    assert parakeet.durations == (0, 1, 2, 3, 4)
    assert nemo_arch("nvidia/Parakeet-TDT-0.6b-v2") is parakeet
    assert nemo_arch("synthetic:canary-1b") is canary and nemo_arch("whisper-tiny") is None
    assert not ARCHITECTURES["canary-tiny"].published


def test_fixed_work_counts():
    # 16 kHz, 10 ms hop, centred frames: 11 s -> 1101 frames -> three stride-2 convs -> 138.
    assert encoder_frames(11 * 16000) == 138
    assert tdt_tokens(11 * 16000) == math.ceil(138 / 4) == 35
    assert tdt_tokens(11 * 16000, duration=1) == 138
    assert canary_tokens(30.0) == 64 and canary_tokens(11.0) == 24 and canary_tokens(0.1) == 1
    assert canary_tokens(3600.0) == 512 - 5  # the decoder's positions bound it


def test_studies_pick_engines_by_the_models_family():
    from transcription_benchmarks.backends.registry import installed_backends
    from transcription_benchmarks.models import PACKAGED_ID, model_family

    assert model_family("synthetic:canary-1b") == "nemo"
    assert model_family(PACKAGED_ID) == "whisper"
    assert "nemo" not in installed_backends(PACKAGED_ID)
    assert set(installed_backends("synthetic:parakeet-tdt-0.6b-v2")) <= {"nemo"}
