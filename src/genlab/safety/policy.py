"""Guardrail policies: YAML files validated on load (errors name the line), and the Guard that runs
one on inputs and outputs."""

from __future__ import annotations

import atexit
import concurrent.futures
import contextlib
import dataclasses
import functools
import json
import multiprocessing
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from genlab.core import GenlabError, InvalidRequestError
from genlab.core.request import InputField
from genlab.safety import judge as _judge  # noqa: F401  (registers the llm_judge scanner)
from genlab.safety import semantic as _semantic  # noqa: F401  (registers the semantic scanner)
from genlab.safety.guardrails import (
    ACTIONS,
    SCANNERS,
    ControlTokenScanner,
    Finding,
    Scanner,
    ScanResult,
    SecretsScanner,
    Spans,
    Vault,
)
from genlab.safety.review import ReviewPolicy

POLICY_DIR = Path(__file__).parent / "policies"


class PolicyError(InvalidRequestError):
    """A policy file that cannot be used; the message names the file and line."""


class _LineLoader(yaml.SafeLoader):
    """SafeLoader that remembers the line of every mapping (as the key ``__line__``)."""


def _mapping_with_line(loader: _LineLoader, node: yaml.MappingNode) -> dict[str, Any]:
    mapping = loader.construct_mapping(node, deep=True)
    mapping["__line__"] = node.start_mark.line + 1
    return mapping


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_with_line)


DOMAIN_DIR = Path(__file__).parent / "domains"
# scanners that judge words, which a domain's terms exempt: its names are not people, its words not slurs
WORD_SCANNERS = ("pii", "pii_leakage", "toxicity", "banned_substrings", "banned_topics")


@dataclass(frozen=True)
class Domain:
    """What an application's field is (``domain:`` in a policy): its ``terms`` (words of the field,
    never personal data or a banned word there: "Parkinson's" in a clinical note, "John the
    Ripper" in a security review, "killer" in a brand's copy), the hazard categories that are its
    work (``allow``: reported, not blocked or flagged, e.g. medical advice, S6, in healthcare), and
    ``examples`` of its ordinary requests (tested to pass its policies; rows for guard training)."""

    name: str = "general"
    about: str = ""
    terms: tuple[str, ...] = ()
    allow: tuple[str, ...] = ()
    examples: tuple[str, ...] = ()

    @classmethod
    def load(cls, raw: Any, source: str = "<policy>") -> Domain:
        """A shipped domain by name, or a mapping with the same keys."""
        if raw is None:
            return cls()
        if isinstance(raw, str):
            path = DOMAIN_DIR / f"{raw}.yaml"
            if not path.is_file():
                shipped = ", ".join(sorted(p.stem for p in DOMAIN_DIR.glob("*.yaml")))
                raise PolicyError(
                    f"{source}: no domain named {raw!r}; shipped: {shipped} (or give a mapping)"
                )
            raw, source = yaml.safe_load(path.read_text("utf-8")), str(path)
        if not isinstance(raw, dict):
            raise PolicyError(f"{source}: a domain is a name or a mapping (name, terms, allow, examples)")
        unknown = set(raw) - {"name", "about", "terms", "allow", "examples", "__line__"}
        if unknown:
            raise PolicyError(f"{source}: unknown domain key(s) {', '.join(sorted(unknown))}")
        lists = {k: tuple(str(v) for v in raw.get(k) or ()) for k in ("terms", "allow", "examples")}
        return cls(name=str(raw.get("name", "custom")), about=str(raw.get("about", "")), **lists)

    @functools.cached_property
    def _pattern(self) -> re.Pattern[str] | None:
        if not self.terms:
            return None
        words = sorted(
            self.terms, key=len, reverse=True
        )  # the longest term wins ("Barrett's" over "Barrett")
        return re.compile(r"(?<!\w)(?:" + "|".join(re.escape(t) for t in words) + r")(?!\w)", re.IGNORECASE)

    def exempt(self, result: ScanResult, text: str) -> ScanResult:
        """``result`` without the findings that lie inside one of the domain's terms."""
        if self._pattern is None or result.valid or result.scanner not in WORD_SCANNERS:
            return result
        terms = Spans(m.span() for m in self._pattern.finditer(text))
        # mostly a term: a model's "Run John" in "Run John the Ripper" is the tool, "Victoria
        # Marchetti" with the marketing term "Victoria" is still a person
        kept = [f for f in result.findings if not _mostly_within(f, text, terms)]
        return _with_findings(result, kept)


def _with_findings(result: ScanResult, kept: list[Finding]) -> ScanResult:
    if len(kept) == len(result.findings):
        return result
    risk = max((f.score for f in kept), default=0.0)
    category = max(kept, key=lambda f: f.score).category if kept else None
    return dataclasses.replace(result, valid=not kept, risk=risk, category=category, findings=kept)


@dataclass
class Rule:
    scanner: Scanner
    action: str


@dataclass
class Policy:
    name: str
    input: list[Rule] = field(default_factory=list)
    output: list[Rule] = field(default_factory=list)
    fail_open: bool = False
    source: str = ""
    review: ReviewPolicy = field(default_factory=ReviewPolicy)
    domain: Domain = field(default_factory=Domain)

    @classmethod
    def load(cls, name_or_path: str | Path | None = None) -> Policy:
        """A shipped policy by name (``default``), or a YAML file by path."""
        if name_or_path is None:
            name_or_path = "default"
        path = Path(name_or_path)
        if not path.suffix:
            path = POLICY_DIR / f"{name_or_path}.yaml"
            if not path.is_file():
                shipped = sorted(p.stem for p in POLICY_DIR.glob("*.yaml"))
                raise PolicyError(
                    f"no policy named {str(name_or_path)!r}; shipped: {', '.join(shipped)} (or give a .yaml path)"
                )
        if not path.is_file():
            raise PolicyError(f"no such policy file: {path}")
        return cls.parse(path.read_text("utf-8"), source=str(path))

    def warm(self) -> None:
        """Load the models the rules' scanners read with (the PII scanner's name model) now; a
        failure here resurfaces, closed, on the first text."""
        for rule in self.input + self.output:
            with contextlib.suppress(Exception):
                rule.scanner.warm()

    @classmethod
    def parse(cls, text: str, source: str = "<policy>") -> Policy:
        try:
            data = yaml.load(text, Loader=_LineLoader)
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f"{source}:{mark.line + 1}" if mark else source
            raise PolicyError(f"{where}: not valid YAML: {getattr(e, 'problem', e)}") from None
        if not isinstance(data, dict):
            raise PolicyError(f"{source}: a policy is a mapping with name, input and output")
        unknown = set(data) - {"name", "input", "output", "fail_open", "review", "domain", "__line__"}
        if unknown:
            raise PolicyError(f"{source}:{data['__line__']}: unknown key(s) {', '.join(sorted(unknown))}")
        return cls(
            name=str(data.get("name") or Path(source).stem),
            input=[_rule(r, source, "input") for r in data.get("input") or []],
            output=[_rule(r, source, "output") for r in data.get("output") or []],
            fail_open=bool(data.get("fail_open", False)),
            source=source,
            review=_review(data.get("review"), source),
            domain=Domain.load(data.get("domain"), source),
        )

    def stricter(self, other: Policy) -> Policy:
        """This policy and ``other`` at once, as a recipe runs under a server's: every input and
        output rule of both (this one's first; a rule both hold runs once), a scanner that fails
        fails closed unless both say open, the review rule that holds more (``ReviewPolicy.stricter``),
        and the domain one of them declares (a recipe's field keeps its words under a server's policy;
        where both declare one, this policy's)."""
        if other is self or (other.name, other.source) == (self.name, self.source):
            return self
        return Policy(
            name=f"{self.name}+{other.name}",
            input=_joined(self.input, other.input),
            output=_joined(self.output, other.output),
            fail_open=self.fail_open and other.fail_open,
            source=f"{self.source} + {other.source}",
            review=self.review.stricter(other.review),
            domain=self.domain if self.domain != Domain() else other.domain,
        )


def _joined(first: list[Rule], then: list[Rule]) -> list[Rule]:
    def same(rule: Rule) -> tuple:
        scanner = rule.scanner
        return scanner.name, rule.action, scanner.threshold, repr(sorted(scanner.options.items()))

    seen = {same(r) for r in first}
    return [*first, *(r for r in then if same(r) not in seen)]


def _review(raw: Any, source: str) -> ReviewPolicy:
    """The ``review:`` section: mode (always | flagged | sample | never), sample_rate, priority,
    due_minutes, and per-endpoint modes under ``endpoints``."""
    if raw is None:
        return ReviewPolicy()
    if not isinstance(raw, dict):
        raise PolicyError(
            f"{source}: review is a mapping (mode, sample_rate, priority, due_minutes, endpoints)"
        )
    where = f"{source}:{raw.pop('__line__', '?')}"
    unknown = set(raw) - {"mode", "sample_rate", "priority", "due_minutes", "endpoints"}
    if unknown:
        raise PolicyError(f"{where}: unknown review key(s) {', '.join(sorted(unknown))}")
    endpoints = raw.get("endpoints") or {}
    if not isinstance(endpoints, dict):
        raise PolicyError(f"{where}: review endpoints map an endpoint to a mode")
    endpoints = {k: v for k, v in endpoints.items() if k != "__line__"}
    try:
        return ReviewPolicy(
            mode=raw.get("mode", "flagged"),
            sample_rate=float(raw.get("sample_rate", 0.0)),
            priority=int(raw.get("priority", 0)),
            due_minutes=float(raw.get("due_minutes", 24 * 60)),
            endpoints=endpoints,
        )
    except (InvalidRequestError, TypeError, ValueError) as e:
        raise PolicyError(f"{where}: {getattr(e, 'message', e)}") from None


def _rule(raw: Any, source: str, section: str) -> Rule:
    if not isinstance(raw, dict):
        raise PolicyError(f"{source}: each {section} rule is a mapping with scanner and action")
    line = raw.pop("__line__", "?")
    where = f"{source}:{line}"
    name = raw.pop("scanner", None)
    if name not in SCANNERS:
        raise PolicyError(f"{where}: unknown scanner {name!r}; known: {', '.join(sorted(SCANNERS))}")
    action = raw.pop("action", "warn")
    if action not in ACTIONS:
        raise PolicyError(f"{where}: unknown action {action!r}; expected one of {', '.join(ACTIONS)}")
    threshold = raw.pop("threshold", None)  # None: the scanner's own default
    if threshold is not None and (not isinstance(threshold, int | float) or not 0 <= threshold <= 1):
        raise PolicyError(f"{where}: threshold must be a number in [0, 1], got {threshold!r}")
    options = {k: v for k, v in raw.items() if not k.startswith("__")}
    if threshold is not None:
        options["threshold"] = float(threshold)
    return Rule(SCANNERS[name](**options), action)


@dataclass
class GuardResult:
    decision: str  # "allow", "flag" (allowed, held for review where a review policy says so) or "block"
    text: str  # the text after redaction and sanitisation
    results: list[ScanResult]
    actions: dict[str, str]  # scanner -> action taken for it

    @property
    def blocked(self) -> bool:
        return self.decision == "block"

    @property
    def findings(self) -> list:
        return [f for r in self.results for f in r.findings]

    def then(self, later: GuardResult) -> GuardResult:
        """This result followed by ``later`` (rules run over this result's text): the stricter
        decision, both sets of results."""
        order = ("allow", "flag", "block")
        decision = max(self.decision, later.decision, key=order.index)
        return GuardResult(
            decision, later.text, self.results + later.results, {**self.actions, **later.actions}
        )

    def blocking_category(self) -> str | None:
        for r in self.results:
            if not r.valid and self.actions.get(r.scanner) == "block":
                return r.category
        return None

    def to_dict(self) -> dict[str, Any]:
        return {
            "decision": self.decision,
            "text": self.text,
            "results": [{**r.to_dict(), "action": self.actions.get(r.scanner)} for r in self.results],
        }


@dataclass
class Flags:
    """What the guardrails found in one request: every finding (for the reviewer) and the scanners
    whose action was ``flag`` (which hold the generation under a ``flagged`` review policy)."""

    flagged_by: list[str] = field(default_factory=list)
    findings: list[dict[str, Any]] = field(default_factory=list)

    def add(self, result: GuardResult, where: str, field: str | None = None) -> None:
        """The findings of one scan of the input or output (``where``); ``field``: the request's
        field the input was read from (``messages.2.tool_calls.0``), kept with each finding."""
        invalid = {r.scanner for r in result.results if not r.valid}
        self.flagged_by += [s for s, action in result.actions.items() if action == "flag" and s in invalid]
        for r in result.results:
            action = result.actions.get(r.scanner)
            for f in r.findings:
                finding = {**f.to_dict(), "where": where, "action": action}
                if field is not None:
                    finding["field"] = field
                if action == "redact":  # what was redacted is not handed back in the findings either
                    finding["text"] = f"<{f.category}>"
                self.findings.append(finding)


class GuardBlocked(GenlabError):
    """A policy blocked the request; the HTTP answer is 400 and names the category."""

    http_status = 400
    exit_code = 7
    code = "content_policy_violation"

    def __init__(self, result: GuardResult, where: str, param: str | None = None) -> None:
        category = result.blocking_category() or "policy"
        reasons = "; ".join(
            f"{f.category}: {f.explanation}" for f in result.findings if f.category == category
        )[:300]
        super().__init__(f"the {where} was blocked by the guardrail policy ({category}): {reasons}")
        self.result = result
        self.category = category
        self.param = param or ("prompt" if where == "request" else None)


class Unredactable(InvalidRequestError):
    """A redaction the input policy made in a field cannot be found in the rendered prompt."""

    code = "content_policy_violation"


def redacted_prompt(prompt: str, field: InputField, checked: str) -> str:
    """``prompt`` with ``field``'s text replaced by ``checked`` (what the input policy redacted)
    where the prompt shows it: as written, trimmed (templates trim contents), or as a JSON string
    (tool calls and schemas). A redaction that cannot be made is a 400, never a prompt that still
    holds what the policy removed."""
    as_json = json.dumps(field.text, ensure_ascii=False)[1:-1], json.dumps(checked, ensure_ascii=False)[1:-1]
    for old, new in ((field.text, checked), (field.text.strip(), checked.strip()), as_json):
        if old and old in prompt:
            return prompt.replace(old, new)
    raise Unredactable(
        f"the request's {field.where} needs a redaction by the guardrail policy that cannot be made "
        "in the prompt the model's chat template renders; remove what it found",
        param=field.where,
    )


# A text this long is scanned in a worker process when the guard offloads (the server's does): the
# scanners are pure Python and regular expressions, which hold the GIL, and a megabyte prompt
# would otherwise stall every other request of the process for seconds.
LARGE_TEXT = 32_000


class Guard:
    def __init__(self, policy: Policy | None = None, *, offload: bool = False) -> None:
        self.policy = policy or Policy.load("default")
        self.offload = offload
        self.control = control_rule(self.policy)

    def _run(self, rules: list[Rule], text: str, *, prompt: str | None, vault: Vault | None) -> GuardResult:
        if self.offload and len(text) >= LARGE_TEXT:
            # scanners that read with this process's models (the learned guardrail, an LLM judge)
            # run here, after the rest; their work runs outside the GIL (onnxruntime, llama.cpp)
            here = [r for r in rules if getattr(r.scanner, "in_process", False)]
            away = [r for r in rules if r not in here]
            result, returned = _workers().submit(_scan, self.policy, away, text, prompt, vault).result()
            if vault is not None and returned is not None:
                vault.__dict__.update(returned.__dict__)  # the placeholders the worker made
            if not here:
                return result
            return result.then(_scan(self.policy, here, result.text, prompt, vault)[0])
        return _scan(self.policy, rules, text, prompt, vault)[0]

    def check_input(
        self, text: str, vault: Vault | None = None, *, instructions: bool = False
    ) -> GuardResult:
        """The input rules over ``text``; for the caller's own ``instructions`` (a system message)
        the rules that judge intent (injection, the learned guardrail, an LLM judge) are left out:
        instructions are what an injection tries to override, not an injection. The control-token
        rule (``control_rule``) reads every text, instructions included."""
        rules = self.policy.input
        if instructions:
            rules = [r for r in rules if not getattr(r.scanner, "judges_intent", False)]
        return self._run(rules + self.control, text, prompt=None, vault=vault)

    def check_output(
        self, text: str, *, prompt: str | None = None, vault: Vault | None = None
    ) -> GuardResult:
        return self._run(self.policy.output, text, prompt=prompt, vault=vault)

    def scan_all(self, text: str) -> GuardResult:
        """Every scanner of both sections over one text (for `genlab guard check` and moderation)."""
        seen, rules = set(), []
        for rule in self.policy.input + self.policy.output:
            if rule.scanner.name not in seen:
                seen.add(rule.scanner.name)
                rules.append(rule)
        return self._run(rules, text, prompt=None, vault=Vault())


def control_rule(policy: Policy) -> list[Rule]:
    """The control-token rule of a policy's inputs, which no text escapes, the caller's own system
    text included: a chat template's markup (``<|im_start|>``, ``<start_of_turn>``, ``<|eot_id|>``)
    written into any field forges a turn, and llama.cpp reads it as the real token. Its action is
    the policy's strictest rule that judges intent (a policy that only warns of injections only
    warns of this); a policy that names ``control_tokens`` itself, or judges no intent, has none."""
    rules = policy.input
    intent = [r.action for r in rules if getattr(r.scanner, "judges_intent", False)]
    if not intent or any(r.scanner.name == ControlTokenScanner.name for r in rules):
        return []
    return [Rule(ControlTokenScanner(), min(intent, key=ACTIONS.index))]


@functools.cache
def _workers() -> concurrent.futures.ProcessPoolExecutor:
    """Scanner processes, started on first need (spawned: the server's threads are not forked)."""
    pool = concurrent.futures.ProcessPoolExecutor(
        max_workers=max(1, os.cpu_count() or 1), mp_context=multiprocessing.get_context("spawn")
    )
    atexit.register(pool.shutdown, wait=True, cancel_futures=True)  # before the interpreter tears down
    return pool


def _scan(
    policy: Policy, rules: list[Rule], text: str, prompt: str | None, vault: Vault | None
) -> tuple[GuardResult, Vault | None]:
    """Run ``rules`` over ``text`` (in this process or a worker): the result, and the vault."""
    results, actions, decision = [], {}, "allow"
    reads_secrets = any(r.scanner.name == "secrets" for r in policy.input + policy.output)
    for rule in rules:
        try:
            result = rule.scanner.scan(text, prompt=prompt, vault=vault)
        except Exception as e:  # fail closed unless the policy says otherwise
            failed_action = "warn" if policy.fail_open else "block"
            result = ScanResult(
                rule.scanner.name, text, False, 1.0, "scanner_error", [], error=f"{type(e).__name__}: {e}"
            )
            results.append(result)
            actions[rule.scanner.name] = failed_action
            if failed_action == "block":
                decision = "block"
            continue
        if getattr(rule.scanner, "judges_intent", False) and not result.valid and reads_secrets:
            result = secret_echoes_removed(result, text)
        exempted = policy.domain.exempt(result, text)
        if exempted is not result and not exempted.valid:  # redact only what is left
            exempted.sanitized = rule.scanner.sanitize(text, exempted.findings, vault)
        result = exempted
        action = rule.action
        if not result.valid and all(f.category in policy.domain.allow for f in result.findings):
            action = "warn"  # the domain's own work (medical advice in healthcare): reported, not refused
        results.append(result)
        actions[rule.scanner.name] = action
        if result.valid:
            continue
        if action == "block":
            decision = "block"
        elif action == "redact":
            text = result.sanitized
        elif action == "flag" and decision == "allow":
            decision = "flag"
    return GuardResult(decision, text, results, actions), vault


def domain_examples(name: str | None = None) -> list[tuple[str, str]]:
    """The shipped domains' ordinary requests as ``(text, "benign")`` rows (one domain, or all):
    look-alikes of the fields genlab's recipes serve, for guard training and evaluation."""
    names = [name] if name else sorted(p.stem for p in DOMAIN_DIR.glob("*.yaml"))
    return [(text, "benign") for n in names for text in Domain.load(n).examples]


_SECRET_PLACEHOLDER = re.compile(r"<secret(?:_\d+)?>")


def secret_echoes_removed(result: ScanResult, text: str) -> ScanResult:
    """An intent finding (an injection, a harmful request) that is mostly a secret is the secret
    read as an instruction (``export AWS_SECRET_ACCESS_KEY=...``, a PEM block): the secrets rule
    reports it, once, as a secret. A secret's reach is its value and what precedes it on its line
    (the variable's name), never what follows, so an injection written after a key is still one."""
    found = [(f.start, f.end) for f in SecretsScanner().find(text)]
    found += [m.span() for m in _SECRET_PLACEHOLDER.finditer(text)]  # redacted by an earlier rule
    spans = [(text.rfind("\n", 0, start) + 1, end) for start, end in found]
    if not spans:
        return result
    secret = Spans(spans)
    return _with_findings(result, [f for f in result.findings if not _mostly_within(f, text, secret)])


def _mostly_within(finding: Finding, text: str, spans: Spans) -> bool:
    """At least half the finding's visible characters lie inside ``spans``."""
    visible = [i for i in range(finding.start, min(finding.end, len(text))) if not text[i].isspace()]
    inside = sum(spans.overlaps(i, i + 1) for i in visible)
    return bool(visible) and inside * 2 >= len(visible)


class StreamGuard:
    """Run the output policy over a streamed text as it grows, releasing only scanned text.

    The last ``holdback`` characters, and the word in progress, are held until later text (or the
    end) shows what they are part of, so a secret or an e-mail address is redacted before any of it
    is sent. Scans run once at least ``scan_every`` new characters have arrived, so the cost per
    token stays small.
    """

    def __init__(self, guard: Guard, prompt: str, *, holdback: int = 24, scan_every: int = 16) -> None:
        self.guard, self.prompt = guard, prompt
        self.holdback, self.scan_every = holdback, scan_every
        self.raw = ""
        self.emitted = 0  # characters of the sanitised text already released
        self.scanned_at = 0
        self.blocked = False
        self.vault = Vault()
        self.last: GuardResult | None = None

    def _scan(self) -> str:
        self.last = self.guard.check_output(self.raw, prompt=self.prompt, vault=self.vault)
        self.scanned_at = len(self.raw)
        if self.last.blocked:
            self.blocked = True
        return self.last.text

    def push(self, piece: str) -> str:
        if self.blocked:
            return ""
        self.raw += piece
        if len(self.raw) - self.scanned_at < self.scan_every:
            return ""
        text = self._scan()
        if self.blocked:
            return ""
        end = len(text) - self.holdback
        while end > self.emitted and not text[end - 1].isspace():  # never release half a word
            end -= 1
        if end <= self.emitted:
            return ""
        out, self.emitted = text[self.emitted : end], end
        return out

    def finish(self) -> str:
        if self.blocked:
            return ""
        text = self._scan()
        if self.blocked:
            return ""
        out, self.emitted = text[self.emitted :], len(text)
        return out


class StreamLogprobs:
    """A streamed choice's per-token logprobs, sent with the text of their own tokens.

    ``StreamGuard`` releases text at word boundaries, which may fall inside a token; ``piece``
    sends the released text up to the end of its last whole token, with those tokens' entries,
    and carries the rest to the next piece (the last piece takes all). Once the policy has
    changed the text (a redaction), no more entries go out: their tokens would show what was
    redacted."""

    def __init__(self, guard: StreamGuard) -> None:
        self.guard = guard
        self.pending: list[tuple[int, dict[str, Any]]] = []  # (end of the token in the raw text, entry)
        self.raw_end = 0
        self.carried = ""  # released text not yet sent: part of a token
        self.withheld = False

    def add(self, entries: list[dict[str, Any]] | None) -> None:
        for entry in entries or ():
            self.raw_end += len(entry["token"])
            self.pending.append((self.raw_end, entry))

    def piece(self, text: str, *, last: bool = False) -> tuple[str, list[dict[str, Any]]]:
        """What to send of the guard's released ``text``: (text, the entries of its tokens)."""
        g = self.guard
        shown = g.last.text[: g.emitted] if g.last is not None else ""
        self.carried += text
        if g.blocked or shown != g.raw[: g.emitted]:
            self.withheld, self.pending = True, []
        if self.withheld or last:
            out, self.carried = self.carried, ""
            entries, self.pending = [e for _, e in self.pending], []
            return out, entries
        cut = sum(1 for end, _ in self.pending if end <= g.emitted)
        entries, self.pending = [e for _, e in self.pending[:cut]], self.pending[cut:]
        n = sum(len(e["token"]) for e in entries)
        out, self.carried = self.carried[:n], self.carried[n:]
        return out, entries
