import json
import shlex

import pytest

from ..conftest import assert_clean_error, genlab_cli


def test_train_eval_generate_export_from_the_command_line(tmp_path, corpus_dir):
    home = tmp_path / "home"
    out = genlab_cli(
        *shlex.split("train text --data"),
        str(corpus_dir),
        *shlex.split("--codec bpe --vocab-size 300 --preset tiny --steps 60 --name cli-lm --json"),
        home=home,
    )
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert (
        summary["steps"] == 60
        and summary["tokens_per_second"] > 0
        and "bits_per_byte" in summary["best_metrics"]
    )
    listed = {m["name"]: m for m in json.loads(genlab_cli("models", "--json", home=home).stdout)}
    assert listed["cli-lm"]["family"] == "transformer" and listed["cli-lm"]["kind"] == "transformer"
    metrics = json.loads(
        genlab_cli("eval", "text", "--model", "cli-lm", "--batches", "5", "--json", home=home).stdout
    )
    assert metrics["val_documents"] == 1 and metrics["perplexity"] > 1
    gen = genlab_cli(
        "generate", "text", "KING:", "--model", "cli-lm", "--max-tokens", "10", "--seed", "1", home=home
    )
    assert gen.returncode == 0 and gen.stdout.strip()
    exported = genlab_cli("export", "gguf", "cli-lm", "--register", "cli-lm-gguf", home=home)
    assert exported.returncode == 0, exported.stderr
    gen = genlab_cli("generate", "text", "KING:", "--model", "cli-lm-gguf", "--max-tokens", "10", home=home)
    assert gen.returncode == 0 and gen.stdout.strip()


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["--preset", "huge"], ["unknown preset 'huge'", "tiny, small, base"]),
        (["--codec", "words"], ["unknown codec 'words'"]),
        (["--resume", "--name", "never-trained"], ["nothing to resume"]),
        (["--name", "../escape"], ["invalid model name"]),
        (["--name", "shakespeare-char"], ["shipped model", "--name my-shakespeare-char"]),
    ],
)
def test_train_mistakes_give_one_clear_line(tmp_path, corpus_dir, args, needles):
    out = genlab_cli("train", "text", "--data", str(corpus_dir), *args, home=tmp_path / "home")
    assert_clean_error(out, *needles)


def test_bad_training_data(tmp_path):
    home = tmp_path / "home"
    binary = tmp_path / "blob.txt"
    binary.write_bytes(b"\0\1\2\3" * 100)
    assert_clean_error(genlab_cli("train", "text", "--data", str(binary), home=home), "looks binary")
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    assert_clean_error(genlab_cli("train", "text", "--data", str(empty), home=home), "is empty")
    assert_clean_error(genlab_cli("train", "text", "--data", "nonsense", home=home), "unknown corpus")
    assert not (home / "models").exists() or not any((home / "models").iterdir())


def test_eval_and_export_refuse_models_they_cannot_handle(tmp_path):
    home = tmp_path / "home"
    assert_clean_error(genlab_cli("eval", "text", "--model", "gemma-3-270m", home=home), "trained in genlab")
    assert_clean_error(genlab_cli("export", "gguf", "gemma-3-270m", home=home), "not a transformer")


def test_a_trained_model_is_never_shadowed_and_the_hint_is_its_own(tmp_path, corpus_dir):
    """The default name of a model trained on shakespeare is not the shipped model's, and the
    "try it" hint names the new model with a prompt in the training data's own style."""
    home = tmp_path / "home"
    out = genlab_cli(
        "train", "text", "--data", str(corpus_dir), "--preset", "tiny", "--steps", "5", home=home
    )
    assert out.returncode == 0, out.stderr
    first_words = " ".join(
        next(p for p in sorted(corpus_dir.rglob("*")) if p.is_file()).read_text().split()[:4]
    )
    assert f"genlab generate text --model {corpus_dir.name}-char" in out.stdout and first_words in out.stdout
    shakespeare = genlab_cli(
        "train",
        "image",
        "--family",
        "vae",
        "--data",
        "digits",
        "--steps",
        "2",
        "--preset",
        "tiny",
        "--json",
        home=home,
    )
    assert shakespeare.returncode == 0, shakespeare.stderr
    assert json.loads(shakespeare.stdout)["name"] == "my-vae-digits"  # vae-digits is shipped
    show = json.loads(genlab_cli("models", "show", "my-vae-digits", "--json", home=home).stdout)
    assert show["name"] == "my-vae-digits" and not show.get("builtin")
