"""`genlab train image`, `generate image` and `eval image`, run as a user runs them (a real subprocess)."""

import json
import shlex

import numpy as np
import pytest
from PIL import Image

from ..conftest import assert_clean_error, genlab_cli

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def image_cli_home(tmp_path_factory):
    home = tmp_path_factory.mktemp("image-cli")
    out = genlab_cli(
        *shlex.split("train image --family vae --data digits --preset tiny --name v --json"), home=home
    )
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert (
        summary["steps"] == 60
        and summary["items_per_second"] > 0
        and "elbo_bits_per_dim" in summary["best_metrics"]
    )
    return home


def test_generate_writes_a_grid_and_images_with_provenance(image_cli_home, tmp_path):
    grid = tmp_path / "grid.png"
    out = genlab_cli(
        *shlex.split("generate image --model v --prompt seven -n 4 --seed 2 --out"),
        str(grid),
        "--save",
        str(tmp_path / "each"),
        "--json",
        home=image_cli_home,
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert [i["label"] for i in result["images"]] == ["7"] * 4
    assert [i["provenance"]["seed"] for i in result["images"]] == [2, 3, 4, 5]
    picture = np.asarray(Image.open(grid))
    assert picture.shape[0] > 16 * 2 and picture.shape[1] > 16 * 2  # 2x2 tiles, enlarged
    from genlab.codecs.image import image_grid

    scale = picture.shape[0] // (2 * 16 + 3 * 2)  # 2 tiles of 16 px and 3 gutters of 2 px, enlarged
    gutters = image_grid([np.full((16, 16), 255, np.uint8)] * 4, scale=scale) == 200
    assert (picture[gutters] == 200).all()  # the watermark lives in the images, not on the gutters
    verdict = json.loads(genlab_cli("verify", str(grid), "--json", home=image_cli_home).stdout)
    assert verdict["watermark"]["present"] is True
    saved = sorted((tmp_path / "each").glob("*.png"))
    assert len(saved) == 4
    check = genlab_cli("verify", str(saved[0]), "--json", home=image_cli_home)
    assert check.returncode == 0 and json.loads(check.stdout)["content_unchanged"] is True


def test_eval_image_reports_the_field_metrics_and_writes_the_card(image_cli_home):
    out = genlab_cli("eval", "image", "--model", "v", "--samples", "60", "--json", home=image_cli_home)
    assert out.returncode == 0, out.stderr
    m = json.loads(out.stdout)
    for key in (
        "fid",
        "kid",
        "precision",
        "recall",
        "class_accuracy",
        "bits_per_dim",
        "seconds_per_1000_images",
    ):
        assert key in m, key
    assert m["feature_space"] == "classifier-digits" and m["floor"]["fid"] < m["fid"]
    card = json.loads(genlab_cli("models", "show", "v", "--json", home=image_cli_home).stdout)
    assert card["metrics"]["eval"]["fid"] == m["fid"]


def test_shipped_image_models_are_listed_on_a_fresh_home(tmp_path):
    listed = {m["name"]: m for m in json.loads(genlab_cli("models", "--json", home=tmp_path).stdout)}
    for family in ("gan", "vae", "diffusion"):
        assert listed[f"{family}-digits"]["family"] == family
        assert listed[f"{family}-digits"]["modality"] == "image"


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["generate", "image", "--model", "v", "--prompt", "eleven"], ["no class 'eleven'", "0, 1, 2"]),
        (
            ["generate", "image", "--model", "diffusion-digits", "--prompt", "7", "--steps", "0"],
            ["steps must be"],
        ),
        (
            ["generate", "image", "--model", "diffusion-digits", "--prompt", "7", "--guidance", "-1"],
            ["guidance"],
        ),
        (["generate", "image", "--model", "v", "--prompt", "7", "--steps", "20"], ["apply to diffusion"]),
        (["generate", "image", "--model", "shakespeare-char", "--prompt", "7"], ["not an image model"]),
        (["generate", "image", "--model", "v", "--out", "grid.jpg"], [".png"]),
        (["train", "image", "--family", "flow"], ["unknown image family 'flow'"]),
        (["train", "image", "--family", "vae", "--data", "/nonexistent/images"], ["unknown dataset"]),
        (["eval", "image", "--model", "shakespeare-char"], ["gan, vae and diffusion"]),
    ],
)
def test_image_command_mistakes_are_one_clear_line(image_cli_home, args, needles):
    assert_clean_error(genlab_cli(*args, home=image_cli_home), *needles)


def test_empty_image_folder_is_refused(image_cli_home, tmp_path):
    (tmp_path / "empty").mkdir()
    out = genlab_cli(
        "train", "image", "--family", "gan", "--data", str(tmp_path / "empty"), home=image_cli_home
    )
    assert_clean_error(out, "holds no images")


def test_flat_folder_needs_unconditional(image_cli_home, tmp_path):
    folder = tmp_path / "flat"
    folder.mkdir()
    for i in range(6):
        Image.fromarray(np.full((8, 8), i * 40, np.uint8)).save(folder / f"{i}.png")
    out = genlab_cli(
        "train", "image", "--family", "vae", "--data", str(folder), "--preset", "tiny", home=image_cli_home
    )
    assert_clean_error(out, "no classes", "--unconditional")
    out = genlab_cli(
        *shlex.split("train image --family vae --data"),
        str(folder),
        *shlex.split("--preset tiny --steps 5 --unconditional --name flat-vae --json"),
        home=image_cli_home,
    )
    assert out.returncode == 0, out.stderr
    gen = genlab_cli(
        *shlex.split("generate image --model flat-vae -n 2 --out"),
        str(tmp_path / "g.png"),
        home=image_cli_home,
    )
    assert gen.returncode == 0, gen.stderr
