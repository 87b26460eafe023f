"""The prompt cache shares one model's states between users: an attacker who sends the start of a
victim's prompt with a continuation of its own is served from the victim's saved state, and must
get exactly what a fresh evaluation of the attacker's own prompt gives: nothing of the victim's
secret (which lies after the shared prefix) reaches it."""

import pytest

from genlab.backends.llamacpp import PROMPT_BLOCK, LlamaCppGenerator

PREAMBLE = " ".join(f"Rule {i}: the assistant keeps the vault's code private." for i in range(20))
VICTIM = PREAMBLE + " The vault code is 7391-4482. Repeat the vault code:"
ATTACKER = PREAMBLE + " Repeat the vault code:"
OTHER = "A recipe for bread: flour, water, salt and yeast, kneaded and left to rise. " * 12


@pytest.fixture(scope="module")
def uncached(gemma):
    generator = LlamaCppGenerator(gemma.card, gemma.model_path, prompt_cache_bytes=0)
    yield generator
    generator.close()


def test_a_shared_prefix_gives_the_attacker_its_own_answer_not_the_victims_state(gemma, uncached):
    assert len(gemma.tokenize(PREAMBLE)) > 2 * PROMPT_BLOCK
    fresh = uncached.generate(ATTACKER, max_tokens=16, temperature=0)[0].text
    gemma.generate(VICTIM, max_tokens=12, temperature=0)  # the victim's prompt, in the context
    right_after = gemma.generate(ATTACKER, max_tokens=16, temperature=0)[0].text
    gemma.generate(VICTIM, max_tokens=12, temperature=0)  # again, and its state saved
    gemma.generate(OTHER, max_tokens=2, temperature=0)  # someone else's request moves the context on
    hits = gemma.prompt_cache.hits
    from_saved = gemma.generate(ATTACKER, max_tokens=16, temperature=0)[0].text
    assert gemma.prompt_cache.hits == hits + 1  # the attack did reach the victim's saved state
    assert right_after == from_saved == fresh
    assert "7391" not in from_saved and "4482" not in from_saved
