"""The industry recipes over HTTP, and their studio pages.

    GET  /v1/apps                                  the recipes, with each one's input JSON schema
    POST /v1/apps/{recipe}                         {"input": {...}, "model": ..., "seed": ...}
                                                   -> 200 the result, or 202 + review id when held
    GET  /v1/apps/tutor/courses
    POST /v1/apps/tutor/learners                   {"learner": "ada", "course": "python-basics"}
    GET  /v1/apps/tutor/learners/{id}              mastery per skill, the path, the waiting question
    POST /v1/apps/tutor/learners/{id}/next         {"model": optional, writes questions once the bank is used}
    POST /v1/apps/tutor/learners/{id}/answer       {"choice": "B"}

A recipe runs under its own guardrail policy and review section (healthcare: every result held),
through the model's bounded queue, like any other generation.
"""

from __future__ import annotations

from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

import genlab
from genlab.server.errors import APIError
from genlab.server.review import WEBHOOK_HEADER, actor, held_body
from genlab.storage.db import KeyInfo


class AppRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    input: dict[str, Any] = Field(description="The recipe's input (its schema: GET /v1/apps).")
    model: str = "gemma-3-270m"
    seed: int = Field(default=0, ge=0, lt=2**32)


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


def install(app: FastAPI, state, auth, templates) -> None:
    from genlab.apps import RECIPES, get_recipe, run_recipe
    from genlab.apps import education as tutor

    def recipe_or_404(name: str):
        if name not in RECIPES:
            raise APIError(404, f"no recipe named {name!r}; known: {', '.join(RECIPES)}, tutor",
                           type_="not_found_error", code="not_found")  # fmt: skip
        return get_recipe(name)

    @app.get("/v1/apps")
    async def list_apps(_: KeyInfo | None = Depends(auth)) -> dict[str, Any]:
        data = [{"object": "app", **r.describe()} for r in RECIPES.values()]
        data.append({"object": "app", "name": "tutor", "industry": "education", "title": "Adaptive tutor",
                     "summary": "Bayesian Knowledge Tracing per skill; the next question is chosen by mastery.",
                     "policy": "education", "metric": "adaptive_learned_rate"})  # fmt: skip
        return {"object": "list", "data": data}

    @app.post("/v1/apps/tutor/learners", status_code=201)
    async def start(body: LearnerRequest, _: KeyInfo | None = Depends(auth)) -> dict[str, Any]:
        return await run_in_threadpool(tutor.start_learner, state.store, body.learner, body.course)

    @app.get("/v1/apps/tutor/courses")
    async def courses(_: KeyInfo | None = Depends(auth)) -> dict[str, Any]:
        def describe() -> list[dict[str, Any]]:
            out = []
            for name in tutor.shipped_courses():
                course = tutor.Course.load(name)
                out.append({"id": name, "title": course.title, "skills": [
                    {"id": s, "title": course.skills[s].title, "prerequisites": course.skills[s].prerequisites}
                    for s in course.order()]})  # fmt: skip
            return out

        return {"object": "list", "data": await run_in_threadpool(describe)}

    @app.get("/v1/apps/tutor/learners/{learner}")
    async def learner(learner: str, _: KeyInfo | None = Depends(auth)) -> dict[str, Any]:
        view = await run_in_threadpool(tutor.learner_view, state.store, learner)
        return {**view, "history": await run_in_threadpool(state.store.learner_events, learner)}

    @app.post("/v1/apps/tutor/learners/{learner}/next")
    async def next_question(learner: str, body: NextRequest | None = None,
                            _: KeyInfo | None = Depends(auth)) -> dict[str, Any]:  # fmt: skip
        body = body or NextRequest()
        ctx = None
        if body.model is not None:
            from genlab.apps.recipe import Context

            ctx = Context(await run_in_threadpool(state.load, body.model), seed=body.seed)
        question = await run_in_threadpool(tutor.ask, state.store, learner, ctx)
        return {"done": question is None, "question": question}

    @app.post("/v1/apps/tutor/learners/{learner}/answer")
    async def answer(learner: str, body: AnswerRequest, _: KeyInfo | None = Depends(auth)) -> dict[str, Any]:
        return await run_in_threadpool(tutor.answer, state.store, learner, body.choice)

    @app.post("/v1/apps/{name}")
    async def run_app(name: str, body: AppRequest, http: Request, key: KeyInfo | None = Depends(auth)):
        recipe = recipe_or_404(name)
        value = recipe.parse_input(body.input)  # a 400 before the model loads or queues
        webhook = http.headers.get(WEBHOOK_HEADER)
        if webhook and not webhook.startswith(("http://", "https://")):
            raise APIError(400, f"{WEBHOOK_HEADER} must be an http(s) URL", type_="invalid_request_error",
                           code="invalid_webhook")  # fmt: skip
        generator = await run_in_threadpool(state.load, body.model)
        queue = state.queue(generator.card.name)
        queue.admit()
        try:
            result = await run_in_threadpool(
                run_recipe, recipe, value, generator=generator, seed=body.seed, store=state.store,
                key_id=key.id if key else None, actor=actor(key), webhook=webhook,
            )  # fmt: skip
        finally:
            queue.release()
        state.metrics.tokens.labels(generator.card.name, "completion").inc(result.completion_tokens)
        if result.held:
            state.metrics.rejected.labels("held_for_review").inc()
            review = result.review
            body_ = held_body(review["id"], review["rule"], review["due_at"])
            return JSONResponse(body_, status_code=202, headers={"location": body_["url"]})
        return result.to_dict()

    # -- studio ------------------------------------------------------------------------------------
    @app.get("/studio/apps", response_class=HTMLResponse)
    async def studio_apps(request: Request):
        return templates.TemplateResponse(request, "apps.html", {"version": genlab.__version__,
                                                                  "recipes": [r.describe() for r in RECIPES.values()]})  # fmt: skip

    @app.get("/studio/apps/tutor", response_class=HTMLResponse)
    async def studio_tutor(request: Request):
        return templates.TemplateResponse(request, "tutor.html", {"version": genlab.__version__})

    @app.get("/studio/apps/{name}", response_class=HTMLResponse)
    async def studio_app(request: Request, name: str):
        recipe = recipe_or_404(name)
        example = recipe.case_input(recipe.eval_cases()[0])
        return templates.TemplateResponse(request, "app.html", {"version": genlab.__version__,
                                                                 "recipe": recipe.describe(), "example": example})  # fmt: skip
