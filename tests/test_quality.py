"""Accuracy, repetition and hallucination measures: unit cases, then real tiny.en on real audio."""

from __future__ import annotations

import wave

import numpy as np
import pytest

from transcription_benchmarks import BenchArgs, bench
from transcription_benchmarks.audio import SAMPLE_RATE, decode_audio
from transcription_benchmarks.audio.silence import silent_stretches
from transcription_benchmarks.models import PACKAGED_ID
from transcription_benchmarks.quality.metrics import (
    LOOPING_COMPRESSION_RATIO,
    compression_ratio,
    error_rates,
    first_difference,
    pace,
    repetition,
    text_in_silence,
)
from transcription_benchmarks.quality.normalize import normalize, normalizer_version
from transcription_benchmarks.transcript import Segment

GREEDY = {"device": "cpu", "warmup": 0, "repeats": 1, "beam_size": 1, "temperature": 0.0}

# WER bounds for tiny.en (greedy, temperature 0), measured here on both engines alike: jfk 0 %,
# short 0 %, 1min 3.0 % (silver reference), generated 2.9 % (gold). The headroom absorbs a few
# words of drift across CPUs and library versions; a bound far above would miss regressions.
WER_BOUNDS = {
    "jfk.flac": 0.05,
    "short.flac": 0.05,
    "1min.flac": 0.08,
    "generated-1min-seed0-piper.flac": 0.06,
}


def test_normaliser_is_versioned_and_whisper_style():
    assert normalize("Mr. Smith didn't pay $20!", "en") == "mister smith did not pay $20"
    version = normalizer_version("en")
    assert version.startswith("whisper-normalizer-")
    assert "/english/rules-" in version
    assert "/basic/" in normalizer_version("de")


def test_error_rates_count_each_kind_of_error():
    rates = error_rates("the big cat sat on mat", "The cat sat on the mat.", "en")
    assert (rates.substitutions, rates.deletions, rates.insertions) == (0, 1, 1)
    assert rates.reference_words == 6
    assert rates.wer == pytest.approx(2 / 6)
    assert rates.cer == pytest.approx(8 / 22)  # "big " inserted, "the " deleted, of 22 chars
    assert rates.normalizer == normalizer_version("en")
    perfect = error_rates("And so, my fellow Americans!", "and so my fellow americans", "en")
    assert perfect.wer == 0.0
    assert perfect.cer == 0.0


def test_error_rates_need_a_reference_with_words():
    with pytest.raises(ValueError, match=r"^reference transcript is empty after normalisation$"):
        error_rates("something", " ?! ", "en")


def test_repetition_finds_loops():
    loop = " ".join(["and have fun,"] * 40)
    measured = repetition(loop)
    assert measured.looping
    assert measured.compression_ratio > LOOPING_COMPRESSION_RATIO
    assert measured.longest_run == 40
    assert measured.longest_run_ngram == "and have fun,"
    normal = repetition("Ladies and gentlemen, thank you for being here today.")
    assert not normal.looping
    assert normal.longest_run == 1
    assert repetition("the the the cat").longest_run == 3


def test_pace_flags_crammed_and_empty_segments():
    segments = [
        Segment(start=0, end=4, text="a normal sentence of eight words spoken here"),
        Segment(start=4, end=5, text="far too many words for one single second of audio"),
        Segment(start=5, end=25, text="hmm"),
    ]
    measured = pace(segments)
    assert measured.fast_segments == [1]
    assert measured.slow_segments == [2]
    assert measured.words_per_second == pytest.approx(19 / 25)


def test_silent_stretches_on_generated_audio():
    tone = 0.3 * np.sin(2 * np.pi * 220 * np.arange(3 * SAMPLE_RATE) / SAMPLE_RATE)
    gap_short = np.zeros(SAMPLE_RATE)  # 1 s: a pause, not silence
    gap_long = np.zeros(5 * SAMPLE_RATE)
    audio = np.concatenate([tone, gap_short, tone, gap_long, tone]).astype(np.float32)
    assert silent_stretches(audio, SAMPLE_RATE) == [
        (pytest.approx(7.0, abs=0.05), pytest.approx(12.0, abs=0.05))
    ]


def test_text_in_silence_counts_words_of_segments_inside_it():
    segments = [
        Segment(start=0, end=5, text="real speech here"),
        Segment(start=30, end=32, text="Thank you for watching."),
        Segment(start=8, end=12, text="half in silence"),
    ]
    found = text_in_silence(segments, [(10.0, 50.0)])
    assert found.segments == [1]
    assert found.words == 4
    assert found.silent_seconds == 40.0


def test_first_difference_in_normalised_words():
    assert first_difference("Ask not, what your country", "ask not what your country") is None
    divergence = first_difference("ask not what your country", "ask not for your country")
    assert divergence.word_index == 2
    assert (divergence.left, divergence.right) == ("what", "for")
    assert divergence.context == "ask not"
    assert first_difference("a b c", "a b").right == ""


def test_first_difference_sees_what_wer_sees_and_where():
    # English normalisation on both sides by default: spelt numbers and currency agree.
    assert first_difference("It costs twenty dollars.", "it costs $20") is None
    assert first_difference("It costs twenty dollars.", "it costs $20", "fr") is not None
    assert first_difference("Le colour.", "le colour", "fr") is None  # one rule for both sides
    shorter = first_difference("ask not", "ask not what your country")
    assert (shorter.word_index, shorter.left, shorter.right) == (2, "", "what")
    longer = first_difference("ask not what your country", "ask not")
    assert (longer.word_index, longer.left, longer.right) == (2, "what", "")
    late = first_difference(
        "and so my fellow americans ask not what", "and so my fellow americans ask not for"
    )
    assert late.word_index == 7
    assert late.context == "my fellow americans ask not"  # the five words before it


@pytest.fixture(scope="module")
def short_with_silent_tail(tmp_path_factory, short):
    """short.flac followed by 40 s of digital silence, written here as 16-bit WAV."""
    samples = np.concatenate([decode_audio(short), np.zeros(40 * SAMPLE_RATE, np.float32)])
    path = tmp_path_factory.mktemp("audio") / "short-silent-tail.wav"
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE)
        out.writeframes((samples * 32767).astype("<i2").tobytes())
    return path


@pytest.mark.slow  # 7 s of decoding; the measures' unit tests above stand in for it under mutmut
def test_hallucination_over_a_silent_tail_is_measured(short_with_silent_tail):
    # Measured here: faster-whisper's defaults (beam 5, no VAD) emit "Thank you for watching."
    # over the silent second window; VAD removes the silence and the hallucination with it.
    result = bench(
        PACKAGED_ID,
        BenchArgs(test_file=str(short_with_silent_tail), device="cpu", warmup=0, repeats=1),
    )
    silence = result.quality.silence_text
    assert silence.silent_seconds == pytest.approx(40, abs=0.1)
    assert silence.words >= 1
    assert all(result.transcript.segments[i].start >= 10 for i in silence.segments)

    with_vad = bench(
        PACKAGED_ID,
        BenchArgs(
            test_file=str(short_with_silent_tail),
            device="cpu",
            warmup=0,
            repeats=1,
            vad_filter=True,
        ),
    )
    assert with_vad.quality.silence_text.words == 0
    assert "select committee" in with_vad.transcript.text.lower()


@pytest.mark.slow  # 30 s: the loop decodes to max_new_tokens; `nox -s mutation` leaves it out
def test_transformers_loops_over_silence_and_the_measures_say_so(short_with_silent_tail):
    # Measured here: transformers' sequential long-form decoding of tiny.en fills the silent
    # tail with a repeated phrase; compression ratio and n-gram run both flag it.
    result = bench(
        PACKAGED_ID,
        BenchArgs(
            backend="transformers",
            test_file=str(short_with_silent_tail),
            device="cpu",
            warmup=0,
            repeats=1,
        ),
    )
    assert result.quality.silence_text.words > 20
    assert result.quality.repetition.looping
    assert result.quality.repetition.longest_run >= 10


@pytest.mark.slow  # 45 s for the eight: against every mutant of the metrics, an hour of mutmut
@pytest.mark.parametrize("name", sorted(WER_BOUNDS))
@pytest.mark.parametrize("backend", ["faster-whisper", "transformers"])
def test_wer_on_public_files_within_measured_bounds(name, backend):
    from tests.conftest import shared_audio

    result = bench(
        PACKAGED_ID, BenchArgs(backend=backend, test_file=str(shared_audio(name)), **GREEDY)
    )
    rates = result.quality.error_rates
    assert rates is not None, "the catalog has a reference for every public English file"
    assert rates.wer <= WER_BOUNDS[name]
    assert result.quality.reference_source.startswith("catalog: ")
    assert rates.normalizer == normalizer_version("en")
    assert f"WER: {rates.wer:.1%}" in result.get_stats()


def test_reference_file_overrides_the_catalog(jfk, tmp_path):
    reference = tmp_path / "ref.txt"
    reference.write_text("and so my fellow americans ask not what your country can do for you\n")
    result = bench(
        PACKAGED_ID, BenchArgs(test_file=str(jfk), reference_file=str(reference), **GREEDY)
    )
    assert result.quality.reference_source == str(reference)
    # The second half of the speech is missing from this reference: pure insertions.
    assert result.quality.error_rates.insertions == 8
    assert result.quality.error_rates.deletions == 0


def test_missing_reference_file_fails_before_loading(jfk, tmp_path):
    from transcription_benchmarks import InvalidOptionError

    with pytest.raises(InvalidOptionError, match="reference file not found"):
        bench(
            PACKAGED_ID,
            BenchArgs(test_file=str(jfk), reference_file=str(tmp_path / "no.txt"), **GREEDY),
        )


# --- the measures at their boundaries (fast: no model; what mutation testing holds them to) ---


def test_repetition_counts_runs_of_one_to_eight_words():
    assert (repetition("").longest_run, repetition("").longest_run_ngram) == (0, "")
    plain = repetition("ask not what your country")
    assert (plain.longest_run, plain.longest_run_ngram) == (1, "")  # nothing repeats
    assert (repetition("la la la").longest_run, repetition("la la la").longest_run_ngram) == (
        3,
        "la",
    )
    tail = repetition("and so the end the end")  # a run of two at the very end
    assert (tail.longest_run, tail.longest_run_ngram) == (2, "the end")
    eight = "one two three four five six seven eight"
    assert repetition(f"{eight} {eight}").longest_run == 2  # the longest n-gram measured
    nine = f"{eight} nine"
    assert repetition(f"{nine} {nine}").longest_run == 1  # one word past it: not a run


def test_compression_ratio_of_nothing_is_zero():
    assert compression_ratio("") == 0.0
    assert compression_ratio("la " * 200) > 2.4


def _segment(start: float, end: float, text: str) -> Segment:
    return Segment(start=start, end=end, text=text)


def test_pace_flags_by_strict_limits_and_skips_empty_or_instant_segments():
    assert pace([]).words_per_second is None
    skipped = pace([_segment(0, 0, "instant words"), _segment(0, 6, "")])
    assert (skipped.words_per_second, skipped.fast_segments, skipped.slow_segments) == (
        None,
        [],
        [],
    )
    at_fast = pace([_segment(0, 1, "one two three four five six")])  # exactly 6 words/s
    assert at_fast.fast_segments == [] and at_fast.words_per_second == 6.0
    slow = pace(
        [
            _segment(0, 4, "short"),  # 0.25 words/s but under 5 s: not judged slow
            _segment(10, 15, "five"),  # exactly 5 s at 0.2 words/s: slow
            _segment(20, 26, "one two three"),  # exactly 0.5 words/s: not slow
        ]
    )
    assert slow.slow_segments == [1]


def test_text_in_silence_needs_words_a_span_and_most_of_it_silent():
    silence = [(0.0, 10.0), (20.0, 30.0)]
    found = text_in_silence(
        [
            _segment(0, 2, ""),  # no words: nothing to flag
            _segment(3, 3, "instant"),  # no span: skipped, not divided by
            _segment(4, 5, "one second"),  # a 1-s segment wholly in silence
            _segment(12, 14, "spoken words"),  # outside both stretches
            _segment(20, 30, "a b c"),
        ],
        silence,
    )
    assert found.segments == [2, 4]
    assert found.words == 5  # 2 + 3: the flagged segments' words added up
    assert found.silent_seconds == 20.0
    edge = text_in_silence([_segment(0, 10, "on the edge")], [(2.0, 10.0)])  # 80 % inside
    assert edge.segments == [0]


def test_assess_uses_the_transcripts_language_and_only_what_was_given():
    from transcription_benchmarks.quality.metrics import assess
    from transcription_benchmarks.transcript import Transcript

    french = Transcript(
        segments=[_segment(0, 2, "le color")], language="fr", language_probability=0.9
    )
    quality = assess(french, reference="le colour", reference_source="catalog")
    assert quality.error_rates.wer == 0.5  # French: no English spelling rules on either side
    assert (quality.language, quality.language_probability) == ("fr", 0.9)
    assert quality.reference_source == "catalog"
    assert quality.silence_text is None  # no silences given
    assert assess(french, language="en", reference="le colour").error_rates.wer == 0.0
    bare = assess(french, silences=[], reference_source="catalog")
    assert bare.error_rates is None and bare.reference_source is None
    assert bare.silence_text is not None and bare.silence_text.segments == []


def test_error_rates_normalise_english_by_default_and_both_sides_alike():
    """The default language is English (its normaliser spells 'colour' as 'color'); with
    another language both sides get the basic normaliser, never one of each."""
    assert error_rates("the color is red", "the colour is red").wer == 0.0
    assert error_rates("the color is red", "the colour is red", language="de").wer == 0.25
    assert error_rates("die colour ist rot", "die colour ist rot", language="de").wer == 0.0
    german = error_rates("die farbe war rot", "die farbe ist rot", language="de")
    assert german.normalizer == normalizer_version("de") != normalizer_version("en")
    # A substitution counts once in the reference's length: hits + substitutions + deletions.
    assert (german.hits, german.substitutions, german.reference_words) == (3, 1, 4)


def test_a_repeat_that_starts_at_an_odd_word_is_found():
    found = repetition("x a b a b a b")
    assert (found.longest_run, found.longest_run_ngram) == (3, "a b")


def test_looping_is_strictly_above_the_compression_limit():
    boundary = "mat " * 12 + "cat the a no"  # 60 bytes that zlib makes 25: exactly 2.4
    if compression_ratio(boundary) != LOOPING_COMPRESSION_RATIO:
        pytest.skip("this zlib compresses the boundary text to another size")
    assert not repetition(boundary).looping
    assert repetition("mat " * 40).looping
