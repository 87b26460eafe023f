"""Education: quiz checks, Bayesian Knowledge Tracing, the tutor's choices and its stored learners."""

import pytest

from genlab.apps import education as edu
from genlab.apps import get_recipe, run_recipe
from genlab.apps.education import BKT, Course, Question, Tutor, check_question, simulate
from genlab.apps.recipe import RecipeError
from genlab.storage import Store
from genlab.storage.db import LearnerConflict

PASSAGE = (
    "The Nile is the longest river in Africa. It flows north for about 6,650 kilometres and empties into "
    "the Mediterranean Sea. Its water made farming possible in ancient Egypt."
)


def _passed(q: Question) -> dict[str, bool]:
    return {c.name: c.passed for c in check_question(q, PASSAGE)}


def test_a_supported_question_passes_every_check():
    q = Question(
        "Into which sea does the Nile empty?",
        ["The Red Sea", "The Mediterranean Sea", "The Black Sea", "The North Sea"],
        "B",
    )
    assert all(_passed(q).values())
    assert "Mediterranean" in q.evidence


def test_unsupported_ambiguous_and_malformed_questions_fail():
    wrong_key = Question(
        "Into which sea does the Nile empty?",
        ["The Red Sea", "The Mediterranean Sea", "The Black Sea", "Lake Victoria"],
        "A",
    )
    assert not _passed(wrong_key)["answer supported by the passage"]
    ambiguous = Question(
        "What does the Nile do?",
        ["Flows north", "Empties into the Mediterranean Sea", "Freezes", "Dries up"],
        "A",
    )
    assert not _passed(ambiguous)["one defensible answer"]
    repeated = Question("Where does the Nile flow?", ["North", "north", "South", "East"], "A")
    assert not _passed(repeated)["four distinct options"]


def test_bkt_update_follows_the_equations():
    bkt = BKT(p_init=0.2, p_learn=0.15, p_slip=0.1, p_guess=0.25)
    right = 0.2 * 0.9 / (0.2 * 0.9 + 0.8 * 0.25)
    assert bkt.update(0.2, True) == pytest.approx(right + (1 - right) * 0.15)
    wrong = 0.2 * 0.1 / (0.2 * 0.1 + 0.8 * 0.75)
    assert bkt.update(0.2, False) == pytest.approx(wrong + (1 - wrong) * 0.15)
    assert bkt.p_correct(0.5) == pytest.approx(0.5 * 0.9 + 0.5 * 0.25)


def test_courses_refuse_cycles_and_unknown_prerequisites():
    item = {"question": "Q?", "options": ["a", "b", "c", "d"], "answer": "A"}
    cyclic = {
        "id": "c",
        "title": "C",
        "skills": [
            {"id": "a", "title": "A", "prerequisites": ["b"], "items": [item]},
            {"id": "b", "title": "B", "prerequisites": ["a"], "items": [item]},
        ],
    }
    with pytest.raises(RecipeError, match="cycle"):
        Course.parse(cyclic)
    with pytest.raises(RecipeError, match="unknown prerequisite"):
        Course.parse(
            {"id": "c", "title": "C", "skills": [{"id": "a", "title": "A", "prerequisites": ["zz"]}]}
        )
    with pytest.raises(RecipeError, match="no course named"):
        Course.load("no-such-course")


def test_the_tutor_follows_prerequisites_and_mastery():
    tutor = Tutor(Course.load("python-basics"))
    state = tutor.new_state()
    first = tutor.next_question(state)
    assert first["skill"] == "variables" and "answer" not in first
    assert tutor.next_question(state) == first  # the same question until it is answered
    assert {p["skill"]: p["status"] for p in tutor.path(state)}["types"] == "locked"
    while tutor.next_skill(state) == "variables":
        item = tutor._item(state, tutor.next_question(state)["id"])
        tutor.answer(state, item["answer"])
    assert tutor.mastered(state, "variables") and tutor.next_skill(state) == "types"
    item = tutor._item(state, tutor.next_question(state)["id"])
    feedback = tutor.answer(state, "ABCD"[("ABCD".index(item["answer"]) + 1) % 4])
    right = tutor.course.skills["types"].bkt.update(feedback["mastery_before"], True)
    assert (
        not feedback["correct"] and feedback["mastery"] < right
    )  # a wrong answer teaches less than a right one


def test_adaptive_tutoring_beats_a_fixed_curriculum_on_simulated_learners():
    result = simulate(Course.load("python-basics"), learners=150, seed=1)
    assert result["adaptive_learned_rate"] > result["fixed_learned_rate"]
    assert 0.5 < result["bkt_auc"] <= 1 and result["adaptive_finished_rate"] > 0.9


def test_learners_persist_and_two_answers_to_one_state_conflict(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    edu.start_learner(store, "ada")
    question = edu.ask(store, "ada")
    item = Tutor(Course.load("python-basics"))._item(store.get_learner("ada")["state"], question["id"])
    feedback = edu.answer(store, "ada", item["answer"])
    assert feedback["correct"] and feedback["mastery"] > feedback["mastery_before"]
    reopened = Store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    view = edu.learner_view(reopened, "ada")
    assert view["answers"] == 1 and view["correct"] == 1 and view["pending"] is None
    assert reopened.learner_events("ada")[0]["item"] == question["id"]
    row = reopened.get_learner("ada")
    reopened.save_learner("ada", row["state"], row["version"])
    with pytest.raises(LearnerConflict):
        reopened.save_learner("ada", row["state"], row["version"])  # a stale version changes nothing
    with pytest.raises(LearnerConflict, match="exists already"):
        edu.start_learner(reopened, "ada")
    with pytest.raises(RecipeError, match="no question is waiting"):
        edu.answer(reopened, "ada", "A")
    with pytest.raises(RecipeError, match="learner id"):
        edu.start_learner(reopened, "../etc")


def test_an_empty_passage_is_refused():
    with pytest.raises(RecipeError, match="passage is empty or too short"):
        get_recipe("quiz").parse_input({"passage": "   the   "})


def test_quiz_with_the_embedded_model_is_well_formed_and_checked(gemma):
    result = run_recipe(
        get_recipe("quiz"), {"passage": PASSAGE, "questions": 1, "attempts": 2}, generator=gemma, seed=4
    )
    [q] = result.output["questions"]
    assert len(q["options"]) == 4 and q["answer"] in "ABCD" and q["question"].endswith("?")
    assert {c["name"] for c in q["checks"]} >= {"four distinct options", "answer supported by the passage"}
    assert q["valid"] == all(c["passed"] for c in q["checks"])


def test_the_tutor_writes_questions_through_the_pipeline(gemma, registry, tmp_path):
    from genlab.pipeline import Pipeline
    from genlab.safety.policy import Policy

    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    writer = edu.QuizWriter(Pipeline(registry, store=store), "gemma-3-270m", seed=2)
    written = writer(PASSAGE)
    assert all(q["model"] == "gemma-3-270m" and q["valid"] for q in written) and not writer.reviews
    assert [r["endpoint"] for r in store.list_generations()] == ["apps.quiz"]  # recorded like any generation
    hold = Policy.parse("review:\n  mode: always\n", source="hold.yaml")
    held = edu.QuizWriter(Pipeline(registry, policy=hold, store=store), "gemma-3-270m", seed=2)
    assert held(PASSAGE) == [] and held.reviews[0]["rule"] == "always"  # held: not asked until approved
