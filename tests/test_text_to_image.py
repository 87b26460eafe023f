"""Pretrained text-to-image pipelines (diffusers), on a tiny one the tests build from random weights:
added and pulled (from a loopback server that speaks the Hub's protocol), drawn by the CLI and the
API with prompt, negative prompt, size, steps, guidance, scheduler and seed; a request that would
not fit in memory is refused before it runs."""

import base64
import io
import json

import numpy as np
import openai
import pytest
from PIL import Image

from genlab.core.settings import Settings
from genlab.registry import Registry
from genlab.server.app import create_app
from genlab.server.state import ServerConfig
from tests.conftest import assert_clean_error, genlab_cli
from tests.hub import hub_app
from tests.server.conftest import LiveServer
from tests.tiny_pipeline import build_tiny_pipeline


@pytest.fixture(scope="module")
def pipeline_dir(tmp_path_factory):
    return build_tiny_pipeline(tmp_path_factory.mktemp("sd"))


@pytest.fixture(scope="module")
def home(pipeline_dir, tmp_path_factory):
    home = tmp_path_factory.mktemp("home")
    out = genlab_cli("models", "add", "tiny-sd", "--diffusers", str(pipeline_dir), "--json", home=home)
    assert out.returncode == 0, out.stderr
    entry = json.loads(out.stdout)
    assert entry["backend"] == "diffusers" and entry["modality"] == "image" and entry["family"] == "diffusion"
    return home


def test_the_cli_draws_a_prompt_with_every_option(home, tmp_path):
    grid = tmp_path / "bike.png"
    out = genlab_cli(
        "generate",
        "image",
        "--model",
        "tiny-sd",
        "--prompt",
        "a red bicycle",
        "--negative-prompt",
        "rain",
        "--size",
        "32x24",
        "--steps",
        "2",
        "--guidance",
        "3",
        "--scheduler",
        "euler",
        "--seed",
        "5",
        "-n",
        "2",
        "--out",
        str(grid),
        "--json",
        home=home,
    )
    assert out.returncode == 0, out.stderr
    images = json.loads(out.stdout)["images"]
    assert [i["provenance"]["seed"] for i in images] == [5, 6]
    params = images[0]["provenance"]["parameters"]
    assert (
        params["prompt"] == "a red bicycle"
        and params["negative_prompt"] == "rain"
        and params["size"] == "32x24"
    )
    assert params["scheduler"] == "EulerDiscreteScheduler" and params["steps"] == 2
    assert Image.open(grid).size[0] >= 2 * 32
    again = genlab_cli(
        "generate",
        "image",
        "--model",
        "tiny-sd",
        "--prompt",
        "a red bicycle",
        "--negative-prompt",
        "rain",
        "--size",
        "32x24",
        "--steps",
        "2",
        "--guidance",
        "3",
        "--scheduler",
        "euler",
        "--seed",
        "5",
        "-n",
        "1",
        "--json",
        home=home,
    )
    assert (
        json.loads(again.stdout)["images"][0]["provenance"]["sha256"] == images[0]["provenance"]["sha256"]
    )  # seeded


def test_the_api_draws_and_refuses_what_memory_cannot_hold(home):
    registry = Registry(Settings(home=home))
    with LiveServer(create_app(registry, config=ServerConfig(open_access=True))) as live:
        client = openai.OpenAI(base_url=f"{live.url}/v1", api_key="x", max_retries=0)
        r = client.images.generate(
            model="tiny-sd",
            prompt="a lighthouse at dusk",
            size="32x32",
            n=1,
            extra_body={"steps": 2, "seed": 1, "negative_prompt": "people"},
        )
        pixels = np.asarray(Image.open(io.BytesIO(base64.b64decode(r.data[0].b64_json))))
        assert pixels.shape == (32, 32, 3)
        with pytest.raises(openai.BadRequestError, match="pixels"):  # the cap, before any work
            client.images.generate(
                model="tiny-sd", prompt="x", size="2048x2048", n=16, extra_body={"steps": 1}
            )
        with pytest.raises(openai.BadRequestError, match="multiples of 8"):
            client.images.generate(model="tiny-sd", prompt="x", size="33x33", extra_body={"steps": 1})
        with pytest.raises(openai.BadRequestError, match="prompt is empty"):
            client.images.generate(model="tiny-sd", prompt=" ", extra_body={"steps": 1})


def test_a_folder_that_is_not_a_pipeline_is_one_line(tmp_path):
    out = genlab_cli("models", "add", "nope", "--diffusers", str(tmp_path), home=tmp_path / "home")
    assert_clean_error(out, "not a diffusers pipeline folder")


def test_pull_downloads_a_pipeline_from_the_hub(pipeline_dir, tmp_path):
    files = {str(p.relative_to(pipeline_dir)): p for p in pipeline_dir.rglob("*") if p.is_file()}
    with LiveServer(hub_app({"genlab/tiny-sd": files})) as hub:
        env = {"HF_ENDPOINT": hub.url}
        out = genlab_cli("models", "pull", "genlab/tiny-sd", "--json", home=tmp_path, env=env)
        assert out.returncode == 0, out.stderr
        entry = json.loads(out.stdout)
        assert (
            entry["name"] == "tiny-sd"
            and entry["backend"] == "diffusers"
            and entry["source"].startswith("hf://genlab/tiny-sd@")
        )
    drawn = genlab_cli(
        "generate",
        "image",
        "--model",
        "tiny-sd",
        "--prompt",
        "a cat",
        "--size",
        "16x16",
        "--steps",
        "1",
        "-n",
        "1",
        "--json",
        home=tmp_path,
    )
    assert drawn.returncode == 0, drawn.stderr
