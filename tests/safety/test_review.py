"""The review queue and the audit chain, on SQLite and on a real PostgreSQL."""

import threading

import pytest
from sqlalchemy import text

from genlab.core import InvalidRequestError
from genlab.safety.review import ReviewConflict, ReviewNotFound, ReviewPolicy, ReviewQueue
from genlab.storage import Store
from tests.pg import empty_tables


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path):
    if request.param == "sqlite":
        s = Store(f"sqlite:///{tmp_path / 'genlab.db'}")
    else:
        s = Store(request.getfixturevalue("postgres_url"))
        empty_tables(s)
    yield s
    s.close()


def submit(store: Store, text_out: str = "The answer is 42.", **kw) -> dict:
    return ReviewQueue(store).submit(
        endpoint=kw.pop("endpoint", "completions"),
        model="gemma-3-270m",
        modality=kw.pop("modality", "text"),
        request={"prompt": "What is the answer?"},
        artifact=kw.pop("artifact", {"text": text_out}),
        findings=kw.pop("findings", []),
        rule=kw.pop("rule", "always"),
        **kw,
    )


def test_an_item_moves_only_along_legal_transitions(store):
    q = ReviewQueue(store)
    item = submit(store)
    assert item["state"] == "pending" and item["released"] is None
    claimed = q.claim(item["id"], "ana")
    assert claimed["state"] == "in_review" and claimed["claimed_by"] == "ana"
    with pytest.raises(ReviewConflict, match="being reviewed by ana"):
        q.decide(item["id"], "ben", "approve", "ok")
    done = q.decide(item["id"], "ana", "approve", "ok", comment="fine", seconds_spent=3.5)
    assert done["state"] == "approved" and done["released"] == {"text": "The answer is 42."}
    with pytest.raises(ReviewConflict, match="approved"):
        q.decide(item["id"], "ana", "reject", "factual_error")
    with pytest.raises(ReviewConflict):
        q.claim(item["id"], "ben")
    full = q.get(item["id"])
    assert [d["verdict"] for d in full["decisions"]] == ["approved"] and full["version"] == 2


def test_edit_releases_the_edited_artifact_and_checks_its_modality(store):
    q = ReviewQueue(store)
    item = submit(store)
    with pytest.raises(InvalidRequestError, match="this item is text"):
        q.decide(item["id"], "ana", "edit", "minor_fix", edited={"b64_png": "AAAA"})
    with pytest.raises(InvalidRequestError, match="needs the edited artifact"):
        q.decide(item["id"], "ana", "edit", "minor_fix")
    assert q.get(item["id"])["state"] == "pending"  # a refused decision changes nothing
    out = q.decide(item["id"], "ana", "edit", "factual_error", edited={"text": "The answer is 41."})
    assert out["state"] == "edited" and out["released"] == {"text": "The answer is 41.", "output": 0}
    image = submit(store, modality="image", artifact={"path": "/x.png", "sha256": "0" * 64})
    with pytest.raises(InvalidRequestError, match="this item is image"):
        q.decide(image["id"], "ana", "edit", "minor_fix", edited={"text": "a cat"})
    with pytest.raises(InvalidRequestError, match="not a readable PNG"):
        q.decide(image["id"], "ana", "edit", "minor_fix", edited={"b64_png": "bm90IGEgcG5n"})


def test_bad_decisions_are_refused_without_a_state_change(store):
    q = ReviewQueue(store)
    item = submit(store)
    with pytest.raises(InvalidRequestError, match="unknown reason code 'meh'"):
        q.decide(item["id"], "ana", "reject", "meh")
    with pytest.raises(InvalidRequestError, match="unknown verdict"):
        q.decide(item["id"], "ana", "maybe", "ok")
    with pytest.raises(ReviewNotFound):
        q.decide("rev-nope", "ana", "approve", "ok")
    assert q.get(item["id"])["state"] == "pending" and q.verify().events == 1


def test_escalation_goes_to_another_reviewer(store):
    q = ReviewQueue(store)
    item = submit(store)
    q.decide(item["id"], "ana", "escalate", "needs_expert")
    with pytest.raises(ReviewConflict, match="another reviewer"):
        q.decide(item["id"], "ana", "approve", "ok")
    assert q.decide(item["id"], "dr-kim", "reject", "S6")["state"] == "rejected"


def test_overdue_items_expire(store):
    q = ReviewQueue(store)
    late = submit(store, policy=ReviewPolicy(mode="always", due_minutes=1e-6))
    on_time = submit(store)
    assert q.expire_overdue() == 1
    assert q.get(late["id"])["state"] == "expired" and q.get(on_time["id"])["state"] == "pending"


def test_two_reviewers_never_both_decide_one_item(store):
    q = ReviewQueue(store)
    items = [submit(store, f"answer {i}") for i in range(12)]
    wins: dict[str, list[str]] = {}
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def reviewer(name: str, verdict: str) -> None:
        barrier.wait()
        for item in items:
            try:
                q.decide(item["id"], name, verdict, "ok" if verdict == "approve" else "low_quality")
                wins.setdefault(item["id"], []).append(name)
            except ReviewConflict:
                continue  # another reviewer won this item: expected
            except BaseException as e:  # anything else is a bug
                errors.append(e)

    threads = [
        threading.Thread(target=reviewer, args=(f"r{i}", ("approve", "reject")[i % 2])) for i in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert all(len(wins.get(i["id"], [])) == 1 for i in items)  # exactly one decision per item
    for item in items:
        full = q.get(item["id"])
        assert len(full["decisions"]) == 1 and full["state"] in ("approved", "rejected")
        assert full["decisions"][0]["reviewer"] == wins[item["id"]][0]
    report = q.verify()
    assert report.ok and report.events == 12 * 3  # submit, claim, decide


def tamper(store: Store, sql: str, **params) -> None:
    with store.engine.begin() as c:
        c.execute(text(sql), params)


@pytest.mark.parametrize(
    ("sql", "needle"),
    [
        ("UPDATE audit_events SET actor = 'mallory' WHERE seq = 3", "event 3 was edited"),
        ("DELETE FROM audit_events WHERE seq = 2", "event 2 is missing"),
        ("DELETE FROM audit_events WHERE seq = 6", "events 6-6 are missing"),
        ("UPDATE audit_events SET seq = seq + 100 WHERE seq = 2", "event 2 is missing"),
    ],
)
def test_audit_verify_names_the_tampered_event(store, sql, needle):
    q = ReviewQueue(store)
    for i in range(2):
        item = submit(store, f"answer {i}")
        q.decide(item["id"], "ana", "approve", "ok")
    assert q.verify().ok and q.verify().events == 6
    tamper(store, sql)
    report = q.verify()
    assert not report.ok and any(needle in p for p in report.problems), report.problems


def test_swapped_events_are_found(store):
    q = ReviewQueue(store)
    item = submit(store)
    q.decide(item["id"], "ana", "approve", "ok")
    tamper(store, "UPDATE audit_events SET seq = 99 WHERE seq = 1")
    tamper(store, "UPDATE audit_events SET seq = 1 WHERE seq = 2")
    tamper(store, "UPDATE audit_events SET seq = 2 WHERE seq = 99")
    report = q.verify()
    assert not report.ok and "event 1 does not follow" in report.problems[0]


def test_export_and_scanner_feedback(store):
    q = ReviewQueue(store)
    pii = [{"scanner": "pii", "category": "EMAIL_ADDRESS", "start": 0, "end": 5, "score": 0.9}]
    a = submit(store, "mail bob@x.org", findings=pii, rule="flagged by pii")
    b = submit(store, "harmless", findings=pii, rule="flagged by pii")
    c = submit(store, "call 555-0100", rule="sampled at 0.1")
    q.decide(a["id"], "ana", "edit", "pii", edited={"text": "mail [EMAIL]"})
    q.decide(b["id"], "ana", "approve", "false_positive")
    q.decide(c["id"], "ana", "reject", "pii")
    rows = {r["id"]: r for r in q.export()}
    assert rows[a["id"]]["chosen"] == "mail [EMAIL]" and rows[a["id"]]["rejected"] == "mail bob@x.org"
    assert rows[c["id"]]["decision"] == "rejected" and rows[c["id"]]["prompt"] == "What is the answer?"
    assert q.scanner_feedback()["pii"] == {"true_positives": 1, "false_positives": 1, "false_negatives": 1}


def test_review_policy_modes():
    assert ReviewPolicy(mode="always").hold("images", []) == "always"
    assert ReviewPolicy(mode="flagged").hold("chat", []) is None
    assert ReviewPolicy(mode="flagged").hold("chat", ["pii"]) == "flagged by pii"
    assert ReviewPolicy(mode="never").hold("chat", ["pii"]) is None
    assert ReviewPolicy(mode="flagged", endpoints={"images": "always"}).hold("images", []) == "always"
    import random

    rng = random.Random(0)
    held = sum(
        ReviewPolicy(mode="sample", sample_rate=0.2).hold("chat", [], rng) is not None for _ in range(1000)
    )
    assert 150 < held < 250
    with pytest.raises(InvalidRequestError, match="unknown review mode"):
        ReviewPolicy(mode="sometimes")


def held_choices(store: Store, texts: list[str], key_id: int | None = None) -> tuple[dict, list[str]]:
    """Records held as the pipeline holds them, and an item over all of them."""
    from genlab.pipeline import held_artifact

    outputs = [{"output_text": t, "artifact_sha256": f"{i:064x}"} for i, t in enumerate(texts)]
    ids = [
        store.record_generation(
            endpoint="completions", model="m", request={}, status="held", key_id=key_id, **o
        )
        for o in outputs
    ]
    return submit(store, artifact=held_artifact(outputs, ids, {"choices": []}), key_id=key_id), ids


def test_every_output_is_held_and_an_edit_replaces_only_the_one_it_names(store):
    q = ReviewQueue(store)
    item, ids = held_choices(store, ["one", "two", "three"])
    assert [o["text"] for o in item["artifact"]["outputs"]] == ["one", "two", "three"]
    assert item["owner"] == "local" and item["artifact"]["count"] == 3
    with pytest.raises(InvalidRequestError, match="holds 3 output"):
        q.decide(item["id"], "ana", "edit", "minor_fix", edited={"text": "x"}, output=3)
    done = q.decide(item["id"], "ana", "edit", "minor_fix", edited={"text": "TWO"}, output=1)
    assert done["released"] == {"text": "TWO", "output": 1}
    records = [store.get_generation(i) for i in ids]
    assert [r["status"] for r in records] == ["approved"] * 3
    assert [r["output_text"] for r in records] == ["one", "TWO", "three"]
    assert q.export()[0]["rejected"] == "two" and q.export()[0]["chosen"] == "TWO"
    rejected, kept = held_choices(store, ["bad"])
    q.decide(rejected["id"], "ana", "reject", "low_quality")
    assert store.get_generation(kept[0])["status"] == "rejected"


def test_a_reviewer_cannot_decide_their_own_request_unless_allowed(store):
    key = store.create_key("rita", "reviewer")[1]
    item, _ = held_choices(store, ["mine"], key_id=key.id)
    assert item["owner"] == f"key:{key.id}"
    with pytest.raises(Exception, match="another reviewer must decide it") as refused:
        ReviewQueue(store).decide(item["id"], "rita", "approve", "ok", identity=f"key:{key.id}")
    assert refused.value.http_status == 403 and ReviewQueue(store).get(item["id"])["state"] == "pending"
    local, _ = held_choices(store, ["the CLI's"])  # the one person at the machine reviews their own
    assert (
        ReviewQueue(store).decide(local["id"], "cli:me", "approve", "ok", identity="local")["state"]
        == "approved"
    )
    allowed = ReviewQueue(store, self_review=True).decide(
        item["id"], "rita", "approve", "ok", identity=f"key:{key.id}"
    )
    assert allowed["state"] == "approved"


def test_the_stricter_of_two_policies_holds_what_either_holds():
    from genlab.safety.policy import Policy

    server = Policy.parse(
        "input:\n  - scanner: secrets\n    action: block\nreview:\n  mode: sample\n"
        "  sample_rate: 0.1\n  due_minutes: 60\n  endpoints:\n    apps.quiz: always\n",
        "server.yaml",
    )
    recipe = Policy.load("software")  # secrets block (the same rule: run once), injection warn, never held
    both = server.stricter(recipe)
    assert [r.scanner.name for r in both.input] == ["secrets", "invisible_text", "prompt_injection"]
    assert both.review.hold("apps.code-completion", ["x"]) and both.review.hold("apps.quiz", []) == "always"
    assert (both.review.mode, both.review.sample_rate, both.review.due_minutes) == ("sample", 0.1, 60)
    assert not both.fail_open and server.stricter(server) is server
    assert both.domain.name == recipe.domain.name == "software"  # the recipe's field keeps its words
    from genlab.apps.recipe import recipe_policy

    assert recipe_policy(server, recipe).name == "server+software"  # an operator's policy joins
    assert recipe_policy(Policy.load("default"), recipe) is recipe  # the shipped default defers
