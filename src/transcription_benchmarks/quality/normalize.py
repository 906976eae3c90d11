"""The text normaliser WER is computed after, versioned so scores from different runs compare.

English text goes through whisper-normalizer's EnglishTextNormalizer (OpenAI's Whisper
normaliser: spelling, contractions, numbers, punctuation); other languages through its
BasicTextNormalizer (case, punctuation, diacritics). The version string names the library
release and our own rules, and every score records it: a WER measured under another normaliser
is a different number.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from importlib import metadata

# Bump when what happens around the library changes (e.g. which languages use which normaliser).
RULES_VERSION = 1


@cache
def normalizer_version(language: str | None) -> str:
    kind = "english" if _is_english(language) else "basic"
    return (
        f"whisper-normalizer-{metadata.version('whisper-normalizer')}/{kind}/rules-{RULES_VERSION}"
    )


def normalize(text: str, language: str | None) -> str:
    return _normalizer(_is_english(language))(text)


def _is_english(language: str | None) -> bool:
    return language is None or language.lower() in ("en", "english")


@cache
def _normalizer(english: bool) -> Callable[[str], str]:
    if english:
        from whisper_normalizer.english import EnglishTextNormalizer

        return EnglishTextNormalizer()
    from whisper_normalizer.basic import BasicTextNormalizer

    return BasicTextNormalizer(remove_diacritics=False)
