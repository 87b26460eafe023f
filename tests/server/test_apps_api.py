"""The recipes over real HTTP: listing, bad input, the tutor's routes, a clinical summary held for
review, and the studio's app pages in a real browser."""

import json

import httpx
import pytest
from playwright.sync_api import expect

from genlab.apps.healthcare import ClinicalSummary
from tests.server.test_studio_browser import page  # noqa: F401  (the shared browser fixture)


def test_the_recipes_are_listed_with_their_input_schema(server):
    data = httpx.get(f"{server.url}/v1/apps").json()["data"]
    names = [a["name"] for a in data]
    assert names == [
        "code-completion",
        "test-generation",
        "docstrings",
        "quiz",
        "marketing-copy",
        "clinical-summary",
        "tutor",
    ]
    quiz = next(a for a in data if a["name"] == "quiz")
    assert "passage" in quiz["input_schema"]["properties"] and quiz["policy"] == "education"


@pytest.mark.parametrize(
    ("path", "body", "status", "needle"),
    [
        ("/v1/apps/quiz", {"input": {"passage": "  the  "}}, 400, "passage is empty"),
        ("/v1/apps/test-generation", {"input": {"source": "def f(:"}}, 400, "does not parse"),
        (
            "/v1/apps/marketing-copy",
            {"input": {"brief": "x", "profile": {"name": "B", "min_words": 9, "max_words": 2}}},
            400,
            "above max_words",
        ),
        (
            "/v1/apps/quiz",
            {
                "input": {"passage": "The Nile is the longest river in Africa and flows north."},
                "model": "no-such-model",
            },
            404,
            "unknown model",
        ),
        ("/v1/apps/nope", {"input": {}}, 404, "no recipe named"),
        ("/v1/apps/quiz", {"passage": "no input wrapper"}, 400, ""),
        ("/v1/apps/tutor/learners/nobody/answer", {"choice": "A"}, 404, "no learner"),
    ],
)
def test_bad_input_is_a_4xx_with_an_openai_error_body(server, path, body, status, needle):
    r = httpx.post(server.url + path, json=body, timeout=60)
    assert r.status_code == status, r.text
    assert needle in r.json()["error"]["message"]


def test_the_tutor_over_http(server):
    start = httpx.post(f"{server.url}/v1/apps/tutor/learners", json={"learner": "http-ada"})
    assert start.status_code == 201 and start.json()["path"][0]["status"] == "ready"
    assert httpx.post(f"{server.url}/v1/apps/tutor/learners", json={"learner": "http-ada"}).status_code == 409
    q = httpx.post(f"{server.url}/v1/apps/tutor/learners/http-ada/next").json()["question"]
    assert q["skill"] == "variables" and len(q["options"]) == 4 and "answer" not in q
    feedback = httpx.post(f"{server.url}/v1/apps/tutor/learners/http-ada/answer", json={"choice": "B"}).json()
    assert feedback["item"] == q["id"] and feedback["answer"] in "ABCD"
    view = httpx.get(f"{server.url}/v1/apps/tutor/learners/http-ada").json()
    assert view["answers"] == 1 and view["history"][0]["item"] == q["id"]
    bad = httpx.post(f"{server.url}/v1/apps/tutor/learners/http-ada/answer", json={"choice": "B"})
    assert bad.status_code == 400 and "no question is waiting" in bad.json()["error"]["message"]


def test_a_clinical_summary_is_held_until_a_reviewer_approves_it(server):
    record = ClinicalSummary().eval_cases()[2]["record_text"]
    r = httpx.post(
        f"{server.url}/v1/apps/clinical-summary",
        json={"input": {"record": record, "attempts": 1}, "seed": 1},
        timeout=600,
    )
    assert r.status_code == 202 and r.json()["rule"] == "always"
    review_id = r.json()["id"]
    pending = httpx.get(f"{server.url}/v1/reviews/{review_id}").json()
    assert pending["status"] == "pending" and "response" not in pending
    queue = server.state.reviews
    item = queue.get(review_id)
    assert item["request"]["record"] == record  # the reviewer checks the note against the real record
    note = item["artifact"]["text"]
    assert "Mbeki" in note or "<PERSON" not in note  # re-identified: no placeholder the vault knew is left
    for f in item["findings"]:
        if f["scanner"] == "recipe":  # unsupported facts are spans of the note the reviewer sees marked
            assert note[f["start"] : f["end"]] == f["text"]
    claimed = queue.claim(review_id, "dr-test")
    queue.decide(review_id, "dr-test", "approve", "ok", version=claimed["version"])
    released = httpx.get(f"{server.url}/v1/reviews/{review_id}").json()
    assert released["status"] == "approved" and released["response"]["text"] == note
    assert released["response"]["recipe"] == "clinical-summary"


def test_the_tutor_page_asks_grades_and_shows_mastery(server, page):  # noqa: F811
    page.goto(server.url + "/studio/apps/tutor")
    expect(page.locator("#course option")).to_have_count(1, timeout=20_000)
    page.fill("#learner", "browser-ada")
    page.click("#go")
    expect(page.locator(".choice")).to_have_count(4, timeout=20_000)
    assert "x refer to" in page.locator("#question").inner_text()
    page.click(".choice[data-choice='B']")  # the right answer to the first item of the bank
    expect(page.locator("#verdict")).to_contain_text("right", timeout=20_000)
    expect(page.locator("#path tbody tr").first).to_contain_text("0.5", timeout=20_000)


def test_an_app_page_builds_its_form_and_shows_checked_output(server, page):  # noqa: F811
    page.goto(server.url + "/studio/apps/marketing-copy")
    expect(page.locator("#f-brief")).to_be_visible(timeout=20_000)
    assert page.locator("label[for=f-brief] .field").inner_text() == "brief"  # the name, then its help
    assert page.locator("label[for=f-brief] .help").inner_text().startswith("What to announce")
    profiles = page.locator("select#f-profile option").all_inner_texts()  # a choice, not a text box
    assert profiles == ["evergreen-bank", "northwind-bikes"]
    page.click("#example")
    page.fill("#f-variants", "2")
    page.click("#run")
    expect(page.locator("#result")).to_contain_text("#2", timeout=120_000)
    assert (
        page.locator("#result").inner_text().count("#") >= 2
        and "Checks" in page.locator("#result").inner_text()
    )


def test_the_studio_serves_the_latest_compare_report(server, session_home):
    from genlab.core.settings import Settings
    from genlab.evaluation.compare import run_compare

    report = run_compare(
        "small", modalities=["image"], settings=Settings(home=session_home)
    )  # resumes if run
    r = httpx.get(f"{server.url}/studio/compare", follow_redirects=True)
    assert r.status_code == 200 and "Generative AI vs LLMs, measured" in r.text and "gan-digits" in r.text
    png = httpx.get(f"{server.url}/studio/compare/quality-vs-speed.png")
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    grid = next(c for c in report["cells"] if c["key"] == "gan-image")["gallery"][0]
    assert httpx.get(f"{server.url}/studio/compare/{grid}").status_code == 200
    assert httpx.get(f"{server.url}/studio/compare/..%2F..%2Fgenlab.db").status_code == 404


def test_a_streamed_recipe_sends_each_step_then_its_result(server):
    passage = "The Nile is the longest river in Africa. It flows north into the Mediterranean Sea."
    body = {"input": {"passage": passage, "questions": 2, "attempts": 1}, "stream": True}
    with httpx.stream("POST", f"{server.url}/v1/apps/quiz", json=body, timeout=300) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        events = [line[6:] for line in r.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    parsed = [json.loads(e) for e in events[:-1]]
    steps = [e["message"] for e in parsed if e["object"] == "app.progress"]
    assert steps == ["question 1 of 2", "question 2 of 2"]  # one attempt each: no attempt lines
    assert parsed[-1]["object"] == "app.result" and len(parsed[-1]["output"]["questions"]) <= 2
    unknown = httpx.post(f"{server.url}/v1/apps/quiz", json={**body, "model": "nope"}, timeout=60)
    assert unknown.status_code == 404  # refused before the stream starts
