"""Healthcare: a de-identified, SOAP-structured summary of a patient record, always held for review.

    record -> de-identify (the guardrails' PII scanner, redact with a vault: reversible placeholders)
           -> the model writes a SOAP note from the de-identified text only
           -> re-identify (the vault puts the originals back)
           -> faithfulness: every medication, dose, diagnosis, number and date in the note must
              appear in the record (an unsupported one is a finding the reviewer sees highlighted),
              and the note must name at least one of the record's medications or diagnoses (a note
              about someone else fails)
           -> held for human review (the healthcare policy's review mode is ``always``)

SOAP: Subjective (what the patient reports), Objective (exam and results), Assessment (the
clinician's impression), Plan (treatment and follow-up); Weed, "Medical records that guide and
teach", NEJM 1968. The shipped records are synthetic, written for genlab; no real patient data.
"""

from __future__ import annotations

import functools
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from genlab.apps.recipe import (
    DATA,
    Check,
    Context,
    Finding,
    Outcome,
    ParseError,
    Recipe,
    RecipeError,
    RecipeResult,
    retry,
)

SECTIONS = ("Subjective", "Objective", "Assessment", "Plan")
PLACEHOLDER = re.compile(r"<([A-Z_]+)_(\d+)>")
UNIT = r"(?:mg|mcg|µg|g|ml|mL|L/min|units?|IU|mmol/L|umol/L|ng/mL|mg/L|mg/dL|%|kg|C)"
DOSE = re.compile(rf"\b(\d+(?:\.\d+)?)\s?({UNIT})(?![A-Za-z])")
NUMBER = re.compile(r"(?<![\w<_])(\d+(?:[.,/]\d+)*)(?![\w>])")
# A count's noun belongs to it: "review in 3 weeks" is unsupported when the record says 4 weeks.
COUNT = re.compile(
    r"(?<![\w<_])(\d+(?:\.\d+)?)[ -](minutes?|hours?|days?|nights?|weeks?|months?|years?|times?|tablets?|puffs?|glasses?)\b",
    re.I,
)
DATE = re.compile(r"\b(\d{4}-\d{2}-\d{2}|\d{1,2}/\d{1,2}/\d{2,4})\b")
# One SOAP note with each section on one line: llama.cpp samples only text this grammar accepts.
SOAP_GRAMMAR = r"""
root ::= "Subjective: " line "\nObjective: " line "\nAssessment: " line "\nPlan: " line "\n"
line ::= [^\n]+
"""

FEW_SHOT = """Record:
Patient: <PERSON_1>
MRN: <MEDICAL_RECORD_NUMBER_1>
Visit: <DATE_1>, clinic, seen by Dr. <PERSON_2>.

<PERSON_1>, 58, has had a sore throat and fever for 3 days. No cough. Allergic to penicillin.

Exam: temperature 38.4 C, tonsillar exudate, tender anterior neck nodes. Centor score 4.

Impression: probable streptococcal pharyngitis. Plan: clarithromycin 250 mg twice daily for 5 days, paracetamol 1 g up to four times daily, return if unable to swallow.

SOAP note:
Subjective: <PERSON_1>, 58, reports 3 days of sore throat and fever without cough; penicillin allergy.
Objective: Temperature 38.4 C, tonsillar exudate, tender anterior neck nodes; Centor score 4.
Assessment: Probable streptococcal pharyngitis.
Plan: Clarithromycin 250 mg twice daily for 5 days; paracetamol 1 g up to four times daily; return if unable to swallow.

"""


@functools.cache
def medications() -> tuple[str, ...]:
    lines = (DATA / "healthcare" / "medications.txt").read_text("utf-8").splitlines()
    return tuple(
        sorted(
            (w.strip().lower() for w in lines if w.strip() and not w.startswith("#")), key=len, reverse=True
        )
    )


@functools.cache
def conditions() -> tuple[tuple[str, ...], ...]:
    """Diagnoses, each a group of names for one condition (conditions.txt)."""
    lines = (DATA / "healthcare" / "conditions.txt").read_text("utf-8").splitlines()
    return tuple(
        tuple(n.strip().lower() for n in line.split("|") if n.strip())
        for line in lines
        if line.strip() and not line.startswith("#")
    )


def _names(text: str, name: str) -> list[re.Match]:
    return list(re.finditer(rf"(?<![\w-]){re.escape(name)}(?![\w-])", text))


def facts_of(text: str) -> tuple[set[str], set[int]]:
    """The medications and the conditions (by group) that ``text`` names."""
    lowered = text.lower()
    meds = {m for m in medications() if _names(lowered, m)}
    found = {i for i, group in enumerate(conditions()) if any(_names(lowered, n) for n in group)}
    return meds, found


def same_patient(note: str, record: str) -> Check:
    """A note about this record names at least one of its medications or diagnoses (when the
    record has any): a note that shares none of them is about someone else."""
    note_meds, note_conditions = facts_of(note)
    record_meds, record_conditions = facts_of(record)
    if not record_meds and not record_conditions:
        return Check("about this record", True, "the record names no medication or diagnosis we know")
    shared = (note_meds & record_meds) or (note_conditions & record_conditions)
    wanted = sorted(record_meds)[:3] + [conditions()[i][0] for i in sorted(record_conditions)][:3]
    return Check(
        "about this record",
        bool(shared),
        ""
        if shared
        else f"the note names none of the record's medications or diagnoses ({', '.join(wanted)})",
    )


def note_checks(note: str, record: str) -> list[Check]:
    """A note against its record: about this patient, and every fact in it supported."""
    problems = unsupported(note, record)
    return [
        same_patient(note, record),
        Check(
            "faithful to the record",
            not problems,
            "; ".join(f"{f.value!r}: {f.explanation}" for f in problems[:6]),
        ),
    ]


def _norm(text: str) -> str:
    """Compare numbers and units without spacing or case: "500 mg" ~ "500mg"."""
    return re.sub(r"\s+", "", text.lower())


def parse_soap(text: str) -> dict[str, str]:
    found = {}
    for i, name in enumerate(SECTIONS):
        nxt = "|".join(SECTIONS[i + 1 :]) or "$^"
        m = re.search(rf"(?im)^\s*{name}\s*:\s*(.*?)(?=^\s*(?:{nxt})\s*:|\Z)", text, re.S)
        if m and m.group(1).strip():
            found[name] = " ".join(m.group(1).split())
    missing = [s for s in SECTIONS if s not in found]
    if missing:
        raise ParseError(f"the note lacks {', '.join(missing)}")
    return found


def unwrap(text: str) -> str:
    """Join a paragraph's hard-wrapped lines (a note section is one line); keep "Key: value" blocks."""
    paragraphs = []
    for block in re.split(r"\n\s*\n", text.strip()):
        lines = [line.strip() for line in block.splitlines() if line.strip()]
        header = all(re.match(r"^[A-Z][\w ]{0,30}:\s", line) for line in lines)
        paragraphs.append("\n".join(lines) if header else " ".join(lines))
    return "\n\n".join(paragraphs)


def render(note: dict[str, str]) -> str:
    return "\n".join(f"{s}: {note[s]}" for s in SECTIONS)


def unsupported(note: str, source: str) -> list[Finding]:
    """Every medication, dose, number and date in ``note`` that the ``source`` does not contain."""
    src, src_norm = source.lower(), _norm(source)
    out: list[Finding] = []
    taken: list[tuple[int, int]] = []

    def add(category: str, start: int, end: int, why: str) -> None:
        if not any(s < end and start < e for s, e in taken):
            taken.append((start, end))
            out.append(Finding(category, start, end, note[start:end], why))

    lowered = note.lower()
    for med in medications():
        for m in re.finditer(rf"\b{re.escape(med)}\b", lowered):
            if med not in src:
                add("UNSUPPORTED_MEDICATION", m.start(), m.end(), f"{med} is not in the record")
                continue
            dose = DOSE.match(note, m.end() + len(note[m.end() :]) - len(note[m.end() :].lstrip()))
            if dose and not _paired(med, dose.group(0), source):
                add(
                    "UNSUPPORTED_DOSE",
                    m.start(),
                    dose.end(),
                    f"the record does not give {med} at {dose.group(0)}",
                )
    _, record_conditions = facts_of(source)
    for i, group in enumerate(conditions()):
        if i in record_conditions:
            continue
        for name in group:
            for m in _names(lowered, name):
                add("UNSUPPORTED_DIAGNOSIS", m.start(), m.end(), f"the record does not diagnose {group[0]}")
    for m in DATE.finditer(note):
        if _norm(m.group(0)) not in src_norm:
            add("UNSUPPORTED_DATE", m.start(), m.end(), "this date is not in the record")
    for m in DOSE.finditer(note):
        if _norm(m.group(0)) not in src_norm:
            add("UNSUPPORTED_DOSE", m.start(), m.end(), "this dose or measurement is not in the record")
    for m in COUNT.finditer(note):
        if re.match(r"[- ]old\b", note[m.end() :]) and m.group(1) in source:
            continue  # "75-year-old" for a record that says "Margaret Olsen, 75,": the age, supported
        if _norm(m.group(0)).replace("-", "") not in src_norm.replace("-", ""):
            add("UNSUPPORTED_NUMBER", m.start(), m.end(), "the record does not give this count")
    for m in NUMBER.finditer(note):
        if m.group(1) not in source:
            add("UNSUPPORTED_NUMBER", m.start(), m.end(), "this number is not in the record")
    for m in PLACEHOLDER.finditer(note):  # a placeholder the vault did not know: the model made it up
        add("UNKNOWN_PLACEHOLDER", m.start(), m.end(), "a placeholder that matches no one in the record")
    return sorted(out, key=lambda f: f.start)


def _paired(med: str, dose: str, source: str) -> bool:
    """The record gives this dose within a few words after this medication."""
    for m in re.finditer(rf"\b{re.escape(med)}\b", source, re.I):
        window = re.split(r"[,;(]|\band\b|\.\s", source[m.end() : m.end() + 40])[0]  # up to the next item
        if _norm(dose) in _norm(window):
            return True
    return False


class SummaryInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    record: str = Field(min_length=1, max_length=30_000, description="The patient record, as text.")
    attempts: int = Field(default=3, ge=1, le=8, description="Tries before giving the best note.")


class ClinicalSummary(Recipe):
    name = "clinical-summary"
    industry = "healthcare"
    title = "De-identified clinical summary (SOAP)"
    summary = (
        "De-identify a patient record, summarise it into a SOAP note, re-identify it, flag any "
        "medication, dose, number or date the record does not support; always held for review."
    )
    Input = SummaryInput
    policy = "healthcare"
    guarded = ("record",)
    metric = "faithful_rate"
    restores_redactions = True

    def run(self, value: SummaryInput, ctx: Context) -> Outcome:
        deidentified = value.record
        if len(re.findall(r"[A-Za-z]{3,}", PLACEHOLDER.sub(" ", deidentified))) < 5:
            raise RecipeError(
                "the record is empty once de-identified: there is nothing clinical left to summarise"
            )
        vault = ctx.vault
        original = vault.restore(deidentified) if vault is not None else deidentified
        prompt = f"{FEW_SHOT}Record:\n{unwrap(deidentified)}\n\nSOAP note:\n"

        def make(attempt: int) -> dict[str, str]:
            text = ctx.complete(
                prompt,
                max_tokens=400,
                temperature=0.2 if attempt == 1 else 0.6,
                grammar=SOAP_GRAMMAR,
                stop=("\nRecord:", "\n\n"),
            )[0]
            return parse_soap(text)

        def validate(note: dict[str, str]) -> list[Check]:
            return note_checks(vault.restore(render(note)) if vault is not None else render(note), original)

        note, checks, attempts = retry(value.attempts, make, validate, ctx)
        if note is None:
            return Outcome({"note": None, "deidentified": deidentified}, "", checks, attempts=attempts)
        text = vault.restore(render(note)) if vault is not None else render(note)
        findings = unsupported(text, original)
        sections = parse_soap(text)
        checks = [Check("all four SOAP sections", True), *checks]
        return Outcome(
            {
                "note": sections,
                "deidentified": deidentified,
                "placeholders": len(vault or ()),
                "unsupported": [f.__dict__ for f in findings],
            },
            text,
            checks,
            findings=findings,
            attempts=attempts,
        )

    def judge(self, case: dict[str, Any]) -> list[Check]:
        record = (DATA / "healthcare" / "records" / case["record"]).read_text("utf-8")
        return note_checks(case["note"], record)

    def eval_cases(self) -> list[dict[str, Any]]:
        cases = super().eval_cases()
        return [
            {**c, "record_text": (DATA / "healthcare" / "records" / c["record"]).read_text("utf-8")}
            for c in cases
        ]

    def case_input(self, case: dict[str, Any]) -> dict[str, Any]:
        return {"record": case["record_text"]}

    def score(self, case: dict[str, Any], result: RecipeResult) -> dict[str, float]:
        out = result.output
        deid = out.get("deidentified") or ""
        phi = case.get("phi", [])
        leaked = [p for p in phi if p.lower() in deid.lower()]
        note = (result.text or "").lower()
        record = case["record_text"].lower()
        meds = [m for m in medications() if re.search(rf"\b{re.escape(m)}\b", record)]
        return {
            "faithful_rate": float(out.get("note") is not None and not out.get("unsupported")),
            "soap_complete": float(out.get("note") is not None),
            "phi_removed": 1 - len(leaked) / max(len(phi), 1),
            "medication_recall": sum(m in note for m in meds) / max(len(meds), 1),
        }
