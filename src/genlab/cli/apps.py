"""Industry recipes from the terminal: `genlab software|education|marketing|healthcare ...` and
`genlab apps list|run|eval`.

Every command runs the recipe's whole pipeline (apps.recipe.run_recipe): its guardrail policy, its
checks with bounded retries, and its review policy. A result the policy holds (every clinical
summary) is not printed: it waits in the review queue (`genlab review list`) until approved.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from rich.table import Table

from genlab.cli.console import Steps, console, err_console, print_json
from genlab.core import InvalidRequestError

apps_app = typer.Typer(
    help="Industry recipes: list them, run one from JSON, measure a model on their sets.",
    no_args_is_help=True,
)
software_app = typer.Typer(
    help="Software: code completion, unit tests that run, docstrings.", no_args_is_help=True
)
education_app = typer.Typer(
    help="Education: quizzes from a passage, an adaptive tutor.", no_args_is_help=True
)
marketing_app = typer.Typer(help="Marketing: brand-safe copy and emails.", no_args_is_help=True)
healthcare_app = typer.Typer(
    help="Healthcare: de-identified clinical summaries, held for review.", no_args_is_help=True
)
tutor_app = typer.Typer(
    help="The adaptive tutor (Bayesian Knowledge Tracing); learners persist.", no_args_is_help=True
)
education_app.add_typer(tutor_app, name="tutor")

_Model = Annotated[str, typer.Option("--model", "-m", help="A text model (see `genlab models`).")]
_Seed = Annotated[int, typer.Option(help="Random seed: the same seed gives the same result.")]
_Json = Annotated[bool, typer.Option("--json", help="Print the whole result as JSON.")]
_Policy = Annotated[
    str | None, typer.Option(help="A guardrail policy name or YAML path instead of the recipe's.")
]
_Deadline = Annotated[
    float | None,
    typer.Option(help="Stop the recipe after this many seconds (between model calls); default: none.", min=1),
]


def read_text(source: str, what: str) -> str:
    """A file path, or '-' for standard input."""
    if source == "-":
        return sys.stdin.read()
    path = Path(source)
    if not path.is_file():
        raise InvalidRequestError(f"the {what} {source} does not exist")
    try:
        return path.read_text("utf-8")
    except UnicodeDecodeError:
        raise InvalidRequestError(f"the {what} {source} is not UTF-8 text") from None


def run(
    name: str,
    data: dict[str, Any],
    *,
    model: str,
    seed: int,
    policy: str | None,
    json_: bool,
    deadline: float | None = None,
    out: Path | None = None,
    show: bool = True,
) -> Any:
    """Run one recipe through the pipeline and print it, with its progress on stderr; returns the
    result. A result whose checks all failed ends the command with exit code 1 (after printing)."""
    from genlab.apps import get_recipe, run_recipe
    from genlab.cli.generate import cli_pipeline
    from genlab.pipeline import Caller

    recipe = get_recipe(name)
    value = recipe.parse_input(data)  # bad input fails before the model loads
    pipeline = cli_pipeline()
    try:
        with Steps(f"{recipe.title} with {model}", enabled=not json_) as step:
            result = run_recipe(
                recipe,
                value,
                model=model,
                pipeline=pipeline,
                seed=seed,
                policy=policy,
                caller=Caller(actor="cli"),
                progress=step,
                deadline_s=deadline,
            )
    finally:
        pipeline.store.close()
    if result.held:
        if json_:
            print_json(
                {
                    "object": "app.result",
                    "recipe": name,
                    "status": "held",
                    "review": result.review,
                    "generation_id": result.generation_id,
                }
            )
        else:
            err_console.print(
                f"held for human review as [bold]{result.review['id']}[/] ({result.review['rule']}); "
                f"a reviewer sees it with `genlab review show {result.review['id']}`"
            )
        return result
    if out is not None and result.text:
        from genlab.core.io import atomic_write_text

        atomic_write_text(out, result.text)
        err_console.print(f"[dim]wrote {out}[/]")
    if json_:
        print_json(result.to_dict())
        exit_if_failed(result, quiet=True)
    elif show:
        if result.text and out is None:
            console.print(result.text, markup=False, highlight=False)
        print_checks(result)
    return result


def exit_if_failed(result, *, quiet: bool = False) -> None:
    """Exit 1 when every check failed: the output is not usable, and a script must know."""
    if result.checks and not any(c.passed for c in result.checks):
        if not quiet:
            err_console.print(
                "[red]error:[/] every check failed, so this output is not usable; try another --seed, "
                "more attempts, or a larger model (`genlab models`)",
                highlight=False,
            )
        raise typer.Exit(1)


def print_checks(result) -> None:
    for c in result.checks:
        mark = "[green]✓[/]" if c.passed else "[red]✗[/]"
        err_console.print(f"{mark} {c.name}" + (f": {c.detail}" if c.detail else ""), highlight=False)
    for f in result.findings:
        if f.get("scanner") == "recipe":
            err_console.print(
                f"[yellow]![/] {f['category']}: {f['text']!r}: {f['explanation']}", highlight=False
            )
    err_console.print(
        f"[dim]{result.model}: {result.calls} model call(s), {result.attempts} attempt(s), "
        f"{result.latency_s:.1f} s[/]"
    )
    exit_if_failed(result)


# -- genlab apps ---------------------------------------------------------------------------------------
@apps_app.command("list")
def list_recipes(json_: _Json = False) -> None:
    """The recipes, their industry, guardrail policy and evaluation metric."""
    from genlab.apps import RECIPES

    if json_:
        print_json([r.describe() for r in RECIPES.values()])
        return
    table = Table(title="genlab recipes")
    for col in ("recipe", "industry", "what it does", "policy", "metric"):
        table.add_column(col)
    for r in RECIPES.values():
        table.add_row(r.name, r.industry, r.title, r.policy, r.metric)
    table.add_row(
        "tutor",
        "education",
        "Adaptive tutor (Bayesian Knowledge Tracing)",
        "education",
        "adaptive_learned_rate",
    )
    console.print(table)


@apps_app.command("run")
def run_json(
    name: Annotated[str, typer.Argument(help="The recipe (`genlab apps list`).")],
    input_: Annotated[str, typer.Option("--input", "-i", help="The input as a JSON or YAML file, or '-'.")],
    model: _Model = "gemma-3-270m",
    seed: _Seed = 0,
    policy: _Policy = None,
    deadline: _Deadline = None,
    json_: _Json = False,
) -> None:
    """Run a recipe on an input document (its schema: `genlab apps list --json`)."""
    text = read_text(input_, "input file")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise InvalidRequestError(f"the input is not JSON or YAML: {getattr(e, 'problem', e)}") from None
    if not isinstance(data, dict):
        raise InvalidRequestError("the input must be a JSON object (a mapping of the recipe's fields)")
    run(name, data, model=model, seed=seed, policy=policy, deadline=deadline, json_=json_)


@apps_app.command("eval")
def eval_recipe(
    name: Annotated[str, typer.Argument(help="The recipe, or 'tutor' (simulated learners).")],
    model: _Model = "gemma-3-270m",
    limit: Annotated[int | None, typer.Option(help="Only the first N cases.")] = None,
    seed: _Seed = 0,
    json_: _Json = False,
) -> None:
    """Score a model on a recipe's shipped evaluation set; the report goes to GENLAB_HOME/reports/apps."""
    from genlab.apps import get_recipe
    from genlab.apps.evaluate import evaluate, evaluate_tutor, save_report
    from genlab.registry import default_registry

    if name == "tutor":
        report = evaluate_tutor(seed=seed)
    else:
        recipe = get_recipe(name)
        generator = default_registry().load(model)
        cases = len(recipe.eval_cases()[: limit or None])
        with console.status(f"{name}: 0 of {cases} cases") as status:
            done = []
            report = evaluate(
                recipe,
                generator,
                limit=limit,
                seed=seed,
                on_case=lambda row: (
                    done.append(row),
                    status.update(f"{name}: {len(done)} of {cases} cases"),
                ),
            )
    path = save_report(report)
    if json_:
        print_json({**report, "path": str(path)})
        return
    table = Table(title=f"{name} with {report['model']}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for k, v in report["metrics"].items():
        table.add_row(
            ("[bold]" if k == report["metric"] else "") + k, f"{v:.3f}" if isinstance(v, float) else str(v)
        )
    for k in ("cases", "latency_s_per_case", "latency_s_per_call", "model_share", "wall_s"):
        if report.get(k) is not None:
            table.add_row(k, f"{report[k]:.3f}" if isinstance(report[k], float) else str(report[k]))
    console.print(table)
    err_console.print(f"[dim]report: {path}[/]")


# -- software -----------------------------------------------------------------------------------------
@software_app.command("complete")
def complete(
    source: Annotated[str, typer.Argument(help="A Python file to continue, or '-' for standard input.")],
    tests: Annotated[
        Path | None, typer.Option(help="pytest tests the completion must pass (run sandboxed).")
    ] = None,
    max_tokens: Annotated[int, typer.Option(help="Most tokens to write.")] = 256,
    attempts: Annotated[int, typer.Option(help="Tries before giving the best one.")] = 3,
    model: _Model = "gemma-3-270m",
    seed: _Seed = 0,
    policy: _Policy = None,
    deadline: _Deadline = None,
    json_: _Json = False,
) -> None:
    """Continue Python code to the end of the current block.

    Example: genlab software complete stub.py --tests test_stub.py
    """
    data = {"code": read_text(source, "source file"), "max_tokens": max_tokens, "attempts": attempts}
    if tests is not None:
        data["tests"] = read_text(str(tests), "tests file")
    run("code-completion", data, model=model, seed=seed, policy=policy, deadline=deadline, json_=json_)


@software_app.command("tests")
def tests_cmd(
    module: Annotated[Path, typer.Argument(help="The Python module to write tests for.")],
    existing: Annotated[
        Path | None, typer.Option(help="Its current tests; new ones must add coverage over them.")
    ] = None,
    candidates: Annotated[int, typer.Option(help="Candidate tests asked per function.")] = 4,
    function: Annotated[
        list[str] | None, typer.Option(help="Only this function or Class.method (repeatable).")
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Write the kept tests here (e.g. test_mymodule.py).")
    ] = None,
    seconds: Annotated[float, typer.Option(help="Time limit of each sandboxed test run.")] = 20.0,
    model: _Model = "gemma-3-270m",
    seed: _Seed = 0,
    policy: _Policy = None,
    deadline: _Deadline = None,
    json_: _Json = False,
) -> None:
    """Generate pytest tests; keep those that build, pass and add coverage (TestGen-LLM).

    Example: genlab software tests mymodule.py --out test_mymodule.py
    """
    data = {
        "source": read_text(str(module), "module"),
        "module": module.stem,
        "candidates": candidates,
        "functions": function or None,
        "seconds": seconds,
    }
    if existing is not None:
        data["existing_tests"] = read_text(str(existing), "tests file")
    result = run(
        "test-generation",
        data,
        model=model,
        seed=seed,
        policy=policy,
        deadline=deadline,
        json_=json_,
        out=out,
        show=False,
    )
    if json_ or result.held:
        return
    o = result.output
    if out is None and o["tests"]:
        console.print(o["tests"], markup=False, highlight=False)
    table = Table(title=f"tests for {module.name}")
    for col in ("function", "candidates", "built", "passed", "kept"):
        table.add_column(col, justify="left" if col == "function" else "right")
    for row in o["per_target"]:
        table.add_row(row["target"], *(str(row[k]) for k in ("candidates", "built", "passed", "kept")))
    err_console.print(table)
    err_console.print(
        f"build rate {o['build_rate']:.0%}, pass rate {o['pass_rate']:.0%}, coverage-increase rate "
        f"{o['coverage_increase_rate']:.0%}; line coverage {o['baseline_coverage']:.0%} -> {o['coverage']:.0%}"
    )
    print_checks(result)


@software_app.command("docstrings")
def docstrings(
    source: Annotated[str, typer.Argument(help="A Python file, or '-' for standard input.")],
    out: Annotated[
        Path | None, typer.Option(help="Write the documented file here (may be the same file).")
    ] = None,
    attempts: Annotated[int, typer.Option(help="Tries per function.")] = 3,
    model: _Model = "gemma-3-270m",
    seed: _Seed = 0,
    policy: _Policy = None,
    deadline: _Deadline = None,
    json_: _Json = False,
) -> None:
    """Write Google-style docstrings for functions that lack them (checked against each signature).

    Example: genlab software docstrings mymodule.py --out mymodule.py
    """
    result = run(
        "docstrings",
        {"source": read_text(source, "source file"), "attempts": attempts},
        model=model,
        seed=seed,
        policy=policy,
        deadline=deadline,
        json_=json_,
        out=out,
        show=False,
    )
    if json_ or result.held:
        return
    if result.text and out is None:
        console.print(result.text, markup=False, highlight=False)
    for f in result.output["functions"]:
        bad = [c["detail"] or c["name"] for c in f["checks"] if not c["passed"]]
        err_console.print(
            f"{'[green]✓[/]' if f['valid'] else '[red]✗[/]'} {f['function']} (line {f['line']})"
            + (f": {'; '.join(bad)}" if bad else ""),
            highlight=False,
        )
    print_checks(result)


# -- education ----------------------------------------------------------------------------------------
@education_app.command("quiz")
def quiz(
    passage: Annotated[str, typer.Argument(help="A text file with the passage, or '-' for standard input.")],
    questions: Annotated[int, typer.Option("--questions", "-q", help="How many questions.")] = 3,
    model: _Model = "gemma-3-270m",
    seed: _Seed = 0,
    policy: _Policy = None,
    deadline: _Deadline = None,
    json_: _Json = False,
) -> None:
    """Multiple-choice questions with an answer key, each checked against the passage.

    Example: genlab education quiz lesson.txt --questions 5
    """
    result = run(
        "quiz",
        {"passage": read_text(passage, "passage file"), "questions": questions},
        model=model,
        seed=seed,
        policy=policy,
        deadline=deadline,
        json_=json_,
        show=False,
    )
    if json_ or result.held:
        return
    for i, q in enumerate(result.output["questions"], 1):
        console.print(f"[bold]{i}. {q['question']}[/]", highlight=False)
        for letter, option in zip("ABCD", q["options"], strict=True):
            key = " [green](answer)[/]" if letter == q["answer"] else ""
            console.print(f"   {letter}) {option}{key}", highlight=False)
        bad = [
            f"{c['name']}: {c['detail']}" if c["detail"] else c["name"]
            for c in q["checks"]
            if not c["passed"]
        ]
        console.print(
            f"   [dim]evidence: {q['evidence']}[/]" if not bad else f"   [red]✗ {'; '.join(bad)}[/]",
            highlight=False,
        )
    print_checks(result)


def _store():
    from genlab.storage import Store

    return Store()


@tutor_app.command("courses")
def courses(json_: _Json = False) -> None:
    """The shipped courses."""
    from genlab.apps.education import Course, shipped_courses

    courses = [Course.load(c) for c in shipped_courses()]
    rows = [{"course": c.id, "title": c.title, "skills": c.order()} for c in courses]
    if json_:
        print_json(rows)
        return
    for r in rows:
        console.print(f"[bold]{r['course']}[/]: {r['title']} ({' -> '.join(r['skills'])})", highlight=False)


@tutor_app.command("start")
def tutor_start(
    learner: Annotated[str, typer.Argument(help="A learner id (letters, digits, _.@-).")],
    course: Annotated[
        str, typer.Option(help="A shipped course (`genlab education tutor courses`).")
    ] = "python-basics",
    json_: _Json = False,
) -> None:
    """Enrol a learner in a course."""
    from genlab.apps.education import start_learner

    view = start_learner(_store(), learner, course)
    print_json(view) if json_ else _print_path(view)


@tutor_app.command("status")
def tutor_status(
    learner: Annotated[str, typer.Argument(help="The learner id.")], json_: _Json = False
) -> None:
    """A learner's path: mastery per skill, mastered / ready / locked."""
    from genlab.apps.education import learner_view

    view = learner_view(_store(), learner)
    print_json(view) if json_ else _print_path(view)


@tutor_app.command("next")
def tutor_next(
    learner: Annotated[str, typer.Argument(help="The learner id.")],
    model: Annotated[
        str | None,
        typer.Option(
            "--model", "-m", help="Write new questions with this model once a skill's item bank is used up."
        ),
    ] = None,
    seed: _Seed = 0,
    json_: _Json = False,
) -> None:
    """The next question, chosen by mastery (the same one until it is answered)."""
    from genlab.apps.education import ask

    ctx = _context(model, seed)
    question = ask(_store(), learner, ctx)
    if json_:
        print_json(question)
    elif question is None:
        console.print("every skill is mastered: the course is complete")
    else:
        _print_question(question)


@tutor_app.command("answer")
def tutor_answer(
    learner: Annotated[str, typer.Argument(help="The learner id.")],
    choice: Annotated[str, typer.Argument(help="The answer: A, B, C or D.")],
    json_: _Json = False,
) -> None:
    """Answer the waiting question; mastery is updated by Bayesian Knowledge Tracing."""
    from genlab.apps.education import answer

    feedback = answer(_store(), learner, choice)
    if json_:
        print_json(feedback)
        return
    verdict = (
        "[green]right[/]" if feedback["correct"] else f"[red]not quite[/]: the answer is {feedback['answer']}"
    )
    console.print(f"{verdict}. {feedback['explanation']}", highlight=False)
    console.print(
        f"{feedback['skill']}: mastery {feedback['mastery_before']:.2f} -> {feedback['mastery']:.2f}"
        + (" [green](mastered)[/]" if feedback["mastered"] else ""),
        highlight=False,
    )
    if feedback["done"]:
        console.print("[bold green]every skill is mastered: the course is complete[/]")


@tutor_app.command("practice")
def tutor_practice(
    learner: Annotated[str, typer.Argument(help="The learner id (started with `tutor start`).")],
    questions: Annotated[int, typer.Option(help="Stop after this many questions.")] = 10,
    model: Annotated[
        str | None, typer.Option("--model", "-m", help="Write new questions with this model.")
    ] = None,
    seed: _Seed = 0,
) -> None:
    """An interactive session: questions one after another, answered at the prompt."""
    from genlab.apps.education import answer, ask

    store, ctx = _store(), _context(model, seed)
    for _ in range(questions):
        question = ask(store, learner, ctx)
        if question is None:
            console.print("[bold green]every skill is mastered: the course is complete[/]")
            return
        _print_question(question)
        choice = typer.prompt("your answer (A-D, q to stop)").strip()
        if choice.lower() == "q":
            return
        feedback = answer(store, learner, choice)
        verdict = (
            "[green]right[/]" if feedback["correct"] else f"[red]not quite[/], it is {feedback['answer']}"
        )
        console.print(
            f"{verdict}. {feedback['explanation']} (mastery {feedback['mastery']:.2f})\n", highlight=False
        )


def _context(model: str | None, seed: int):
    """The tutor's question writer: the quiz recipe through the CLI's pipeline (records, reviews)."""
    if model is None:
        return None
    from genlab.apps.education import QuizWriter
    from genlab.cli.generate import cli_pipeline
    from genlab.pipeline import Caller

    return QuizWriter(cli_pipeline(), model, seed=seed, caller=Caller(actor="cli"))


def _print_question(q: dict[str, Any]) -> None:
    console.print(f"[dim]{q['skill']}[/] [bold]{q['question']}[/]", highlight=False)
    for letter, option in zip("ABCD", q["options"], strict=True):
        console.print(f"   {letter}) {option}", highlight=False)


def _print_path(view: dict[str, Any]) -> None:
    table = Table(title=f"{view['learner']}: {view['title']} ({view['correct']} of {view['answers']} right)")
    for col in ("skill", "status", "mastery"):
        table.add_column(col, justify="right" if col == "mastery" else "left")
    for p in view["path"]:
        colour = {"mastered": "green", "ready": "yellow", "locked": "dim"}[p["status"]]
        table.add_row(p["title"], f"[{colour}]{p['status']}[/]", f"{p['mastery']:.2f}")
    console.print(table)


# -- marketing ----------------------------------------------------------------------------------------
@marketing_app.command("copy")
def copy(
    brief: Annotated[str, typer.Argument(help="What to announce or sell, to whom.")],
    profile: Annotated[
        str, typer.Option(help="A shipped brand profile (northwind-bikes, evergreen-bank) or a YAML file.")
    ],
    kind: Annotated[str, typer.Option(help="copy or email.")] = "copy",
    variants: Annotated[int, typer.Option("--variants", "-n", help="How many variants.")] = 3,
    merge_field: Annotated[
        list[str] | None, typer.Option(help="A mail-merge field every email uses (repeatable).")
    ] = None,
    image_model: Annotated[str | None, typer.Option(help="Also draw an image with this image model.")] = None,
    image_prompt: Annotated[str | None, typer.Option(help="The image's class, e.g. '7'.")] = None,
    model: _Model = "gemma-3-270m",
    seed: _Seed = 0,
    policy: _Policy = None,
    deadline: _Deadline = None,
    json_: _Json = False,
) -> None:
    """Variants of copy or an email, each checked against a brand profile and ranked.

    Example: genlab marketing copy "10% off winter service" --profile northwind-bikes --kind email --merge-field first_name
    """
    data: dict[str, Any] = {
        "brief": brief,
        "profile": _profile(profile),
        "kind": kind,
        "variants": variants,
        "merge_fields": merge_field or [],
        "image_model": image_model,
        "image_prompt": image_prompt,
    }
    result = run(
        "marketing-copy",
        data,
        model=model,
        seed=seed,
        policy=policy,
        deadline=deadline,
        json_=json_,
        show=False,
    )
    if json_ or result.held:
        return
    for v in result.output["variants"]:
        ok = (
            "[green]meets the profile[/]"
            if not v["violations"]
            else f"[red]{len(v['violations'])} violation(s)[/]"
        )
        console.print(
            f"[bold]#{v['rank']}[/] {ok} [dim](grade {v['measures']['grade']}, sentiment "
            f"{v['measures']['sentiment']:+.2f}, {v['measures']['words']} words)[/]",
            highlight=False,
        )
        console.print(v["text"], markup=False, highlight=False)
        for violation in v["violations"]:
            console.print(f"   [red]✗ {violation}[/]", highlight=False)
        console.print()
    if "image" in result.output:
        console.print(f"image: {result.output['image']['path']}")
    exit_if_failed(result)


def _profile(value: str) -> Any:
    path = Path(value)
    if path.suffix in (".yaml", ".yml", ".json"):
        if not path.is_file():
            raise InvalidRequestError(f"the brand profile {value} does not exist")
        try:
            return yaml.safe_load(path.read_text("utf-8"))
        except yaml.YAMLError as e:
            raise InvalidRequestError(f"the brand profile is not YAML: {getattr(e, 'problem', e)}") from None
    return value


# -- healthcare ---------------------------------------------------------------------------------------
@healthcare_app.command("summarize")
def summarize(
    record: Annotated[
        str, typer.Argument(help="A patient record as a text file, or '-' for standard input.")
    ],
    attempts: Annotated[int, typer.Option(help="Tries before giving the best note.")] = 3,
    model: _Model = "gemma-3-270m",
    seed: _Seed = 0,
    policy: _Policy = None,
    deadline: _Deadline = None,
    json_: _Json = False,
) -> None:
    """De-identify a record, write a SOAP note, re-identify it, flag unsupported facts; held for review.

    The note is released by a reviewer (`genlab review show ID`, then approve, edit or reject).
    Example: genlab healthcare summarize record.txt
    """
    run(
        "clinical-summary",
        {"record": read_text(record, "record file"), "attempts": attempts},
        model=model,
        seed=seed,
        policy=policy,
        deadline=deadline,
        json_=json_,
    )


@healthcare_app.command("examples")
def examples(json_: _Json = False) -> None:
    """The synthetic patient records shipped with genlab (written for it; no real patient)."""
    from genlab.apps.recipe import DATA

    paths = sorted(str(p) for p in (DATA / "healthcare" / "records").iterdir() if p.name.endswith(".txt"))
    print_json(paths) if json_ else console.print("\n".join(paths), markup=False, highlight=False)
