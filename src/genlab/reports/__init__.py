"""HTML reports: every report page (compare, bias audits) renders here, from its ``report.json``,
with the Jinja templates in ``reports/templates`` (autoescaped). ``evaluation`` writes data only;
the faces (CLI, server) render.

Room ``reports``: may import ``core`` only.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape

from genlab.core.io import atomic_write_text

TEMPLATES = Path(__file__).parent / "templates"
_ENV = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(default=True))
KINDS = {"compare": "compare.html", "bias": "bias.html"}


def render(kind: str, report: dict[str, Any]) -> str:
    """The HTML page of a report (``kind``: compare or bias)."""
    return _ENV.get_template(KINDS[kind]).render(**report)


def render_file(kind: str, folder: Path) -> str:
    return render(kind, json.loads((Path(folder) / "report.json").read_text("utf-8")))


def write_html(kind: str, folder: Path) -> Path:
    """Write ``report.html`` beside ``report.json`` (to open from disk); returns its path."""
    target = Path(folder) / "report.html"
    atomic_write_text(target, render_file(kind, folder))
    return target
