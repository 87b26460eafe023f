import pytest

from genlab.core import GenerationRequest, InvalidRequestError, ModelCard, SamplingParams, as_request
from genlab.core.errors import ModelLoadError
from genlab.core.request import parse_json_schema


@pytest.mark.parametrize(
    ("change", "param"),
    [
        ({"max_tokens": 0}, "max_tokens"),
        ({"max_tokens": -5}, "max_tokens"),
        ({"temperature": -0.1}, "temperature"),
        ({"temperature": float("nan")}, "temperature"),
        ({"top_p": 0.0}, "top_p"),
        ({"top_p": 1.5}, "top_p"),
        ({"top_k": -1}, "top_k"),
        ({"min_p": 2.0}, "min_p"),
        ({"repeat_penalty": 0.0}, "repeat_penalty"),
        ({"stop": ("",)}, "stop"),
        ({"logprobs": 50}, "logprobs"),
        ({"grammar": "root ::= x", "json_schema": {"type": "object"}}, "grammar"),
        ({"grammar": "   "}, "grammar"),
    ],
)
def test_sampling_params_reject_out_of_range(change, param):
    with pytest.raises(InvalidRequestError) as err:
        SamplingParams(**change).validate()
    assert err.value.param == param
    assert param in str(err.value)


@pytest.mark.parametrize("prompt", [None, "", "   \n"])
def test_empty_prompt_is_rejected(prompt):
    with pytest.raises(InvalidRequestError, match="prompt is empty"):
        GenerationRequest(prompt=prompt).validate()


def test_conditional_request_needs_no_prompt():
    assert GenerationRequest(condition="7").validate(needs_prompt=False).condition == "7"


@pytest.mark.parametrize(("n", "seed"), [(0, None), (17, None), (1, -1), (1, 2**32)])
def test_n_and_seed_ranges(n, seed):
    with pytest.raises(InvalidRequestError):
        GenerationRequest(prompt="x", n=n, seed=seed).validate()


def test_as_request_from_prompt_and_keywords():
    r = as_request("Once", max_tokens=5, seed=2, stop="\n", n=2)
    assert r.prompt == "Once" and r.seed == 2 and r.n == 2
    assert r.params.max_tokens == 5 and r.params.stop == ("\n",)


def test_as_request_updates_an_existing_request():
    base = GenerationRequest(prompt="a", params=SamplingParams(temperature=0.2))
    r = as_request(base, max_tokens=3)
    assert r.params.temperature == 0.2 and r.params.max_tokens == 3


def test_as_request_rejects_unknown_settings():
    with pytest.raises(InvalidRequestError, match=r"unknown setting.*temprature"):
        as_request("x", temprature=0.1)


def test_choice_seeds_are_reproducible_and_distinct():
    r = GenerationRequest(prompt="x", n=3, seed=10)
    assert r.choice_seeds() == [10, 11, 12]
    unseeded = GenerationRequest(prompt="x", n=2).choice_seeds()
    assert len(set(unseeded)) == 2


def test_request_to_dict_is_json_ready():
    d = GenerationRequest(prompt="p", seed=1, params=SamplingParams(stop=("a",))).to_dict()
    assert d["prompt"] == "p" and d["params"]["stop"] == ["a"]


def test_parse_json_schema_errors_are_clear():
    with pytest.raises(InvalidRequestError, match=r"not valid JSON.*line 1"):
        parse_json_schema("{nope")
    with pytest.raises(InvalidRequestError, match="JSON object"):
        parse_json_schema("[1, 2]")
    assert parse_json_schema('{"type": "object"}') == {"type": "object"}


def test_model_card_roundtrip_and_missing_fields(tmp_path):
    card = ModelCard(
        name="x", family="vae", modality="image", backend="torch", parameters=10, metrics={"fid": 1.5}
    )
    path = card.save(tmp_path / "card.json")
    assert ModelCard.load(path) == card
    (tmp_path / "bad.json").write_text('{"name": "x"}')
    with pytest.raises(ModelLoadError, match="lacks backend, family, modality"):
        ModelCard.load(tmp_path / "bad.json")
