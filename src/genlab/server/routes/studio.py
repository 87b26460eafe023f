"""The studio's pages (HTML shells that call the API from the browser) and the compare report.

The pages themselves hold no data and need no key; the compare report's files are data and need
one, as every route but ``/health`` does (on an open loopback server, none)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.concurrency import run_in_threadpool

from genlab.reports import render_file
from genlab.server.deps import KeyDep, StateDep
from genlab.server.errors import APIError
from genlab.server.templating import REPORT_CSP, page, report

router = APIRouter(tags=["studio"], default_response_class=HTMLResponse)
COMPARE_MEDIA = {".html": "text/html", ".json": "application/json", ".png": "image/png", ".wav": "audio/wav"}


@router.get("/")
async def playground(request: Request, state: StateDep):
    return page(request, "playground.html", open=state.open_access())


# Pages that are only their template (their scripts fetch what they show from the API).
STATIC_PAGES = {
    "chat": "chat.html",
    "transcribe": "transcribe.html",
    "images": "images.html",
    "audio": "audio.html",
    "audits": "audits.html",
    "reviews": "reviews.html",
    "models": "models.html",
}


def _static_page(template: str):
    async def show(request: Request):
        return page(request, template)

    return show


for _name, _template in STATIC_PAGES.items():
    router.add_api_route(f"/studio/{_name}", _static_page(_template), methods=["GET"], name=f"studio_{_name}")


@router.get("/studio/reviews/{item_id}")
async def review(request: Request, item_id: str):
    return page(request, "review.html", item_id=item_id)


@router.get("/studio/generations/{record_id}")
async def generation(request: Request, record_id: str):
    return page(request, "generation.html", record_id=record_id)


@router.get("/studio/compare")
async def compare(request: Request, state: StateDep, _: KeyDep):
    """The latest `genlab compare` report (its figures are of built-in data and models only)."""
    from genlab.evaluation.compare import latest_report

    if await run_in_threadpool(latest_report, state.registry.settings) is None:
        return page(request, "compare.html")
    return RedirectResponse("/studio/compare/report.html")


@router.get("/studio/compare/{name:path}")
async def compare_file(name: str, state: StateDep, _: KeyDep) -> Response:
    from genlab.evaluation.compare import latest_report

    latest = await run_in_threadpool(latest_report, state.registry.settings)
    path = (latest / name).resolve() if latest is not None else None
    if latest is not None and name == "report.html":  # rendered from report.json, through the reports room
        return report(await run_in_threadpool(render_file, "compare", latest))
    if (
        path is None
        or not path.is_relative_to(latest.resolve())
        or path.suffix not in COMPARE_MEDIA
        or not path.is_file()
    ):
        raise APIError(
            404, f"no file {name!r} in the latest compare report", type_="not_found_error", code="not_found"
        )
    return Response(
        path.read_bytes(),
        media_type=COMPARE_MEDIA[path.suffix],
        headers={"Content-Security-Policy": REPORT_CSP},
    )
