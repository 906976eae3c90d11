"""Accuracy and the symptoms of bad decoding, for one transcript.

- WER / CER with jiwer, after the versioned normaliser, with substitution, deletion and
  insertion counts (a high WER made of deletions is a model skipping audio; of insertions, a
  model inventing text).
- Repetition: the zlib compression ratio Whisper itself uses to reject looping output (above
  2.4 it re-decodes), and the longest run of one repeated n-gram.
- Pace: words per second per segment; real speech stays under about 5 w/s, so a segment far
  above it crams in text the audio does not hold, and a long segment far below it is mostly
  silence or music labelled with a few words.
- Text in silence: words emitted in segments that lie in silent stretches of the audio, the
  classic hallucination ("Thank you." over a silent tail).
"""

from __future__ import annotations

import zlib
from typing import Any

from pydantic import BaseModel, Field

from transcription_benchmarks.quality.normalize import normalize, normalizer_version
from transcription_benchmarks.transcript import Segment, Transcript

# Whisper's own threshold for "this output is looping" (compression_ratio_threshold).
LOOPING_COMPRESSION_RATIO = 2.4
FAST_WORDS_PER_SECOND = 6.0
SLOW_WORDS_PER_SECOND = 0.5
SLOW_MIN_SEGMENT_S = 5.0
SEGMENT_IN_SILENCE = 0.8  # share of a segment's span inside silence that makes its text suspect
MAX_NGRAM = 8


class ErrorRates(BaseModel):
    wer: float
    cer: float
    substitutions: int
    deletions: int
    insertions: int
    hits: int
    reference_words: int
    normalizer: str = Field(description="normaliser name, library version and rules version")


class CorpusErrorRates(ErrorRates):
    """Error rates over many utterances: errors summed over all of them, divided by all their
    reference words (or characters), not an average of per-utterance rates."""

    utterances: int
    char_errors: int
    reference_chars: int
    kaldialign_wer: float | None = Field(
        None, description="the same word errors counted by kaldialign, as a cross-check"
    )


class Repetition(BaseModel):
    compression_ratio: float = Field(description="zlib ratio of the text, as Whisper computes it")
    looping: bool = Field(description=f"compression ratio above {LOOPING_COMPRESSION_RATIO}")
    longest_run: int = Field(description="consecutive repeats of the most repeated n-gram")
    longest_run_ngram: str = ""


class Pace(BaseModel):
    words_per_second: float | None = Field(description="whole transcript over speech segments")
    fast_segments: list[int] = Field(description=f"indices above {FAST_WORDS_PER_SECOND} w/s")
    slow_segments: list[int] = Field(
        description=f"indices of segments >= {SLOW_MIN_SEGMENT_S} s below {SLOW_WORDS_PER_SECOND} w/s"
    )


class SilenceText(BaseModel):
    silent_seconds: float = Field(description="seconds of audio in silent stretches")
    segments: list[int] = Field(description="indices of segments lying in silence with text")
    words: int = Field(description="words emitted in those segments")


class Quality(BaseModel):
    """What the result says about accuracy; `error_rates` only where a reference exists."""

    error_rates: ErrorRates | None = None
    reference_source: str | None = None
    repetition: Repetition
    pace: Pace
    silence_text: SilenceText | None = None
    language: str | None = None
    language_probability: float | None = None


def error_rates(hypothesis: str, reference: str, language: str | None = "en") -> ErrorRates:
    import jiwer

    ref, hyp = normalize(reference, language), normalize(hypothesis, language)
    if not ref.split():
        raise ValueError("reference transcript is empty after normalisation")
    return ErrorRates(**_counts(jiwer.process_words(ref, hyp), language), cer=_cer(ref, hyp))


def _counts(words: Any, language: str | None) -> dict[str, Any]:
    """ErrorRates' word fields from jiwer's word alignment (of one pair or of lists)."""
    return {
        "wer": words.wer,
        "substitutions": words.substitutions,
        "deletions": words.deletions,
        "insertions": words.insertions,
        "hits": words.hits,
        "reference_words": words.hits + words.substitutions + words.deletions,
        "normalizer": normalizer_version(language),
    }


def _cer(ref: str | list[str], hyp: str | list[str]) -> float:
    import jiwer

    return jiwer.process_characters(ref, hyp).cer


def corpus_error_rates(
    hypotheses: list[str], references: list[str], language: str | None = "en"
) -> CorpusErrorRates:
    """WER and CER of a dataset the way the Open ASR Leaderboard computes them: every text
    normalised, then the edit operations of all utterances summed (jiwer over the lists), with
    kaldialign (the leaderboard's aligner) counting the word errors again as a cross-check."""
    import jiwer

    refs = [normalize(r, language) for r in references]
    hyps = [normalize(h, language) for h in hypotheses]
    if not refs or any(not r.split() for r in refs):
        raise ValueError("a reference transcript is empty after normalisation")
    counts = _counts(jiwer.process_words(refs, hyps), language)
    chars = jiwer.process_characters(refs, hyps)
    return CorpusErrorRates(
        **counts,
        cer=chars.cer,
        utterances=len(refs),
        char_errors=chars.substitutions + chars.deletions + chars.insertions,
        reference_chars=chars.hits + chars.substitutions + chars.deletions,
        kaldialign_wer=_kaldialign_wer(refs, hyps, counts["reference_words"]),
    )


def _kaldialign_wer(refs: list[str], hyps: list[str], reference_words: int) -> float | None:
    try:
        import kaldialign
    except ImportError:
        return None
    errors = sum(
        kaldialign.edit_distance(r.split(), h.split())["total"]
        for r, h in zip(refs, hyps, strict=True)
    )
    return errors / reference_words


class Divergence(BaseModel):
    """Where two transcripts part ways, in normalised words."""

    word_index: int
    left: str = Field(description="the first differing word of the first text ('' if it ended)")
    right: str = Field(description="the first differing word of the second text ('' if it ended)")
    context: str = Field(description="the words just before the divergence")


def first_difference(
    left: str, right: str, language: str | None = "en", *, normalized: bool = True
) -> Divergence | None:
    """None when both have the same words: normalised ones (what WER sees), or with
    normalized=False the raw ones, punctuation and case included (what determinism sees)."""
    if normalized:
        left, right = normalize(left, language), normalize(right, language)
    a, b = left.split(), right.split()
    for index in range(max(len(a), len(b))):
        x = a[index] if index < len(a) else ""
        y = b[index] if index < len(b) else ""
        if x != y:
            return Divergence(
                word_index=index, left=x, right=y, context=" ".join(a[max(0, index - 5) : index])
            )
    return None


class Parity(BaseModel):
    """How far a second transcript of the same audio is from a first: what engines on the same
    weights, or batched and sequential decoding, should agree on."""

    agreement: float = Field(description="1 - WER of the second's words against the first's")
    divergence: Divergence | None = Field(description="the first differing normalised word")
    segments: tuple[int, int] = Field(description="segment counts, first and second")
    max_start_diff_s: float | None = Field(
        description="largest start-time difference between segments of the same index"
    )
    max_end_diff_s: float | None = None

    @property
    def same_words(self) -> bool:
        return self.divergence is None


def parity(first: Transcript, second: Transcript, language: str | None = "en") -> Parity:
    """Words compared normalised (what WER sees); boundaries by segment index, over the
    segments both have (a differing count is reported beside them)."""
    import jiwer

    ref, hyp = normalize(first.text, language), normalize(second.text, language)
    agreement = 1.0 - jiwer.wer(ref, hyp) if ref.split() else float(not hyp.split())
    pairs = list(zip(first.segments, second.segments, strict=False))
    return Parity(
        agreement=max(0.0, agreement),
        divergence=first_difference(first.text, second.text, language),
        segments=(len(first.segments), len(second.segments)),
        max_start_diff_s=max((abs(a.start - b.start) for a, b in pairs), default=None),
        max_end_diff_s=max((abs(a.end - b.end) for a, b in pairs), default=None),
    )


def compression_ratio(text: str) -> float:
    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data)) if data else 0.0


def repetition(text: str) -> Repetition:
    words = text.lower().split()
    best_run, best_ngram = (1 if words else 0), ""
    # Hand-written: no maintained library measures n-gram loops; O(words x MAX_NGRAM).
    for n in range(1, MAX_NGRAM + 1):
        start = 0
        while start + 2 * n <= len(words):
            run = 1
            while words[start + run * n : start + (run + 1) * n] == words[start : start + n]:
                run += 1
            if run > best_run:
                best_run, best_ngram = run, " ".join(words[start : start + n])
            start += max(1, (run - 1) * n)
    ratio = compression_ratio(text)
    return Repetition(
        compression_ratio=ratio,
        looping=ratio > LOOPING_COMPRESSION_RATIO,
        longest_run=best_run,
        longest_run_ngram=best_ngram,
    )


def pace(segments: list[Segment]) -> Pace:
    fast, slow, words, seconds = [], [], 0, 0.0
    for index, segment in enumerate(segments):
        count = len(segment.text.split())
        span = max(segment.end - segment.start, 0.0)
        if count and span > 0:
            words, seconds = words + count, seconds + span
            if count / span > FAST_WORDS_PER_SECOND:
                fast.append(index)
            elif span >= SLOW_MIN_SEGMENT_S and count / span < SLOW_WORDS_PER_SECOND:
                slow.append(index)
    return Pace(
        words_per_second=words / seconds if seconds else None,
        fast_segments=fast,
        slow_segments=slow,
    )


def text_in_silence(segments: list[Segment], stretches: list[tuple[float, float]]) -> SilenceText:
    flagged, words = [], 0
    for index, segment in enumerate(segments):
        span = segment.end - segment.start
        count = len(segment.text.split())
        if not count or span <= 0:
            continue
        inside = sum(max(0.0, min(segment.end, e) - max(segment.start, s)) for s, e in stretches)
        if inside / span >= SEGMENT_IN_SILENCE:
            flagged.append(index)
            words += count
    return SilenceText(
        silent_seconds=sum(e - s for s, e in stretches), segments=flagged, words=words
    )


def assess(
    transcript: Transcript,
    *,
    silences: list[tuple[float, float]] | None = None,
    reference: str | None = None,
    reference_source: str | None = None,
    language: str | None = None,
) -> Quality:
    """Every measure that applies: error rates need a reference, text-in-silence the audio's
    silent stretches (AudioInfo.silences)."""
    language = language or transcript.language
    return Quality(
        error_rates=error_rates(transcript.text, reference, language) if reference else None,
        reference_source=reference_source if reference else None,
        repetition=repetition(transcript.text),
        pace=pace(transcript.segments),
        silence_text=text_in_silence(transcript.segments, silences)
        if silences is not None
        else None,
        language=transcript.language,
        language_probability=transcript.language_probability,
    )
