"""Healthcare: de-identification of the shipped synthetic records and faithfulness findings (the
review hold over HTTP is in tests/server/test_apps_api.py)."""

import pytest

from genlab.apps import get_recipe
from genlab.apps.healthcare import ClinicalSummary, unsupported
from genlab.apps.recipe import RecipeError
from genlab.pipeline import Gate, Observer
from genlab.safety.policy import Guard, Policy

CASES = ClinicalSummary().eval_cases()


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_deidentification_removes_every_planted_identifier_and_is_reversible(case):
    gate = Gate(Guard(Policy.load("healthcare")), Observer())  # the pipeline's input stage
    record = gate.input_fields({"record": case["record_text"]}, "clinical-summary")["record"]
    for phi in case["phi"]:
        assert phi.lower() not in record.lower(), phi
    assert gate.vault.restore(record) == case["record_text"]


def test_unsupported_medications_doses_counts_and_dates_are_found():
    record = CASES[1]["record_text"]  # asthma: budesonide 200 mcg, salbutamol 100 mcg, review in 4 weeks
    note = (
        "Plan: budesonide 100 mcg twice daily; salbutamol 100 mcg as needed; montelukast 10 mg at night; "
        "review in 3 weeks on 2026-05-01. Peak flow 390 L/min."
    )
    found = {(f.category, f.value) for f in unsupported(note, record)}
    assert found == {
        ("UNSUPPORTED_DOSE", "budesonide 100 mcg"),
        ("UNSUPPORTED_MEDICATION", "montelukast"),
        ("UNSUPPORTED_DOSE", "10 mg"),
        ("UNSUPPORTED_NUMBER", "3 weeks"),
        ("UNSUPPORTED_DATE", "2026-05-01"),
    }
    faithful = (
        "Plan: budesonide 200 mcg inhaled twice daily, salbutamol 100 mcg as needed, review in 4 weeks."
    )
    assert unsupported(faithful, record) == []
    assert [f.category for f in unsupported("Seen with <PERSON_7>.", record)] == ["UNKNOWN_PLACEHOLDER"]


def test_a_record_empty_after_deidentification_is_refused(gemma):
    from genlab.apps import run_recipe

    with pytest.raises(RecipeError, match="empty once de-identified"):
        run_recipe(
            get_recipe("clinical-summary"),
            {"record": "Patient: Ana Ruiz\nMRN: 48213907\nDOB: 03/04/1961"},
            generator=gemma,
        )
