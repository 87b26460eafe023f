"""`genlab models pull` against a loopback server that speaks the Hub's protocol: the real
huggingface_hub client picks a quantisation, resumes a cut download, checks the sha256 and the
model is registered with its source in its card; a missing repo or file and no network are one line."""

import hashlib
import json

import pytest

from genlab.training.gguf_export import export_gguf
from tests.conftest import assert_clean_error, genlab_cli
from tests.hub import COMMIT, hub_app
from tests.server.conftest import LiveServer


@pytest.fixture(scope="module")
def gguf_repo(registry, trained_bpe, tmp_path_factory):
    folder = tmp_path_factory.mktemp("repo")
    model = export_gguf(registry, trained_bpe, folder / "Plays-Q4_K_M.gguf")
    (folder / "Plays-Q8_0.gguf").write_bytes(model.read_bytes() + b"")  # a second quantisation
    (folder / "README.md").write_text("a tiny model")
    return {"genlab/plays-GGUF": {p.name: p for p in folder.iterdir()}}


def test_pull_picks_a_quant_resumes_checks_and_registers(gguf_repo, tmp_path):
    """An earlier pull was interrupted half-way (its partial file is in huggingface_hub's cache):
    this one asks the server for the rest only."""
    served = gguf_repo["genlab/plays-GGUF"]["Plays-Q4_K_M.gguf"].read_bytes()
    sha = hashlib.sha256(served).hexdigest()
    folder = tmp_path / "hub" / "genlab--plays-GGUF" / COMMIT
    folder.mkdir(parents=True)
    (folder / "Plays-Q4_K_M.gguf.part").write_bytes(served[: len(served) // 2])
    app = hub_app(gguf_repo)
    with LiveServer(app) as hub:
        env = {"HF_ENDPOINT": hub.url, "HF_HUB_DISABLE_XET": "1"}
        out = genlab_cli(
            "models", "pull", "genlab/plays-GGUF", "--quant", "q4_k_m", "--json", home=tmp_path, env=env
        )
        assert out.returncode == 0, out.stderr
        entry = json.loads(out.stdout)
        assert (
            entry["name"] == "plays-q4_k_m"
            and entry["source"] == f"hf://genlab/plays-GGUF/Plays-Q4_K_M.gguf@{COMMIT}"
        )
        assert entry["config"]["sha256"] == sha
        assert ("GET", "Plays-Q4_K_M.gguf", f"bytes={len(served) // 2}-") in app.state.requests  # resumed
        gen = genlab_cli(
            "generate", "text", "KING:", "--model", "plays-q4_k_m", "--max-tokens", "4", home=tmp_path
        )
        assert gen.returncode == 0, gen.stderr
        again = genlab_cli(
            "models",
            "pull",
            "genlab/plays-GGUF",
            "--quant",
            "Q4_K_M",
            "--name",
            "plays-q4_k_m",
            home=tmp_path,
            env=env,
        )
        assert_clean_error(again, "already registered")
        assert_clean_error(
            genlab_cli("models", "pull", "genlab/nope", home=tmp_path, env=env), "no repository"
        )
        assert_clean_error(
            genlab_cli("models", "pull", "genlab/plays-GGUF", "missing.gguf", home=tmp_path, env=env),
            "no file",
        )
        assert_clean_error(
            genlab_cli("models", "pull", "genlab/plays-GGUF", "--quant", "IQ2", home=tmp_path, env=env),
            "none matches 'IQ2'",
        )


def test_pull_without_a_network_says_so_in_one_line(tmp_path):
    out = genlab_cli(
        "models", "pull", "genlab/plays-GGUF", home=tmp_path, env={"HF_ENDPOINT": "http://127.0.0.1:9"}
    )
    assert_clean_error(out, "needs the network", "HF_ENDPOINT")
