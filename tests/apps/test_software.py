"""Software recipes: TestGen-LLM's filters, docstring checks and insertion, and the whole recipes
with the embedded model."""

import ast

import pytest

from genlab.apps import get_recipe, run_recipe
from genlab.apps.recipe import RecipeError
from genlab.apps.sandbox import run_tests
from genlab.apps.software import check_docstring, select_tests

MODULE = """def clamp(value, low, high):
    if low > high:
        raise ValueError("low is above high")
    return max(low, min(high, value))


def double(x):
    return 2 * x
"""


def test_select_tests_keeps_only_tests_that_build_pass_and_add_coverage(session_home):
    candidates = [
        ("clamp", "def test_clamp_1():\n    assert clamp(5, 0, 3) == 3\n"),  # passes, new lines: kept
        ("clamp", "def test_clamp_2():\n    assert clamp(1, 0, 3) == 1\n"),  # passes, nothing new: dropped
        ("clamp", "def test_clamp_3():\n    assert clamp(1, 0, 3) == 2\n"),  # fails
        (
            "clamp",
            "def test_clamp_4():\n    with pytest.raises(ValueError):\n        clamp(1, 5, 0)\n",
        ),  # kept
        ("double", "def test_double_1(:\n    pass\n"),  # does not parse: not built
        ("double", "def test_double_2():\n    assert double(2) == 4\n"),  # kept
        ("double", "def test_double_9():\n    assert double(2) == 4\n"),  # the same body again: not counted
    ]
    report = select_tests("mod", MODULE, candidates)
    assert (report["candidates"], report["built"], report["passed"], report["kept"]) == (6, 5, 4, 3)
    assert report["build_rate"] == pytest.approx(5 / 6) and report["coverage_increase_rate"] == pytest.approx(
        3 / 6
    )
    assert report["coverage"] == 1.0 and report["baseline_coverage"] == 0.0 and report["kept_pass_together"]
    assert "test_clamp_1" in report["tests"] and "test_clamp_2" not in report["tests"]
    rerun = run_tests("mod", MODULE, {"test_mod.py": report["tests"]})
    assert rerun.passed and rerun.covered == set(rerun.statements)


def test_select_tests_measures_against_the_existing_tests(session_home):
    existing = "from mod import clamp\ndef test_old():\n    assert clamp(5, 0, 3) == 3\n"
    report = select_tests(
        "mod", MODULE, [("clamp", "def test_new():\n    assert clamp(9, 0, 3) == 3\n")], existing=existing
    )
    assert report["passed"] == 1 and report["kept"] == 0 and report["baseline_coverage"] > 0
    with pytest.raises(RecipeError, match="existing tests do not pass"):
        select_tests("mod", MODULE, [], existing="def test_bad():\n    assert False\n")


def test_docstring_checks_match_the_signature():
    node = ast.parse("def f(a, b=1, *rest):\n    return a\n").body[0]
    good = "Add things.\n\nArgs:\n    a: First.\n    b: Second.\n    rest: More.\n\nReturns:\n    The sum.\n"
    assert all(c.passed for c in check_docstring(good, node))
    bad = {c.name: c for c in check_docstring("Add things.\n\nArgs:\n    a: First.\n    c: Nope.\n", node)}
    assert (
        not bad["documents every parameter"].passed and "b, rest" in bad["documents every parameter"].detail
    )
    assert not bad["documents only real parameters"].passed and not bad["returns section matches"].passed


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("test-generation", {"source": "def f(:\n"}, "does not parse: line 1"),
        ("test-generation", {"source": "x = 1\n"}, "no public functions"),
        ("test-generation", {"source": MODULE, "functions": ["nope"]}, "no function nope"),
        ("docstrings", {"source": 'def f():\n    """Done."""\n'}, "already has a docstring"),
        ("code-completion", {"code": "   "}, "the code is empty"),
        ("code-completion", {"code": "def f():\n", "tests": "def test(:"}, "the test code does not parse"),
    ],
)
def test_bad_source_is_a_clear_error(name, data, message):
    with pytest.raises(RecipeError, match=message):
        get_recipe(name).parse_input(data)


def test_docstrings_with_the_embedded_model_leave_the_code_unchanged(gemma):
    result = run_recipe(get_recipe("docstrings"), {"source": MODULE, "attempts": 2}, generator=gemma, seed=1)
    checks = {c.name: c.passed for c in result.checks}
    assert checks["documented source parses"] and checks["code unchanged apart from docstrings"]
    documented = ast.parse(result.output["source"])
    assert [ast.get_docstring(f) is not None for f in documented.body] == [True, True]
    assert [f["function"] for f in result.output["functions"]] == ["clamp", "double"]


def test_test_generation_with_the_embedded_model_reports_consistent_rates(gemma):
    result = run_recipe(
        get_recipe("test-generation"),
        {"source": MODULE, "module": "mod", "candidates": 2, "functions": ["double"]},
        generator=gemma,
        seed=2,
    )
    o = result.output
    assert o["candidates"] >= o["built"] >= o["passed"] >= o["kept"] and 1 <= o["candidates"] <= 2
    assert [t["target"] for t in o["per_target"]] == ["double"]
    if o["kept"]:  # whatever was kept passes when run again
        assert run_tests("mod", MODULE, {"test_mod.py": o["tests"]}).passed


def test_code_completion_is_checked_by_parsing_and_tests(gemma):
    data = {
        "code": 'def add(a, b):\n    """Return the sum of a and b."""\n',
        "attempts": 2,
        "tests": "from solution import add\ndef test_add():\n    assert add(2, 3) == 5\n",
    }
    result = run_recipe(get_recipe("code-completion"), data, generator=gemma, seed=0)
    names = [c.name for c in result.checks]
    assert names[:2] == ["not empty", "parses"]
    assert result.output["code"].startswith(data["code"])
    if result.ok:
        assert run_tests("solution", result.output["code"], {"test_solution.py": data["tests"]}).passed
