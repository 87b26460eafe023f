"""Bias audits over HTTP: the list, and each audit's report files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Response
from starlette.concurrency import run_in_threadpool

from genlab.reports import render_file
from genlab.server.deps import KeyDep, StateDep
from genlab.server.errors import APIError
from genlab.server.templating import REPORT_CSP, report

router = APIRouter(prefix="/v1/genlab/audits", tags=["audits"])
MEDIA = {".html": "text/html", ".json": "application/json", ".png": "image/png"}


@router.get("")
async def list_audits(state: StateDep, _: KeyDep, model: str | None = None) -> dict[str, Any]:
    audits = await run_in_threadpool(state.store.list_audits, model)
    return {"object": "list", "data": [{k: v for k, v in a.items() if k != "path"} for a in audits]}


@router.get("/{audit_id}/{name}")
async def audit_file(audit_id: str, name: str, state: StateDep, _: KeyDep) -> Response:
    """A bias audit's report.html, report.json or plots (only files of that audit's folder)."""
    audits = {a["id"]: a for a in await run_in_threadpool(state.store.list_audits, None, 1000)}
    path = Path(audits[audit_id]["path"]) / name if audit_id in audits else None
    if path is not None and name == "report.html" and (path.parent / "report.json").is_file():
        return report(await run_in_threadpool(render_file, "bias", path.parent))
    if path is None or "/" in name or name.startswith(".") or path.suffix not in MEDIA or not path.is_file():
        raise APIError(
            404, f"no file {name!r} in audit {audit_id!r}", type_="not_found_error", code="not_found"
        )
    return Response(
        path.read_bytes(), media_type=MEDIA[path.suffix], headers={"Content-Security-Policy": REPORT_CSP}
    )
