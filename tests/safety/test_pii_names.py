"""PII by a named-entity model and checksums: bare person names and street addresses are found;
version strings, tracker numbers, eponyms and product names are not personal data; the model's
weights are the pinned ones."""

from __future__ import annotations

import pytest

from genlab.safety import ner
from genlab.safety.guardrails import PIIScanner


def found(text: str) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for f in PIIScanner().scan(text).findings:
        out.setdefault(f.category, set()).add(text[f.start : f.end])
    return out


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("Can you reply to Marta Kowalczyk and thank her for the quick fix?", "Marta Kowalczyk"),
        ("Benedikt Hoffmann will present the budget on Monday.", "Benedikt Hoffmann"),
        ("Write a limerick about my cat and my husband Rafael.", "Rafael"),
        ("Summarise the thread between Yuki Tanaka and Oliver Grant.", "Yuki Tanaka"),
    ],
)
def test_bare_person_names_are_found(text, name):
    assert name in found(text).get("PERSON", set()), found(text)


@pytest.mark.parametrize(
    ("text", "address"),
    [
        ("My address is 19 Primrose Crescent, Bristol BS8 1TH.", "19 Primrose Crescent"),
        ("Send the form to 400 E 34th St, New York, NY 10016.", "400 E 34th St"),
        ("Deliver it to 77 Beacon Hill Road, Apt 12, Boston.", "77 Beacon Hill Road, Apt 12"),
    ],
)
def test_street_addresses_are_found(text, address):
    assert address in found(text).get("LOCATION", set()), found(text)


@pytest.mark.parametrize(
    "text",
    [
        "Release notes for v2.10.11: fixed the crash on start-up.",
        "Upgrade the agent to 1.2.3.4 before the 4.0 branch is cut.",
        "Bump the chart to version 10.4.22.7 before the release.",
        "This regression was tracked as JIRA-12345 and fixed in #123456.",
        "Parcel tracking number 9400 1000 0000 0000 0000 00 is delayed.",
        "Explain the Krebs cycle and the Doppler effect.",
        "Patient education: living with Parkinson's disease.",
        "Write a product description for the Aurora Desk Lamp.",
        "Email: support@example.com",  # the address, not a person called "Email"
    ],
)
def test_numbers_of_another_kind_and_named_things_are_not_personal_data(text):
    categories = set(found(text)) - {"EMAIL_ADDRESS"}
    assert not categories, found(text)


def test_a_network_address_is_still_one_after_a_version_word():
    assert "10.0.0.5" in found("Release 3 moved the server 10.0.0.5 behind the proxy.").get(
        "IP_ADDRESS", set()
    )


def test_checksums_decide_cards_and_ibans():
    assert found("IBAN DE62 3704 0044 0532 0130 01 please").get("IBAN_CODE")
    assert not found("IBAN DE63 3704 0044 0532 0130 01 please").get("IBAN_CODE")  # mod-97 fails
    assert found("card 4532 0151 1283 0366").get("CREDIT_CARD")
    assert not found("card 4532 0151 1283 0367").get("CREDIT_CARD")  # Luhn fails


def test_the_model_is_the_pinned_one():
    folder = ner.model_dir()
    assert set(ner.WEIGHTS_SHA256) <= {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}
    assert "ner" in ner.pipeline().pipe_names and "parser" not in ner.pipeline().pipe_names


def test_sentences_without_a_known_name_are_skipped_without_losing_a_name():
    """The model reads only sentences holding a known given or family name (every name it keeps
    holds one): on the labelled PII sets, the names found are exactly those found reading every
    sentence."""
    import json
    from importlib.resources import files

    folder = files("genlab.safety").joinpath("evalsets")
    texts = [
        json.loads(line)["text"]
        for name in ("pii.jsonl", "heldout/pii.jsonl", "heldout/pii_ner.jsonl")
        for line in folder.joinpath(name).read_text("utf-8").splitlines()
        if line.strip()
    ]
    texts += ["Our office is at 221 Baker Street; ask for Dana.", "The meeting moved to Thursday in Room 12."]
    skipping = [ner.people(t) for t in texts]
    assert skipping == [ner.people(t, every_sentence=True) for t in texts]
    assert any(skipping)
