"""bench() end to end on the real tiny.en and real speech, both backends."""

from __future__ import annotations

import json
import re

import pytest
from tests.conftest import JFK_TEXT

from transcription_benchmarks import BenchArgs, BenchResult, bench
from transcription_benchmarks.models import PACKAGED_ID

GREEDY = {"device": "cpu", "warmup": 0, "repeats": 1, "beam_size": 1, "temperature": 0.0}
TIMESTAMPED_LINE = re.compile(r"^\[\d+:\d\d:\d\d -> \d+:\d\d:\d\d\]  \S")


def words(text: str) -> list[str]:
    return re.sub(r"[^a-z' ]", " ", text.lower()).split()


@pytest.fixture(scope="module")
def fw_jfk(jfk) -> BenchResult:
    return bench(
        PACKAGED_ID,
        BenchArgs(
            test_file=str(jfk),
            warmup=1,
            repeats=2,
            **{k: v for k, v in GREEDY.items() if k not in ("warmup", "repeats")},
        ),
    )


@pytest.fixture(scope="module")
def hf_jfk(jfk) -> BenchResult:
    return bench(PACKAGED_ID, BenchArgs(backend="transformers", test_file=str(jfk), **GREEDY))


def test_faster_whisper_transcribes_packaged_tiny_en(fw_jfk: BenchResult):
    assert fw_jfk.backend == "faster-whisper"
    assert fw_jfk.model.source == "packaged"
    assert fw_jfk.model.format == "ctranslate2"
    assert JFK_TEXT in " ".join(words(fw_jfk.get_text(with_timestamps=False)))
    assert fw_jfk.transcript.language == "en"
    assert fw_jfk.audio_duration_s == pytest.approx(11.0, abs=0.05)


def test_timing_protocol(fw_jfk: BenchResult):
    assert len(fw_jfk.timing.warmup_s) == 1
    assert len(fw_jfk.timing.runs_s) == 2
    assert fw_jfk.timing.min <= fw_jfk.timing.median <= fw_jfk.timing.max
    assert fw_jfk.speed == pytest.approx(fw_jfk.audio_duration_s / fw_jfk.timing.median)
    assert fw_jfk.load_time_s > 0


def test_cpu_memory_fields(fw_jfk: BenchResult):
    memory = fw_jfk.memory
    assert memory.peak_gpu_mb is None and memory.gpu_method is None  # null, not zero
    assert memory.torch_max_allocated_mb is None
    # The model (75 MB of float16 weights, float32 on CPU) had to live somewhere.
    assert memory.peak_rss_mb > memory.baseline_rss_mb + 50


def test_get_text_timestamp_format(fw_jfk: BenchResult):
    lines = fw_jfk.get_text().splitlines()
    assert lines and all(TIMESTAMPED_LINE.match(line) for line in lines)
    assert lines[0].startswith("[0:00:00 -> ")
    assert fw_jfk.get_text(with_timestamps=False) == fw_jfk.transcript.text


def test_get_stats_is_one_line(fw_jfk: BenchResult):
    stats = fw_jfk.get_stats()
    assert "\n" not in stats
    assert re.search(r"Speed: \d+\.\dx", stats)
    for part in ("Peak VRAM: n/a", PACKAGED_ID, "jfk.flac", "faster-whisper on cpu", "beam_size=1"):
        assert part in stats


def test_json_round_trip(fw_jfk: BenchResult, tmp_path):
    path = fw_jfk.save(tmp_path / "result.json")
    loaded = BenchResult.from_json(path.read_text())
    assert loaded == fw_jfk
    assert loaded.get_text() == fw_jfk.get_text()
    data = json.loads(path.read_text())
    assert data["schema_version"] == 2
    assert set(data["timing"]) == {"runs_s", "warmup_s", "runs_j"}  # statistics derived
    assert data["args"]["beam_size"] == 1


def test_result_records_full_effective_config(fw_jfk: BenchResult):
    config = fw_jfk.config
    assert config["temperature"] == 0.0
    assert config["pipeline"] == "WhisperModel"
    assert config["compute_type"] == "float32"  # float16 weights computed in float32 on CPU
    assert config["requested_compute_type"] == "default"
    assert config["condition_on_previous_text"] is True  # a default, recorded


def test_default_temperature_is_recorded_as_the_fallback_list(short):
    result = bench(PACKAGED_ID, BenchArgs(test_file=str(short), device="cpu", warmup=0, repeats=1))
    assert result.config["temperature"] == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert result.get_text().startswith("[0:00:00 -> 0:00:0")
    assert "Ladies and gentlemen" in result.get_text()


def test_environment_fingerprint(fw_jfk: BenchResult):
    env = fw_jfk.environment
    assert env.python.count(".") == 2
    assert env.packages["ctranslate2"] and env.packages["faster-whisper"]
    assert env.gpu_name is None and env.gpu_count == 0
    assert env.cpu


def test_transformers_transcribes_converted_tiny_en(hf_jfk: BenchResult):
    assert hf_jfk.backend == "transformers"
    assert hf_jfk.model.converted_from == "ctranslate2"
    assert hf_jfk.config["dtype"] == "fp32"
    assert JFK_TEXT in " ".join(words(hf_jfk.get_text(with_timestamps=False)))
    assert all(TIMESTAMPED_LINE.match(line) for line in hf_jfk.get_text().splitlines())


def test_both_engines_give_the_same_text_greedy_at_temperature_0(fw_jfk, hf_jfk):
    assert words(fw_jfk.transcript.text) == words(hf_jfk.transcript.text)


def test_batched_pipeline(short):
    result = bench(
        PACKAGED_ID,
        BenchArgs(test_file=str(short), batch_size=4, **GREEDY),
    )
    assert result.config["pipeline"] == "BatchedInferencePipeline"
    assert result.config["batch_size"] == 4
    assert result.config["vad_filter"] is True  # the batched pipeline's default, recorded
    assert "ladies and gentlemen" in " ".join(words(result.transcript.text))


def test_batched_without_vad_uses_fixed_windows(jfk):
    result = bench(
        PACKAGED_ID,
        BenchArgs(test_file=str(jfk), batch_size=2, vad_filter=False, **GREEDY),
    )
    assert JFK_TEXT in " ".join(words(result.transcript.text))


def test_transcribe_options_reach_faster_whisper(jfk):
    result = bench(
        PACKAGED_ID,
        BenchArgs(
            test_file=str(jfk),
            without_timestamps=True,
            transcribe_options={"initial_prompt": "JFK inaugural address.", "max_new_tokens": 5},
            **GREEDY,
        ),
    )
    assert result.config["initial_prompt"] == "JFK inaugural address."
    # max_new_tokens=5 cuts the 11 s window short: far fewer words than the full sentence.
    assert 0 < len(words(result.transcript.text)) < 10


def test_transformers_batched_chunking(short):
    result = bench(
        PACKAGED_ID,
        BenchArgs(backend="transformers", test_file=str(short), batch_size=2, **GREEDY),
    )
    assert result.config["chunk_length_s"] == 30
    assert result.config["batch_size"] == 2
    assert any("chunk_length_s=30" in w for w in result.warnings)
    assert "ladies and gentlemen" in " ".join(words(result.transcript.text))


def test_progress_callback_reports_each_run(jfk):
    seen: list[tuple[int, int, float, float]] = []
    bench(
        PACKAGED_ID,
        BenchArgs(test_file=str(jfk), device="cpu", warmup=1, repeats=2, beam_size=1),
        progress=lambda *event: seen.append(event),
    )
    assert {event[0] for event in seen} == {0, 1, 2}
    assert all(event[1] == 3 and 0 < event[2] <= event[3] + 0.5 for event in seen)


def test_transformers_segment_times_are_the_models_own_timestamps(short):
    """Greedy: the segments end where the model's timestamp tokens say, as faster-whisper's do
    on the same weights. Default: transformers 5's ASR pipeline decodes with 5 beams when no
    beam size is given, and the result records that, not 1."""
    greedy = bench(PACKAGED_ID, BenchArgs(backend="transformers", test_file=str(short), **GREEDY))
    reference = bench(PACKAGED_ID, BenchArgs(test_file=str(short), **GREEDY))
    ours = [(s.start, s.end) for s in greedy.transcript.segments]
    theirs = [(s.start, s.end) for s in reference.transcript.segments]
    assert len(ours) == len(theirs) == 2
    for (start, end), (start_ref, end_ref) in zip(ours, theirs, strict=True):
        assert start == pytest.approx(start_ref, abs=0.1)
        assert end == pytest.approx(end_ref, abs=0.1)

    import transformers

    default = bench(
        PACKAGED_ID,
        BenchArgs(backend="transformers", test_file=str(short), device="cpu", warmup=0, repeats=1),
    )
    pipeline_beams = 5 if int(transformers.__version__.split(".")[0]) >= 5 else 1
    assert default.config["beam_size"] == pipeline_beams
    explicit = bench(
        PACKAGED_ID,
        BenchArgs(
            backend="transformers",
            test_file=str(short),
            device="cpu",
            warmup=0,
            repeats=1,
            beam_size=pipeline_beams,
        ),
    )
    assert [(s.start, s.end) for s in default.transcript.segments] == [
        (s.start, s.end) for s in explicit.transcript.segments
    ]
