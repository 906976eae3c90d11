"""The CLI as users run it: a real process, real exit codes."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from tests.conftest import JFK_TEXT


def tbench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "transcription_benchmarks", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_bench_prints_transcript_and_stats_and_writes_json(jfk, tmp_path):
    out = tmp_path / "result.json"
    done = tbench(
        "bench",
        "--device",
        "cpu",
        "-f",
        str(jfk),
        "--beam-size",
        "1",
        "--temperature",
        "0",
        "--warmup",
        "0",
        "-n",
        "1",
        "--json",
        str(out),
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert lines[0].startswith("[0:00:00 -> ")
    assert JFK_TEXT in done.stdout.lower().replace(",", "")
    assert lines[-1].startswith("Speed: ") and "Systran/faster-whisper-tiny.en" in lines[-1]
    saved = json.loads(out.read_text())
    assert saved["config"]["beam_size"] == 1 and saved["config"]["temperature"] == 0.0


def test_temperature_list_and_key_value_options(jfk, tmp_path):
    out = tmp_path / "result.json"
    done = tbench(
        "bench",
        "--device",
        "cpu",
        "-f",
        str(jfk),
        "--no-text",
        "--warmup",
        "0",
        "-n",
        "1",
        "--temperature",
        "0",
        "--temperature",
        "0.4",
        "--transcribe-option",
        "best_of=2",
        "--transcribe-option",
        "initial_prompt=Kennedy",
        "--json",
        str(out),
    )
    assert done.returncode == 0, done.stderr
    assert not done.stdout.startswith("[")  # --no-text
    config = json.loads(out.read_text())["config"]
    assert config["temperature"] == [0.0, 0.4]
    assert config["best_of"] == 2 and config["initial_prompt"] == "Kennedy"


def test_bad_input_exits_non_zero_with_a_clear_message(tmp_path):
    done = tbench("bench", "-f", str(tmp_path / "missing.flac"))
    assert done.returncode == 2
    assert "error: audio file not found" in done.stderr
    assert "Traceback" not in done.stderr

    done = tbench("bench", "no-such-model", "-f", "jfk.flac")
    assert done.returncode == 2 and "unknown model 'no-such-model'" in done.stderr

    done = tbench("bench", "--beam-size", "0")
    assert done.returncode == 2 and "beam_size" in done.stderr

    done = tbench("bench", "--transcribe-option", "oops")
    assert done.returncode == 2 and "KEY=VALUE" in done.stderr


def test_ignored_option_warning_is_shown(jfk):
    done = tbench(
        "bench",
        "--device",
        "cpu",
        "-f",
        str(jfk),
        "--dtype",
        "bf16",
        "--no-text",
        "--warmup",
        "0",
        "-n",
        "1",
    )
    assert done.returncode == 0, done.stderr
    assert "warning: faster-whisper ignores option(s): dtype" in done.stderr


def test_token_ids_outside_the_vocabulary_are_an_error_not_a_crash(jfk):
    # CTranslate2 used to read these as embedding indices and die with SIGSEGV (exit 139).
    done = tbench(
        "bench",
        "-f",
        str(jfk),
        "--warmup",
        "0",
        "-n",
        "1",
        "--transcribe-option",
        "initial_prompt=[999999]",
    )
    assert done.returncode == 2, done.stderr
    assert "initial_prompt token ids [999999] are outside the vocabulary" in done.stderr


@pytest.mark.parametrize(
    ("option", "value", "named"),
    [
        ("--temperature", "nan", "temperature"),
        (
            "--transcribe-option",
            'vad_parameters={"treshold": 0.3}',
            "transcribe_options.vad_parameters.treshold",
        ),
        ("--transcribe-option", "clip_timestamps=[4.0, 1.0]", "transcribe_options.clip_timestamps"),
    ],
    ids=["nan-temperature", "vad-key", "clip-order"],
)
def test_bad_decoding_values_are_refused_by_name(jfk, option, value, named):
    done = tbench("bench", "-f", str(jfk), option, value)
    assert done.returncode == 2, done.stderr
    assert named in done.stderr


def test_unwritable_outputs_fail_before_the_model_loads(jfk, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    done = tbench("bench", "-f", str(jfk), "--json", str(blocker / "result.json"))
    assert done.returncode == 2
    assert f"--json {blocker / 'result.json'} is not writable: {blocker} is a file" in done.stderr
    assert "x real time" not in done.stdout  # nothing ran
    done = tbench("matrix", "cpu", "--out", str(tmp_path))
    assert done.returncode == 2 and "is a directory" in done.stderr
    assert not list(tmp_path.glob("*.lock"))


def test_any_option_reaches_bench_args_through_option(jfk, tmp_path):
    out = tmp_path / "result.json"
    common = ("bench", "--device", "cpu", "-f", str(jfk), "--warmup", "0", "-n", "1")
    done = tbench(
        *common, "--option", "num_workers=2", "--option", "beam_size=1", "--json", str(out)
    )
    assert done.returncode == 0, done.stderr
    args = json.loads(out.read_text())["args"]
    assert (args["num_workers"], args["beam_size"]) == (2, 1)  # num_workers has no flag

    unknown = tbench(*common, "--option", "beam_sise=1")
    assert unknown.returncode == 2
    assert "invalid option beam_sise: Extra inputs are not permitted" in unknown.stderr
    twice = tbench(*common, "--beam-size", "2", "--option", "beam_size=3")
    assert twice.returncode == 2
    assert "set beam_size by its flag or by --option, not both" in twice.stderr


def test_the_writable_check_leaves_a_link_to_a_new_file_as_it_was(tmp_path):
    from transcription_benchmarks.cli import check_writable

    link = tmp_path / "link.jsonl"
    link.symlink_to(tmp_path / "target.jsonl")
    check_writable(link, "--out")
    assert link.is_symlink() and not (tmp_path / "target.jsonl").exists()
