"""Industry recipes over the LLM backends: software, education, marketing, healthcare.

``RECIPES`` maps each recipe's name to it; ``run_recipe`` (apps.recipe) runs one through the
guardrails and review; ``evaluate`` (apps.evaluate) scores a model on a recipe's evaluation set.
The adaptive tutor (apps.education.Tutor) is stateful and has its own routes and commands.

Room ``apps``: may import ``core``, ``registry``, ``pipeline``, ``safety`` and ``storage``.
"""

from __future__ import annotations

from genlab.apps.education import QuizGeneration
from genlab.apps.healthcare import ClinicalSummary
from genlab.apps.marketing import MarketingCopy
from genlab.apps.recipe import Recipe, RecipeError, RecipeResult, run_recipe
from genlab.apps.software import CodeCompletion, Docstrings, TestGeneration

RECIPES: dict[str, Recipe] = {
    r.name: r
    for r in (
        CodeCompletion(),
        TestGeneration(),
        Docstrings(),
        QuizGeneration(),
        MarketingCopy(),
        ClinicalSummary(),
    )
}


def get_recipe(name: str) -> Recipe:
    if name not in RECIPES:
        raise RecipeError(f"no recipe named {name!r}; known: {', '.join(RECIPES)}")
    return RECIPES[name]


def tunable_recipe(name: str) -> Recipe:
    """A recipe whose reviewed outputs may become training data (`genlab tune`)."""
    recipe = get_recipe(name)
    if recipe.restores_redactions:
        raise RecipeError(
            f"{recipe.name}'s outputs hold the identifiers its input policy redacted (they are put back "
            "for the reader); its review decisions are not made into training data"
        )
    return recipe


__all__ = ["RECIPES", "Recipe", "RecipeError", "RecipeResult", "get_recipe", "run_recipe", "tunable_recipe"]
