"""Recipes: industry applications over the LLM backends, with their own guardrails and review.

A recipe is a small, typed application around a text model (the embedded Gemma, a GGUF the user
added, or a remote OpenAI-compatible server):

    input (a pydantic schema)  -> check (clear errors for bad input)
      -> guardrails: the recipe's input policy, and the server's, on the fields a person wrote
         (may redact, e.g. PHI)
      -> prompt (few-shot: the embedded model is a base model) -> model
      -> parse + validate, retried a bounded number of times with fresh seeds
      -> guardrails: the output policy on what a person will read
      -> review: the policy's ``review:`` section may hold the result for a human (healthcare: always)
      -> a generation record, and the result (structured output, checks, findings)

Each recipe also names an evaluation set (shipped YAML) and scores a result against a case, so
``genlab apps eval`` measures any model on it the same way.
"""

from __future__ import annotations

import functools
import math
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar

import yaml
from pydantic import BaseModel, ValidationError

from genlab.core import (
    GenerationRequest,
    Generator,
    GenlabError,
    InvalidRequestError,
    SamplingParams,
    UnsupportedError,
)
from genlab.core.generator import Constrained
from genlab.core.io import sha256_bytes
from genlab.pipeline import LOCAL, Budget, Caller, Cancelled, Passage, Pipeline, produce
from genlab.registry import default_registry
from genlab.safety.guardrails import Vault
from genlab.safety.policy import POLICY_DIR, Policy
from genlab.safety.review import canonical

DATA = resources.files("genlab.apps") / "data"


class RecipeError(InvalidRequestError):
    """The recipe's input is unusable (code that does not parse, an empty passage ...)."""


class ParseError(Exception):
    """The model's output does not have the shape the recipe asked for (this attempt is retried)."""


@dataclass
class Check:
    """One validation of a result: a name a person understands, whether it passed, and why not."""

    name: str
    passed: bool
    detail: str = ""


@dataclass
class Finding:
    """A span of the result a reviewer should look at (an unsupported dose, a banned word ...)."""

    category: str
    start: int
    end: int
    value: str
    explanation: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "scanner": "recipe",
            "category": self.category,
            "start": self.start,
            "end": self.end,
            "text": self.value,
            "explanation": self.explanation,
            "score": 1.0,
            "where": "output",
            "action": "flag",
        }


@dataclass
class Outcome:
    """What a recipe's ``run`` returns: the structured output, the text a person reads, checks."""

    output: dict[str, Any]
    text: str
    checks: list[Check] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    attempts: int = 1


@dataclass
class RecipeResult:
    recipe: str
    model: str
    output: dict[str, Any]
    text: str
    checks: list[Check]
    findings: list[dict[str, Any]]
    attempts: int
    calls: int
    completion_tokens: int
    latency_s: float
    model_s: float
    guardrails: dict[str, Any]
    review: dict[str, Any] | None = None
    generation_id: str | None = None

    @property
    def ok(self) -> bool:
        return all(c.passed for c in self.checks)

    @property
    def held(self) -> bool:
        return self.review is not None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["ok"] = self.ok
        d["object"] = "app.result"
        return d


class Context:
    """What a recipe sees of the model: ``complete`` (counted, seeded, per-call settings), and
    ``draw`` for an image, which passes the pipeline's every stage as a generation of its own."""

    def __init__(
        self,
        generator: Generator,
        *,
        seed: int,
        vault: Vault | None = None,
        progress: Callable[[str], None] | None = None,
        deadline_s: float | None = None,
        drawer: Callable[[str, str, int], dict[str, Any]] | None = None,
        cancel: threading.Event | None = None,
    ) -> None:
        self.generator = generator
        self.drawer = drawer
        self.seed = seed
        self.vault = vault
        self.progress = progress or (lambda _message: None)
        self.deadline_s = deadline_s
        self._deadline = time.perf_counter() + deadline_s if deadline_s is not None else math.inf
        late = (
            f"the recipe ran past its deadline of {deadline_s:g} s; give it more time (--deadline) "
            "or ask for less (fewer items or attempts)"
            if deadline_s is not None
            else None
        )
        self.budget = Budget(deadline_s, cancel, model=generator.card.name, late=late)  # within each call too
        self.where = ""  # the step the recipe is on ("question 2 of 5"), for progress lines
        self.calls = 0
        self.completion_tokens = 0
        self.model_s = 0.0  # time inside the model, to tell the recipe's own cost from the model's
        self.prompts: list[str] = []  # every prompt sent, as the model saw it (after the input policy)

    @property
    def model(self) -> str:
        return self.generator.card.name

    @property
    def local(self) -> bool:
        """Whether grammars are honoured (llama.cpp and genlab's own transformers, through the
        constraint engine); a remote server may not know them."""
        return isinstance(self.generator, Constrained) and self.generator.supports_constraints

    def complete(
        self,
        prompt: str,
        *,
        max_tokens: int = 256,
        temperature: float = 0.2,
        stop: tuple[str, ...] = (),
        grammar: str | None = None,
        n: int = 1,
    ) -> list[str]:
        """``n`` continuations of ``prompt``. Each call uses the next seed, so a retry differs.

        Raises ``Cancelled`` once the recipe's deadline has passed or its client has left (checked
        before each call, and at each token of a model that streams)."""
        if time.perf_counter() > self._deadline:
            raise Cancelled(
                f"the recipe ran past its deadline of {self.deadline_s:g} s after {self.calls} model "
                "call(s); give it more time (--deadline) or ask for less (fewer items or attempts)"
            )
        params = SamplingParams(
            max_tokens=max_tokens,
            temperature=temperature,
            stop=stop[:8],
            grammar=grammar if self.local else None,
            repeat_penalty=1.05,
        )
        request = GenerationRequest(
            prompt=prompt, n=n, seed=(self.seed + 7919 * self.calls) % 2**32, params=params
        )
        self.calls += 1
        self.prompts.append(prompt)
        started = time.perf_counter()
        artifacts = produce(self.generator, request.validate(), self.budget)
        self.model_s += time.perf_counter() - started
        self.completion_tokens += sum(a.completion_tokens for a in artifacts)
        return [a.text for a in artifacts]

    def draw(self, model: str, prompt: str) -> dict[str, Any]:
        """An image of ``prompt`` by ``model``, through the pipeline (``draw_image``)."""
        if self.drawer is None:
            raise UnsupportedError("this recipe runs without a pipeline, so it cannot draw images")
        return self.drawer(model, prompt, self.seed)

    def step(self, where: str) -> None:
        """The recipe moved on to ``where`` ("question 2 of 5"); progress shows it."""
        self.where = where
        self.progress(where)

    def attempt(self, attempt: int, attempts: int) -> None:
        if attempts > 1:
            self.progress(f"{self.where + ', ' if self.where else ''}attempt {attempt} of {attempts}")


def retry(
    attempts: int,
    make: Callable[[int], Any],
    validate: Callable[[Any], list[Check]],
    ctx: Context | None = None,
) -> tuple[Any, list[Check], int]:
    """Bounded retries: ``make(attempt)`` builds one candidate (raising ``ParseError`` when the
    model's text has the wrong shape), ``validate`` checks it. The first candidate passing every
    check wins; otherwise the one with the fewest failed checks, its failures listed."""
    best: tuple[Any, list[Check]] | None = None
    last_error = "no attempt was made"
    for attempt in range(1, attempts + 1):
        if ctx is not None:
            ctx.attempt(attempt, attempts)
        try:
            candidate = make(attempt)
        except ParseError as e:
            last_error = str(e)
            continue
        checks = validate(candidate)
        failed = sum(not c.passed for c in checks)
        if best is None or failed < sum(not c.passed for c in best[1]):
            best = (candidate, checks)
        if failed == 0:
            return candidate, checks, attempt
    if best is None:
        return (
            None,
            [Check("well-formed output", False, f"{attempts} attempts; last: {last_error}")],
            attempts,
        )
    return best[0], best[1], attempts


class CodeNotAllowed(GenlabError):
    """The caller's role may not have its own code run (``genlab serve --code-roles``)."""

    http_status = 403
    error_type = "permission_error"
    code = "code_execution_not_allowed"


class Recipe(ABC):
    """One industry application. Subclasses set the class attributes and implement ``run``."""

    name: ClassVar[str]
    industry: ClassVar[str]
    title: ClassVar[str]
    summary: ClassVar[str]
    Input: ClassVar[type[BaseModel]]
    policy: ClassVar[str] = "default"  # the guardrail policy (and its review section) it runs under
    guarded: ClassVar[tuple[str, ...]] = ()  # input fields a person wrote, scanned by the input policy
    metric: ClassVar[str] = "score"  # the headline of its evaluation
    # its released text puts back what the input policy redacted (a SOAP note names the patient):
    # reviewers' decisions on it would teach the identifiers, so `genlab tune` refuses it
    restores_redactions: ClassVar[bool] = False

    def parse_input(self, data: dict[str, Any] | BaseModel) -> BaseModel:
        if isinstance(data, self.Input):
            value = data
        else:
            try:
                value = self.Input.model_validate(data)
            except ValidationError as e:
                err = e.errors()[0]
                # a union's branch names (``function-after[...]``, ``str``) are pydantic's, not the user's
                where = (
                    ".".join(str(p) for p in err["loc"] if isinstance(p, int) or p.isidentifier()) or "input"
                )
                message = err["msg"].removeprefix("Value error, ")
                raise RecipeError(f"{self.name}: {where}: {message}", param=where) from None
        self.check(value)
        return value

    def runs_submitted_code(self, value: BaseModel) -> bool:
        """Whether this input makes the recipe run code the caller sent (in the sandbox): declared by
        the recipe, enforced by ``run_recipe`` for every face (``Caller.may_run_code``)."""
        return False

    def check(self, value: BaseModel) -> None:
        """Semantic checks of the input (raise ``RecipeError``); the schema did the types."""
        return None  # a recipe whose schema says everything has nothing more to check

    @abstractmethod
    def run(self, value: BaseModel, ctx: Context) -> Outcome:
        """Prompt, parse, validate: the recipe itself."""

    # -- evaluation ------------------------------------------------------------------------------
    def eval_cases(self) -> list[dict[str, Any]]:
        return load_yaml(f"{self.industry}/{self.name}-eval.yaml")["cases"]

    def check_cases(self) -> list[dict[str, Any]]:
        """Known-wrong outputs from the eval set's ``check_cases``: each names the checks that
        must fail on it (the checks' own test set; `genlab apps eval` reports how many are caught)."""
        return load_yaml(f"{self.industry}/{self.name}-eval.yaml").get("check_cases", [])

    def choices(self) -> dict[str, list[str]]:
        """Input fields whose values come from a shipped set (the studio offers them as a list)."""
        return {}

    def judge(self, case: dict[str, Any]) -> list[Check]:
        """This recipe's checks on a given output (a check case), without the model."""
        raise UnsupportedError(f"{self.name} has no check cases: its eval set lists none")

    def case_input(self, case: dict[str, Any]) -> dict[str, Any]:
        """The recipe input of one evaluation case."""
        return dict(case["input"])

    def score(self, case: dict[str, Any], result: RecipeResult) -> dict[str, float]:
        """Metric values of one case (averaged over the set); ``self.metric`` is the headline."""
        return {self.metric: float(result.ok)}

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "industry": self.industry,
            "title": self.title,
            "summary": self.summary,
            "policy": self.policy,
            "metric": self.metric,
            "input_schema": self.Input.model_json_schema(),
        }


def load_yaml(relative: str) -> dict[str, Any]:
    with resources.as_file(DATA / relative) as path:
        return yaml.safe_load(Path(path).read_text("utf-8"))


def recipe_policy(server: Policy | None, own: Policy) -> Policy:
    """The policy a recipe runs under: the stricter of an operator's policy and the recipe's own
    (``Policy.stricter``: the rules of both, the review rule that holds more). The shipped
    ``default`` is no operator's choice: under it (and without a pipeline: evaluation, library use)
    each recipe keeps its own, the shipped default of its domain, whose rules are tuned to its
    inputs (the learned guardrail of ``default`` reads a clinical record as an injection)."""
    if server is None or server.source == str(POLICY_DIR / "default.yaml"):
        return own
    return server.stricter(own)


def draw_image(
    pipe: Pipeline, recipe: str, caller: Caller, model: str, prompt: str, seed: int
) -> dict[str, Any]:
    """An image a recipe asks for, as a generation of its own: the input policy on its prompt, the
    image model's queue, its record (the file in the pipeline's outputs) and review rule. What the
    result says of it: its record id and URL (never a path on the server), or its review if held."""
    request = GenerationRequest(prompt=prompt, model=model, seed=seed).validate()
    released = pipe.generate(request, endpoint=f"apps.{recipe}.image", modalities=("image",), caller=caller)
    if released.held:
        return {"model": model, "held": True, "review": released.review}
    artifact = released.artifacts[0]
    record_id = released.record_ids[0] if released.record_ids else None
    return {
        "model": model,
        "label": artifact.label,
        "sha256": artifact.sha256,
        "generation_id": record_id,
        "url": f"/v1/genlab/generations/{record_id}/content" if record_id else None,
    }


def check_caller(recipe: Recipe, value: BaseModel, caller: Caller) -> None:
    """Refuse a caller whose role may not have its own code run, where this input would run it."""
    if recipe.runs_submitted_code(value) and not caller.may_run_code:
        raise CodeNotAllowed(
            f"{recipe.name} would run code you sent; under this server's policy your key's role may not "
            "(genlab serve --code-roles)"
        )


def run_recipe(
    recipe: Recipe,
    data: dict[str, Any] | BaseModel,
    *,
    generator: Generator | str | None = None,
    model: str | None = None,
    pipeline: Pipeline | None = None,
    seed: int = 0,
    policy: str | Policy | None = None,
    caller: Caller = LOCAL,
    progress: Callable[[str], None] | None = None,
    deadline_s: float | None = None,
    cancel: threading.Event | None = None,
) -> RecipeResult:
    """A recipe through the pipeline's stages (``Pipeline.run`` of a ``RecipePassage``), under
    ``recipe_policy``: the stricter of the pipeline's policy (the server's ``--policy``) and its
    own (``policy`` replaces the recipe's).

    With a pipeline that has a store, the result is recorded and, where the review rule holds it,
    submitted to the review queue (``result.review``); without one (evaluation, library use)
    nothing is recorded or held. ``progress`` hears each step ("question 2 of 5, attempt 1 of 3");
    ``deadline_s`` (default: the pipeline's per-request deadline) bounds the recipe's model calls;
    ``cancel`` (set when the client leaves) stops them at the next token.
    """
    value = recipe.parse_input(data)
    check_caller(recipe, value, caller)
    own = policy if isinstance(policy, Policy) else Policy.load(policy or recipe.policy)
    pipe = pipeline or Pipeline(default_registry())
    pipe = pipe.with_policy(recipe_policy(pipeline.policy if pipeline is not None else None, own))
    passage = RecipePassage(
        recipe=recipe,
        value=value,
        model=generator or model or "gemma-3-270m",
        seed=seed,
        progress=progress,
        deadline_s=deadline_s if deadline_s is not None else pipe.deadline_s,
        endpoint=f"apps.{recipe.name}",
        caller=caller,
        raw=value.model_dump(mode="json"),  # what the user sent: the record a reviewer checks against
        cancel=cancel,
    )
    result = pipe.run(passage).result
    result.generation_id = passage.record_ids[0] if passage.record_ids else None
    result.review = passage.review
    return result


@dataclass(eq=False, kw_only=True)
class RecipePassage(Passage):
    """A recipe's way through the stages: the input policy on the fields a person wrote (redactions
    in the vault the recipe restores from), the recipe's calls as the work, the output policy on its
    text and on every string inside its structured output."""

    recipe: Recipe
    value: BaseModel
    model: Generator | str
    seed: int = 0
    progress: Callable[[str], None] | None = None
    deadline_s: float | None = None
    ctx: Context | None = field(default=None, init=False)
    outcome: Outcome | None = field(default=None, init=False)
    result: RecipeResult | None = field(default=None, init=False)

    def check(self, pipe: Pipeline) -> Generator:
        return pipe.check(self.model, ("text", "code"))

    def input(self, pipe: Pipeline) -> None:
        fields = {name: getattr(self.value, name) for name in self.recipe.guarded}
        self.value = self.value.model_copy(update=self.gate.input_fields(fields, self.recipe.name))

    def generate(self, pipe: Pipeline) -> None:  # the recipe's calls, retries and checks
        self.ctx = Context(
            self.generator,
            seed=self.seed,
            vault=self.gate.vault,
            progress=self.progress,
            deadline_s=self.deadline_s,
            drawer=functools.partial(draw_image, pipe, self.recipe.name, self.caller),
            cancel=self.cancel,
        )
        self.outcome = self.recipe.run(self.value, self.ctx)

    def output(self, pipe: Pipeline) -> None:
        outcome, gate, ctx = self.outcome, self.gate, self.ctx
        text, blocked = gate.output_text(outcome.text)
        output = gate.output_tree(outcome.output)
        if blocked:
            outcome.checks.append(Check("output guardrails", False, "blocked by the output policy"))
            output = {}
        gate.flags.findings += [f.to_dict() for f in outcome.findings]
        if outcome.findings:
            gate.flags.flagged_by.append("recipe")
        self.result = RecipeResult(
            recipe=self.recipe.name,
            model=self.generator.card.name,
            output=output,
            text=text,
            checks=outcome.checks,
            findings=gate.flags.findings,
            attempts=outcome.attempts,
            calls=ctx.calls,
            completion_tokens=ctx.completion_tokens,
            latency_s=round(time.perf_counter() - self.started, 3),
            model_s=round(ctx.model_s, 3),
            guardrails={
                "policy": pipe.policy.name,
                "redactions": len(gate.vault),
                "decision": "flag" if gate.flags.flagged_by else "allow",
            },
        )

    def provenance(self, pipe: Pipeline) -> None:
        released = {"output": self.result.output, "text": self.result.text}
        self.outputs = [
            {
                "output_text": self.result.text,
                "artifact_sha256": sha256_bytes(canonical(released)),  # of what is released
                "completion_tokens": self.ctx.completion_tokens,
            }
        ]

    def respond(self, record_ids: list[str]) -> dict[str, Any]:
        return {**self.result.to_dict(), "generation_id": record_ids[0]}

    def recorded_request(self) -> dict[str, Any]:
        """What the user sent, and the distinct prompts the model was given (redacted as the input
        policy left them): what `genlab tune data` trains on, the prompt exactly as the model saw it."""
        request = dict(self.raw or {})
        if self.ctx is not None and self.ctx.prompts:
            request["model_prompts"] = list(dict.fromkeys(self.ctx.prompts))
        return request
