"""Review decisions -> SFT rows, DPO pairs and KTO labels: properties of ``build`` over any mix of
decisions, the files a real home's queue gives, a real recipe run's recorded prompt, and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from genlab.core.settings import Settings
from genlab.tuning.data import COLUMNS, NotEnoughDecisions, build, prepare

from ..conftest import assert_clean_error, genlab_cli
from .decisions import EDITED, RECIPE, prompt, seed

texts = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=0, max_size=12)
rows = st.lists(
    st.fixed_dictionaries(
        {
            "endpoint": st.sampled_from([f"apps.{RECIPE}", "apps.quiz", "chat.completions"]),
            "modality": st.sampled_from(["text", "text", "code", "image"]),
            "model": st.sampled_from(["a", "b"]),
            "model_prompts": st.one_of(st.none(), st.lists(texts, min_size=1, max_size=2)),
            "output": texts,
            "decision": st.sampled_from(["approved", "edited", "rejected"]),
            "edited_output": st.one_of(st.none(), texts),
        }
    ),
    max_size=30,
)


@settings(max_examples=200, deadline=None)
@given(rows)
def test_every_row_is_a_decision_as_the_model_saw_it(decided):
    data = build(decided, RECIPE)
    used = [
        r
        for r in decided
        if r["endpoint"] == f"apps.{RECIPE}"
        and r["modality"] in ("text", "code")
        and len(r["model_prompts"] or []) == 1
        and (r["decision"] != "edited" or isinstance(r["edited_output"], str))
    ]
    assert len(data.items) == len(used)
    ours = [r for r in decided if r["endpoint"] == f"apps.{RECIPE}"]
    assert sum(data.skipped.values()) == len(ours) - len(used)
    seen = {(r["model_prompts"][0], r["output"]) for r in used}  # (prompt, what the model wrote)
    released = {  # (prompt, what a reviewer let out: approved as it was, or edited)
        (r["model_prompts"][0], r["edited_output"] if r["decision"] == "edited" else r["output"])
        for r in used
        if r["decision"] != "rejected"
    }
    for kind, columns in COLUMNS.items():
        got = getattr(data, kind)
        assert all(tuple(row) == columns for row in got)  # TRL's column names, in its order
        assert len({json.dumps(row, sort_keys=True) for row in got}) == len(got)  # de-duplicated
    assert {(r["prompt"], r["completion"]) for r in data.sft} == released
    for pair in data.dpo:  # an edit: the reviewer's version chosen over the model's own
        assert pair["chosen"] != pair["rejected"]
        assert (pair["prompt"], pair["chosen"]) in released and (pair["prompt"], pair["rejected"]) in seen
    for label in data.kto:
        assert ((label["prompt"], label["completion"]) in released) or not label["label"]
        assert label["label"] or (label["prompt"], label["completion"]) in seen


def test_a_homes_decisions_become_files_atomically(tmp_path):
    home = tmp_path / "home"
    seed(home, 9)
    done = genlab_cli("tune", "data", "--recipe", RECIPE, "--min-decisions", "6", "--json", home=home)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["counts"] == {"decisions": 9, "sft": 6, "dpo": 3, "kto": 12}
    directory = Path(out["path"])
    assert directory == Settings(home=home).datasets_dir / "tune" / RECIPE
    assert sorted(p.name for p in directory.iterdir()) == [
        "dpo.jsonl",
        "kto.jsonl",
        "manifest.json",
        "sft.jsonl",
    ]
    pairs = [json.loads(line) for line in (directory / "dpo.jsonl").read_text().splitlines()]
    assert pairs[0] == {"prompt": prompt(1), "chosen": EDITED, "rejected": "meh product 1"}
    assert len(json.loads((directory / "manifest.json").read_text())["items_sha256"]) == 9
    assert out["preview"]["sft"] and not [p for p in home.rglob(".*tmp*")]  # nothing half-written left
    dry = genlab_cli("tune", "data", "--recipe", RECIPE, "--min-decisions", "6", "--dry-run", home=home)
    assert dry.returncode == 0 and "nothing written" in dry.stdout and "6 SFT rows" in dry.stdout


def test_too_few_or_no_decisions_say_how_many_are_needed(tmp_path):
    home = tmp_path / "home"
    empty = genlab_cli("tune", "data", "--recipe", RECIPE, home=home)
    assert_clean_error(empty, "no usable review decisions", RECIPE)
    seed(home, 4)  # 3 approved or edited
    few = genlab_cli("tune", "data", "--recipe", RECIPE, home=home)
    assert_clean_error(few, "3 approved or edited", "at least 8", "5 more")
    assert not (Settings(home=home).datasets_dir / "tune").exists()  # refused: nothing written
    lora = genlab_cli("tune", "lora", "--recipe", RECIPE, home=home)
    assert_clean_error(lora, "at least 8")
    unknown = genlab_cli("tune", "data", "--recipe", "no-such-recipe", home=home)
    assert_clean_error(unknown, "no recipe named")
    notes = genlab_cli("tune", "data", "--recipe", "clinical-summary", home=home)  # its notes name patients
    assert_clean_error(notes, "identifiers", "not made into training data")


def test_a_base_that_cannot_be_tuned_is_refused_before_anything_loads(tmp_path):
    home = tmp_path / "home"
    seed(home, 3)
    args = ("tune", "lora", "--recipe", RECIPE, "--min-decisions", "2")
    assert_clean_error(genlab_cli(*args, "--base", "no-such-model", home=home), "no-such-model")
    assert_clean_error(genlab_cli(*args, "--base", "piper-joe", home=home), "not a gguf model")
    assert_clean_error(genlab_cli(*args, "--base", "gemma-3-270m", home=home), "'gemma3'", "llama")


def test_prepare_refuses_without_writing(tmp_path):
    with pytest.raises(NotEnoughDecisions, match="at least 8"):
        prepare([], RECIPE, Settings(home=tmp_path))
    assert not (tmp_path / "datasets").exists()


def test_a_held_recipe_records_the_prompt_the_model_saw_redacted(registry, tmp_path):
    """A real recipe run held for review: its item holds the prompt the model was given, after the
    input policy redacted the e-mail address in the brief, and that prompt is what tune data uses."""
    from genlab.apps import get_recipe, run_recipe
    from genlab.pipeline import Pipeline
    from genlab.safety.policy import Policy
    from genlab.safety.review import ReviewQueue
    from genlab.storage import Store

    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    policy = Policy.parse(
        "name: held\ninput:\n  - scanner: pii\n    action: redact\nreview:\n  mode: always\n",
        source="held.yaml",
    )
    brief = "Announce the spring sale to jane.doe@example.com and everyone on the list"
    value = {"brief": brief, "profile": "northwind-bikes", "variants": 1}
    result = run_recipe(
        get_recipe(RECIPE),
        value,
        model="smollm2-135m-instruct",
        pipeline=Pipeline(registry, store=store),
        policy=policy,
    )
    assert result.held
    queue = ReviewQueue(store)
    item = queue.get(result.review["id"])
    (seen,) = item["request"]["model_prompts"]
    assert "Brief: Announce the spring sale" in seen and "jane.doe@example.com" not in seen
    queue.decide(item["id"], "cli:reviewer", "approve", "ok", identity="local")
    data = build(queue.export(), RECIPE)
    assert data.sft == [{"prompt": seen, "completion": item["artifact"]["text"]}]


def test_the_api_route_counts_writes_and_refuses_like_the_command(tmp_path):
    import httpx

    from genlab.registry import Registry
    from genlab.server.app import ServerConfig, create_app
    from genlab.storage import Store

    from ..server.conftest import LiveServer

    home = tmp_path / "home"
    seed(home, 9)
    settings = Settings(home=home)
    app = create_app(Registry(settings), Store(settings=settings), ServerConfig(open_access=True))
    with LiveServer(app) as live:
        url = f"{live.url}/v1/genlab/tune/data"
        few = httpx.post(url, json={"recipe": RECIPE}, timeout=60)
        assert few.status_code == 400 and "at least 8" in few.json()["error"]["message"]
        unknown = httpx.post(url, json={"recipe": "nope", "min_decisions": 1}, timeout=60)
        assert unknown.status_code == 400 and set(unknown.json()["error"]) == {
            "message",
            "type",
            "param",
            "code",
        }
        bad = httpx.post(url, json={"recipe": RECIPE, "min_decisions": 0}, timeout=60)
        assert bad.status_code in (400, 422)
        ok = httpx.post(url, json={"recipe": RECIPE, "min_decisions": 6, "save": False}, timeout=60)
        assert ok.status_code == 200 and ok.json()["counts"]["dpo"] == 3 and "path" not in ok.json()
        assert not (settings.datasets_dir / "tune").exists()
        saved = httpx.post(url, json={"recipe": RECIPE, "min_decisions": 6}, timeout=60).json()
        assert Path(saved["path"], "sft.jsonl").is_file()
