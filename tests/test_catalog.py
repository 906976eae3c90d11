"""The test-audio catalogue: lookup by name, checksums, unavailable files, references."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from pydantic import ValidationError
from tests.conftest import JFK_TEXT, SHARED_AUDIO

from transcription_benchmarks import BenchArgs, bench
from transcription_benchmarks.audio import catalog, probe_audio
from transcription_benchmarks.audio.catalog import (
    AUDIO_PATH_ENV,
    PROJECT_AUDIO_DIR,
    AudioEntry,
    AudioManifest,
    find_test_audio,
    get_test_audio,
    load_manifest,
    reference_for,
    search_path,
)
from transcription_benchmarks.errors import (
    AudioChecksumError,
    AudioError,
    AudioUnavailableError,
)
from transcription_benchmarks.models import PACKAGED_ID

needs_shared = pytest.mark.skipif(
    not SHARED_AUDIO.is_dir(), reason=f"shared test audio not found at {SHARED_AUDIO}"
)


def require_test_audio(name: str) -> Path:
    """The file, or a skip that says why it is missing (e.g. "... proprietary ... not shipped")."""
    try:
        return get_test_audio(name)
    except AudioUnavailableError as exc:
        pytest.skip(str(exc))


def shared_checksums() -> dict[str, str]:
    lines = (SHARED_AUDIO / "SHA256SUMS").read_text().splitlines()
    return {name: digest for digest, name in (line.split() for line in lines if line.strip())}


def test_manifest_is_valid_and_lists_the_original_names():
    manifest = load_manifest()
    assert isinstance(manifest, AudioManifest)
    assert manifest.schema_version == 1
    original = {
        "short.flac", "1min.flac", "10min.flac", "1hour.flac", "long.flac", "chinese.flac",
        "noisy.flac", "mixed.m4a", "music.flac", "chinese_song.flac", "hokkien.flac",
        "mixed2.flac", "burmese.flac", "problematic.flac",
    }  # fmt: skip
    assert original <= set(manifest.names)
    for entry in manifest.files:  # measured for every file we have, for none we lack
        assert (entry.duration_s is None) == (entry.sha256 is None), entry.name
        if entry.availability == "proprietary":
            assert entry.sha256 is None, entry.name


def test_schema_is_open_for_generated_entries(monkeypatch):
    entry = AudioEntry(
        name="gen_hello.wav", description="TTS", availability="generated", source="tts", voice="a"
    )
    assert entry.model_extra == {"voice": "a"}  # producers keep their own keys
    with pytest.raises(ValidationError, match=r"duplicate names: gen_hello\.wav"):
        AudioManifest(files=[entry, entry])
    monkeypatch.setattr(catalog, "load_manifest", lambda: AudioManifest(files=[entry]))
    with pytest.raises(AudioError, match="generated on demand") as info:
        get_test_audio("gen_hello.wav")
    assert not isinstance(info.value, AudioUnavailableError)


@needs_shared
def test_lookup_by_name_finds_the_shared_file():
    assert get_test_audio("jfk.flac") == SHARED_AUDIO / "jfk.flac"
    assert find_test_audio("jfk.flac") == SHARED_AUDIO / "jfk.flac"
    assert search_path()[0] == PROJECT_AUDIO_DIR


def test_paths_are_returned_as_is(tmp_path):
    missing = tmp_path / "nothing.flac"
    assert find_test_audio(missing) == missing
    assert find_test_audio(str(missing)) == missing
    assert find_test_audio("some/dir/x.flac") == Path("some/dir/x.flac")


@needs_shared
def test_manifest_checksums_and_durations_match_the_shared_files():
    sums = shared_checksums()
    manifest = load_manifest()
    audio = [name for name in sums if name != "references.json"]
    for name in audio:
        entry = manifest.get(name)
        assert entry is not None, f"{name} is not in the manifest"
        assert entry.availability == "public"
        assert entry.sha256 == sums[name], name
        measured = probe_audio(get_test_audio(name)).duration_s  # also verifies the checksum
        assert measured == pytest.approx(entry.duration_s, abs=0.01), name
    expected = {"jfk.flac": 11.0, "short.flac": 10.0, "1min.flac": 60.0}
    for name, seconds in expected.items():
        assert manifest.get(name).duration_s == pytest.approx(seconds, abs=0.05)


def test_proprietary_name_is_unavailable_with_the_reason():
    with pytest.raises(AudioUnavailableError, match=r"proprietary.*not shipped"):
        get_test_audio("10min.flac")
    with pytest.raises(AudioUnavailableError, match="proprietary"):
        find_test_audio("10min.flac")


def test_require_test_audio_skips_a_proprietary_file():
    with pytest.raises(pytest.skip.Exception, match="proprietary"):
        require_test_audio("1hour.flac")


def test_missing_public_file_names_its_source(monkeypatch, tmp_path):
    monkeypatch.setenv(AUDIO_PATH_ENV, str(tmp_path))
    with pytest.raises(AudioError, match=r"not found; searched .*It is public, from .*jfk\.flac"):
        get_test_audio("jfk.flac")


def test_unknown_name_lists_known_names():
    with pytest.raises(AudioError, match=r"not found; searched .*Known names: .*jfk\.flac") as info:
        get_test_audio("no-such-name.flac")
    assert not isinstance(info.value, AudioUnavailableError)
    assert AUDIO_PATH_ENV in str(info.value)


@needs_shared
def test_checksum_mismatch(monkeypatch, tmp_path):
    corrupt = tmp_path / "jfk.flac"
    shutil.copyfile(SHARED_AUDIO / "jfk.flac", corrupt)
    data = bytearray(corrupt.read_bytes())
    data[len(data) // 2] ^= 0xFF
    corrupt.write_bytes(data)
    monkeypatch.setenv(AUDIO_PATH_ENV, os.pathsep.join([str(tmp_path), str(SHARED_AUDIO)]))
    expected = load_manifest().get("jfk.flac").sha256
    with pytest.raises(AudioChecksumError, match=rf"{corrupt}.*expected {expected}, actual"):
        get_test_audio("jfk.flac")


def test_bench_on_a_proprietary_name_fails_before_loading_a_model():
    args = BenchArgs(test_file="10min.flac", device="cpu", warmup=0, repeats=1)
    with pytest.raises(AudioUnavailableError, match="proprietary"):
        bench(PACKAGED_ID, args)


def test_reference_from_the_manifest():
    ref = reference_for("jfk.flac")
    assert ref is not None
    assert ref.quality == "gold"
    assert JFK_TEXT in ref.text.lower()
    assert ref.language == "en"
    assert reference_for(SHARED_AUDIO / "jfk.flac") == ref  # by file name, wherever it lives
    stereo = reference_for("stereo_diarization.wav")
    assert stereo.text is None
    assert set(stereo.references) == {"left", "right"}
    assert reference_for("hotwords.mp3").must_contain == "ComfyUI"
    assert reference_for("multilingual.mp3").references["en"].startswith("Permission is hereby")


def test_reference_from_a_sidecar(monkeypatch, tmp_path):
    audio = tmp_path / "generated_hello.wav"
    audio.write_bytes(b"")
    assert reference_for(audio) is None
    (tmp_path / "generated_hello.txt").write_text("Hello there.\n", encoding="utf-8")
    ref = reference_for(audio)
    assert ref.text == "Hello there."
    assert ref.quality == "gold"
    monkeypatch.setenv(AUDIO_PATH_ENV, str(tmp_path))
    assert reference_for("generated_hello.wav") == ref  # a bare name found on the search path
    assert reference_for("10min.flac") is None  # catalogued, but no reference anywhere


def test_a_different_recording_with_a_catalogued_name_gets_no_catalogue_reference(tmp_path):
    from transcription_benchmarks.audio.catalog import reference_for

    impostor = tmp_path / "jfk.flac"
    impostor.write_bytes(b"not the real jfk.flac")
    assert reference_for(impostor) is None
    (tmp_path / "jfk.txt").write_text("my own transcript\n")
    assert reference_for(impostor).text == "my own transcript"
