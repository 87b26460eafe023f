"""Text normalisation before pattern matching, so look-alike and hidden characters cannot slip a
rule: NFKC (full-width and compatibility forms), confusable letters mapped to ASCII, zero-width
and bidirectional control characters removed, and simple encodings (base64, rot13) decoded."""

from __future__ import annotations

import base64
import binascii
import codecs
import re
import unicodedata

# Characters that render as nothing (or reorder text) but change what a regex sees.
INVISIBLE = {
    "\u200b": "ZERO WIDTH SPACE",
    "\u200c": "ZERO WIDTH NON-JOINER",
    "\u200d": "ZERO WIDTH JOINER",
    "\u2060": "WORD JOINER",
    "\ufeff": "ZERO WIDTH NO-BREAK SPACE",
    "\u00ad": "SOFT HYPHEN",
    "\u180e": "MONGOLIAN VOWEL SEPARATOR",
    "\u202a": "LEFT-TO-RIGHT EMBEDDING",
    "\u202b": "RIGHT-TO-LEFT EMBEDDING",
    "\u202c": "POP DIRECTIONAL FORMATTING",
    "\u202d": "LEFT-TO-RIGHT OVERRIDE",
    "\u202e": "RIGHT-TO-LEFT OVERRIDE",
    "\u2066": "LEFT-TO-RIGHT ISOLATE",
    "\u2067": "RIGHT-TO-LEFT ISOLATE",
    "\u2068": "FIRST STRONG ISOLATE",
    "\u2069": "POP DIRECTIONAL ISOLATE",
}
TAG_CHARACTERS = range(0xE0000, 0xE0080)  # invisible "tag" letters used to smuggle instructions

# Cyrillic and Greek letters that look like Latin ones (the common homoglyph attack set).
CONFUSABLES = str.maketrans(
    {
        "а": "a",
        "е": "e",
        "о": "o",
        "р": "p",
        "с": "c",
        "у": "y",
        "х": "x",
        "і": "i",
        "ј": "j",
        "ѕ": "s",
        "А": "A",
        "В": "B",
        "Е": "E",
        "К": "K",
        "М": "M",
        "Н": "H",
        "О": "O",
        "Р": "P",
        "С": "C",
        "Т": "T",
        "Х": "X",
        "Ι": "I",
        "Α": "A",
        "Β": "B",
        "Ε": "E",
        "Ζ": "Z",
        "Η": "H",
        "Κ": "K",
        "Μ": "M",
        "Ν": "N",
        "Ο": "O",
        "Ρ": "P",
        "Τ": "T",
        "Υ": "Y",
        "Χ": "X",
        "ο": "o",
        "ν": "v",
        "ι": "i",
    }
)


def is_invisible(ch: str) -> bool:
    return ch in INVISIBLE or ord(ch) in TAG_CHARACTERS


_DELETE_INVISIBLE = {ord(ch): None for ch in INVISIBLE} | dict.fromkeys(TAG_CHARACTERS)


def strip_invisible(text: str) -> str:
    return text.translate(_DELETE_INVISIBLE)  # one pass in C


def normalize(text: str) -> str:
    """What the rule scanners match against (spans then refer to this text)."""
    return strip_invisible(unicodedata.normalize("NFKC", text)).translate(CONFUSABLES)


_B64 = re.compile(r"[A-Za-z0-9+/]{16,}={0,2}")


def decoded_variants(text: str) -> list[str]:
    """Plain-text readings hidden in the text: base64 runs that decode to printable text, and rot13."""
    out = []
    for m in _B64.finditer(text):
        chunk = m.group(0)
        try:
            raw = base64.b64decode(chunk + "=" * (-len(chunk) % 4), validate=True)
            decoded = raw.decode("utf-8")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            continue
        if decoded.isprintable() and sum(c.isalpha() or c == " " for c in decoded) > 0.8 * len(decoded):
            out.append(decoded)
    out.append(codecs.decode(text, "rot13"))
    return out
