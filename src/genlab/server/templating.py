"""The templates' room: every HTML page of the server renders through here, with its security
headers: a Content-Security-Policy whose scripts are only the page's own (a fresh nonce per
response), no framing by other sites (clickjacking), no MIME sniffing."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

import genlab

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
# Report pages (compare, bias audits) carry no scripts at all: images, audio and their own styles.
REPORT_CSP = (
    "default-src 'none'; img-src 'self'; media-src 'self'; style-src 'unsafe-inline'; frame-ancestors 'none'"
)
API_CSP = "default-src 'none'; frame-ancestors 'none'"


def page_csp(nonce: str) -> str:
    return (
        f"default-src 'self'; script-src 'nonce-{nonce}'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data: blob:; media-src 'self' data: blob:; connect-src 'self'; object-src 'none'; "
        "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )


def page(request: Request, template: str, **context: Any):
    nonce = secrets.token_urlsafe(16)
    response = TEMPLATES.TemplateResponse(
        request, template, {"version": genlab.__version__, "csp_nonce": nonce, **context}
    )
    response.headers["Content-Security-Policy"] = page_csp(nonce)
    return response


def report(html: str) -> HTMLResponse:
    return HTMLResponse(html, headers={"Content-Security-Policy": REPORT_CSP})
