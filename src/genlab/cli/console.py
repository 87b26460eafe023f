"""Shared Rich consoles and small output helpers for the CLI."""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console

console = Console()
err_console = Console(stderr=True)


def print_json(obj: Any) -> None:
    """Machine-readable output: plain JSON on stdout, no colours, no wrapping."""
    sys.stdout.write(json.dumps(obj, indent=2, ensure_ascii=False, default=str) + "\n")
    sys.stdout.flush()


def human_count(n: int | None) -> str:
    if n is None:
        return "?"
    for unit, size in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.1f}{unit}"
    return str(n)


class Steps:
    """Progress of long work on stderr: a live status line on a terminal; one line per step when
    stderr is not a terminal (a log, CI, a pipe), so nothing sits silent for minutes.

        with Steps("Quiz with gemma-3-270m") as step:
            step("question 2 of 5, attempt 1 of 3")
    """

    def __init__(self, title: str, *, enabled: bool = True) -> None:
        import time

        self.title = title
        self.enabled = enabled
        self.live = enabled and err_console.is_terminal
        self._status = None
        self._started = time.perf_counter()

    def __enter__(self) -> Steps:
        if self.live:
            self._status = err_console.status(f"{self.title} ...")
            self._status.__enter__()
        return self

    def __call__(self, message: str) -> None:
        import time

        if not self.enabled:
            return
        elapsed = time.perf_counter() - self._started
        if self._status is not None:
            self._status.update(f"{self.title}: {message} [dim]({elapsed:.0f} s)[/]")
        else:
            err_console.print(f"[dim]{self.title}: {message} ({elapsed:.0f} s)[/]", highlight=False)

    def count(self, done: int, total: int, what: str = "") -> None:
        self(f"{what + ' ' if what else ''}{done} of {total}")

    def __exit__(self, *exc: object) -> None:
        if self._status is not None:
            self._status.__exit__(*exc)
