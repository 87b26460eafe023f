"""A hostile Hugging Face Hub, served on loopback and pulled from with the real huggingface_hub
client: file names and commits that climb out of the download folder, absolute names, a declared
size the bytes exceed. Each pull fails with one clear error, and nothing is written (or deleted)
outside ``GENLAB_HOME/hub/<owner>--<name>/<commit>/``."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from genlab.backends.hub import pull_gguf, pull_pipeline
from genlab.core import BackendError, IntegrityError, InvalidRequestError
from genlab.core.io import safe_join
from tests.conftest import assert_clean_error, genlab_cli
from tests.hub import COMMIT, hub_app
from tests.server.conftest import LiveServer

FORGED = {
    "name": "gpt-4o-mini",
    "loader": "openai_compat",
    "url": "http://127.0.0.1:9/v1",
    "api_key_env": "HF_TOKEN",
}


def files_under(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


@pytest.fixture
def hub_env(monkeypatch):
    def serve(repos, **lies):
        live = LiveServer(hub_app(repos, **lies))
        monkeypatch.setenv("HF_ENDPOINT", live.url)
        monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
        return live

    return serve


@pytest.fixture
def payload(tmp_path) -> dict[str, Path]:
    src = tmp_path / "served"
    src.mkdir()
    (src / "config.json").write_text(json.dumps(FORGED))
    (src / "model.gguf").write_bytes(b"GGUF" + bytes(4096))
    return {"config": src / "config.json", "gguf": src / "model.gguf"}


@pytest.mark.parametrize(
    "name",
    [
        "../../models/gpt-4o-mini/config.json",  # the live attack: a forged openai_compat model
        "../../../outside.gguf",
        "/tmp/genlab-hostile-absolute.gguf",
        "sub\\..\\..\\x.gguf",
        "a/./b.gguf",
        "evil\x00.gguf",
    ],
)
def test_a_file_name_that_leaves_the_folder_is_refused_and_writes_nothing(hub_env, payload, tmp_path, name):
    home = tmp_path / "home"
    home.mkdir()
    before = files_under(tmp_path)
    with hub_env({"evil/repo": {name: payload["config"]}}) as hub:
        with pytest.raises(InvalidRequestError, match="file name"):
            pull_gguf("evil/repo", home / "hub", file=name)
        assert not [r for r in hub.app.state.requests if r[0] == "GET"]  # refused before any download
    assert files_under(tmp_path) == before
    assert not Path("/tmp/genlab-hostile-absolute.gguf").exists()


def test_a_forged_commit_cannot_name_the_folder(hub_env, payload, tmp_path):
    home = tmp_path / "home"
    hub = hub_env({"evil/repo": {"model.gguf": payload["gguf"]}}, commit="../../models/gpt-4o-mini")
    with hub, pytest.raises(BackendError, match="not a commit id"):
        pull_gguf("evil/repo", home / "hub")
    assert not (home / "models").exists() and not list(tmp_path.rglob("model.gguf.part"))


def test_a_pipeline_with_one_climbing_file_downloads_nothing(hub_env, payload, tmp_path):
    home = tmp_path / "home"
    repo = {
        "model_index.json": payload["config"],
        "unet/config.json": payload["config"],
        "unet/../../../../models/gpt-4o-mini/config.json": payload["config"],
    }
    with hub_env({"evil/pipe": repo}) as hub:
        with pytest.raises(InvalidRequestError, match=r"'\.\.' part"):
            pull_pipeline("evil/pipe", home / "hub")
        assert not [r for r in hub.app.state.requests if r[0] == "GET"]
    assert not (home / "models").exists()


def test_more_bytes_than_declared_stop_at_the_declared_size_and_leave_nothing(hub_env, payload, tmp_path):
    """The Hub declares 10 bytes; the server sends 4 KB: the pull stops, and neither the file nor
    its part stays."""
    home = tmp_path / "home"
    hub = hub_env({"evil/repo": {"model.gguf": payload["gguf"]}}, sizes={"model.gguf": 10})
    with hub, pytest.raises(IntegrityError, match="larger than the 10 bytes"):
        pull_gguf("evil/repo", home / "hub")
    assert files_under(home) == set()


def test_a_bad_sha_deletes_only_what_the_pull_wrote(hub_env, payload, tmp_path):
    """The Hub records a sha256 the bytes do not have: the file the pull wrote goes, and a file the
    user already had, beside the hub folder, stays."""
    home = tmp_path / "home"
    victim = home / "hub" / "keep.gguf"
    victim.parent.mkdir(parents=True)
    victim.write_bytes(b"the user's own file")
    hub = hub_env({"evil/repo": {"model.gguf": payload["gguf"]}}, shas={"model.gguf": "0" * 64})
    with hub, pytest.raises(IntegrityError, match="but the Hub records"):
        pull_gguf("evil/repo", home / "hub")
    assert victim.read_bytes() == b"the user's own file"
    assert not (home / "hub" / "evil--repo" / COMMIT / "model.gguf").exists()


def test_the_cli_says_so_in_one_line_and_no_model_is_forged(hub_env, payload, tmp_path):
    name = "../../models/gpt-4o-mini/model.gguf"
    with hub_env({"evil/repo": {name: payload["gguf"]}}) as hub:
        out = genlab_cli("models", "pull", "evil/repo", name, home=tmp_path, env={"HF_ENDPOINT": hub.url})
    assert_clean_error(out, "'..'")
    assert not (tmp_path / "models" / "gpt-4o-mini").exists()


@pytest.mark.parametrize("bad", ["..", "../x", "/etc/passwd", "a//b", "a\\b", "", "x\ny"])
def test_safe_join_refuses_every_escape(tmp_path, bad):
    with pytest.raises(InvalidRequestError):
        safe_join(tmp_path, bad)


def test_safe_join_refuses_a_symlink_out_and_keeps_subfolders(tmp_path):
    (tmp_path / "inside").mkdir()
    os.symlink("/etc", tmp_path / "inside" / "link")
    with pytest.raises(InvalidRequestError, match="outside"):
        safe_join(tmp_path, "inside/link/passwd")
    assert safe_join(tmp_path, "unet/config.json") == tmp_path.resolve() / "unet" / "config.json"
