"""The Python API as the README shows it."""

import pytest

import genlab
from genlab.core import ModelNotFoundError


def test_load_generate_and_stream(session_home):
    m = genlab.load("gemma-3-270m")
    assert genlab.load("gemma-3-270m") is m  # loaded once per process
    art = m.generate("The capital of France is", max_tokens=8, seed=1)[0]
    assert isinstance(art, genlab.TextArtifact) and art.text
    assert "".join(c.text for c in m.stream("The capital of France is", max_tokens=8, seed=1)) == art.text


def test_models_lists_cards(session_home):
    assert "gemma-3-270m" in [c.name for c in genlab.models()]


def test_unknown_model_is_a_genlab_error(session_home):
    with pytest.raises(genlab.GenlabError) as err:
        genlab.load("nope")
    assert isinstance(err.value, ModelNotFoundError)
