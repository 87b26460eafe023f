"""The industry recipes over HTTP, and their studio pages.

    GET  /v1/apps                                  the recipes, with each one's input JSON schema
    POST /v1/apps/{recipe}                         {"input": {...}, "model": ..., "seed": ...}
                                                   -> 200 the result, or 202 + review id when held;
                                                   with "stream": true, server-sent events: each
                                                   step ("app.progress"), then "app.result" (or
                                                   "app.held"), then [DONE]
    GET  /v1/apps/tutor/courses
    POST /v1/apps/tutor/learners                   {"learner": "ada", "course": "python-basics"}
    GET  /v1/apps/tutor/learners/{id}              mastery per skill, the path, the waiting question
    POST /v1/apps/tutor/learners/{id}/next         {"model": optional, writes questions once the bank is used}
    POST /v1/apps/tutor/learners/{id}/answer       {"choice": "B"}

A recipe runs under the stricter of the server's policy (``genlab serve --policy``) and its own:
the input and output rules of both, the review rule that holds more (healthcare: every result
held; a server that holds everything holds every recipe's result), through the model's bounded
queue, like any other generation. The tutor writes a question with the quiz recipe, through the
same stages.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from genlab.apps import RECIPES, get_recipe, run_recipe
from genlab.apps import education as tutor
from genlab.apps.recipe import check_caller
from genlab.server.deps import CallerDep, KeyDep, StateDep, owns
from genlab.server.errors import APIError
from genlab.server.responses import cancellable, held, held_body, sse
from genlab.server.templating import page

router = APIRouter(tags=["apps"])
TUTOR = {
    "object": "app",
    "name": "tutor",
    "industry": "education",
    "title": "Adaptive tutor",
    "summary": "Bayesian Knowledge Tracing per skill; the next question is chosen by mastery.",
    "policy": "education",
    "metric": "adaptive_learned_rate",
}


class AppRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    input: dict[str, Any] = Field(description="The recipe's input (its schema: GET /v1/apps).")
    model: str = "gemma-3-270m"
    seed: int = Field(default=0, ge=0, lt=2**32)
    stream: bool = Field(default=False, description="Send each step as it happens (server-sent events).")


class LearnerRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    learner: str = Field(min_length=1, max_length=100)
    course: str = "python-basics"


class NextRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str | None = None
    seed: int = Field(default=0, ge=0, lt=2**32)


class AnswerRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    choice: str = Field(min_length=1, max_length=1)


def recipe_or_404(name: str):
    if name not in RECIPES:
        raise APIError(
            404,
            f"no recipe named {name!r}; known: {', '.join(RECIPES)}, tutor",
            type_="not_found_error",
            code="not_found",
        )
    return get_recipe(name)


def describe_courses() -> list[dict[str, Any]]:
    out = []
    for name in tutor.shipped_courses():
        course = tutor.Course.load(name)
        skills = [
            {"id": s, "title": course.skills[s].title, "prerequisites": course.skills[s].prerequisites}
            for s in course.order()
        ]
        out.append({"id": name, "title": course.title, "skills": skills})
    return out


@router.get("/v1/apps")
async def list_apps(_: KeyDep) -> dict[str, Any]:
    return {"object": "list", "data": [*({"object": "app", **r.describe()} for r in RECIPES.values()), TUTOR]}


@router.post("/v1/apps/tutor/learners", status_code=201)
async def start(body: LearnerRequest, state: StateDep, key: KeyDep) -> dict[str, Any]:
    owner = key.id if key is not None else None
    return await run_in_threadpool(tutor.start_learner, state.store, body.learner, body.course, owner)


async def own_learner(learner: str, state: StateDep, key: KeyDep) -> str:
    """The learner, if the caller owns it (reviewers and admins excepted); otherwise a 404."""
    row = await run_in_threadpool(state.store.get_learner, learner)
    if row is None or not owns(state, key, row["owner_key_id"]):
        raise APIError(
            404,
            f"no learner {learner!r}; start one with a course first",
            type_="not_found_error",
            code="not_found",
        )
    return learner


LearnerDep = Annotated[str, Depends(own_learner)]


@router.get("/v1/apps/tutor/courses")
async def courses(_: KeyDep) -> dict[str, Any]:
    return {"object": "list", "data": await run_in_threadpool(describe_courses)}


@router.get("/v1/apps/tutor/learners/{learner}")
async def learner(learner: LearnerDep, state: StateDep) -> dict[str, Any]:
    view = await run_in_threadpool(tutor.learner_view, state.store, learner)
    return {**view, "history": await run_in_threadpool(state.store.learner_events, learner)}


@router.post("/v1/apps/tutor/learners/{learner}/next")
async def next_question(
    learner: LearnerDep, state: StateDep, who: CallerDep, body: NextRequest | None = None
) -> dict[str, Any]:
    """The next question; with ``model``, a new one is written through the pipeline once the bank
    is used up (a question the review rule holds is not asked: its review is in ``reviews``)."""
    body = body or NextRequest()
    write = None
    if body.model is not None:
        await run_in_threadpool(state.pipeline.check, body.model, ("text", "code"))  # a 4xx first
        write = tutor.QuizWriter(state.pipeline, body.model, seed=body.seed, caller=who)
    question = await run_in_threadpool(tutor.ask, state.store, learner, write)
    out: dict[str, Any] = {"done": question is None, "question": question}
    if write is not None and write.reviews:
        out["reviews"] = write.reviews
    return out


@router.post("/v1/apps/tutor/learners/{learner}/answer")
async def answer(learner: LearnerDep, body: AnswerRequest, state: StateDep) -> dict[str, Any]:
    return await run_in_threadpool(tutor.answer, state.store, learner, body.choice)


@router.post("/v1/apps/{name}")
async def run_app(name: str, body: AppRequest, http: Request, state: StateDep, who: CallerDep):
    recipe = recipe_or_404(name)
    value = recipe.parse_input(body.input)  # a 400 before the model loads or queues
    check_caller(recipe, value, who)  # a 403 before a stream's 200

    def work(progress=None, cancel=None):
        return run_recipe(
            recipe,
            value,
            pipeline=state.pipeline,
            model=body.model,
            seed=body.seed,
            caller=who,
            progress=progress,
            cancel=cancel,
        )

    if body.stream:
        await run_in_threadpool(state.pipeline.check, body.model, ("text", "code"))  # a 4xx before the 200
        return sse(progress_events(work))
    result = await cancellable(http, work)  # under the deadline; stopped when the client leaves
    return held(result.review) if result.held else result.to_dict()


async def progress_events(work) -> AsyncIterator[dict[str, Any]]:
    """Run ``work(progress)`` in a thread; yield each progress message as it comes, then the result.
    A client that leaves (the response is closed) sets ``cancel``: the recipe stops at its next token."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[str] = asyncio.Queue()
    cancel = threading.Event()
    task = asyncio.ensure_future(
        run_in_threadpool(work, lambda message: loop.call_soon_threadsafe(queue.put_nowait, message), cancel)
    )
    try:
        while True:
            getter = asyncio.ensure_future(queue.get())
            done, _ = await asyncio.wait({getter, task}, return_when=asyncio.FIRST_COMPLETED)
            if getter in done:
                yield {"object": "app.progress", "message": getter.result()}
                continue
            getter.cancel()
            while not queue.empty():
                yield {"object": "app.progress", "message": queue.get_nowait()}
            result = task.result()  # a GenlabError here is sent in-band by sse()
            if result.held:
                review = result.review
                yield {"object": "app.held", **held_body(review["id"], review["rule"], review["due_at"])}
            else:
                yield {"object": "app.result", **result.to_dict()}
            return
    finally:
        cancel.set()


# -- studio ----------------------------------------------------------------------------------------
@router.get("/studio/apps", response_class=HTMLResponse)
async def studio_apps(request: Request):
    return page(request, "apps.html", recipes=[r.describe() for r in RECIPES.values()])


@router.get("/studio/apps/tutor", response_class=HTMLResponse)
async def studio_tutor(request: Request):
    return page(request, "tutor.html")


@router.get("/studio/apps/{name}", response_class=HTMLResponse)
async def studio_app(request: Request, name: str):
    recipe = recipe_or_404(name)
    return page(
        request,
        "app.html",
        recipe=recipe.describe(),
        example=recipe.case_input(recipe.eval_cases()[0]),
        choices=recipe.choices(),
    )
