"""`genlab software|education|marketing|healthcare|apps` as a person or a script runs them."""

import json
from pathlib import Path

from genlab.apps.healthcare import ClinicalSummary
from tests.conftest import assert_clean_error, genlab_cli

MODULE = "def double(x):\n    return 2 * x\n"


def test_apps_list_names_every_recipe(tmp_path):
    out = genlab_cli("apps", "list", "--json", home=tmp_path)
    assert out.returncode == 0, out.stderr
    assert [r["name"] for r in json.loads(out.stdout)] == [
        "code-completion", "test-generation", "docstrings", "quiz", "marketing-copy", "clinical-summary"]  # fmt: skip


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
