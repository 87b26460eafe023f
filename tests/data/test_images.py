"""Image datasets: real digits, rendered glyphs, and a user's own folders (made by the tests)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from genlab.codecs.image import resolve_class
from genlab.core import InvalidRequestError
from genlab.core.settings import Settings
from genlab.data.datasets import load_image_dataset
from genlab.data.images import GLYPH_CLASSES, load_digits, load_folder, load_glyphs


def test_digits_are_the_real_sklearn_set_split_by_class():
    d = load_digits()
    assert len(d.train) + len(d.val) == 1797
    assert d.train.shape[1:] == (1, 16, 16) and d.val.shape[1:] == (1, 16, 16)
    assert d.train.min() == -1 and d.train.max() == 1
    assert d.class_names == [str(i) for i in range(10)]
    counts = torch.bincount(d.val_labels, minlength=10)
    assert counts.min() >= 30  # every digit held out in proportion
    assert torch.equal(load_digits().val, d.val)  # a fixed split
    assert load_digits(8).train.shape[1:] == (1, 8, 8)


def test_glyphs_are_deterministic_and_hold_out_whole_fonts(tmp_path: Path):
    settings = Settings(home=tmp_path)
    g = load_glyphs(settings, seed=3, per_font=1)
    assert g.train.shape[1:] == (1, 28, 28)
    assert g.class_names == GLYPH_CLASSES and len(GLYPH_CLASSES) == 62
    assert set(g.extra["fonts_val"]).isdisjoint(g.extra["fonts_train"])
    assert len(g.val) == 62 * len(g.extra["fonts_val"])
    again = load_glyphs(Settings(home=tmp_path / "other"), seed=3, per_font=1)  # rendered afresh
    assert torch.equal(again.train, g.train)
    other_seed = load_glyphs(settings, seed=4, per_font=1)
    assert not torch.equal(other_seed.train, g.train)  # the jitter follows the seed


def _write_images(folder: Path, n: int, size=(12, 12), mode="L", seed=0) -> None:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    shape = (size[1], size[0]) + ((3,) if mode == "RGB" else ())
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, shape, dtype=np.uint8), mode).save(folder / f"{i}.png")


def test_folder_with_class_subfolders_is_conditional(tmp_path: Path):
    for name in ("cats", "dogs"):
        _write_images(tmp_path / "pets" / name, 10)
    d = load_folder(tmp_path / "pets")
    assert d.class_names == ["cats", "dogs"] and d.conditional
    assert d.train.shape[1:] == (1, 12, 12)
    assert len(d.train) + len(d.val) == 20 and len(d.val) >= 2


def test_flat_folder_is_unconditional_and_rgb_stays_rgb(tmp_path: Path):
    _write_images(tmp_path / "flat", 12, size=(16, 16), mode="RGB")
    d = load_folder(tmp_path / "flat")
    assert not d.conditional and d.class_names == []
    assert d.train.shape[1:] == (3, 16, 16)


def test_mixed_sizes_are_resized_with_a_warning(tmp_path: Path, capsys):
    _write_images(tmp_path / "mixed", 6, size=(16, 16))
    Image.fromarray(np.zeros((20, 24), np.uint8)).save(tmp_path / "mixed" / "odd.png")
    d = load_folder(tmp_path / "mixed")
    assert d.train.shape[1:] == (1, 16, 16)
    assert "resizing all to 16x16" in capsys.readouterr().err


def test_bad_folders_get_clear_errors(tmp_path: Path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InvalidRequestError, match="holds no images"):
        load_folder(tmp_path / "empty")
    (tmp_path / "texts").mkdir()
    (tmp_path / "texts" / "a.txt").write_text("not an image")
    with pytest.raises(InvalidRequestError, match="holds no images"):
        load_folder(tmp_path / "texts")
    _write_images(tmp_path / "broken", 5)
    (tmp_path / "broken" / "bad.png").write_bytes(b"\x89PNG garbage")
    with pytest.raises(InvalidRequestError, match="not a readable image"):
        load_folder(tmp_path / "broken")
    with pytest.raises(InvalidRequestError, match="unknown dataset"):
        load_image_dataset("no-such-dataset")


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        ("7", "7"),
        ("seven", "7"),
        ("Seven", "7"),
        ("digit 7", "7"),
        ("letter A", "A"),
        ("capital b", "B"),
        ("lowercase a", "a"),
        ("small Q", "q"),
        ("A", "A"),
        ("a", "a"),
    ],
)
def test_prompts_name_classes(prompt: str, expected: str):
    classes = GLYPH_CLASSES
    assert classes[resolve_class(prompt, classes)] == expected


def test_unknown_class_lists_the_valid_ones():
    with pytest.raises(InvalidRequestError) as e:
        resolve_class("eleven", [str(i) for i in range(10)])
    assert "no class 'eleven'" in str(e.value) and "0, 1, 2" in str(e.value)
    with pytest.raises(InvalidRequestError, match="unconditional"):
        resolve_class("7", [])


def test_unknown_class_error_names_the_prompt_as_typed():
    with pytest.raises(InvalidRequestError, match="no class 'letter Q'"):
        resolve_class("letter Q", [str(i) for i in range(10)])
