"""The compare report: the likelihoods it adds, a real run on the image cells, resuming, a failed
modality reported in the report, and bad input."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from genlab.core.settings import Settings
from genlab.data.datasets import load_image_dataset
from genlab.evaluation.compare import CompareError, budget_for, run_compare
from genlab.reports import render_file
from tests.conftest import assert_clean_error, genlab_cli


def test_diffusion_variational_bound_is_a_sane_bits_per_dim(registry):
    model = registry.load("diffusion-digits").model
    data = load_image_dataset("digits", registry.settings)
    bpd = model.bits_per_dim(data.val[:32], data.val_labels[:32], samples=4)
    assert 0 < bpd < 8  # 8 bits per dimension is a uniform guess over 256 grey levels


def test_gemma_scores_english_far_better_than_noise(gemma):
    english = "To be, or not to be, that is the question: whether 'tis nobler in the mind to suffer."
    noise = "qZx7 vv#kP0 ;;wq Lr9 zzT&b Qm2 xj!uuY 8pQ wW3 kk^rZ oO1 ylq@ 4Rr fG0 +mN Tt5 pq"
    assert gemma.bits_per_char(english) < 2.5 < gemma.bits_per_char(noise)


def test_compare_on_images_writes_a_report_resumes_and_reports_a_missing_modality(session_home, monkeypatch):
    settings = Settings(home=session_home)
    report = run_compare("small", modalities=["image"], settings=settings)
    cells = {c["key"]: c for c in report["cells"]}
    assert set(cells) == {"gan-image", "vae-image", "diffusion-image"}
    assert all(c["status"] == "ok" for c in cells.values())
    for c in cells.values():
        assert c["quality"]["metric"] == "FID" and c["quality"]["floor"] is not None
        assert c["sampling_seconds_per_item"] > 0 and c["parameters"] > 0
        assert (Path(report["dir"]) / c["gallery"][0]).is_file()
    assert cells["gan-image"]["likelihood"] is None  # an implicit model has none
    assert "IWAE" in cells["vae-image"]["likelihood"]["metric"]
    assert "variational" in cells["diffusion-image"]["likelihood"]["metric"]
    html = render_file("compare", Path(report["dir"]))
    assert (
        "gan-digits" in html
        and "quality-vs-speed.png" in html
        and (Path(report["dir"]) / "quality-vs-speed.png").is_file()
    )

    from rich.console import Console

    from genlab.cli.compare import COLUMNS, compare_table

    table = compare_table(report)  # the terminal's table: each value under its own header
    assert [c.header for c in table.columns] == list(COLUMNS)
    column = {c.header: list(c.cells) for c in table.columns}
    for i, c in enumerate(report["cells"]):
        assert column["quality"][i] == f"FID {c['quality']['value']:.3f}"
        assert column["floor"][i] == f"{c['quality']['floor']:.3f}"
        assert column["class acc."][i].startswith(f"{c['class_accuracy']:.3f}")
        assert column["likelihood"][i] == (f"{c['likelihood']['value']:.3f}" if c["likelihood"] else "")
    with open(os.devnull, "w") as sink:
        Console(file=sink).print(table)  # renders

    again = run_compare("small", modalities=["image"], settings=settings)  # a rerun resumes
    assert all(c.get("resumed") for c in again["cells"])

    monkeypatch.setenv("PATH", "/nonexistent")  # no espeak-ng: the audio cells fail, in the report
    with pytest.raises(CompareError, match="apt-get install espeak-ng"):
        run_compare("small", modalities=["audio"], settings=settings)
    from genlab.evaluation.compare import cells, run_cell

    failed = run_cell(
        next(c for c in cells() if c.key == "gan-audio"), budget_for("small"), Path(report["dir"]), None
    )
    assert failed["status"] == "failed" and "espeak-ng" in failed["error"]


def test_bad_budget_and_modality_are_one_line_errors(tmp_path):
    assert_clean_error(
        genlab_cli("compare", "--budget", "huge", home=tmp_path), "unknown budget 'huge'", "small, full"
    )
    assert_clean_error(
        genlab_cli("compare", "--modality", "smell", home=tmp_path), "unknown modality 'smell'"
    )
    script = Path(sys.executable).with_name("genlab")
    env = {**os.environ, "GENLAB_HOME": str(tmp_path), "PATH": "/nonexistent"}
    proc = subprocess.run(
        [str(script), "compare", "--modality", "audio"], capture_output=True, text=True, env=env
    )
    assert_clean_error(proc, "apt-get install espeak-ng")
    assert not (tmp_path / "reports" / "compare" / "latest.json").exists()
