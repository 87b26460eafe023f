"""Software recipes: Python code completion, unit-test generation, docstrings.

Test generation follows Meta's TestGen-LLM (Alshahwan et al., "Automated Unit Test Improvement
using Large Language Models at Meta", FSE 2024): the model proposes candidate tests, and a
candidate is kept only if it *builds* (parses and is collected), *passes*, and *adds coverage*
over the tests kept so far. Its report gives the same three rates. Everything the model writes runs
in ``apps.sandbox`` (scratch directory, rlimits, no network).
"""

from __future__ import annotations

import ast
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from genlab.apps.recipe import (
    DATA,
    Check,
    Context,
    Outcome,
    ParseError,
    Recipe,
    RecipeError,
    RecipeResult,
    retry,
)
from genlab.apps.sandbox import Limits, run_tests

# The HumanEval stop sequences: a new top-level statement ends the function being completed.
CODE_STOP = ("\ndef ", "\nclass ", "\nif __name__", "\nprint(", "\n#", "\n@", "\nassert ")


def shipped_module(name: str) -> str:
    """One of the small modules shipped for the test-generation benchmark (data/software/modules)."""
    path = DATA / "software" / "modules" / f"{name}.py"
    if not path.is_file():
        raise RecipeError(f"no shipped module {name!r}")
    return path.read_text("utf-8")


def parse_source(source: str, what: str = "the source") -> ast.Module:
    """``ast.parse`` with the error a person can act on."""
    if not source.strip():
        raise RecipeError(f"{what} is empty; give some Python code")
    try:
        return ast.parse(source)
    except SyntaxError as e:
        raise RecipeError(f"{what} does not parse: line {e.lineno}: {e.msg}; fix it and try again") from None


def parses(source: str) -> str | None:
    """None when ``source`` parses, else the syntax error."""
    try:
        ast.parse(source)
    except SyntaxError as e:
        return f"line {e.lineno}: {e.msg}"
    return None


def function_body(completion: str) -> str:
    """Keep the completion up to the end of the indented block it continues: the first line that
    starts at column 0 ends it (the model went on to the next top-level statement)."""
    lines = completion.split("\n")
    kept = [lines[0]]
    for line in lines[1:]:
        if line.strip() and not line[0].isspace():
            break
        kept.append(line)
    return "\n".join(kept).rstrip() + "\n"


# -- code completion --------------------------------------------------------------------------------
class CompletionInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = Field(min_length=1, max_length=50_000, description="The code so far; the model continues it.")
    tests: str | None = Field(
        default=None, max_length=50_000, description="Optional pytest tests; the completion must pass them."
    )
    max_tokens: int = Field(default=256, ge=1, le=2048)
    attempts: int = Field(default=3, ge=1, le=8, description="Tries before giving the best one.")


class CodeCompletion(Recipe):
    name = "code-completion"
    industry = "software"
    title = "Python code completion"
    summary = "Continue Python code to the end of the block; checked by parsing and, when given, by tests."
    Input = CompletionInput
    policy = "software"
    guarded = ("code",)
    metric = "pass_at_1"

    def runs_submitted_code(self, value) -> bool:
        return bool(value.tests)  # its tests, sent with the code, run in the sandbox

    def check(self, value: CompletionInput) -> None:
        if not value.code.strip():
            raise RecipeError("the code is empty; give the start of a function or file to continue")
        if value.tests is not None:
            parse_source(value.tests, "the test code")

    def run(self, value: CompletionInput, ctx: Context) -> Outcome:
        def make(attempt: int) -> str:
            text = ctx.complete(
                value.code,
                max_tokens=value.max_tokens,
                temperature=0.2 if attempt == 1 else 0.7,
                stop=CODE_STOP,
            )[0]
            return function_body(text) if text.strip() else ""

        def validate(completion: str) -> list[Check]:
            error = parses(value.code + completion)
            checks = [
                Check(
                    "not empty",
                    bool(completion.strip()),
                    "" if completion.strip() else "the model wrote nothing",
                ),
                Check("parses", error is None, error or ""),
            ]
            if value.tests is not None and error is None:
                run = run_tests("solution", value.code + completion, {"test_solution.py": value.tests})
                checks.append(Check("passes the tests", run.passed, "" if run.passed else _tail(run.output)))
            return checks

        completion, checks, attempts = retry(value.attempts, make, validate, ctx)
        completion = completion or ""
        return Outcome(
            {"completion": completion, "code": value.code + completion}, completion, checks, attempts=attempts
        )

    def score(self, case: dict[str, Any], result: RecipeResult) -> dict[str, float]:
        passed = next((c.passed for c in result.checks if c.name == "passes the tests"), False)
        parsed = next((c.passed for c in result.checks if c.name == "parses"), False)
        # pass@1: the first completion passes; with its tests as the oracle the recipe retries, so
        # passing within ``attempts`` tries is reported separately (pass@k with test feedback)
        return {
            "pass_at_1": float(passed and result.attempts == 1),
            "pass_within_attempts": float(passed),
            "parses": float(parsed),
        }


def _tail(output: str, lines: int = 6) -> str:
    return "\n".join(output.strip().splitlines()[-lines:])


# -- unit-test generation ---------------------------------------------------------------------------
FEW_SHOT_TESTS = """# File: mathx.py
def double(x):
    return 2 * x


def safe_div(a, b):
    if b == 0:
        raise ZeroDivisionError("b is zero")
    return a / b


def largest(numbers):
    if not numbers:
        raise ValueError("no numbers")
    return max(numbers)


def shout(text):
    return text.upper() + "!"


class Counter:
    def __init__(self):
        self.n = 0

    def tick(self):
        self.n += 1
        return self.n


# File: test_mathx.py
import pytest

from mathx import Counter, double, largest, safe_div, shout


def test_double():
    assert double(3) == 6
    assert double(-1) == -2


def test_safe_div_by_zero():
    with pytest.raises(ZeroDivisionError):
        safe_div(1, 0)


def test_largest():
    assert largest([3, 9, 4]) == 9


def test_largest_empty():
    with pytest.raises(ValueError):
        largest([])


def test_shout():
    assert shout("hi") == "HI!"


def test_counter_tick():
    counter = Counter()
    assert counter.tick() == 1
    assert counter.tick() == 2


"""


class TestGenInput(BaseModel):
    __test__ = False  # not a pytest test class, whatever its name
    model_config = ConfigDict(extra="forbid")

    source: str = Field(min_length=1, max_length=100_000, description="The Python module to test.")
    module: str = Field(default="module", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", description="Its import name.")
    existing_tests: str = Field(default="", max_length=100_000, description="Tests it has already (pytest).")
    candidates: int = Field(default=4, ge=1, le=16, description="Candidate tests asked per function.")
    functions: list[str] | None = Field(
        default=None, description="Only these functions or Class.method names."
    )
    seconds: float = Field(default=20.0, gt=0, le=60, description="Wall-clock limit of one sandboxed run.")
    memory_mb: int = Field(default=1024, ge=64, le=2048, description="Memory limit of one sandboxed run.")


def _targets(tree: ast.Module) -> list[tuple[str, ast.FunctionDef, str | None]]:
    """Public functions and methods: (qualified name, node, class name or None)."""
    out = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and not node.name.startswith("_"):
            out.append((node.name, node, None))
        elif isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
            for item in node.body:
                if isinstance(item, ast.FunctionDef) and not item.name.startswith("_"):
                    out.append((f"{node.name}.{item.name}", item, node.name))
    return out


def _raised(node: ast.AST) -> str | None:
    """The first exception class a function raises itself (to aim a ``pytest.raises`` test at it)."""
    for sub in ast.walk(node):
        if isinstance(sub, ast.Raise) and sub.exc is not None:
            exc = sub.exc.func if isinstance(sub.exc, ast.Call) else sub.exc
            if isinstance(exc, ast.Name):
                return exc.id
    return None


def _starts(name: str, node: ast.FunctionDef, cls: str | None) -> list[str]:
    """How each candidate's body begins: TestGen-LLM varies the prompt; a base model needs the
    first tokens to write a test rather than prose."""
    function = node.name
    if cls is not None:
        var = re.sub(r"(?<!^)(?=[A-Z])", "_", cls).lower()
        return [f"    {var} = {cls}("]
    starts = [f"    assert {function}("]
    exc = _raised(node)
    if exc is not None:
        starts.append(f"    with pytest.raises({exc}):\n        {function}(")
    return starts


def test_header(module: str, tree: ast.Module) -> str:
    public = sorted({n.split(".")[0] for n, _, _ in _targets(tree)})
    return f"import pytest\n\nfrom {module} import {', '.join(public)}\n\n\n"


def select_tests(
    module: str,
    source: str,
    candidates: list[tuple[str, str]],
    *,
    existing: str = "",
    limits: Limits | None = None,
) -> dict[str, Any]:
    """TestGen-LLM's filters over candidate tests ((target, test function source) pairs), in order:
    a candidate is kept when it builds, passes, and covers a line no kept test (nor the existing
    tests) covers. The kept tests are then run together once more, as TestGen-LLM reruns them."""
    limits = limits or Limits()
    header = test_header(module, ast.parse(source))
    existing_files = {"test_existing.py": existing} if existing.strip() else {}
    baseline = run_tests(module, source, existing_files, limits=limits) if existing_files else None
    if baseline is not None and not baseline.passed:
        raise RecipeError(f"the existing tests do not pass; fix them first: {_tail(baseline.output, 2)}")
    covered: set[int] = set(baseline.covered) if baseline else set()
    base_covered = set(covered)
    statements = baseline.statements if baseline else []
    kept: list[str] = []
    seen: set[str] = set()
    rows: dict[str, dict[str, Any]] = {}
    for target, candidate in candidates:
        row = rows.setdefault(target, {"target": target, "candidates": 0, "built": 0, "passed": 0, "kept": 0})
        body = candidate.split("\n", 1)[-1]
        if body in seen:  # the same test under another name adds nothing
            continue
        seen.add(body)
        row["candidates"] += 1
        if parses(header + candidate) is not None:
            continue
        run = run_tests(
            module, source, {**existing_files, f"test_{module}_gen.py": header + candidate}, limits=limits
        )
        statements = run.statements or statements
        row["built"] += run.built
        row["passed"] += run.passed
        if run.passed and run.covered - covered:
            covered |= run.covered
            kept.append(candidate.rstrip())
            row["kept"] += 1
    tests = header + "\n\n\n".join(kept) + "\n" if kept else ""
    together, final_output = True, ""
    if kept:
        final = run_tests(module, source, {**existing_files, f"test_{module}_gen.py": tests}, limits=limits)
        together, final_output = final.passed, "" if final.passed else _tail(final.output)
        covered = final.covered | base_covered if final.passed else covered
        statements = final.statements or statements
    totals = {k: sum(r[k] for r in rows.values()) for k in ("candidates", "built", "passed", "kept")}
    n = max(totals["candidates"], 1)
    total_statements = max(len(statements), 1)
    return {
        **totals,
        "build_rate": totals["built"] / n,
        "pass_rate": totals["passed"] / n,
        "coverage_increase_rate": totals["kept"] / n,
        "statements": len(statements),
        "baseline_coverage": len(base_covered) / total_statements,
        "coverage": len(covered) / total_statements,
        "kept_pass_together": together,
        "final_output": final_output,
        "per_target": list(rows.values()),
        "tests": tests,
    }


class TestGeneration(Recipe):
    __test__ = False  # not a pytest test class, whatever its name
    name = "test-generation"
    industry = "software"
    title = "Unit-test generation (TestGen-LLM)"
    summary = (
        "Propose pytest tests for a module; keep only those that build, pass and add coverage, "
        "each run sandboxed."
    )
    Input = TestGenInput
    policy = "software"
    guarded = ("source",)
    metric = "pass_rate"

    def runs_submitted_code(self, value) -> bool:
        return True  # the module under test runs in the sandbox

    def check(self, value: TestGenInput) -> None:
        tree = parse_source(value.source, "the module")
        if value.existing_tests.strip():
            parse_source(value.existing_tests, "the existing tests")
        names = [n for n, _, _ in _targets(tree)]
        if not names:
            raise RecipeError("the module has no public functions or methods to test")
        unknown = sorted(set(value.functions or ()) - set(names))
        if unknown:
            raise RecipeError(f"no function {', '.join(unknown)} in the module; it has {', '.join(names)}")

    def run(self, value: TestGenInput, ctx: Context) -> Outcome:
        tree = ast.parse(value.source)
        header = test_header(value.module, tree)
        prompt_head = (
            FEW_SHOT_TESTS
            + f"# File: {value.module}.py\n{value.source.rstrip()}\n\n\n# File: test_{value.module}.py\n{header}"
        )
        candidates: list[tuple[str, str]] = []
        targets = [t for t in _targets(tree) if not value.functions or t[0] in value.functions]
        for number, (name, node, cls) in enumerate(targets, 1):
            ctx.step(f"candidate tests for {name} ({number} of {len(targets)})")
            starts = _starts(name, node, cls)
            test_name = f"test_{name.replace('.', '_').lower()}"
            for i, start in enumerate(starts):
                n = value.candidates // len(starts) + (i < value.candidates % len(starts))
                if n == 0:
                    continue
                for text in ctx.complete(
                    prompt_head + f"def {test_name}():\n{start}",
                    max_tokens=160,
                    temperature=0.6,
                    n=n,
                    stop=CODE_STOP,
                ):
                    candidates.append(
                        (name, f"def {test_name}_{len(candidates) + 1}():\n{function_body(start + text)}")
                    )
        ctx.step(f"running {len(candidates)} candidate tests in the sandbox")
        report = select_tests(
            value.module,
            value.source,
            candidates,
            existing=value.existing_tests,
            limits=Limits(seconds=value.seconds, memory_mb=value.memory_mb),
        )
        checks = [
            Check(
                "adds coverage",
                bool(report["kept"]),
                "" if report["kept"] else "no candidate built, passed and added coverage",
            )
        ]
        if report["kept"]:
            together = report["kept_pass_together"]
            checks.append(
                Check("kept tests pass together", together, "" if together else report["final_output"])
            )
        return Outcome(report, report["tests"], checks)

    def case_input(self, case: dict[str, Any]) -> dict[str, Any]:
        return {"source": shipped_module(case["module"]), "module": case["module"]}

    def score(self, case: dict[str, Any], result: RecipeResult) -> dict[str, float]:
        o = result.output
        return {
            "pass_rate": o["pass_rate"],
            "build_rate": o["build_rate"],
            "coverage_increase_rate": o["coverage_increase_rate"],
            "coverage_gain": o["coverage"] - o["baseline_coverage"],
        }


# -- docstrings --------------------------------------------------------------------------------------
FEW_SHOT_DOCS = '''def scale(values, factor=2.0):
    return [v * factor for v in values]


# The same function, documented:
def scale(values, factor=2.0):
    """Multiply every value by a factor.

    Args:
        values: The numbers to scale.
        factor: What each number is multiplied by.

    Returns:
        A new list with each value times the factor.
    """


def log_event(logger, message):
    logger.info(message)


# The same function, documented:
def log_event(logger, message):
    """Write a message to a logger at info level.

    Args:
        logger: The logger to write to.
        message: The text to log.
    """


'''


class DocstringInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source: str = Field(
        min_length=1, max_length=100_000, description="Python code whose functions need docstrings."
    )
    attempts: int = Field(default=3, ge=1, le=8, description="Tries per function before giving the best one.")


def parameters(node: ast.FunctionDef) -> list[str]:
    """The parameters a docstring's Args section documents (not self or cls; *args as args)."""
    a = node.args
    names = [p.arg for p in (*a.posonlyargs, *a.args, *a.kwonlyargs)]
    names += [p.arg for p in (a.vararg, a.kwarg) if p is not None]
    return [n for n in names if n not in ("self", "cls")]


def returns_value(node: ast.FunctionDef) -> bool:
    """A ``return <something not None>`` in the function itself (not in nested functions)."""
    stack = list(node.body)
    while stack:
        sub = stack.pop()
        if isinstance(sub, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Lambda):
            continue
        if (
            isinstance(sub, ast.Return)
            and sub.value is not None
            and not (isinstance(sub.value, ast.Constant) and sub.value.value is None)
        ):
            return True
        if isinstance(sub, ast.Yield | ast.YieldFrom):
            return True
        stack.extend(ast.iter_child_nodes(sub))
    return False


_SECTION = re.compile(r"^\s*(Args|Arguments|Parameters|Returns|Yields|Raises|Examples?|Notes?):\s*$")


def docstring_sections(doc: str) -> dict[str, list[str]]:
    """Google-style sections -> their entry names (for Args) or lines."""
    sections: dict[str, list[str]] = {"summary": []}
    current = "summary"
    for line in doc.splitlines():
        m = _SECTION.match(line)
        if m:
            current = {"Arguments": "Args", "Parameters": "Args"}.get(m.group(1), m.group(1))
            sections.setdefault(current, [])
            continue
        if not line.strip():
            continue
        if current == "Args":
            entry = re.match(r"^\s*\**([A-Za-z_]\w*)\s*(\([^)]*\))?\s*:", line)
            if entry:
                sections["Args"].append(entry.group(1))
        else:
            sections[current].append(line.strip())
    return sections


def check_docstring(doc: str, node: ast.FunctionDef) -> list[Check]:
    s = docstring_sections(doc)
    summary = s["summary"][0] if s["summary"] else ""
    params = parameters(node)
    documented = s.get("Args", [])
    missing = [p for p in params if p not in documented]
    extra = [p for p in documented if p not in params]
    returns = returns_value(node)
    has_returns = bool(s.get("Returns") or s.get("Yields"))
    return [
        Check("summary line", bool(summary) and len(summary) <= 120, "" if summary else "no summary line"),
        Check("documents every parameter", not missing, f"missing: {', '.join(missing)}" if missing else ""),
        Check(
            "documents only real parameters",
            not extra,
            f"not parameters: {', '.join(extra)}" if extra else "",
        ),
        Check(
            "returns section matches",
            returns == has_returns,
            ""
            if returns == has_returns
            else (
                "the function returns a value; add Returns:"
                if returns
                else "the function returns nothing; drop Returns:"
            ),
        ),
    ]


def _strip_docstrings(tree: ast.AST) -> str:
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Module):
            body = node.body
            if (
                body
                and isinstance(body[0], ast.Expr)
                and isinstance(getattr(body[0], "value", None), ast.Constant)
                and isinstance(body[0].value.value, str)
            ):
                node.body = body[1:] or [ast.Pass()]
    return ast.dump(tree, include_attributes=False)


def format_docstring(doc: str, indent: str) -> str:
    """The model's docstring text, re-indented to sit at ``indent`` in the function body."""
    lines = doc.strip().splitlines()
    first, rest = lines[0].strip(), lines[1:]
    common = _common_indent(rest)
    body = [f"{indent}{line[common:].rstrip()}" if line.strip() else "" for line in rest]
    if not body:
        return f'{indent}"""{first}"""\n'
    return f'{indent}"""{first}\n' + "\n".join(body) + f'\n{indent}"""\n'


def _common_indent(lines: list[str]) -> int:
    widths = [len(line) - len(line.lstrip()) for line in lines if line.strip()]
    return min(widths, default=0)


class Docstrings(Recipe):
    name = "docstrings"
    industry = "software"
    title = "Docstring generation"
    summary = (
        "Write Google-style docstrings for functions that lack them; each is parsed and must name "
        "exactly the function's parameters."
    )
    Input = DocstringInput
    policy = "software"
    guarded = ("source",)
    metric = "valid_rate"

    def check(self, value: DocstringInput) -> None:
        tree = parse_source(value.source)
        if not self._undocumented(tree):
            raise RecipeError("every function already has a docstring; nothing to write")

    @staticmethod
    def _undocumented(tree: ast.Module) -> list[ast.FunctionDef]:
        return [
            n
            for n in ast.walk(tree)
            if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef) and ast.get_docstring(n) is None
        ]

    def run(self, value: DocstringInput, ctx: Context) -> Outcome:
        tree = ast.parse(value.source)
        lines = value.source.splitlines(keepends=True)
        functions = sorted(self._undocumented(tree), key=lambda n: n.lineno)
        written: list[dict[str, Any]] = []
        inserts: list[tuple[int, str]] = []
        for number, node in enumerate(functions, 1):
            ctx.step(f"{node.name} ({number} of {len(functions)})")
            code = ast.get_source_segment(value.source, node, padded=False) or ""
            if node.body[0].lineno == node.lineno:  # `def f(): return 1`: no line to put a docstring on
                written.append(
                    {
                        "function": node.name,
                        "line": node.lineno,
                        "docstring": None,
                        "attempts": 0,
                        "checks": [],
                        "valid": False,
                        "skipped": "one-line function",
                    }
                )
                continue
            signature = _dedent(
                "".join(lines[node.lineno - 1 : node.body[0].lineno - 1]).rstrip(), node.col_offset
            )
            prompt = f'{FEW_SHOT_DOCS}{_dedent(code, node.col_offset)}\n\n\n# The same function, documented:\n{signature}\n    """'

            def make(attempt: int, prompt: str = prompt) -> str:
                text = ctx.complete(
                    prompt, max_tokens=200, temperature=0.2 if attempt == 1 else 0.7, stop=('"""',)
                )[0]
                if not text.strip():
                    raise ParseError("the model wrote an empty docstring")
                return text

            doc, checks, attempts = retry(
                value.attempts, make, lambda d, node=node: check_docstring(d, node), ctx
            )
            entry = {
                "function": node.name,
                "line": node.lineno,
                "docstring": doc,
                "attempts": attempts,
                "checks": [c.__dict__ for c in checks],
                "valid": all(c.passed for c in checks),
            }
            written.append(entry)
            if doc:
                indent = " " * node.body[0].col_offset
                inserts.append((node.body[0].lineno - 1, format_docstring(doc, indent)))
        for line_index, text in sorted(inserts, reverse=True):
            lines.insert(line_index, text)
        documented = "".join(lines)
        error = parses(documented)
        unchanged = error is None and _strip_docstrings(ast.parse(documented)) == _strip_docstrings(
            ast.parse(value.source)
        )
        valid = sum(w["valid"] for w in written)
        checks = [
            Check("documented source parses", error is None, error or ""),
            Check(
                "code unchanged apart from docstrings",
                unchanged,
                "" if unchanged else "the code itself changed",
            ),
            Check("every docstring valid", valid == len(written), f"{valid} of {len(written)} valid"),
        ]
        return Outcome(
            {"source": documented, "functions": written, "valid_rate": valid / max(len(written), 1)},
            documented,
            checks,
            attempts=max((w["attempts"] for w in written), default=1),
        )

    def case_input(self, case: dict[str, Any]) -> dict[str, Any]:
        return {"source": shipped_module(case["module"])}

    def score(self, case: dict[str, Any], result: RecipeResult) -> dict[str, float]:
        fns = result.output["functions"]
        first = sum(w["valid"] and w["attempts"] == 1 for w in fns) / max(len(fns), 1)
        return {"valid_rate": result.output["valid_rate"], "valid_first_try": first}


def _dedent(code: str, columns: int) -> str:
    return "\n".join(line[columns:] if line[:columns].strip() == "" else line for line in code.splitlines())
