"""An application's policy declares its domain (``domain:``): the field's terms are never personal
data or a banned word there, the hazard categories that are its work are reported, not refused,
and its ordinary requests pass its own policy with no finding. Outside the domain the same words
are read as usual, and what the domain does not cover is still caught."""

from __future__ import annotations

import pytest

from genlab.safety.policy import Domain, Guard, Policy, PolicyError, domain_examples

WORDS = "input:\n  - {scanner: pii, action: redact}\n  - {scanner: toxicity, action: flag}\n"


def guard(extra: str = "") -> Guard:
    return Guard(Policy.parse(WORDS + extra))


@pytest.mark.parametrize("name", ["healthcare", "software", "marketing"])
def test_each_apps_policy_declares_its_domain_and_its_examples_pass_it(name):
    policy = Policy.load(name)
    assert policy.domain.name == name and len(policy.domain.examples) >= 5
    for text, label in domain_examples(name):
        result = Guard(policy).scan_all(text)
        assert label == "benign" and result.decision == "allow", text
        assert result.text == text and not result.findings, (text, result.findings)


@pytest.mark.parametrize(
    ("domain", "text", "term"),
    [
        ("healthcare", "How is a Holter monitor worn, and what does a Doppler ultrasound show?", "Doppler"),
        ("healthcare", "Summarise the note for a patient with a new Foley catheter.", "Foley"),
        ("software", "Run John the Ripper against our own test hash file.", "John"),
    ],
)
def test_a_domain_term_is_not_personal_data_in_its_domain_only(domain, text, term):
    outside = guard().check_input(text)
    assert any(term in f.text for f in outside.findings) and term not in outside.text  # redacted as a name
    inside = guard(f"domain: {domain}\n").check_input(text)
    assert not inside.findings and inside.text == text


def test_a_real_name_beside_a_domain_term_is_still_redacted():
    text = "Mrs. Helena Marchetti has Parkinson's disease and a Foley catheter."
    result = guard("domain: healthcare\n").check_input(text)
    assert "Marchetti" not in result.text and "Parkinson's disease and a Foley catheter" in result.text


def test_the_domains_own_work_is_reported_not_refused():
    topics = (
        "  - scanner: banned_topics\n    action: block\n"
        "    topics: [{name: dosing, category: S6, keywords: [maximum daily dose]}]\n"
    )
    text = "What is the maximum daily dose of paracetamol for an adult?"
    general = Guard(Policy.parse("input:\n" + topics))
    assert general.check_input(text).blocked
    clinical = Guard(Policy.parse("domain: healthcare\ninput:\n" + topics)).check_input(text)
    assert clinical.decision == "allow" and clinical.actions["banned_topics"] == "warn"
    assert {f.category for f in clinical.findings} == {"S6"}  # reported
    # another category is not the domain's work: still blocked in healthcare
    weapons = "  - scanner: banned_topics\n    action: block\n    topics: [{name: w, category: S9, keywords: [nerve agent]}]\n"
    assert (
        Guard(Policy.parse("domain: healthcare\ninput:\n" + weapons))
        .check_input("make a nerve agent")
        .blocked
    )


def test_a_policy_can_declare_its_own_domain_and_bad_domains_are_named():
    policy = Policy.parse(
        "domain: {name: lab, terms: [Bunsen]}\ninput:\n  - {scanner: pii, action: redact}\n"
    )
    assert policy.domain == Domain(name="lab", terms=("Bunsen",))
    with pytest.raises(PolicyError, match="no domain named 'astrology'"):
        Policy.parse("domain: astrology\n")
    with pytest.raises(PolicyError, match="unknown domain key"):
        Policy.parse("domain: {name: x, words: [a]}\n")
