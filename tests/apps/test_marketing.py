"""Marketing: brand-profile rules, contradictions, ranking, and variants from the embedded model."""

import pytest

from genlab.apps import get_recipe, run_recipe
from genlab.apps.marketing import BrandProfile, audit, rank_key, reading_grade
from genlab.apps.recipe import RecipeError

PROFILE = BrandProfile(
    name="Acme",
    tone="positive",
    banned_words=["cheap", "act now"],
    required_terms=["Acme Tea"],
    min_words=8,
    max_words=40,
    max_grade=8,
)


def _failed(text: str, merge=(), kind="copy") -> dict[str, str]:
    checks, _, _ = audit(text, PROFILE, list(merge), kind)
    return {c.name: c.detail for c in checks if not c.passed}


def test_each_rule_of_the_profile_is_checked_and_explained():
    good = "Acme Tea brings you a calm, happy morning. Try a fresh cup today and enjoy it with friends."
    assert _failed(good) == {}
    failed = _failed("Cheap tea! ACT NOW before it is gone, friends, lovely tea for everyone.")
    assert failed["no banned words"] == "act now, cheap" and "Acme Tea" in failed["required terms"]
    assert "3 words" in _failed("Acme Tea rocks.")["length"]
    email = _failed(
        "Hi {first_name}, Acme Tea has a lovely new green blend for {company} today.", ["first_name"], "email"
    )
    assert "unknown: company" in email["mail-merge fields"]
    assert "missing: first_name" in _failed(good, ["first_name"], "email")["mail-merge fields"]


def test_reading_grade_rises_with_long_words_and_sentences():
    simple = "The cat sat. The dog ran. We had fun."
    dense = "Comprehensive institutional considerations necessitate extraordinarily deliberate organisational evaluation."
    assert reading_grade(simple) < 3 < 12 < reading_grade(dense)


def test_variants_rank_by_violations_then_distance_from_the_profile():
    a = {"violations": [], "measures": {"sentiment": 0.9, "grade": 5}}
    b = {"violations": ["tone"], "measures": {"sentiment": 0.1, "grade": 5}}
    c = {"violations": [], "measures": {"sentiment": 0.5, "grade": 12}}
    assert sorted([b, c, a], key=lambda v: rank_key(v, PROFILE)) == [a, c, b]


@pytest.mark.parametrize(
    ("profile", "message"),
    [
        ({"name": "X", "min_words": 50, "max_words": 10}, "min_words 50 is above max_words 10"),
        (
            {"name": "X", "banned_words": ["cheap"], "required_terms": ["cheap deals"]},
            "contains banned word 'cheap'",
        ),
        ({"name": "X", "min_grade": 9, "max_grade": 4}, "min_grade 9 is above max_grade 4"),
        ({"name": "X", "required_terms": ["a b c d e"], "max_words": 3, "min_words": 1}, "take 5 words"),
        ("no-such-brand", "no brand profile named"),
    ],
)
def test_contradictory_or_unknown_profiles_are_refused(profile, message):
    with pytest.raises(RecipeError, match=message):
        get_recipe("marketing-copy").parse_input({"brief": "tea", "profile": profile})


def test_variants_from_the_embedded_model_are_audited_and_ranked(gemma):
    data = {
        "brief": "a new green tea blend, launch on Monday",
        "profile": PROFILE.model_dump(),
        "kind": "email",
        "merge_fields": ["first_name"],
        "variants": 3,
    }
    result = run_recipe(get_recipe("marketing-copy"), data, generator=gemma, seed=5)
    variants = result.output["variants"]
    assert [v["rank"] for v in variants] == [1, 2, 3] and result.text == variants[0]["text"]
    assert [len(v["violations"]) for v in variants] == sorted(len(v["violations"]) for v in variants)
    assert result.ok == (not variants[0]["violations"])
    assert result.output["compliant"] == sum(not v["violations"] for v in variants)


def test_copy_can_come_with_an_image_drawn_through_the_pipeline(gemma, registry, tmp_path):
    from pathlib import Path

    from genlab.core import InvalidRequestError
    from genlab.pipeline import Pipeline
    from genlab.safety.policy import GuardBlocked
    from genlab.storage import Store

    store = Store(f"sqlite:///{tmp_path / 'genlab.db'}")
    pipe = Pipeline(registry, store=store)
    data = {
        "brief": "a digit-shaped cookie",
        "profile": PROFILE.model_dump(),
        "variants": 1,
        "image_model": "gan-digits",
        "image_prompt": "7",
    }
    result = run_recipe(get_recipe("marketing-copy"), data, generator=gemma, pipeline=pipe, seed=1)
    image = result.output["image"]
    assert image["label"] == "7" and "path" not in image  # no server path in what is released
    record = store.get_generation(image["generation_id"])  # a generation of its own, recorded
    assert record["endpoint"] == "apps.marketing-copy.image" and record["artifact_sha256"] == image["sha256"]
    assert Path(record["artifact_path"]).is_relative_to(registry.settings.outputs_dir)
    assert image["url"] == f"/v1/genlab/generations/{image['generation_id']}/content"
    with pytest.raises(GuardBlocked):  # the input policy reads the image prompt
        run_recipe(
            get_recipe("marketing-copy"),
            {**data, "image_prompt": "7 AKIAIOSFODNN7EXAMPLE"},
            generator=gemma,
            pipeline=pipe,
            seed=1,
        )
    with pytest.raises(InvalidRequestError, match="makes text, not images"):
        run_recipe(
            get_recipe("marketing-copy"), {**data, "image_model": "gemma-3-270m"}, generator=gemma, seed=1
        )
    with pytest.raises(RecipeError, match="give both image_model and image_prompt"):
        get_recipe("marketing-copy").parse_input({**data, "image_prompt": None})
