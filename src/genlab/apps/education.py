"""Education: quizzes from a passage, and an adaptive tutor driven by Bayesian Knowledge Tracing.

Quiz questions are multiple choice with an answer key. Each is checked for shape (a question, four
distinct options, one key) and for *support*: the keyed answer must be stated in the passage (its
content words found in one sentence that the question is about), and no distractor may be stated
in that same sentence (which would make the question ambiguous).

The tutor keeps, per learner and skill, the probability that the skill is mastered, updated by
Bayesian Knowledge Tracing (Corbett & Anderson, "Knowledge tracing: Modeling the acquisition of
procedural knowledge", UMUAI 1995). With P(L) the mastery before an answer, slip S, guess G and
learning rate T:

    P(L | correct) = P(L)(1 - S) / (P(L)(1 - S) + (1 - P(L)) G)
    P(L | wrong)   = P(L) S / (P(L) S + (1 - P(L))(1 - G))
    P(L') = P(L | answer) + (1 - P(L | answer)) T          (the chance to learn from this step)

The next question comes from the ready skill (every prerequisite mastered) with the lowest mastery,
so each learner walks their own path through the course's prerequisite graph.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from genlab.apps.recipe import (
    Check,
    Context,
    Outcome,
    ParseError,
    Recipe,
    RecipeError,
    RecipeResult,
    load_yaml,
    retry,
    run_recipe,
)
from genlab.pipeline import LOCAL, Caller, Pipeline

LETTERS = "ABCD"
STOPWORDS = frozenset(
    [
        "a",
        "an",
        "the",
        "of",
        "to",
        "in",
        "on",
        "at",
        "by",
        "for",
        "with",
        "from",
        "and",
        "or",
        "but",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "being",
        "it",
        "its",
        "this",
        "that",
        "these",
        "those",
        "as",
        "which",
        "who",
        "whom",
        "whose",
        "what",
        "when",
        "where",
        "why",
        "how",
        "do",
        "does",
        "did",
        "not",
        "no",
        "can",
        "could",
        "would",
        "should",
        "may",
        "might",
        "will",
        "shall",
        "has",
        "have",
        "had",
        "than",
        "then",
        "there",
        "their",
        "they",
        "them",
        "he",
        "she",
        "his",
        "her",
        "we",
        "our",
        "you",
        "your",
        "i",
        "me",
        "my",
        "into",
        "about",
        "over",
        "under",
        "after",
        "before",
        "between",
        "during",
        "each",
        "other",
        "some",
        "such",
        "only",
        "also",
        "very",
        "more",
        "most",
        "many",
        "much",
        "so",
        "if",
        "any",
        "all",
        "one",
        "two",
    ]
)


def content_sequence(text: str) -> list[str]:
    """Lower-case words that carry meaning, in order (stopwords dropped, a plural -s folded)."""
    words = re.findall(r"[a-z0-9]+(?:\.[0-9]+)?", text.lower())
    folded = (w[:-1] if len(w) > 3 and w.endswith("s") and not w.endswith("ss") else w for w in words)
    return [w for w in folded if w not in STOPWORDS]


def content_words(text: str) -> set[str]:
    return set(content_sequence(text))


def stated(option: str, sentence: str) -> bool:
    """The option's content words occur in the sentence as one run ("North Sea" is not stated by
    "flows north ... the Mediterranean Sea"; "flows north" is)."""
    needle, hay = content_sequence(option), content_sequence(sentence)
    return bool(needle) and any(hay[i : i + len(needle)] == needle for i in range(len(hay) - len(needle) + 1))


def sentences(passage: str) -> list[str]:
    return [s.strip() for s in re.split(r"(?<=[.!?])\s+|\n{2,}", passage) if s.strip()]


# -- quiz -------------------------------------------------------------------------------------------
@dataclass
class Question:
    question: str
    options: list[str]
    answer: str  # "A" .. "D"
    evidence: str = ""  # the passage sentence that supports the answer
    attempts: int = 1
    checks: list[dict[str, Any]] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return all(c["passed"] for c in self.checks)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "valid": self.valid}


QUESTION = re.compile(
    r"^\s*(?P<q>[^\n]+?\?)\s*\n\s*A\)\s*(?P<a>[^\n]+)\n\s*B\)\s*(?P<b>[^\n]+)\n\s*C\)\s*(?P<c>[^\n]+)\n"
    r"\s*D\)\s*(?P<d>[^\n]+)\n\s*Answer:\s*(?P<key>[ABCD])\b"
)
# One question in the shape QUESTION parses; llama.cpp samples only strings this grammar accepts.
# (Bounded lengths keep a small model from running on; unbounded ones measured no faster, and worse.)
QUESTION_GRAMMAR = r"""
root ::= question "\n"
question ::= qtext "?\nA) " opt "\nB) " opt "\nC) " opt "\nD) " opt "\nAnswer: " [ABCD]
qtext ::= [A-Z] [^\n?]{8,160}
opt ::= [^\n] [^\n]{0,90}
"""

FEW_SHOT_QUIZ = """Passage: The Nile is the longest river in Africa. It flows north for about 6,650 kilometres and
empties into the Mediterranean Sea. Its water made farming possible in ancient Egypt.

Question 1: Into which sea does the Nile empty?
A) The Red Sea
B) The Mediterranean Sea
C) The Black Sea
D) The Arabian Sea
Answer: B

Question 2: About how long is the Nile?
A) 1,200 kilometres
B) 3,400 kilometres
C) 6,650 kilometres
D) 9,800 kilometres
Answer: C

Question 3: What did the Nile's water make possible in ancient Egypt?
A) Mining
B) Farming
C) Shipbuilding
D) Writing
Answer: B

"""


def parse_question(text: str) -> Question:
    m = QUESTION.match(text)
    if not m:
        raise ParseError("the model's question is not in the shape question / A) / B) / C) / D) / Answer:")
    return Question(m["q"].strip(), [m[k].strip() for k in "abcd"], m["key"])


def support(option: str, sentence: str) -> float:
    """Share of the option's content words found in the sentence (numbers must match exactly)."""
    words = content_words(option)
    return len(words & content_words(sentence)) / len(words) if words else 0.0


def check_question(q: Question, passage: str, previous: list[Question] = ()) -> list[Check]:
    """Shape and support checks of one question against its passage."""
    options = [o.lower().strip(" .") for o in q.options]
    parts = sentences(passage)
    answer = q.options[LETTERS.index(q.answer)]
    scored = sorted(
        ((support(answer, s), len(content_words(q.question) & content_words(s)), s) for s in parts),
        reverse=True,
    )
    best, overlap, evidence = scored[0] if scored else (0.0, 0, "")
    q.evidence = evidence
    rivals = [
        o for o, letter in zip(q.options, LETTERS, strict=True) if letter != q.answer and stated(o, evidence)
    ]
    about = len(content_words(q.question) & content_words(passage))
    repeated = any(content_words(p.question) == content_words(q.question) for p in previous)
    checks = [
        Check(
            "four distinct options",
            len(set(options)) == 4,
            "" if len(set(options)) == 4 else "options repeat",
        ),
        Check(
            "question is about the passage",
            about >= 1 and not repeated,
            "asked already" if repeated else ("" if about else "shares no content word with the passage"),
        ),
        Check(
            "answer supported by the passage",
            best >= 0.6 and (overlap >= 1 or best >= 0.999),
            f"best support {best:.2f}" + ("" if overlap else ", in a sentence the question is not about"),
        ),
        Check(
            "one defensible answer",
            not rivals,
            f"also stated in the passage: {'; '.join(rivals)}" if rivals else "",
        ),
        Check(
            "answer is not 'all/none of the above'",
            not re.search(r"(?i)\b(all|none) of the above\b", answer),
            "",
        ),
    ]
    q.checks = [asdict(c) for c in checks]
    return checks


class QuizInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    passage: str = Field(min_length=1, max_length=20_000, description="The text the quiz is about.")
    questions: int = Field(default=3, ge=1, le=10, description="How many questions to write.")
    attempts: int = Field(default=3, ge=1, le=8, description="Tries per question before giving the best one.")


class QuizGeneration(Recipe):
    name = "quiz"
    industry = "education"
    title = "Quiz generation"
    summary = (
        "Multiple-choice questions with an answer key from a passage; each checked for shape and "
        "for an answer the passage supports."
    )
    Input = QuizInput
    policy = "education"
    guarded = ("passage",)
    metric = "valid_rate"

    def check(self, value: QuizInput) -> None:
        if len(content_words(value.passage)) < 5:
            raise RecipeError("the passage is empty or too short to ask about; give a paragraph or more")

    def run(self, value: QuizInput, ctx: Context) -> Outcome:
        questions = self.write(value.passage, value.questions, ctx, attempts=value.attempts)
        if ctx.vault is not None and len(ctx.vault):  # names the policy hid from the model come back
            for q in questions:
                q.question, q.evidence = ctx.vault.restore(q.question), ctx.vault.restore(q.evidence)
                q.options = [ctx.vault.restore(o) for o in q.options]
        valid = sum(q.valid for q in questions)
        text = "\n\n".join(
            f"{i}. {q.question}\n"
            + "\n".join(f"   {LETTERS[j]}) {o}" for j, o in enumerate(q.options))
            + f"\n   Answer: {q.answer}"
            for i, q in enumerate(questions, 1)
        )
        checks = [
            Check("every question valid", valid == len(questions), f"{valid} of {len(questions)} valid")
        ]
        return Outcome(
            {"questions": [q.to_dict() for q in questions], "valid_rate": valid / max(len(questions), 1)},
            text,
            checks,
            attempts=max((q.attempts for q in questions), default=1),
        )

    @staticmethod
    def write(passage: str, count: int, ctx: Context, *, attempts: int = 3) -> list[Question]:
        """``count`` checked questions (each the best of ``attempts``); earlier ones are in the prompt."""
        out: list[Question] = []
        for i in range(count):
            asked = "".join(
                f"Question {k}: {q.question}\n"
                + "".join(f"{LETTERS[j]}) {o}\n" for j, o in enumerate(q.options))
                + f"Answer: {q.answer}\n\n"
                for k, q in enumerate(out, 1)
            )
            prompt = f"{FEW_SHOT_QUIZ}Passage: {passage.strip()}\n\n{asked}Question {i + 1}:"
            ctx.step(f"question {i + 1} of {count}")

            def make(attempt: int, prompt: str = prompt) -> Question:
                text = ctx.complete(
                    prompt,
                    max_tokens=160,
                    temperature=0.3 if attempt == 1 else 0.8,
                    grammar=QUESTION_GRAMMAR,
                    stop=("\nQuestion", "\n\n"),
                )[0]
                return parse_question(text + "\n")

            q, _, tries = retry(
                attempts, make, lambda q, done=tuple(out): check_question(q, passage, list(done)), ctx
            )
            if q is not None:
                q.attempts = tries
                out.append(q)
        return out

    def score(self, case: dict[str, Any], result: RecipeResult) -> dict[str, float]:
        qs = result.output["questions"]
        shaped = sum(
            all(c["passed"] for c in q["checks"] if c["name"] == "four distinct options") for q in qs
        )
        supported = sum(
            any(c["name"] == "answer supported by the passage" and c["passed"] for c in q["checks"])
            for q in qs
        )
        n = max(case.get("questions", 3), 1)
        return {
            "valid_rate": sum(q["valid"] for q in qs) / n,
            "supported_rate": supported / n,
            "well_formed_rate": shaped / n,
        }


# -- the adaptive tutor ------------------------------------------------------------------------------
@dataclass(frozen=True)
class BKT:
    """Bayesian Knowledge Tracing parameters of one skill."""

    p_init: float = 0.2  # P(L0): mastered before any practice
    p_learn: float = 0.15  # T: chance to learn the skill at each practice step
    p_slip: float = 0.1  # S: a master answers wrongly
    p_guess: float = 0.25  # G: a non-master answers rightly (four options: a quarter)

    def update(self, mastery: float, correct: bool) -> float:
        s, g = self.p_slip, self.p_guess
        if correct:  # P(L | correct) = P(L)(1-S) / (P(L)(1-S) + (1-P(L))G)
            posterior = mastery * (1 - s) / (mastery * (1 - s) + (1 - mastery) * g)
        else:  # P(L | wrong) = P(L)S / (P(L)S + (1-P(L))(1-G))
            posterior = mastery * s / (mastery * s + (1 - mastery) * (1 - g))
        return posterior + (1 - posterior) * self.p_learn  # P(L') = P(L|obs) + (1 - P(L|obs)) T

    def p_correct(self, mastery: float) -> float:
        """P(next answer right) = P(L)(1-S) + (1-P(L))G: what BKT predicts before an answer."""
        return mastery * (1 - self.p_slip) + (1 - mastery) * self.p_guess


@dataclass
class Skill:
    id: str
    title: str
    lesson: str
    prerequisites: list[str]
    items: list[dict[str, Any]]
    bkt: BKT


@dataclass
class Course:
    id: str
    title: str
    skills: dict[str, Skill]
    mastery_threshold: float = 0.95

    @classmethod
    def load(cls, name: str) -> Course:
        """A shipped course, by name (only those: a name is never a path)."""
        if name not in shipped_courses():
            raise RecipeError(f"no course named {name!r}; shipped: {', '.join(shipped_courses())}")
        return cls.parse(load_yaml(f"education/courses/{name}.yaml"))

    @classmethod
    def parse(cls, data: dict[str, Any]) -> Course:
        defaults = data.get("bkt", {})
        skills = {}
        for raw in data["skills"]:
            items = [
                {**item, "id": item.get("id") or f"{raw['id']}-{i}"}
                for i, item in enumerate(raw.get("items", []), 1)
            ]
            for item in items:
                if len(item["options"]) != 4 or item["answer"] not in LETTERS:
                    raise RecipeError(f"course item {item['id']}: four options and an answer A-D are needed")
            skills[raw["id"]] = Skill(
                raw["id"],
                raw["title"],
                raw.get("lesson", ""),
                raw.get("prerequisites", []),
                items,
                BKT(**{**defaults, **raw.get("bkt", {})}),
            )
        for s in skills.values():
            missing = [p for p in s.prerequisites if p not in skills]
            if missing:
                raise RecipeError(f"skill {s.id!r} needs unknown prerequisite(s) {', '.join(missing)}")
        course = cls(data["id"], data["title"], skills, float(data.get("mastery_threshold", 0.95)))
        course.order()  # refuses cycles
        return course

    def order(self) -> list[str]:
        """Skills in an order where each comes after its prerequisites (Kahn's algorithm)."""
        indegree = {s: len(k.prerequisites) for s, k in self.skills.items()}
        ready = [s for s in self.skills if indegree[s] == 0]
        out = []
        while ready:
            s = ready.pop(0)
            out.append(s)
            for t, k in self.skills.items():
                if s in k.prerequisites:
                    indegree[t] -= 1
                    if indegree[t] == 0:
                        ready.append(t)
        if len(out) != len(self.skills):
            raise RecipeError(
                f"course {self.id!r} has a prerequisite cycle among {', '.join(set(self.skills) - set(out))}"
            )
        return out


def shipped_courses() -> list[str]:
    from genlab.apps.recipe import DATA

    return sorted(
        p.name.removesuffix(".yaml")
        for p in (DATA / "education" / "courses").iterdir()
        if p.name.endswith(".yaml")
    )


class Tutor:
    """Chooses the next question from a learner's state and updates it with each answer.

    A learner's state is plain JSON (stored by ``Store.learners``): mastery per skill, the items
    asked, the question waiting for an answer, extra items the model wrote, and the history.
    """

    def __init__(self, course: Course) -> None:
        self.course = course

    def new_state(self) -> dict[str, Any]:
        return {
            "course": self.course.id,
            "mastery": {s: k.bkt.p_init for s, k in self.course.skills.items()},
            "asked": {},
            "pending": None,
            "extra_items": {},
            "answers": 0,
            "correct": 0,
        }

    def mastered(self, state: dict[str, Any], skill: str) -> bool:
        return state["mastery"][skill] >= self.course.mastery_threshold

    def path(self, state: dict[str, Any]) -> list[dict[str, Any]]:
        """The course as this learner sees it: each skill mastered, ready or locked, with mastery."""
        out = []
        for s in self.course.order():
            skill = self.course.skills[s]
            status = (
                "mastered"
                if self.mastered(state, s)
                else "ready"
                if all(self.mastered(state, p) for p in skill.prerequisites)
                else "locked"
            )
            out.append(
                {
                    "skill": s,
                    "title": skill.title,
                    "mastery": round(state["mastery"][s], 4),
                    "status": status,
                    "prerequisites": skill.prerequisites,
                }
            )
        return out

    def next_skill(self, state: dict[str, Any]) -> str | None:
        ready = [p for p in self.path(state) if p["status"] == "ready"]
        return min(ready, key=lambda p: p["mastery"])["skill"] if ready else None

    def items(self, state: dict[str, Any], skill: str) -> list[dict[str, Any]]:
        return self.course.skills[skill].items + state["extra_items"].get(skill, [])

    def next_question(self, state: dict[str, Any], write: QuizWriter | None = None) -> dict[str, Any] | None:
        """The question to ask now (its key kept in the state, not shown), or None when all is mastered.

        Items not yet asked come first, least recently asked after. When a skill's bank is used up
        and a writer is given, the quiz recipe writes a new checked question from the skill's
        lesson, through the pipeline (``QuizWriter``).
        """
        if state["pending"] is not None:
            return self.public(self._item(state, state["pending"]))
        skill = self.next_skill(state)
        if skill is None:
            return None
        items = self.items(state, skill)
        fresh = [i for i in items if i["id"] not in state["asked"]]
        if not fresh and write is not None and self.course.skills[skill].lesson:
            for q in write(self.course.skills[skill].lesson):
                n = len(state["extra_items"].get(skill, [])) + 1
                item = {
                    "id": f"{skill}-gen{n}",
                    "question": q["question"],
                    "options": q["options"],
                    "answer": q["answer"],
                    "explanation": q["evidence"],
                    "generated_by": q["model"],
                }
                state["extra_items"].setdefault(skill, []).append(item)
                fresh.append(item)
        item = fresh[0] if fresh else min(items, key=lambda i: state["asked"].get(i["id"], 0))
        state["pending"] = item["id"]
        return self.public({**item, "skill": skill})

    def _item(self, state: dict[str, Any], item_id: str) -> dict[str, Any]:
        for skill in self.course.skills:
            for item in self.items(state, skill):
                if item["id"] == item_id:
                    return {**item, "skill": skill}
        raise RecipeError(f"no item {item_id!r} in course {self.course.id!r}")

    @staticmethod
    def public(item: dict[str, Any]) -> dict[str, Any]:
        return {k: item[k] for k in ("id", "skill", "question", "options") if k in item}

    def answer(self, state: dict[str, Any], choice: str) -> dict[str, Any]:
        """Grade the pending question and update the skill's mastery by BKT."""
        if state["pending"] is None:
            raise RecipeError("no question is waiting for an answer; ask for the next question first")
        choice = choice.strip().upper()
        if choice not in LETTERS:
            raise RecipeError(f"answer with a letter A-D, not {choice!r}")
        item = self._item(state, state["pending"])
        skill = self.course.skills[item["skill"]]
        correct = choice == item["answer"]
        before = state["mastery"][skill.id]
        after = skill.bkt.update(before, correct)
        state["mastery"][skill.id] = after
        state["answers"] += 1
        state["correct"] += correct
        state["asked"][item["id"]] = state["answers"]
        state["pending"] = None
        return {
            "item": item["id"],
            "skill": skill.id,
            "correct": correct,
            "answer": item["answer"],
            "explanation": item.get("explanation") or _evidence(item, skill.lesson),
            "mastery_before": round(before, 4),
            "mastery": round(after, 4),
            "mastered": after >= self.course.mastery_threshold,
            "predicted_p_correct": round(skill.bkt.p_correct(before), 4),
        }


def _evidence(item: dict[str, Any], lesson: str) -> str:
    answer = item["options"][LETTERS.index(item["answer"])]
    return max(sentences(lesson), key=lambda s: support(answer, s), default="") if lesson else ""


def simulate(
    course: Course, *, learners: int = 200, seed: int = 0, max_questions: int = 400
) -> dict[str, Any]:
    """Tutor evaluation on simulated learners whose hidden knowledge follows the course's BKT model.

    Compares the adaptive tutor against a fixed curriculum (every skill in course order, the same
    number of questions per skill as the adaptive tutor asked on average), on: questions asked,
    the share of skills truly learned at the end, and BKT's prediction of each answer (AUC).
    """
    from sklearn.metrics import roc_auc_score

    rng = random.Random(seed)
    tutor = Tutor(course)
    order = course.order()
    asked, learned, predictions, outcomes, finished = [], [], [], [], 0
    for _ in range(learners):
        knows = {s: rng.random() < k.bkt.p_init for s, k in course.skills.items()}
        state = tutor.new_state()
        n = 0
        while n < max_questions:
            item = tutor.next_question(state)
            if item is None:
                finished += 1
                break
            bkt = course.skills[item["skill"]].bkt
            # a learner can only learn a skill whose prerequisites they know
            correct = rng.random() < ((1 - bkt.p_slip) if knows[item["skill"]] else bkt.p_guess)
            predictions.append(bkt.p_correct(state["mastery"][item["skill"]]))
            outcomes.append(int(correct))
            pending = tutor._item(state, state["pending"])
            tutor.answer(
                state, pending["answer"] if correct else LETTERS[(LETTERS.index(pending["answer"]) + 1) % 4]
            )
            if not knows[item["skill"]] and all(knows[p] for p in course.skills[item["skill"]].prerequisites):
                knows[item["skill"]] = rng.random() < bkt.p_learn
            n += 1
        asked.append(n)
        learned.append(sum(knows.values()) / len(knows))
    per_skill = max(1, round(sum(asked) / len(asked) / len(order)))
    fixed_learned = []
    for _ in range(learners):  # the fixed curriculum: per_skill questions on each skill, in order
        knows = {s: rng.random() < k.bkt.p_init for s, k in course.skills.items()}
        for s in order:
            bkt = course.skills[s].bkt
            for _ in range(per_skill):
                if not knows[s] and all(knows[p] for p in course.skills[s].prerequisites):
                    knows[s] = rng.random() < bkt.p_learn
        fixed_learned.append(sum(knows.values()) / len(knows))
    return {
        "learners": learners,
        "skills": len(order),
        "adaptive_questions_mean": sum(asked) / len(asked),
        "adaptive_finished_rate": finished / learners,
        "adaptive_learned_rate": sum(learned) / len(learned),
        "fixed_questions_per_skill": per_skill,
        "fixed_learned_rate": sum(fixed_learned) / len(fixed_learned),
        "bkt_auc": float(roc_auc_score(outcomes, predictions)) if len(set(outcomes)) == 2 else float("nan"),
    }


# -- learners in the database (the CLI and the server share these) ----------------------------------
LEARNER_ID = re.compile(r"^[A-Za-z0-9_.@-]{1,100}$")


def _check_id(learner_id: str) -> str:
    if not LEARNER_ID.match(learner_id or ""):
        raise RecipeError(f"a learner id is 1-100 letters, digits or _.@- characters, not {learner_id!r}")
    return learner_id


def _learner(store, learner_id: str) -> tuple[dict[str, Any], Tutor]:
    row = store.get_learner(_check_id(learner_id))
    if row is None:
        raise LearnerNotFound(f"no learner {learner_id!r}; start one with a course first")
    return row, Tutor(Course.load(row["course"]))


class LearnerNotFound(RecipeError):
    exit_code = 3
    http_status = 404
    error_type = "not_found_error"


def start_learner(
    store, learner_id: str, course: str = "python-basics", owner_key_id: int | None = None
) -> dict[str, Any]:
    _check_id(learner_id)
    tutor = Tutor(Course.load(course))
    store.create_learner(learner_id, course, tutor.new_state(), owner_key_id)
    return learner_view(store, learner_id)


def learner_view(store, learner_id: str) -> dict[str, Any]:
    row, tutor = _learner(store, learner_id)
    state = row["state"]
    pending = tutor.public(tutor._item(state, state["pending"])) if state["pending"] else None
    return {
        "learner": learner_id,
        "course": row["course"],
        "title": tutor.course.title,
        "path": tutor.path(state),
        "answers": state["answers"],
        "correct": state["correct"],
        "pending": pending,
        "done": tutor.next_skill(state) is None,
        "version": row["version"],
    }


class QuizWriter:
    """Writes the tutor's new questions with the quiz recipe, through every stage of the pipeline
    (``run_recipe``: the input policy on the lesson, the model's queue, the output policy, the
    record, and the review rule of the server's policy and the education one). A question the
    review rule holds is not asked: ``reviews`` lists its review, and the tutor asks from its bank."""

    def __init__(self, pipeline: Pipeline, model: str, *, seed: int = 0, caller: Caller = LOCAL) -> None:
        self.pipeline, self.model, self.seed, self.caller = pipeline, model, seed, caller
        self.reviews: list[dict[str, Any]] = []

    def __call__(self, lesson: str) -> list[dict[str, Any]]:
        result = run_recipe(
            QuizGeneration(),
            {"passage": lesson, "questions": 1},
            pipeline=self.pipeline,
            model=self.model,
            seed=self.seed,
            caller=self.caller,
        )
        if result.held:
            self.reviews.append(result.review)
            return []
        return [{**q, "model": result.model} for q in result.output.get("questions", []) if q["valid"]]


def ask(store, learner_id: str, write: QuizWriter | None = None) -> dict[str, Any] | None:
    """The learner's next question (the same one until it is answered); None once all is mastered."""
    row, tutor = _learner(store, learner_id)
    state = row["state"]
    before = json.dumps(state, sort_keys=True)
    question = tutor.next_question(state, write)
    if json.dumps(state, sort_keys=True) != before:  # a new pending question (or new generated items)
        store.save_learner(learner_id, state, row["version"])
    return question


def answer(store, learner_id: str, choice: str) -> dict[str, Any]:
    row, tutor = _learner(store, learner_id)
    state = row["state"]
    feedback = tutor.answer(state, choice)
    event = {
        "skill": feedback["skill"],
        "item_id": feedback["item"],
        "correct": feedback["correct"],
        "mastery_before": feedback["mastery_before"],
        "mastery_after": feedback["mastery"],
    }
    store.save_learner(learner_id, state, row["version"], event)
    return {**feedback, "next_skill": tutor.next_skill(state), "done": tutor.next_skill(state) is None}
