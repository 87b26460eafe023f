"""Usage guardrails: scanners run on every request and every output, under a policy.

A scanner looks at text and returns a ``ScanResult``: the sanitised text, whether it passes, a risk
score in [0, 1], the category, and ``Finding``s with character spans that explain why. A
``Policy`` (YAML, see ``policies.py``) says which scanners run on inputs and on outputs, at which
threshold, and what happens when one fails: ``block``, ``redact``, ``flag`` (for human review) or
``warn``. A scanner that raises fails closed unless the policy says ``fail_open``.

Categories follow published taxonomies: PII entities use Presidio's names (EMAIL_ADDRESS,
PHONE_NUMBER, US_SSN, CREDIT_CARD, IBAN_CODE, IP_ADDRESS, DATE_TIME, LOCATION, PERSON, plus
MEDICAL_RECORD_NUMBER); content hazards use the MLCommons categories S1-S14 as Llama Guard 3 does.
"""

from __future__ import annotations

import bisect
import dataclasses
import functools
import ipaddress
import json
import re
import unicodedata
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

from genlab.core import InvalidRequestError
from genlab.safety.normalize import (
    INVISIBLE,
    TAG_CHARACTERS,
    hidden_readings,
    normalize,
    normalize_with_offsets,
)

# MLCommons AI Safety hazard taxonomy, as used by Llama Guard 3.
HAZARDS = {
    "S1": "Violent Crimes",
    "S2": "Non-Violent Crimes",
    "S3": "Sex-Related Crimes",
    "S4": "Child Sexual Exploitation",
    "S5": "Defamation",
    "S6": "Specialized Advice",
    "S7": "Privacy",
    "S8": "Intellectual Property",
    "S9": "Indiscriminate Weapons",
    "S10": "Hate",
    "S11": "Suicide & Self-Harm",
    "S12": "Sexual Content",
    "S13": "Elections",
    "S14": "Code Interpreter Abuse",
}
ACTIONS = ("block", "redact", "flag", "warn")


@dataclass(frozen=True)
class Finding:
    scanner: str
    category: (
        str  # a Presidio entity, an MLCommons S-code, or the scanner's own (prompt_injection, secret, ...)
    )
    start: int
    end: int
    score: float
    explanation: str
    text: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def at(self, start: int, end: int) -> Finding:
        """The same finding at another span (of the text as given)."""
        return dataclasses.replace(self, start=start, end=end)


@dataclass
class ScanResult:
    scanner: str
    sanitized: str
    valid: bool
    risk: float
    category: str | None
    findings: list[Finding] = field(default_factory=list)
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["findings"] = [f.to_dict() for f in self.findings]
        return d


_PLACEHOLDER = re.compile(r"<[A-Za-z][A-Za-z_]*_\d+>")


class Vault:
    """Reversible redaction within one request: placeholders map back to the originals."""

    def __init__(self) -> None:
        self._forward: dict[tuple[str, str], str] = {}
        self._back: dict[str, str] = {}
        self._counts: dict[str, int] = {}  # placeholders made per category

    def placeholder(self, category: str, value: str) -> str:
        key = (category, value)
        if key not in self._forward:
            n = self._counts[category] = self._counts.get(category, 0) + 1
            token = f"<{category}_{n}>"
            self._forward[key] = token
            self._back[token] = value
        return self._forward[key]

    def restore(self, text: str) -> str:
        """Every placeholder back to its original, in one pass (the cost grows with the text)."""
        if not self._back:
            return text
        return _PLACEHOLDER.sub(lambda m: self._back.get(m.group(0), m.group(0)), text)

    def __len__(self) -> int:
        return len(self._back)


def redact(text: str, findings: list[Finding], vault: Vault | None) -> str:
    """Replace each finding's span (spans refer to ``text``), rightmost first, merging overlaps."""
    spans = sorted(((f.start, f.end, f.category) for f in findings), key=lambda s: (s[0], -s[1]))
    merged: list[list] = []
    for start, end, cat in spans:
        if merged and start < merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end, cat])
    # placeholders are numbered left to right, then replaced right to left so the spans stay valid
    tokens = [
        vault.placeholder(cat, text[start:end]) if vault is not None else f"<{cat}>"
        for start, end, cat in merged
    ]
    pieces, at = [], 0  # one pass: the text between spans, then each span's placeholder
    for (start, end, _), token in zip(merged, tokens, strict=True):
        pieces += [text[at:start], token]
        at = end
    pieces.append(text[at:])
    return "".join(pieces)


class Scanner(ABC):
    """Base class: subclasses set ``name`` and implement ``find``."""

    name: ClassVar[str] = "scanner"
    default_category: ClassVar[str] = "other"

    def __init__(self, threshold: float = 0.5, **options: Any) -> None:
        if not 0 <= threshold <= 1:
            raise InvalidRequestError(f"threshold for {self.name} must be in [0, 1], got {threshold}")
        self.threshold = threshold
        self.options = options

    @abstractmethod
    def find(self, text: str, *, prompt: str | None = None) -> list[Finding]:
        """The findings in ``text`` (spans refer to ``text`` as given, after normalisation if any)."""

    def sanitize(self, text: str, findings: list[Finding], vault: Vault | None) -> str:
        return redact(text, findings, vault)

    def warm(self) -> None:
        """Load what the scanner reads with now, not on the first text (the server calls it at start)."""
        return None  # the rules read with nothing

    def scan(self, text: str, *, prompt: str | None = None, vault: Vault | None = None) -> ScanResult:
        """Findings over what the rules read (the normalised text), their spans in ``text`` as
        given, and ``text`` itself sanitised only inside those spans."""
        read, offsets = normalize_with_offsets(text) if self.normalizes else (text, None)
        findings = [f for f in self.find(read, prompt=prompt) if f.score >= self.threshold]
        if offsets is not None:
            findings = [f.at(*offsets.original(f.start, f.end)) for f in findings]
        risk = max((f.score for f in findings), default=0.0)
        category = max(findings, key=lambda f: f.score).category if findings else None
        sanitized = self.sanitize(text, findings, vault) if findings else text
        return ScanResult(self.name, sanitized, not findings, risk, category, findings)

    normalizes: ClassVar[bool] = True


# -- PII -------------------------------------------------------------------------------------------
def luhn_ok(digits: str) -> bool:
    total, double = 0, False
    for d in reversed(digits):
        n = int(d) * (2 if double else 1)
        total += n - 9 if n > 9 else n
        double = not double
    return total % 10 == 0


def iban_ok(iban: str) -> bool:
    s = iban.replace(" ", "").upper()
    if not 15 <= len(s) <= 34:
        return False
    rearranged = s[4:] + s[:4]
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1


_AT = r"\s*(?:\[\s*at\s*\]|\(\s*at\s*\)|\{\s*at\s*\}|\s+at\s+(?=\S+\s*(?:\[dot\]|\(dot\)|\s+dot\s+)))\s*"
_DOT = r"\s*(?:\[\s*dot\s*\]|\(\s*dot\s*\)|\{\s*dot\s*\}|\s+dot\s+|\.)\s*"
_PII_PATTERNS: list[tuple[str, re.Pattern[str], float]] = [
    ("EMAIL_ADDRESS", re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}\b"), 0.95),
    # obfuscated: john[dot]doe[at]gmail[dot]com, jane (at) example (dot) org, split across a line
    (
        "EMAIL_ADDRESS",
        re.compile(
            rf"\b[A-Za-z0-9_%+-]+(?:{_DOT}[A-Za-z0-9_%+-]+)*{_AT}[A-Za-z0-9-]+(?:{_DOT}[A-Za-z0-9-]+)*{_DOT}[A-Za-z]{{2,}}\b",
            re.I,
        ),
        0.9,
    ),
    (
        "EMAIL_ADDRESS",
        re.compile(
            r"\b[A-Za-z0-9._%+-]+[ \t]*(?:@[ \t]*\r?\n|\r?\n[ \t]*@)[ \t]*[A-Za-z0-9.-]+\.[A-Za-z]{2,}\b"
        ),
        0.9,
    ),
    ("US_SSN", re.compile(r"\b(?!000|666|9\d\d)\d{3}[- ](?!00)\d{2}[- ](?!0000)\d{4}\b"), 0.9),
    # nine digits with no separators, where the text says it is one
    (
        "US_SSN",
        re.compile(
            r"(?i)\b(?:ssn|social security(?: number| no\.?)?)\D{0,20}\b((?!000|666|9\d\d)\d{3}(?!00)\d{2}(?!0000)\d{4})\b"
        ),
        0.9,
    ),
    ("CREDIT_CARD", re.compile(r"\b(?:\d[ .-]?){12,18}\d\b"), 0.9),  # spaces, dashes or dots between digits
    ("IBAN_CODE", re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b"), 0.95),
    (
        "IP_ADDRESS",
        re.compile(
            r"\b(?:\d{1,3}\.){3}\d{1,3}\b|(?<![\w:])[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?![\w:])"
        ),
        0.85,
    ),
    (
        "PHONE_NUMBER",
        re.compile(
            r"(?<![\w+(])(?:\+\d{1,3}[ .-]?(?:\(\d{1,4}\)[ .-]?)?\d{1,4}(?:[ .-]\d{2,8}){1,4}|\(\d{2,4}\)[ .-]?\d{2,4}(?:[ .-]\d{2,4}){1,3}|\d{2,4}(?:[ .-]\d{2,4}){2,4})(?!\w)"
        ),
        0.7,
    ),
    (
        "DATE_TIME",
        re.compile(
            r"(?i)\b(?:born(?: on)?|d\.?o\.?b\.?|date of birth|birth ?date)\s*:?\s*(\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}|\d{1,2} [A-Z][a-z]+ \d{4}|[A-Z][a-z]+ \d{1,2},? \d{4})"
        ),
        0.9,
    ),
    (
        "MEDICAL_RECORD_NUMBER",
        re.compile(
            r"(?i)\b(?:MRN|medical record(?: number| no\.?)?|patient id)\s*[:#]?\s*([A-Z]{0,3}\d{5,10})\b"
        ),
        0.95,
    ),
    (
        "LOCATION",
        re.compile(
            r"\b\d{1,5}[A-Za-z]? (?:(?:N|S|E|W|NE|NW|SE|SW|North|South|East|West)\.? )?(?:(?:[A-Z][a-z]+|\d{1,3}(?:st|nd|rd|th)) ){1,3}"
            r"(?:Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Way|Place|Pl|Terrace|Close|Crescent|Square|Sq"
            r"|Gardens|Grove|Mews|Row|Parkway|Pkwy|Highway|Hwy|Circle|Cir|Alley|Walk|Rise|Quay|Wharf)\b\.?"
            r"(?:,? (?:Apt|Apartment|Suite|Ste|Unit|Flat|Floor)\.? ?[A-Za-z0-9-]+)?"
        ),
        0.85,
    ),
    # Person names offline: a title or an introduction followed by capitalised words. No name list
    # is shipped, so names without such a cue are missed; guard eval measures the recall.
    (
        "PERSON",
        re.compile(
            r"\b(?:Mr|Mrs|Ms|Miss|Dr|Prof|Sir|Madam)\.? ([A-Z][a-z]+(?: [A-Z][a-z]+)?)|(?i:my name is|name:|patient:|i am|i'm) ([A-Z][a-z]+(?: [A-Z][a-z]+)+)"
            # a relation then a name: "my husband Rafael", "our tenant, Ana Souza"
            r"|\b(?i:(?:my|our|his|her|their|your) (?:husband|wife|son|daughter|mother|father|mum|mom|dad|brother|sister|partner|friend|colleague|boss|manager|neighbou?r|grandmother|grandfather|grandma|grandpa|aunt|uncle|cousin|niece|nephew|fianc[ée]e?|boyfriend|girlfriend|tenant|landlord|landlady|patient|client|student|teacher|doctor)),? ([A-Z][a-z]+(?: [A-Z][a-z]+)?)"
        ),
        0.8,
    ),
    # Any calendar date (HIPAA Safe Harbor removes all dates); opt-in: name it in the rule's entities.
    (
        "DATE",
        re.compile(
            r"\b(\d{4}-\d{2}-\d{2}|\d{1,2}/\d{1,2}/\d{2,4}|(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec)[a-z]*\.? \d{1,2},? \d{4}|\d{1,2} (?:January|February|March|April|May|June|July|August|September|October|November|December) \d{4})\b"
        ),
        0.8,
    ),
]
_OPT_IN = {"DATE"}  # entities a rule must name to get


_SHAPES = re.compile(
    r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b|\b\d{3}-\d{2}-\d{4}\b"  # IBAN, SSN
    r"|\b(?:19|20)\d{2}[./-]\d{1,2}[./-]\d{1,2}\b"  # ISO-like dates and date-stamped versions
)


_CAPITALISED = re.compile(r"\b[A-Z][a-z]+\b")
_PHONE_CUE = re.compile(r"(?i)\b(?:call|phone|tel|telephone|mobile|cell|whatsapp|text me|reach me|number)\b")


# What a dotted or grouped number is when the words before it say so: a version ("upgrade to
# 1.2.3.4", "v2.10.11"), a tracker or order number ("ticket 4471 2209 11"), a parcel's tracking code.
_VERSION_CUE = re.compile(
    r"(?i)(?:\b(?:version|release|build|upgrade|update|bump|tag|firmware|patch|pinned?)\b[^\n]{0,30}|\bv|==|~=|>=|<=|@)$"
)
_TRACKER_CUE = re.compile(
    r"(?i)\b(?:tracking|order|invoice|ticket|issue|ref(?:erence)?|case|sku|serial|isbn|parcel|shipment|batch|lot|transaction|commit|jira|pr)\b[^.\n]{0,25}$"
)
_NETWORK_CUE = re.compile(
    r"(?i)\b(?:ip|address|host|server|ping|connect|subnet|gateway|dns|ssh|curl|proxy|firewall)\s*$"
)


def _a_number_of_another_kind(text: str, finding: Finding) -> bool:
    before = text[max(0, finding.start - 40) : finding.start]
    if finding.category == "IP_ADDRESS":
        return bool(_VERSION_CUE.search(before)) and not _NETWORK_CUE.search(before)
    return bool(_TRACKER_CUE.search(before) or _VERSION_CUE.search(before)) and not _PHONE_CUE.search(before)


class Spans:
    """Character spans, sorted once, asked "does any overlap [start, end)?" in O(log n)."""

    def __init__(self, spans) -> None:
        self.spans = sorted(spans)
        self._starts = [s for s, _ in self.spans]
        self._reach, far = [], -1  # the furthest end among the spans up to each index
        for _, e in self.spans:
            far = max(far, e)
            self._reach.append(far)

    def overlaps(self, start: int, end: int) -> bool:
        i = bisect.bisect_left(self._starts, end)  # spans that start before ``end``
        return i > 0 and self._reach[i - 1] > start


class PIIScanner(Scanner):
    name = "pii"
    default_category = "PII"

    def find(self, text: str, *, prompt: str | None = None) -> list[Finding]:
        wanted = set(self.options.get("entities") or [e for e, _, _ in _PII_PATTERNS if e not in _OPT_IN])
        out = self._matches(text, wanted)
        if "PERSON" in wanted:
            out += self._people(text, out)
        out += self._name_mentions(text, out)
        out += self._hidden(text, wanted)
        # A number shaped like a card, SSN, IBAN, IP or date (valid or not) is not also a phone number.
        shapes = Spans(m.span() for m in _SHAPES.finditer(text))
        strong = Spans(
            [
                (f.start, f.end)
                for f in out
                if f.category in ("CREDIT_CARD", "US_SSN", "IBAN_CODE", "IP_ADDRESS", "DATE_TIME", "DATE")
            ]
            + shapes.spans
        )
        # digits inside an IBAN-shaped string are its account number, not a card (even if they pass Luhn)
        return [
            f
            for f in out
            if not (f.category == "CREDIT_CARD" and shapes.overlaps(f.start, f.end))
            and not (f.category == "PHONE_NUMBER" and strong.overlaps(f.start, f.end))
            and not (f.category in ("IP_ADDRESS", "PHONE_NUMBER") and _a_number_of_another_kind(text, f))
        ]

    def _matches(self, text: str, wanted: set[str]) -> list[Finding]:
        out: list[Finding] = []
        for entity, pattern, score in _PII_PATTERNS:
            if entity not in wanted:
                continue
            for m in pattern.finditer(text):
                group = next((i for i in range(1, (m.lastindex or 0) + 1) if m.group(i)), 0)
                start, end = m.span(group)
                value = m.group(group)
                if not self._valid(entity, value):
                    continue
                out.append(
                    Finding(
                        self.name, entity, start, end, score, f"{entity} found by pattern and checks", value
                    )
                )
        return out

    def _hidden(self, text: str, wanted: set[str]) -> list[Finding]:
        """PII written so that the patterns miss it: numbers spelled out in words ("one two three,
        four five, ..."), read with the 40 characters before them (the cue: "SSN", "call me at"),
        and values inside base64 or hex; one layer, each finding spanning the whole hidden form."""
        from genlab.safety.normalize import encoded_readings, spelled_numbers

        out: list[Finding] = []
        for digits, start, end in spelled_numbers(text):
            cue = text[max(0, start - 40) : start]
            found = {
                (f.category, f.score)
                for f in self._matches(cue + digits, wanted)
                if f.end > len(cue) and f.category not in ("PERSON", "LOCATION")
            }
            phone = 10 <= len(digits.replace(" ", "")) <= 15  # "call me on five five five ..."
            if not found and phone and "PHONE_NUMBER" in wanted and _PHONE_CUE.search(cue):
                found = {("PHONE_NUMBER", 0.7)}
            for category, score in found:
                why = f"{category} written out in words"
                out.append(Finding(self.name, category, start, end, score, why, text[start:end]))
        for decoded, start, end, how in encoded_readings(text, words=False):
            for f in self._matches(decoded, wanted):
                why = f"{f.category} hidden in {how}"
                out.append(Finding(self.name, f.category, start, end, f.score, why, text[start:end]))
        return out

    def warm(self) -> None:
        if "PERSON" in (self.options.get("entities") or ["PERSON"]):
            from genlab.safety import ner

            ner.pipeline()
            ner.name_lists()

    def _people(self, text: str, found: list[Finding]) -> list[Finding]:
        """Person names by the named-entity model (``ner.py``), where no other finding is."""
        from genlab.safety import ner

        taken = Spans((f.start, f.end) for f in found)
        return [
            Finding(
                self.name,
                "PERSON",
                start,
                end,
                0.85,
                "PERSON found by the named-entity model",
                text[start:end],
            )
            for start, end in ner.people(text)
            if not taken.overlaps(start, end)
        ]

    def _name_mentions(self, text: str, found: list[Finding]) -> list[Finding]:
        """A name found by its cue ("Patient: Ana Ruiz", "Mrs. Ruiz") is a name wherever else it
        appears: every other mention of the full name or of one of its parts is PII too.

        One pass over the capitalised words (set lookups, and the found spans in a sorted index), so
        the cost grows with the text, not with the text times the number of names."""
        names = {f.text for f in found if f.category == "PERSON"}
        if not names:
            return []
        parts = {p for n in names for p in n.split() if len(p) >= 3}
        covered = Spans((f.start, f.end) for f in found)
        words = list(_CAPITALISED.finditer(text))
        out, i = [], 0
        while i < len(words):
            m = words[i]
            pair = words[i + 1] if i + 1 < len(words) and words[i + 1].start() == m.end() + 1 else None
            if pair is not None and text[m.end()] == " " and f"{m.group()} {pair.group()}" in names:
                start, end, value, step = m.start(), pair.end(), f"{m.group()} {pair.group()}", 2
            elif m.group() in parts or m.group() in names:
                start, end, value, step = m.start(), m.end(), m.group(), 1
            else:
                i += 1
                continue
            if not covered.overlaps(start, end):
                out.append(
                    Finding(
                        self.name,
                        "PERSON",
                        start,
                        end,
                        0.8,
                        "another mention of a name found by its cue",
                        value,
                    )
                )
            i += step
        return out

    @staticmethod
    def _valid(entity: str, value: str) -> bool:
        if entity == "CREDIT_CARD":
            digits = re.sub(r"\D", "", value)
            return 13 <= len(digits) <= 19 and luhn_ok(digits)
        if entity == "IBAN_CODE":
            return iban_ok(value)
        if entity == "IP_ADDRESS":
            try:
                ipaddress.ip_address(value)
                return True
            except ValueError:
                return False
        if entity == "PHONE_NUMBER":
            return 8 <= len(re.sub(r"\D", "", value)) <= 15
        return True


# -- secrets ---------------------------------------------------------------------------------------
_SECRET_PLUGINS = [
    "AWSKeyDetector",
    "GitHubTokenDetector",
    "GitLabTokenDetector",
    "PrivateKeyDetector",
    "SlackDetector",
    "StripeDetector",
    "JwtTokenDetector",
    "OpenAIDetector",
    "KeywordDetector",
    "BasicAuthDetector",
    "TwilioKeyDetector",
    "SendGridDetector",
    "DiscordBotTokenDetector",
    "AzureStorageKeyDetector",
    "MailchimpDetector",
    "NpmDetector",
    "PypiTokenDetector",
    "TelegramBotTokenDetector",
]
_EXTRA_SECRETS = [
    # a credential in an environment assignment (`export AWS_SECRET_ACCESS_KEY=...`, `set`, `$env:`,
    # a .env line): the variable names a secret and the value looks like one (8+ characters with a
    # digit, or 16+), not a reference to another variable or a placeholder (`$TOKEN`, `<your key>`)
    (
        "ENV_SECRET",
        re.compile(
            r"(?im)^[ \t]*(?:export[ \t]+|set[ \t]+|setx[ \t]+|\$env:)?[A-Z][A-Z0-9_]*(?:SECRET|TOKEN|PASSWORD|PASSWD|API_?KEY|ACCESS_?KEY|PRIVATE_?KEY|CREDENTIALS?|AUTH)[A-Z0-9_]*[ \t]*[=:][ \t]*[\"']?((?=[^\s\"'$<{]*\d)[^\s\"'$<{#]{8,}|[^\s\"'$<{#]{16,})"
        ),
    ),
    ("OPENAI_KEY", re.compile(r"\bsk-(?:proj-)?[A-Za-z0-9_-]{20,}\b")),
    ("GENLAB_KEY", re.compile(r"\bgl-[A-Za-z0-9_-]{40,}\b")),
    ("BEARER_TOKEN", re.compile(r"(?i)\bbearer\s+([A-Za-z0-9._~+/-]{20,}=*)")),
    (
        "PRIVATE_KEY",
        re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z ]*PRIVATE KEY-----|$)"),
    ),
]


class SecretsScanner(Scanner):
    """API keys, tokens and private keys: Yelp's detect-secrets plugins plus a few patterns of our own."""

    name = "secrets"
    default_category = "secret"
    normalizes = False  # secrets are matched byte for byte

    def find(self, text: str, *, prompt: str | None = None) -> list[Finding]:
        from detect_secrets.core.scan import scan_line
        from detect_secrets.settings import transient_settings

        out: list[Finding] = []
        offset = 0
        with transient_settings({"plugins_used": [{"name": n} for n in _SECRET_PLUGINS]}):
            for line in text.splitlines(keepends=True):
                for secret in scan_line(line.rstrip("\n")):
                    value = secret.secret_value or ""
                    i = line.find(value) if value else -1
                    if i < 0:
                        continue
                    start, end = i, i + len(value)  # widen to the whole token (GitHub's match is its prefix)
                    while start > 0 and not line[start - 1].isspace() and line[start - 1] not in "\"'=:":
                        start -= 1
                    while end < len(line) and not line[end].isspace() and line[end] not in "\"',;":
                        end += 1
                    out.append(
                        Finding(
                            self.name,
                            "secret",
                            offset + start,
                            offset + end,
                            0.95,
                            f"{secret.type}",
                            line[start:end],
                        )
                    )
                offset += len(line)
        for kind, pattern in _EXTRA_SECRETS:
            for m in pattern.finditer(text):
                g = 1 if m.lastindex else 0
                out.append(Finding(self.name, "secret", m.start(g), m.end(g), 0.95, kind, m.group(g)))
        return out


# -- prompt injection and jailbreaks --------------------------------------------------------------
# Not an injection: the verb negated ("don't ignore the safety guidelines", "vergiss nicht", "n'oublie
# pas"), and instructions the writer says are their own ("the earlier instructions I gave").
_NOT = r"(?<!\bnot )(?<!n't )(?<!n’t )(?<!\bnever )(?<!\bno )(?<!\bnon )(?<!\bn')(?<!\bn’)"
_NOT_AFTER = r"(?!\s+(?:nicht|nie|pas|jamais|no|non|nunca|mai|not)\b)"
_OWN = (
    r"(?!\s+(?:that\s+|which\s+)?(?:I|we)\s+(?:gave|sent|wrote|typed|mentioned|provided|added|set|listed)\b)"
)
_INJECTION_RULES: list[tuple[str, float, str]] = [
    (
        _NOT
        + r"\b(?:ignore|disregard|forget|override|bypass)\b.{0,30}?(?<!\bmy )\b(?:previous|prior|above|earlier|all|your|any|system|original|initial|safety)\b(?:(?!\bmy\b).){0,20}?\b(?:instructions?|rules|directions|prompts?|guidelines|polic(?:y|ies)|constraints|programming)\b"
        + _OWN
        + r"|\b(?:ignore|disregard|forget)\s+the\s+(?:instructions?|rules|guidelines)\s+(?:above|before|you (?:were|have been|'ve been) given)\b",
        0.95,
        "asks to ignore earlier instructions",
    ),
    (  # the same with padding between the words ("ignore, and I really mean it, ... all previous rules")
        r"\b(?:ignore|disregard|forget|override|bypass)\b.{30,120}?(?<!\bmy )\b(?:previous|prior|above|earlier)\s+(?:\w+\s+)?(?:instructions?|rules|directions|prompts?|guidelines|polic(?:y|ies)|constraints|programming)\b",
        0.95,
        "asks to ignore earlier instructions, padded",
    ),
    (
        r"\b(?:ignore|disregard|forget)\s+(?:all\s+|everything\s+)?(?:of\s+)?(?:the\s+)?(?:above|previous|prior|earlier)\b(?=\s*(?:[.,;:!]|$|(?:and|then)\b|(?:text|context|conversation|content|commands?|orders|messages from)\b))",
        0.9,
        "asks to disregard what came before",
    ),
    (
        # the assistant's own ("your", "the"), not a system prompt as a thing to write ("a sample system prompt")
        r"\b(?:reveal|show|print|repeat|output|leak|tell me|give me|dump)\b.{0,30}\b(?:(?:your|the)\s+(?:\w+\s+)?(?:system prompt|hidden (?:prompt|instructions)|initial instructions|original instructions)|your (?:instructions|prompt|rules)|(?:instructions|prompt) you (?:were|have been) given)\b",
        0.9,
        "asks for the system prompt",
    ),
    (
        r"\b(?:your|the)\s+(?:hidden|secret|initial|original|system) (?:instructions|prompt)\b.{0,40}\b(?:show|reveal|print|tell|give|leak)\b",
        0.9,
        "asks for hidden instructions",
    ),
    (
        r"\byou are (?:now|no longer)\b.{0,40}\b(?:DAN|unrestricted|unfiltered|jailbroken|(?:free (?:of|from)|without) (?:all |any |your |the )?(?:rules|restrictions|filters|guidelines|limits|limitations|censorship|constraints|programming|ethics|morals))",
        0.95,
        "assigns an unrestricted persona",
    ),
    (
        r"\b(?:DAN|do anything now)\b.{0,40}\b(?:mode|prompt|jailbreak)|\bjailbr(?:eak|oken)\s+(?:mode|yourself|prompt|version|you)\b|\byou(?:'re| are)\s+(?:now\s+)?jailbroken\b",
        0.85,
        "names a jailbreak",
    ),
    (
        r"\bjailbr(?:eak|oken)\b",
        0.6,
        "mentions jailbreaking",
    ),  # weak: iPhones and consoles are jailbroken too
    (
        r"\b(?:answer|respond|reply|act|speak|write)\s+(?:as|like)\s+(?:an?\s+)?(?:\w+\s+)?(?:unfiltered|unrestricted|uncensored|unaligned)\b",
        0.9,
        "asks for an unfiltered persona",
    ),
    (
        # the assistant's rules ("your", "the content policy"), not a game's ("the rules don't apply to the king")
        r"\b(?:(?:your|its)\s+(?:safety\s+|content\s+)?|(?:the|all)\s+(?:safety|content)\s+)(?:rules|guidelines|filters|restrictions|limits|policy|policies|guardrails|safeguards)\s+(?:(?:don't|do not|no longer|doesn't|does not)\s+(?:exist|apply|matter|count)|(?:are|is)\s+(?:now\s+)?(?:off|disabled|suspended|lifted|gone|void|revoked|expired))\b",
        0.9,
        "declares the assistant's rules void",
    ),
    (  # the first rule in other languages: forget/ignore ... instructions/rules (not the writer's own: "my")
        _NOT
        + r"\b(?:ignorier\w*|vergiss|vergessen\s+sie|missachte\w*|ignore[sz]?|oublie[sz]?|ignora|olvida|dimentica|esque[çc]a|negeer|vergeet|zignoruj|zapomnij|игнорируй\w*|забудь\w*)\b"
        + _NOT_AFTER
        + r"(?:(?!\b(?:my|our|meine?[nrs]?|unsere?[nrs]?|mes|mis|mie[ie]?|minhas?|mijn|moje|мои)\b).){0,80}?\b(?:anweisungen|regeln|vorgaben|instruktionen|befehle|consignes|instructions|r[èe]gles|instrucciones|reglas|istruzioni|regole|instru[çc][õo]es|regras|instructies|regels|instrukcje|zasady|инструкции|правила|указания)\b"
        + _OWN,
        0.9,
        "asks to disregard instructions (in another language)",
    ),
    (
        r"(?:忽略|无视|忘记|忘掉).{0,20}(?:指令|指示|规则|提示)|(?:指示|ルール|命令).{0,10}(?:無視|忘れ)",
        0.9,
        "asks to disregard instructions (in another language)",
    ),
    (
        # a mode declared on ("Developer mode enabled: ..."), not a phone's ("developer mode on Android")
        r"\b(?:developer|god|sudo|admin|debug|DAN) mode\s+(?:is\s+|has\s+been\s+)?(?:now\s+)?(?:enabled|activated|on)\b(?!\s+(?:my|the|your|a|an|this|android|ios|iphone|ipad|windows|mac|macos|chrome|firefox|linux|pixel|samsung|xbox|but)\b)|\b(?:enable|activate)\b.{0,15}\b(?:god|sudo|DAN) mode\b",
        0.85,
        "claims a privileged mode",
    ),
    (
        r"\bpretend (?:that )?you (?:have|are)\b.{0,40}\b(?:no|without) (?:any )?(?:rules|restrictions|filters|guidelines|limits)",
        0.9,
        "role-play without rules",
    ),
    # below 0.9: a writer updates their own instructions this way too ("New instructions: keep it
    # short"), so under the learned guardrail it blocks only where the model agrees; the rules-only
    # policy (threshold 0.85) still blocks it, for the injections that use it
    (r"\b(?:new|updated|real|actual) (?:system )?instructions?\s*[:：]", 0.85, "injects new instructions"),
    (
        # the assistant's own instructions set aside: "set aside whatever guidance you were handed"
        r"\b(?:set aside|disregard|forget|drop|throw out)\b.{0,20}\b(?:guidance|instructions|rules|guidelines)\b"
        r".{0,20}\byou(?:'ve| have| were| got)?\s+(?:been\s+)?(?:given|handed|told|received|got)\b",
        0.9,
        "sets aside the instructions the assistant was given",
    ),
    (
        # a role written in brackets, then a command: "[system] override: ...", "[admin]: you must now ..."
        r"[\[(](?:system|admin|administrator|developer|assistant|root)[\])]\s*[:\-]?\s*"
        r"(?:\w+\s*[:\-]\s*)?.{0,40}?\b(?:override|must now|from now on|ignore|only follow|new rules?)\b",
        0.9,
        "a fake role marker",
    ),
    (
        r"</?(?:system|im_start|im_end|start_of_turn)\b|<\|im_(?:start|end)\|>|\[/?INST\]|<</?SYS>>",
        0.9,
        "chat-template control tokens",
    ),
]
_INJECTION = [(re.compile(p, re.IGNORECASE | re.DOTALL), s, why) for p, s, why in _INJECTION_RULES]


class InjectionScanner(Scanner):
    """Rules over normalised text and over readings hidden in it (base64, also spaced; hex; spaced
    letters; rot13; reversed; leetspeak), each finding pointing at the span it was hidden in."""

    name = "prompt_injection"
    default_category = "prompt_injection"
    judges_intent: ClassVar[bool] = True  # not run on the caller's own system message

    def find(self, text: str, *, prompt: str | None = None) -> list[Finding]:
        out = [
            Finding(self.name, "prompt_injection", m.start(), m.end(), score, why, m.group(0))
            for pattern, score, why in _INJECTION
            for m in pattern.finditer(text)
        ]
        for hidden, start, end, how in hidden_readings(text):  # each finding points at the hidden span
            for pattern, score, why in _INJECTION:
                if pattern.search(hidden):
                    out.append(
                        Finding(
                            self.name, "prompt_injection", start, end, score, f"{why} ({how})", hidden[:80]
                        )
                    )
        return out

    def sanitize(self, text: str, findings: list[Finding], vault: Vault | None) -> str:
        return text  # an injection is blocked or flagged, not rewritten


# Chat-template control tokens: the special tokens that open and close a turn in the templates
# genlab renders. ChatML and Qwen (<|im_start|>, <|im_end|>, <|endoftext|>), Llama 3
# (<|start_header_id|>, <|eot_id|>), Phi (<|user|>, <|end|>): every <|word|>; Gemma's
# <start_of_turn>, <end_of_turn>, <bos>, <eos>; Llama 2 and Mistral's [INST] and <<SYS>>.
CONTROL_TOKENS = re.compile(
    r"<\|[A-Za-z0-9_.]{1,40}\|>|</?(?:start_of_turn|end_of_turn)>|<(?:bos|eos)>|\[/?INST\]|<</?SYS>>",
    re.IGNORECASE,
)


class ControlTokenScanner(Scanner):
    """Chat-template control tokens in a text a caller wrote: llama.cpp reads them as the real
    tokens, so they forge a turn (a system message, the end of a tool's result). Not a judgement of
    intent: it reads the caller's own system text too (see ``policy.control_rule``)."""

    name = "control_tokens"
    default_category = "prompt_injection"

    def find(self, text: str, *, prompt: str | None = None) -> list[Finding]:
        return [
            Finding(
                self.name,
                "prompt_injection",
                m.start(),
                m.end(),
                1.0,
                "chat-template control tokens",
                m.group(0),
            )
            for m in CONTROL_TOKENS.finditer(text)
        ]

    def sanitize(self, text: str, findings: list[Finding], vault: Vault | None) -> str:
        return text  # a forged turn is blocked or flagged, not rewritten


# -- invisible and confusable Unicode -----------------------------------------------------------------
class InvisibleTextScanner(Scanner):
    name = "invisible_text"
    default_category = "invisible_text"
    normalizes = False  # it looks at exactly what normalisation would hide

    def find(self, text: str, *, prompt: str | None = None) -> list[Finding]:
        from genlab.safety.normalize import CONFUSABLES

        out = []
        for i, ch in enumerate(text):
            if (ch in INVISIBLE or ord(ch) in TAG_CHARACTERS) and not _emoji_part(text, i):
                label = INVISIBLE.get(ch, "TAG CHARACTER")
                out.append(
                    Finding(
                        self.name,
                        "invisible_text",
                        i,
                        i + 1,
                        0.9,
                        f"invisible character U+{ord(ch):04X} {label}",
                        ch,
                    )
                )
        for m in re.finditer(r"\w+", text):
            word = m.group(0)
            if any(ord(c) in CONFUSABLES for c in word) and any(c.isascii() and c.isalpha() for c in word):
                out.append(
                    Finding(
                        self.name,
                        "invisible_text",
                        m.start(),
                        m.end(),
                        0.8,
                        "mixes Latin with look-alike letters",
                        word,
                    )
                )
        return out

    def sanitize(self, text: str, findings: list[Finding], vault: Vault | None) -> str:
        """Only what was found changes: an invisible character is removed, a word that mixes
        Latin with look-alikes becomes its Latin skeleton; the rest stays as written."""
        pieces, at = [], 0
        for f in sorted(findings, key=lambda f: f.start):
            if f.start < at:
                continue
            pieces += [text[at : f.start], normalize(text[f.start : f.end])]
            at = f.end
        pieces.append(text[at:])
        return "".join(pieces)


def _pictograph(ch: str) -> bool:
    return bool(ch) and (unicodedata.category(ch) == "So" or 0x1F000 <= ord(ch) <= 0x1FAFF)


def _emoji_part(text: str, i: int) -> bool:
    """A zero-width joiner between two pictographs (👨‍👩‍👧, also after a variation selector: ❤️‍🔥)
    or a variation selector after one (❤️, a keycap 1️⃣) is how the emoji is written, not hidden text."""
    before = text[i - 1] if i > 0 else ""
    after = text[i + 1] if i + 1 < len(text) else ""
    if text[i] == "\u200d":
        if before == "\ufe0f" and i > 1:
            before = text[i - 2]
        return _pictograph(before) and _pictograph(after)
    if text[i] in "\ufe0e\ufe0f":
        return _pictograph(before) or (bool(before) and before in "0123456789#*")
    return False


# -- banned substrings, topics, slurs -------------------------------------------------------------------
class BannedSubstringsScanner(Scanner):
    name = "banned_substrings"
    default_category = "banned_substring"

    def find(self, text: str, *, prompt: str | None = None) -> list[Finding]:
        words = self.options.get("substrings") or []
        lowered = text.lower()
        out = []
        for w in words:
            start = lowered.find(w.lower())
            while start >= 0:
                out.append(
                    Finding(
                        self.name,
                        "banned_substring",
                        start,
                        start + len(w),
                        1.0,
                        f"banned: {w!r}",
                        text[start : start + len(w)],
                    )
                )
                start = lowered.find(w.lower(), start + 1)
        return out


class BannedTopicsScanner(Scanner):
    """Topics as keyword sets, each mapped to a hazard category (e.g. S9 for weapons)."""

    name = "banned_topics"
    default_category = "banned_topic"

    def find(self, text: str, *, prompt: str | None = None) -> list[Finding]:
        out = []
        for topic in self.options.get("topics") or []:
            category = topic.get("category", "banned_topic")
            hits = [
                m
                for kw in topic.get("keywords", [])
                for m in re.finditer(rf"\b{re.escape(kw)}\b", text, re.IGNORECASE)
            ]
            if len(hits) >= int(topic.get("min_hits", 1)):
                for m in hits:
                    out.append(
                        Finding(
                            self.name,
                            category,
                            m.start(),
                            m.end(),
                            0.9,
                            f"topic {topic.get('name', category)!r}",
                            m.group(0),
                        )
                    )
        return out


class ToxicityScanner(Scanner):
    """Slurs: a short list of words whose every use is a slur (``slurs.json``), also in leetspeak
    and with letters repeated ("n1gg3r", "faggggot"). Not profanity and not a word list of harms:
    "stroke", "kill a process", "penetration test" and "a killer recipe" are ordinary words, and
    whether a text is abusive is a judgement of the whole text, which the learned guardrail makes."""

    name = "toxicity"
    default_category = "slur"
    _words: ClassVar[set[str] | None] = None
    _LEET = str.maketrans("013457@$!", "oieastasi")

    @classmethod
    def words(cls) -> set[str]:
        if cls._words is None:
            from importlib.resources import files

            data = json.loads(files("genlab.safety").joinpath("slurs.json").read_text("utf-8"))
            cls._words = {w.lower() for w in data["words"]}
        return cls._words

    @classmethod
    def _is_slur(cls, value: str) -> bool:
        """Lower case with leetspeak undone; a letter written three or more times ("faggggot")
        counts once, compared with the list's words also written with each letter once (only
        then: "Niger" is not a stretched slur)."""
        reading = " ".join(w.translate(cls._LEET) for w in value.lower().split())
        if reading in cls.words():
            return True
        if not re.search(r"(.)\1\1", reading):
            return False
        squeeze = functools.partial(re.sub, r"(.)\1+", r"\1")
        return squeeze(reading) in {squeeze(w) for w in cls.words()}

    def find(self, text: str, *, prompt: str | None = None) -> list[Finding]:
        tokens = list(re.finditer(r"[\w@$!]+", text))
        out = []
        for i, m in enumerate(tokens):
            candidates = [(m.start(), m.end())]
            if i + 1 < len(tokens):  # two-word entries ("porch monkey")
                candidates.append((m.start(), tokens[i + 1].end()))
            for start, end in candidates:
                if self._is_slur(text[start:end]):
                    value = text[start:end]
                    out.append(Finding(self.name, "slur", start, end, 0.9, "a slur (slurs.json)", value))
        return out


# -- output-only scanners -----------------------------------------------------------------------------
class JSONScanner(Scanner):
    name = "json"
    default_category = "invalid_json"
    normalizes = False

    def find(self, text: str, *, prompt: str | None = None) -> list[Finding]:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            return [
                Finding(
                    self.name,
                    "invalid_json",
                    e.pos,
                    len(text),
                    1.0,
                    f"not JSON: {e.msg}",
                    text[e.pos : e.pos + 40],
                )
            ]
        schema = self.options.get("schema")
        if schema:
            import jsonschema

            errors = sorted(
                jsonschema.Draft202012Validator(schema).iter_errors(data), key=lambda e: list(e.path)
            )
            return [
                Finding(self.name, "invalid_json", 0, len(text), 1.0, f"schema: {e.message}", "")
                for e in errors[:5]
            ]
        return []

    def sanitize(self, text: str, findings: list[Finding], vault: Vault | None) -> str:
        return text


class LengthScanner(Scanner):
    name = "length"
    default_category = "too_long"
    normalizes = False

    def find(self, text: str, *, prompt: str | None = None) -> list[Finding]:
        limit = int(self.options.get("max_chars", 20000))
        if len(text) > limit:
            return [
                Finding(self.name, "too_long", limit, len(text), 1.0, f"{len(text)} characters > {limit}", "")
            ]
        return []

    def sanitize(self, text: str, findings: list[Finding], vault: Vault | None) -> str:
        return text[: int(self.options.get("max_chars", 20000))]


class PIILeakageScanner(PIIScanner):
    """PII in an output that the prompt did not contain (the model produced or recalled it)."""

    name = "pii_leakage"

    def find(self, text: str, *, prompt: str | None = None) -> list[Finding]:
        given = normalize(prompt or "")
        return [f for f in super().find(text) if f.text not in given]


SCANNERS: dict[str, type[Scanner]] = {
    cls.name: cls
    for cls in (
        PIIScanner,
        SecretsScanner,
        InjectionScanner,
        InvisibleTextScanner,
        BannedSubstringsScanner,
        BannedTopicsScanner,
        ToxicityScanner,
        JSONScanner,
        LengthScanner,
        PIILeakageScanner,
    )
}
SCANNERS[ControlTokenScanner.name] = ControlTokenScanner  # every policy that judges intent runs it too
