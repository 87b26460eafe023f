"""Marketing: copy and emails in a brand's voice, each variant checked against the brand profile.

A brand profile says how the brand sounds and what it never says: tone (measured as VADER
sentiment), banned words, required terms, a length range in words, and a reading level (the
Flesch-Kincaid grade, with syllables from pyphen's hyphenation dictionaries). The recipe writes N
variants, lists each one's violations, and ranks them: fewest violations first, then closest to
the profile's tone and reading level. Emails carry mail-merge fields (``{first_name}``); a variant
must use the required ones and no others.
"""

from __future__ import annotations

import functools
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from genlab.apps.recipe import (
    DATA,
    Check,
    Context,
    Finding,
    Outcome,
    Recipe,
    RecipeError,
    RecipeResult,
    load_yaml,
)

TONES = {"positive": (0.3, 1.0), "neutral": (-0.3, 0.7), "serious": (-0.6, 0.4)}  # VADER compound ranges
FIELD = re.compile(r"\{([a-z_][a-z0-9_]*)\}")


class BrandProfile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    tone: Literal["positive", "neutral", "serious"] = "positive"
    banned_words: list[str] = Field(default_factory=list, description="Never said, whole words, any case.")
    required_terms: list[str] = Field(default_factory=list, description="Every variant says each of these.")
    min_words: int = Field(default=20, ge=1, le=2000)
    max_words: int = Field(default=120, ge=1, le=2000)
    max_grade: float = Field(default=9.0, ge=0, le=20, description="Highest Flesch-Kincaid grade.")
    min_grade: float = Field(default=0.0, ge=0, le=20)
    voice: str = Field(
        default="", max_length=500, description="How the brand sounds, in a sentence (for the prompt)."
    )

    @model_validator(mode="after")
    def consistent(self) -> BrandProfile:
        """Contradictory rules can never be met: refuse them instead of failing every variant."""
        if self.min_words > self.max_words:
            raise ValueError(f"min_words {self.min_words} is above max_words {self.max_words}")
        if self.min_grade > self.max_grade:
            raise ValueError(f"min_grade {self.min_grade:g} is above max_grade {self.max_grade:g}")
        banned = {w.lower() for w in self.banned_words}
        for term in self.required_terms:
            clash = banned & set(re.findall(r"[\w']+", term.lower()))
            if clash:
                raise ValueError(f"required term {term!r} contains banned word {sorted(clash)[0]!r}")
        needed = sum(len(t.split()) for t in self.required_terms)
        if needed > self.max_words:
            raise ValueError(f"the required terms alone take {needed} words, over max_words {self.max_words}")
        return self


class CopyInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    brief: str = Field(min_length=1, max_length=5000, description="What to announce or sell, to whom.")
    profile: BrandProfile | str = Field(description="A brand profile, or the name of a shipped one.")
    kind: Literal["copy", "email"] = "copy"
    variants: int = Field(default=3, ge=1, le=10)
    merge_fields: list[str] = Field(default_factory=list, description="Mail-merge fields every email uses.")
    image_model: str | None = Field(default=None, description="Also draw an image with this image model.")
    image_prompt: str | None = Field(default=None, description="The image's class, e.g. '7'.")


@functools.cache
def _hyphenator():
    import pyphen

    return pyphen.Pyphen(lang="en_US")


def syllables(word: str) -> int:
    return max(1, len(_hyphenator().positions(word.lower())) + 1)


def reading_grade(text: str) -> float:
    """Flesch-Kincaid grade: 0.39 (words / sentences) + 11.8 (syllables / words) - 15.59."""
    words = re.findall(r"[A-Za-z]+(?:'[a-z]+)?", text)
    if not words:
        return 0.0
    n_sentences = max(1, len(re.findall(r"[.!?]+(?:\s|$)", text)))
    n_syllables = sum(syllables(w) for w in words)
    return round(0.39 * len(words) / n_sentences + 11.8 * n_syllables / len(words) - 15.59, 2)


@functools.cache
def _vader():
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return SentimentIntensityAnalyzer()


def sentiment(text: str) -> float:
    return _vader().polarity_scores(text)["compound"]


# What a piece of copy promises: a percentage, an amount of money, or something free. Each must be
# in the brief: copy that offers 20% when the brief said 10%, or a free service when it said 10% off,
# promises what the business did not.
OFFER = re.compile(
    r"(?i)(?<![\w.])\d+(?:\.\d+)?\s?(?:%|per ?cent\b)"
    r"|[$€£]\s?\d+(?:[.,]\d+)*"
    r"|\b\d+(?:[.,]\d+)*\s?(?:dollars|euros|pounds)\b"
    r"|(?<![\w-])free(?![\w-])|\bhalf[- ]price\b|\bbuy one,? get one\b|\bbogo\b|\bno charge\b|\bcomplimentary\b"
)
FREE = re.compile(
    r"(?i)(?<![\w-])free(?![\w-])|\bno charge\b|\bcomplimentary\b|\bno (?:\w+ )?fees?\b|\bat no cost\b"
)
NOT_AN_OFFER = re.compile(r"(?i)\bfeel free\b|\bfree to\b|\bfree of charge to ask\b")


def _offer_key(offer: str) -> str:
    """ "10 %" ~ "10%" ~ "10 percent"; "$5" ~ "$ 5"; free, no charge, complimentary -> free."""
    o = re.sub(r"\s+", "", offer.lower()).replace("percent", "%").replace("percent", "%")
    return "free" if o in ("free", "nocharge", "complimentary") else o


def unsupported_offers(text: str, brief: str) -> list[Finding]:
    """Offers in ``text`` (percentages, amounts, "free") that the ``brief`` does not make."""
    promised = {_offer_key(m.group()) for m in OFFER.finditer(brief)}
    if FREE.search(brief):
        promised.add("free")
    harmless = [m.span() for m in NOT_AN_OFFER.finditer(text)]
    out = []
    for m in OFFER.finditer(text):
        if any(s <= m.start() < e for s, e in harmless) or _offer_key(m.group()) in promised:
            continue
        out.append(
            Finding("UNSUPPORTED_OFFER", m.start(), m.end(), m.group(), "the brief does not offer this")
        )
    return out


def audit(
    text: str, profile: BrandProfile, merge_fields: list[str], kind: str, brief: str | None = None
) -> tuple[list[Check], list[Finding], dict]:
    """Every rule of the profile against one variant (and, given the brief, that the variant offers
    only what the brief does): the checks, the spans to look at, the measures."""
    words = re.findall(r"[\w'{}-]+", text)
    grade, tone = reading_grade(FIELD.sub("Sam", text)), sentiment(text)
    low, high = TONES[profile.tone]
    findings = []
    for word in profile.banned_words:
        for m in re.finditer(rf"(?i)\b{re.escape(word)}\b", text):
            findings.append(
                Finding("BANNED_WORD", m.start(), m.end(), m.group(), f"{profile.name} never says {word!r}")
            )
    missing = [t for t in profile.required_terms if not re.search(rf"(?i)\b{re.escape(t)}\b", text)]
    used = FIELD.findall(text)
    unknown = sorted(set(used) - set(merge_fields))
    for m in FIELD.finditer(text):
        if m.group(1) in unknown:
            findings.append(
                Finding("UNKNOWN_MERGE_FIELD", m.start(), m.end(), m.group(), "not a mail-merge field")
            )
    absent = [f for f in merge_fields if f not in used] if kind == "email" else []
    checks = [
        Check(
            "no banned words",
            not any(f.category == "BANNED_WORD" for f in findings),
            ", ".join(sorted({f.value.lower() for f in findings if f.category == "BANNED_WORD"})),
        ),
        Check("required terms", not missing, f"missing: {', '.join(missing)}" if missing else ""),
        Check(
            "length",
            profile.min_words <= len(words) <= profile.max_words,
            f"{len(words)} words; the profile wants {profile.min_words}-{profile.max_words}",
        ),
        Check(
            "reading level",
            profile.min_grade <= grade <= profile.max_grade,
            f"grade {grade}; the profile wants {profile.min_grade:g}-{profile.max_grade:g}",
        ),
        Check(
            "tone", low <= tone <= high, f"sentiment {tone:+.2f}; {profile.tone} is {low:+.1f} to {high:+.1f}"
        ),
        Check(
            "mail-merge fields",
            not unknown and not absent,
            "; ".join(
                filter(
                    None,
                    [
                        f"unknown: {', '.join(unknown)}" if unknown else "",
                        f"missing: {', '.join(absent)}" if absent else "",
                    ],
                )
            ),
        ),
    ]
    if brief is not None:
        offers = unsupported_offers(text, brief)
        findings += offers
        checks.append(
            Check(
                "offer matches the brief",
                not offers,
                f"not in the brief: {', '.join(sorted({f.value for f in offers}))}" if offers else "",
            )
        )
    return checks, findings, {"words": len(words), "grade": grade, "sentiment": round(tone, 3)}


def rank_key(variant: dict[str, Any], profile: BrandProfile) -> tuple:
    """Fewest violations first; then the distance from the tone range and the grade range."""
    low, high = TONES[profile.tone]
    m = variant["measures"]
    off_tone = max(0.0, low - m["sentiment"], m["sentiment"] - high)
    off_grade = max(0.0, profile.min_grade - m["grade"], m["grade"] - profile.max_grade)
    return (len(variant["violations"]), round(off_tone + off_grade / 10, 4), -m["sentiment"])


FEW_SHOT = """Brand: Northwind Bikes. Voice: warm, plain and confident.
Brief: spring service offer for commuters, 20% off a tune-up in April.
Write: copy
Text: Spring is here, and your bike deserves a fresh start. Bring it to Northwind Bikes in April for a full tune-up at 20% off. Smooth gears, safe brakes and a happy ride to work, all in one visit.
---
Brand: Northwind Bikes. Voice: warm, plain and confident.
Brief: thank customers who bought a helmet, invite them to a free fitting.
Write: email with {first_name}
Text: Hi {first_name}, thank you for choosing a Northwind Bikes helmet. A helmet keeps you safest when it fits just right, so come by any Saturday for a free fitting. We look forward to seeing you.
---
"""


def shipped_profiles() -> list[str]:
    return sorted(
        p.name.removesuffix(".yaml")
        for p in (DATA / "marketing" / "profiles").iterdir()
        if p.name.endswith(".yaml")
    )


def load_profile(profile: BrandProfile | str) -> BrandProfile:
    if isinstance(profile, BrandProfile):
        return profile
    try:
        data = load_yaml(f"marketing/profiles/{profile}.yaml")
    except FileNotFoundError:
        raise RecipeError(
            f"no brand profile named {profile!r}; give a profile object or a shipped name"
        ) from None
    return BrandProfile.model_validate(data)


class MarketingCopy(Recipe):
    name = "marketing-copy"
    industry = "marketing"
    title = "Brand-safe copy and emails"
    summary = (
        "N variants of copy or an email in a brand's voice, each checked against the brand profile "
        "(violations listed) and ranked."
    )
    Input = CopyInput
    policy = "marketing"
    guarded = ("brief",)
    metric = "compliant_rate"

    def check(self, value: CopyInput) -> None:
        if not value.brief.strip():
            raise RecipeError("the brief is empty; say what to announce and to whom")
        value.profile = load_profile(value.profile)
        bad = [f for f in value.merge_fields if not re.fullmatch(r"[a-z_][a-z0-9_]*", f)]
        if bad:
            raise RecipeError(f"mail-merge field names are lower_snake_case words; not {', '.join(bad)}")
        if value.merge_fields and value.kind != "email":
            raise RecipeError("mail-merge fields are for emails; use kind 'email'")
        if (value.image_model is None) != (value.image_prompt is None):
            raise RecipeError("give both image_model and image_prompt, or neither")

    def run(self, value: CopyInput, ctx: Context) -> Outcome:
        profile = load_profile(value.profile)
        voice = profile.voice or f"{profile.tone}, clear"
        needs = f" Use the words: {', '.join(profile.required_terms)}." if profile.required_terms else ""
        write = (
            "email with " + " ".join(f"{{{f}}}" for f in value.merge_fields)
            if value.kind == "email" and value.merge_fields
            else value.kind
        )
        prompt = (
            f"{FEW_SHOT}Brand: {profile.name}. Voice: {voice}.\nBrief: {value.brief.strip()}{needs}\n"
            f"Write: {write}\nText:"
        )
        budget = min(1024, int(profile.max_words * 2.2) + 32)
        variants = []
        for text in ctx.complete(
            prompt,
            max_tokens=budget,
            temperature=0.8,
            n=value.variants,
            stop=("\n---", "\nBrand:", "\nText:", "\nWrite:", "\n\n"),
        ):
            text = text.strip()
            checks, findings, measures = audit(text, profile, value.merge_fields, value.kind, value.brief)
            variants.append(
                {
                    "text": text,
                    "checks": [c.__dict__ for c in checks],
                    "measures": measures,
                    "violations": [f"{c.name}: {c.detail}" for c in checks if not c.passed],
                    "findings": findings,
                }
            )
        variants.sort(key=lambda v: rank_key(v, profile))
        for rank, v in enumerate(variants, 1):
            v["rank"] = rank
        best = variants[0]
        sample = {f: f"<{f}>" for f in value.merge_fields}
        output = {
            "profile": profile.model_dump(),
            "variants": [{k: v for k, v in x.items() if k != "findings"} for x in variants],
            "best": best["text"],
            "preview": FIELD.sub(lambda m: sample.get(m.group(1), m.group()), best["text"]),
            "compliant": sum(not v["violations"] for v in variants),
        }
        if value.image_model:  # a generation of its own, through the pipeline
            output["image"] = ctx.draw(value.image_model, value.image_prompt or "")
        checks = [
            Check("best variant meets the profile", not best["violations"], "; ".join(best["violations"]))
        ]
        return Outcome(output, best["text"], checks, findings=best["findings"])

    def choices(self) -> dict[str, list[str]]:
        return {"profile": shipped_profiles()}

    def judge(self, case: dict[str, Any]) -> list[Check]:
        profile = load_profile(case["profile"])
        kind = case.get("kind", "copy")
        return audit(case["text"], profile, case.get("merge_fields", []), kind, case["brief"])[0]

    def score(self, case: dict[str, Any], result: RecipeResult) -> dict[str, float]:
        vs = result.output["variants"]
        return {
            "compliant_rate": result.output["compliant"] / max(len(vs), 1),
            "best_compliant": float(not vs[0]["violations"]),
            "mean_violations": sum(len(v["violations"]) for v in vs) / max(len(vs), 1),
        }
