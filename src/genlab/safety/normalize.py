"""Text normalisation before pattern matching, so look-alike and hidden characters cannot slip a
rule: NFKC (full-width and compatibility forms), confusable letters mapped to ASCII, zero-width
and bidirectional control characters removed, and simple encodings (base64, rot13) decoded."""

from __future__ import annotations

import base64
import binascii
import codecs
import re
import unicodedata

# Unicode's Default_Ignorable_Code_Point property (DerivedCoreProperties.txt, Unicode 15.1): every
# code point that renders as nothing, so it can hide inside a keyword (U+200E, U+2063, U+034F ...).
DEFAULT_IGNORABLE = (
    (0x00AD, 0x00AD),
    (0x034F, 0x034F),
    (0x061C, 0x061C),
    (0x115F, 0x1160),
    (0x17B4, 0x17B5),
    (0x180B, 0x180F),
    (0x200B, 0x200F),
    (0x202A, 0x202E),
    (0x2060, 0x206F),
    (0x3164, 0x3164),
    (0xFE00, 0xFE0F),
    (0xFEFF, 0xFEFF),
    (0xFFA0, 0xFFA0),
    (0xFFF0, 0xFFF8),
    (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A),
    (0xE0000, 0xE0FFF),
)
INVISIBLE = {
    chr(c): unicodedata.name(chr(c), f"U+{c:04X}")
    for lo, hi in DEFAULT_IGNORABLE
    for c in range(lo, hi + 1)
    if c < 0xE0000
}
TAG_CHARACTERS = range(
    0xE0000, 0xE1000
)  # invisible "tag" letters (and their block) used to smuggle instructions


def _confusables() -> dict[int, str]:
    """Unicode TR39's confusables (confusables.txt, via confusable_homoglyphs' table, MIT): every
    character whose look-alike is an ASCII letter or digit maps to it (Cyrillic, Greek, Armenian,
    dotless i, mathematical letters ...): the skeleton that keyword rules then read."""
    import json
    from importlib.resources import files

    data = json.loads(files("confusable_homoglyphs").joinpath("confusables.json").read_text("utf-8"))
    table = {}
    for ch, homoglyphs in data.items():
        if len(ch) != 1 or ch.isascii():
            continue
        ascii_like = [
            h["c"] for h in homoglyphs if len(h["c"]) == 1 and h["c"].isascii() and h["c"].isalnum()
        ]
        if ascii_like:
            table[ord(ch)] = ascii_like[0]
    return table


CONFUSABLES = _confusables()


def is_invisible(ch: str) -> bool:
    return ch in INVISIBLE or ord(ch) in TAG_CHARACTERS


_DELETE_INVISIBLE = {ord(ch): None for ch in INVISIBLE} | dict.fromkeys(TAG_CHARACTERS)


def strip_invisible(text: str) -> str:
    return text.translate(_DELETE_INVISIBLE)  # one pass in C


_WORD = re.compile(r"\w+")


def _skeleton(match: re.Match) -> str:
    """A word's TR39 skeleton where it is a disguise: it mixes Latin with look-alikes ("ignоre"
    with a Cyrillic o), or every letter of it maps to Latin (a whole-script look-alike, "раураl").
    A word of another script that is just a word ("правила") stays as it is."""
    word = match.group(0)
    mapped = word.translate(CONFUSABLES)
    if mapped != word and (mapped.isascii() or any(c.isascii() and c.isalpha() for c in word)):
        return mapped
    return word


def normalize(text: str) -> str:
    """What the rule scanners match against (spans then refer to this text)."""
    text = strip_invisible(unicodedata.normalize("NFKC", text))
    return text if text.isascii() else _WORD.sub(_skeleton, text)


# A word with its combining marks (so "e" + U+0301 composes as it would in the whole text), or one character.
_PIECE = re.compile(
    r"(?:\w[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]*)+|.", re.DOTALL
)


class Offsets:
    """Where each character of a normalised text came from in the text as given: a span of the
    normalised text maps back to the whole words (or characters) it was read from."""

    def __init__(self, starts: list[int], ends: list[int], length: int) -> None:
        self.starts, self.ends, self.length = starts, ends, length

    def original(self, start: int, end: int) -> tuple[int, int]:
        first = self.starts[start] if start < len(self.starts) else self.length
        last = self.ends[end - 1] if 0 < end <= len(self.ends) else first
        return first, max(first, last)


def normalize_with_offsets(text: str) -> tuple[str, Offsets | None]:
    """:func:`normalize`, piece by piece, and the :class:`Offsets` back to ``text`` (None where
    normalising changes nothing, as for any ASCII text), so that a finding in what the rules read
    can be redacted in what the writer wrote, and nothing else of it is changed."""
    normalized = normalize(text)
    if normalized == text:
        return text, None
    pieces, starts, ends = [], [], []
    for m in _PIECE.finditer(text):
        piece = normalize(m.group(0))
        pieces.append(piece)
        starts += [m.start()] * len(piece)
        ends += [m.end()] * len(piece)
    return "".join(pieces), Offsets(starts, ends, len(text))


_B64 = re.compile(r"[A-Za-z0-9+/]{16,}={0,2}")
_SPACED_B64 = re.compile(r"(?:[A-Za-z0-9+/]{2,8} ){3,}[A-Za-z0-9+/]{1,8}={0,2}")  # base64 split by spaces
_HEX = re.compile(r"\b(?:[0-9A-Fa-f]{2}[ :]?){8,}")
_SPACED = re.compile(r"(?<!\w)(?:[A-Za-z][ ._-]{1,4}){4,}[A-Za-z](?!\w)")  # i g n o r e, i.g.n.o.r.e
_LEET = str.maketrans("013457@$!|", "oieastasil")


def _readable(text: str) -> bool:
    return bool(text) and text.isprintable() and sum(c.isalpha() or c == " " for c in text) > 0.8 * len(text)


def _printable(text: str) -> bool:
    """Looser: printable ASCII, as a number or an address is (for PII hidden in an encoding)."""
    return len(text) >= 5 and text.isascii() and text.isprintable()


def _b64(chunk: str, readable=_readable) -> str | None:
    try:
        decoded = base64.b64decode(chunk + "=" * (-len(chunk) % 4), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    return decoded if readable(decoded) else None


_DIGIT_WORDS = {
    "zero": "0",
    "oh": "0",
    "one": "1",
    "two": "2",
    "three": "3",
    "four": "4",
    "five": "5",
    "six": "6",
    "seven": "7",
    "eight": "8",
    "nine": "9",
}
_DIGIT_WORD = "(?:" + "|".join(_DIGIT_WORDS) + ")"
_SPELLED = re.compile(rf"(?i)\b{_DIGIT_WORD}(?:(?:\s*[,;/]\s*|\s+-\s+|\s+|-){_DIGIT_WORD}){{6,}}\b")


def spelled_numbers(text: str) -> list[tuple[str, int, int]]:
    """Runs of seven or more digits spelled out in words ("one two three, four five, six seven
    eight nine"), as digits grouped where the words were (a comma, a dash between spaces), with the
    span of the words: ("123 45 6789", start, end)."""
    out = []
    for m in _SPELLED.finditer(text):
        groups = re.split(r"\s*[,;/]\s*|\s+-\s+", m.group(0))
        digits = ["".join(_DIGIT_WORDS[w.lower()] for w in re.split(r"[\s-]+", g) if w) for g in groups if g]
        out.append((" ".join(digits), m.start(), m.end()))
    return out


def encoded_readings(text: str, *, words: bool = True) -> list[tuple[str, int, int, str]]:
    """The base64 (also split by spaces) and hex readings of :func:`hidden_readings`: mostly words
    (for instructions), or with ``words=False`` any printable ASCII (a number, an address)."""
    readable = _readable if words else _printable
    out: list[tuple[str, int, int, str]] = []
    for pattern, join in ((_B64, ""), (_SPACED_B64, " ")):
        for m in pattern.finditer(text):
            decoded = _b64(m.group(0).replace(join, "") if join else m.group(0), readable)
            if decoded is not None:
                out.append((decoded, m.start(), m.end(), "base64"))
    for m in _HEX.finditer(text):
        try:
            decoded = bytes.fromhex(re.sub(r"[ :]", "", m.group(0))).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            continue
        if readable(decoded):
            out.append((decoded, m.start(), m.end(), "hex"))
    return out


def hidden_readings(text: str) -> list[tuple[str, int, int, str]]:
    """Plain-text readings hidden in the text, each with the span of the text it came from and how
    it was hidden: base64 (also split by spaces), hex, letters spaced apart, rot13, reversed text,
    leetspeak. Bounded: one layer each, over spans the text already has."""
    out = encoded_readings(text)
    for m in _SPACED.finditer(text):
        words = re.split(r"[ ._-]{2,}", m.group(0))  # a wider gap between words, single between letters
        out.append((" ".join(re.sub(r"[ ._-]", "", w) for w in words), m.start(), m.end(), "spaced letters"))
    out.append((codecs.decode(text, "rot13"), 0, len(text), "rot13"))
    out.append((text[::-1], 0, len(text), "reversed"))
    leet = text.translate(_LEET)
    if leet != text:
        out.append((leet, 0, len(text), "leetspeak"))
    return out


def decoded_variants(text: str) -> list[str]:
    """The readings of :func:`hidden_readings`, without their spans."""
    return [reading for reading, *_ in hidden_readings(text)]
