"""The templates' room: every HTML page and report of the server renders through here."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.templating import Jinja2Templates

import genlab

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))


def page(request: Request, template: str, **context: Any):
    return TEMPLATES.TemplateResponse(request, template, {"version": genlab.__version__, **context})
