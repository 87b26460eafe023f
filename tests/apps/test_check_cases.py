"""The recipes' checks against known-wrong outputs (each eval set's ``check_cases``): a check that
cannot catch the wrong content users saw is not a check."""

import pytest

from genlab.apps import RECIPES, get_recipe
from genlab.apps.evaluate import checks_caught
from genlab.apps.healthcare import note_checks
from genlab.apps.recipe import DATA

WITH_CASES = [name for name in RECIPES if get_recipe(name).check_cases()]


def test_the_content_recipes_ship_check_cases():
    assert {"clinical-summary", "marketing-copy"} <= set(WITH_CASES)


@pytest.mark.parametrize("name", WITH_CASES)
def test_every_check_case_is_caught_by_the_checks_it_names(name):
    recipe = get_recipe(name)
    for case in recipe.check_cases():
        failed = {c.name for c in recipe.judge(case) if not c.passed}
        assert set(case["must_fail"]) <= failed, (case, failed)
    assert checks_caught(recipe)["missed"] == []


def test_a_faithful_note_passes_so_the_checks_are_not_merely_strict():
    record = (DATA / "healthcare" / "records" / "09-heart-failure.txt").read_text()
    note = (
        "Subjective: 75-year-old with 2 weeks of breathlessness on exertion and ankle swelling.\n"
        "Objective: Bibasal crackles, pitting oedema; ejection fraction 30%; weight 81 kg.\n"
        "Assessment: Decompensated heart failure with reduced ejection fraction.\n"
        "Plan: Start furosemide 40 mg each morning; continue ramipril and bisoprolol; review in 1 week."
    )
    assert all(c.passed for c in note_checks(note, record)), note_checks(note, record)


def test_copy_that_offers_what_the_brief_offers_passes():
    recipe = get_recipe("marketing-copy")
    case = {
        "profile": "northwind-bikes",
        "brief": "10% off winter service",
        "text": "Winter is hard on a bike. Bring yours to Northwind Bikes this month for a full service at 10% off.",
    }
    offer = next(c for c in recipe.judge(case) if c.name == "offer matches the brief")
    assert offer.passed
