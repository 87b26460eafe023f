"""`genlab software|education|marketing|healthcare|apps` as a person or a script runs them."""

import json
import shlex
from pathlib import Path

from genlab.apps.healthcare import ClinicalSummary
from tests.conftest import assert_clean_error, genlab_cli

MODULE = "def double(x):\n    return 2 * x\n"


def test_apps_list_names_every_recipe(tmp_path):
    out = genlab_cli("apps", "list", "--json", home=tmp_path)
    assert out.returncode == 0, out.stderr
    assert [r["name"] for r in json.loads(out.stdout)] == [
        *shlex.split("code-completion test-generation docstrings quiz marketing-copy clinical-summary")
    ]


def test_docstrings_writes_a_documented_file(tmp_path, gemma):
    source = tmp_path / "mod.py"
    source.write_text(MODULE)
    out = genlab_cli(
        "software", "docstrings", str(source), "--out", str(tmp_path / "documented.py"), home=tmp_path
    )
    assert out.returncode == 0, out.stderr
    documented = (tmp_path / "documented.py").read_text()
    assert (
        documented.startswith("def double(x):\n")
        and '"""' in documented
        and documented.endswith("return 2 * x\n")
    )
    assert "code unchanged apart from docstrings" in out.stderr


def test_the_tutor_session_persists_between_commands(tmp_path):
    assert genlab_cli("education", "tutor", "start", "ada", home=tmp_path).returncode == 0
    q = json.loads(genlab_cli("education", "tutor", "next", "ada", "--json", home=tmp_path).stdout)
    again = json.loads(genlab_cli("education", "tutor", "next", "ada", "--json", home=tmp_path).stdout)
    assert q == again and q["skill"] == "variables"
    feedback = json.loads(
        genlab_cli("education", "tutor", "answer", "ada", "b", "--json", home=tmp_path).stdout
    )
    assert feedback["item"] == q["id"]
    status = json.loads(genlab_cli("education", "tutor", "status", "ada", "--json", home=tmp_path).stdout)
    assert status["answers"] == 1 and status["path"][0]["mastery"] == feedback["mastery"]
    assert_clean_error(
        genlab_cli("education", "tutor", "answer", "ada", "B", home=tmp_path), "no question is waiting"
    )
    assert_clean_error(
        genlab_cli("education", "tutor", "answer", "ada", "Q", home=tmp_path), "no question is waiting"
    )
    assert_clean_error(genlab_cli("education", "tutor", "status", "bob", home=tmp_path), "no learner 'bob'")
    assert_clean_error(genlab_cli("education", "tutor", "start", "ada", home=tmp_path), "exists already")


def test_a_clinical_summary_waits_in_the_review_queue(tmp_path, gemma):
    record = tmp_path / "record.txt"
    record.write_text(ClinicalSummary().eval_cases()[6]["record_text"])
    out = genlab_cli("healthcare", "summarize", str(record), "--attempts", "1", "--json", home=tmp_path)
    assert out.returncode == 0, out.stderr
    held = json.loads(out.stdout)
    assert held["status"] == "held" and "text" not in held and "Hoffmann" not in out.stdout
    queue = json.loads(genlab_cli("review", "list", "--json", home=tmp_path).stdout)
    assert [i["id"] for i in queue] == [held["review"]["id"]] and queue[0]["model"] == "gemma-3-270m"


def test_tutor_evaluation_writes_a_report(tmp_path):
    out = genlab_cli("apps", "eval", "tutor", "--json", home=tmp_path)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["metrics"]["adaptive_learned_rate"] > report["metrics"]["fixed_learned_rate"]
    assert Path(report["path"]).is_file() and Path(report["path"]).parent == tmp_path / "reports" / "apps"


def test_bad_input_gives_one_line(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def f(:\n")
    assert_clean_error(genlab_cli("software", "tests", str(bad), home=tmp_path), "does not parse: line 1")
    assert_clean_error(
        genlab_cli("software", "tests", str(tmp_path / "missing.py"), home=tmp_path), "does not exist"
    )
    profile = tmp_path / "brand.yaml"
    profile.write_text("name: B\nbanned_words: [cheap]\nrequired_terms: [cheap deals]\n")
    assert_clean_error(
        genlab_cli("marketing", "copy", "tea", "--profile", str(profile), home=tmp_path),
        "banned word 'cheap'",
    )
    empty = tmp_path / "empty.txt"
    empty.write_text("   \n")
    assert_clean_error(genlab_cli("education", "quiz", str(empty), home=tmp_path), "passage is empty")
    assert_clean_error(genlab_cli("apps", "eval", "nope", home=tmp_path), "no recipe named 'nope'")
    assert_clean_error(
        genlab_cli("apps", "run", "quiz", "--input", "-", home=tmp_path, stdin="[1, 2]"), "JSON object"
    )


LESSON = (
    "Photosynthesis is the process by which green plants make their own food. It takes place in the "
    "leaves, inside chloroplasts, which contain a green pigment called chlorophyll. The plant takes in "
    "carbon dioxide through openings called stomata and water through its roots, and releases oxygen."
)


def test_a_long_recipe_shows_each_step_even_without_a_terminal(tmp_path, gemma):
    lesson = tmp_path / "lesson.txt"
    lesson.write_text(LESSON)
    out = genlab_cli("education", "quiz", str(lesson), "--questions", "2", home=tmp_path)
    assert out.returncode in (0, 1), out.stderr  # 1 only when every check failed, said in one line
    steps = [line for line in out.stderr.splitlines() if line.startswith("Quiz generation with")]
    assert any("question 1 of 2" in s for s in steps) and any("question 2 of 2" in s for s in steps)
    assert any("attempt 1 of 3" in s for s in steps)  # the default attempts, each shown
    if out.returncode == 1:
        assert "every check failed" in out.stderr


def test_a_recipe_stops_at_its_deadline_with_one_line(tmp_path, gemma):
    lesson = tmp_path / "lesson.txt"
    lesson.write_text(LESSON)
    out = genlab_cli("education", "quiz", str(lesson), "--questions", "8", "--deadline", "1", home=tmp_path)
    assert out.returncode != 0 and "Traceback" not in out.stderr, out.stderr
    *progress, last = out.stderr.strip().splitlines()  # the steps it took, then one error line
    assert all(line.startswith("Quiz generation with") for line in progress)
    assert last.startswith("error:") and "deadline of 1 s" in last and "--deadline" in last
    assert_clean_error(
        genlab_cli("education", "quiz", str(lesson), "--deadline", "0", home=tmp_path), "deadline"
    )


def test_a_result_whose_checks_all_fail_exits_non_zero():
    from types import SimpleNamespace

    import pytest
    import typer

    from genlab.apps.recipe import Check
    from genlab.cli.apps import exit_if_failed

    def result(*passed: bool) -> SimpleNamespace:  # what exit_if_failed reads of a RecipeResult
        return SimpleNamespace(checks=[Check(f"c{i}", p) for i, p in enumerate(passed)])

    with pytest.raises(typer.Exit) as stopped:
        exit_if_failed(result(False, False), quiet=True)
    assert stopped.value.exit_code == 1
    exit_if_failed(result(False, True), quiet=True)  # a partial result is still a result
    exit_if_failed(result(), quiet=True)


def test_n_completions_show_progress_without_a_terminal(tmp_path, gemma):
    out = genlab_cli("generate", "text", "Hello", "--n", "3", "--max-tokens", "4", "--json", home=tmp_path)
    assert out.returncode == 0, out.stderr
    assert len(json.loads(out.stdout)) == 3
    assert all(f"choice {k} of 3" in out.stderr for k in (1, 2, 3))
