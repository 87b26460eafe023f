"""The rooms and what each may import (docs/architecture.md): read from the source with ast, so a
new import that crosses a room's rule fails here, and no room imports another in a cycle."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "genlab"

# room -> the rooms it may import (besides itself, the standard library and third-party packages)
RULES: dict[str, set[str]] = {
    "core": set(),
    "codecs": {"core"},
    "families": {"core"},
    "data": {"core", "codecs"},
    "backends": {"core", "codecs"},
    "storage": {"core", "codecs"},
    "safety": {"core", "codecs", "storage"},
    "generators": {"core", "codecs", "families", "safety"},
    "registry": {"core", "generators", "backends"},
    "training": {"core", "codecs", "families", "generators", "data", "registry"},
    "evaluation": {
        "core",
        "codecs",
        "families",
        "generators",
        "data",
        "registry",
        "training",
        "safety",
        "storage",
    },
    "tuning": {"core", "codecs", "families", "generators", "data", "registry", "training", "storage"},
    "pipeline": {"core", "registry", "safety", "storage"},
    "reports": {"core"},
    "apps": {"core", "registry", "pipeline", "safety", "storage"},
    "mcp": {"core", "codecs", "generators", "registry", "pipeline", "safety", "storage"},
    "server": set(),  # every room but cli (checked below)
    "cli": set(),  # every room but server
    "genlab": {"core", "registry", "pipeline", "storage"},  # the Python API (genlab/__init__.py)
}
FACES = {"server": "cli", "cli": "server"}


def room_of(path: Path) -> str:
    rel = path.relative_to(SRC)
    return "genlab" if rel.name == "__init__.py" and len(rel.parts) == 1 else rel.parts[0].removesuffix(".py")


def imported_rooms(path: Path) -> set[str]:
    rooms = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        for name in names:
            parts = name.split(".")
            if parts[0] == "genlab":
                rooms.add(parts[1] if len(parts) > 1 else "genlab")
    return rooms


def graph() -> dict[str, dict[str, set[str]]]:
    edges: dict[str, dict[str, set[str]]] = {}
    for path in SRC.rglob("*.py"):
        room = room_of(path)
        for other in imported_rooms(path) - {room}:
            edges.setdefault(room, {}).setdefault(other, set()).add(str(path.relative_to(SRC)))
    return edges


def test_every_room_has_a_rule_and_states_it():
    rooms = {room_of(p) for p in SRC.rglob("*.py")}
    assert rooms <= set(RULES), rooms - set(RULES)
    for room in rooms - {"genlab", "registry", "pipeline", "mcp"}:
        docstring = ast.get_docstring(ast.parse((SRC / room / "__init__.py").read_text("utf-8"))) or ""
        assert "may import" in docstring, f"{room}/__init__.py does not state what it may import"
    for module in ("registry.py", "pipeline.py", "mcp.py"):
        assert "may import" in (ast.get_docstring(ast.parse((SRC / module).read_text("utf-8"))) or ""), module


@pytest.mark.parametrize("room", sorted(RULES))
def test_room_imports_only_what_its_rule_allows(room):
    used = graph().get(room, {})
    if room in FACES:  # `genlab serve` starts the server: cli/serve.py is the one crossing
        wrong = {
            o: f - {"cli/serve.py"} for o, f in used.items() if o == FACES[room] and f - {"cli/serve.py"}
        }
    else:
        wrong = {other: files for other, files in used.items() if other not in RULES[room]}
    assert not wrong, f"{room} may not import {sorted(wrong)}: {wrong}"


def test_no_cycles_between_rooms():
    edges = {room: set(others) for room, others in graph().items()}

    def reachable(start: str) -> set[str]:
        seen, todo = set(), [start]
        while todo:
            for nxt in edges.get(todo.pop(), ()):
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return seen

    cycles = sorted(room for room in edges if room in reachable(room) and room != "genlab")
    assert not cycles, f"rooms on an import cycle: {cycles}"
