"""The prompt cache through real llama.cpp: a conversation's next turn, after another conversation
came in between, restores its saved state and generates exactly what a fresh evaluation does."""

import pytest

from genlab.backends.llamacpp import PROMPT_BLOCK, LlamaCppGenerator, PromptCache

HISTORY = " ".join(
    f"Turn {i}: the traveller walked on towards the river and the old mill." for i in range(30)
)
OTHER = "A recipe for bread: flour, water, salt and yeast, kneaded and left to rise. " * 12


@pytest.fixture(scope="module")
def uncached(gemma):
    """The same model without a cache: every prompt it is given is evaluated from its first token."""
    generator = LlamaCppGenerator(gemma.card, gemma.model_path, prompt_cache_bytes=0)
    yield generator
    generator.close()


def pieces(generator, prompt, **kwargs) -> list[str]:
    """The streamed text, one piece per sampled token."""
    return [c.text for c in generator.stream(prompt, max_tokens=24, **kwargs)]


@pytest.mark.parametrize("sampling", [{"temperature": 0}, {"temperature": 1.0, "seed": 11}])
def test_a_restored_state_generates_what_a_fresh_evaluation_does(gemma, uncached, sampling):
    first, later = HISTORY + " What happened next?", HISTORY + " What happened next? And then?"
    assert len(gemma.tokenize(first)) > 3 * PROMPT_BLOCK
    gemma.generate(first, max_tokens=4, temperature=0)  # this conversation's earlier turn, saved
    gemma.generate(OTHER, max_tokens=4, temperature=0)  # another user's request: the context moves on
    hits = gemma.prompt_cache.hits
    cached = pieces(gemma, later, **sampling)
    assert gemma.prompt_cache.hits == hits + 1  # the earlier turn's state was restored
    uncached.generate(OTHER, max_tokens=1)  # its context holds nothing of the conversation
    fresh = pieces(uncached, later, **sampling)
    assert cached == fresh and len(fresh) > 1  # token for token
    assert uncached.prompt_cache.stats()["states"] == 0  # a zero budget saves nothing


def test_a_seeded_request_does_not_depend_on_the_request_before_it(gemma):
    """The same prompt after another one, and right after itself (the context holds it): before
    aligned blocks, the second re-evaluated only the prompt's last token, in a batch of one, and its
    seeded text differed for 6 seeds of 6 (the flaky streamed-vs-unstreamed server test)."""
    for seed in range(3):
        gemma.generate(OTHER, max_tokens=2, seed=seed)
        after_other = gemma.generate("Once upon a time", max_tokens=16, seed=seed, temperature=1.0)[0].text
        again = gemma.stream("Once upon a time", max_tokens=16, seed=seed, temperature=1.0)
        assert after_other == "".join(c.text for c in again)


def test_the_cache_keeps_within_its_budget_dropping_the_least_recently_used():
    cache = PromptCache(capacity_bytes=10)
    cache.put((1, 2), b"aaaa")
    cache.put((3, 4), b"bbbb")
    assert cache.get((1, 2)) == b"aaaa"  # now the most recently used
    cache.put((5, 6), b"cccc")
    assert cache.longest([3, 4, 9]) == (None, 0)  # (3, 4) was dropped
    assert cache.longest([1, 2, 7]) == ((1, 2), 2) and cache.size_bytes == 8
    cache.put((1, 2, 7, 8), b"dd")  # the same conversation, a turn later: replaces its earlier state
    assert cache.stats()["states"] == 2 and cache.size_bytes == 6
    cache.put((9,), b"x" * 11)  # larger than the whole budget: not kept
    assert cache.longest([9]) == (None, 0)
