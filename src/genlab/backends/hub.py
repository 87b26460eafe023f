"""Models from the Hugging Face Hub, on request only (`genlab models pull`): huggingface_hub's client.

A GGUF repository holds one file per quantisation (``...Q4_K_M.gguf``, ``...Q8_0.gguf``); a pull
reads the repository's file list and each file's sha256 (its LFS object id) with huggingface_hub's
``HfApi`` (``HF_ENDPOINT`` for a mirror and ``HF_TOKEN`` for gated repos are respected, through its
own headers), picks one file by name, downloads it into ``GENLAB_HOME/hub/<owner>--<name>/<commit>/``
and checks its sha256. The download itself is a ranged HTTP GET into a ``.part`` file: an interrupted
pull (Ctrl-C, a dropped connection) continues where it stopped when run again, which
huggingface_hub's ``hf_hub_download`` no longer does across runs (it downloads to a fresh temporary
file each time). Nothing here runs unless the user asks: genlab never downloads at run time.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from genlab.core import BackendError, GenlabError, IntegrityError, InvalidRequestError
from genlab.core.io import safe_join, sha256_file

DEFAULT_QUANT = "Q4_K_M"
REPO_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}")  # the Hub's own rule
COMMIT_ID = re.compile(r"[0-9a-f]{40}")


class NotOnHub(GenlabError):
    """The repository, revision or file does not exist on the Hub."""

    exit_code = 3
    http_status = 404


@dataclass(frozen=True)
class Pulled:
    repo: str
    file: str
    commit: str | None
    path: Path
    sha256: str
    hub_sha256: str | None  # what the Hub records; None if it records none (a non-LFS file)

    @property
    def source(self) -> str:
        return f"hf://{self.repo}/{self.file}" + (f"@{self.commit}" if self.commit else "")


def endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")


def _hub_error(e: Exception, repo: str, revision: str) -> Exception:
    """One clear error for what the Hub's client raised; an unknown error is re-raised as is."""
    from huggingface_hub.errors import (
        GatedRepoError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    if isinstance(e, GatedRepoError):
        return BackendError(f"{repo} is gated", hint="accept its licence on the Hub and set HF_TOKEN")
    if isinstance(e, RevisionNotFoundError):
        return NotOnHub(f"{repo} has no revision {revision!r}")
    if isinstance(e, RepositoryNotFoundError):
        return NotOnHub(
            f"no repository {repo!r} on {endpoint()}",
            hint="check the name (owner/name), or set HF_TOKEN for a private one",
        )
    if type(e).__module__.split(".")[0].startswith("httpx") or isinstance(e, OfflineModeIsEnabled | OSError):
        return _offline(e)
    return e


def _offline(e: Exception) -> BackendError:
    return BackendError(
        f"pulling a model needs the network, and {endpoint()} cannot be reached ({type(e).__name__})",
        hint="connect, or set HF_ENDPOINT to a mirror you can reach",
    )


def hub_folder(dest: Path, repo: str, commit: str | None, revision: str) -> Path:
    """``dest/<owner>--<name>/<commit>``: the one folder a pull writes, from names checked first.
    The commit comes from the Hub's answer, so it must look like one (40 hex digits)."""
    if not REPO_ID.fullmatch(repo) or ".." in repo:
        raise InvalidRequestError(
            f"{repo!r} is not a Hub repository id",
            hint="use owner/name, e.g. bartowski/SmolLM2-360M-Instruct-GGUF",
        )
    if commit is not None and not COMMIT_ID.fullmatch(commit):
        raise BackendError(f"the Hub answered {commit!r} as the commit of {repo}, which is not a commit id")
    return safe_join(dest, repo.replace("/", "--"), what="repository") / (
        commit or safe_join(dest, revision.replace("/", "--"), what="revision").name
    )


def fetch(
    url: str,
    target: Path,
    *,
    size: int | None,
    headers: dict[str, str],
    progress: Callable[[int, int | None], None] | None = None,
    attempts: int = 4,
) -> None:
    """GET ``url`` into ``target`` through ``target.part``, resuming a part file that an earlier,
    interrupted run (or a dropped connection) left, with a Range request.

    The Hub declares every file's size and the download stops the moment it would pass it: a
    declared 10-byte file never writes more than 10 bytes. A part file is kept only for what can be
    resumed (an interruption, a dropped connection); any other failure (more bytes than declared,
    a 404, an HTTP error) removes it. ``target`` is replaced only once the part is complete."""
    import httpx

    if size is None:
        raise BackendError(
            f"the Hub declares no size for {target.name}; genlab pulls only files of a known size"
        )
    part = target.with_name(target.name + ".part")
    part.parent.mkdir(parents=True, exist_ok=True)
    try:
        for attempt in range(attempts):
            try:
                _get_into(httpx, url, part, size, headers, progress)
                break
            except httpx.TransportError as e:  # a dropped connection: resume from what arrived
                if attempt == attempts - 1:
                    raise _offline(e) from None  # the part file stays: the next pull resumes it
    except (NotOnHub, IntegrityError):
        part.unlink(missing_ok=True)  # nothing worth resuming
        raise
    except httpx.HTTPStatusError as e:
        part.unlink(missing_ok=True)
        raise BackendError(f"the Hub answered {e.response.status_code} for {url}") from None
    if part.stat().st_size != size:
        raise BackendError(
            f"the download of {target.name} ended at {part.stat().st_size} of {size} bytes; run the pull again to resume"
        )
    os.replace(part, target)


def _get_into(httpx, url: str, part: Path, size: int, headers: dict[str, str], progress) -> None:
    """One (ranged) GET appended to ``part``, never past ``size`` bytes."""
    start = part.stat().st_size if part.exists() else 0
    if start > size:
        part.unlink()
        start = 0
    ranged = {**headers, "Range": f"bytes={start}-"} if start else headers
    with (
        httpx.Client(follow_redirects=True, timeout=httpx.Timeout(60, connect=10)) as client,
        client.stream("GET", url, headers=ranged) as r,
    ):
        if r.status_code == 404:
            raise NotOnHub(f"the Hub has no {url}")
        r.raise_for_status()
        if start and r.status_code == 200:  # the server ignored the range: start over
            start = 0
        with part.open("ab" if start else "wb") as f:
            done = start
            for chunk in r.iter_bytes(1 << 20):
                if done + len(chunk) > size:
                    raise IntegrityError(
                        f"{part.name.removesuffix('.part')} is larger than the {size} bytes the Hub declares; deleted it"
                    )
                f.write(chunk)
                done += len(chunk)
                if progress is not None:
                    progress(done, size)


def is_pipeline(repo: str, revision: str = "main") -> bool:
    """Whether a repository is a diffusers pipeline (it has a model_index.json at its root)."""
    from huggingface_hub import HfApi

    try:
        info = HfApi(endpoint=endpoint()).model_info(repo, revision=revision)
    except Exception as e:  # the same errors as a pull's
        raise _hub_error(e, repo, revision) from None
    return any(s.rfilename == "model_index.json" for s in info.siblings or [])


def pipeline_files(files: list[str]) -> list[str]:
    """The files of a diffusers pipeline worth downloading: configs, tokenizers and the float32
    safetensors weights (not .bin/.ckpt pickles, not fp16 variants, not ONNX or Flax copies)."""
    keep = []
    for f in files:
        name = Path(f).name
        if (
            (name.endswith((".json", ".txt", ".model")) and "/" in f)
            or f == "model_index.json"
            or (name.endswith(".safetensors") and ".fp16." not in name and "non_ema" not in name and "/" in f)
        ):
            keep.append(f)
    return keep


def pull_pipeline(
    repo: str,
    dest: Path,
    *,
    revision: str = "main",
    progress: Callable[[int, int | None], None] | None = None,
) -> tuple[Path, str | None]:
    """Download a diffusers pipeline repository's files under ``dest``, each LFS file sha256-checked;
    (the pipeline folder, the commit)."""
    from huggingface_hub import HfApi, hf_hub_url
    from huggingface_hub.utils import build_hf_headers

    try:
        info = HfApi(endpoint=endpoint()).model_info(repo, revision=revision, files_metadata=True)
    except Exception as e:  # the same mapping as for GGUFs
        raise _hub_error(e, repo, revision) from None
    siblings = {s.rfilename: s for s in info.siblings or []}
    files = pipeline_files(list(siblings))
    if "model_index.json" not in files:
        raise InvalidRequestError(f"{repo} is not a diffusers pipeline (it has no model_index.json)")
    folder = hub_folder(dest, repo, info.sha, revision)
    targets = {
        f: safe_join(folder, f, what=f"file name {repo} lists") for f in files
    }  # all checked before any download
    total = sum(siblings[f].size or 0 for f in files)
    done = 0
    for f in files:
        target = targets[f]
        if not target.is_file():
            url = hf_hub_url(repo, f, revision=info.sha or revision, endpoint=endpoint())
            base = done
            fetch(
                url,
                target,
                size=siblings[f].size,
                headers=build_hf_headers(),
                progress=(lambda d, _t, base=base: progress(base + d, total)) if progress else None,
            )
            lfs = siblings[f].lfs
            if lfs is not None and lfs.sha256 and sha256_file(target) != lfs.sha256:
                target.unlink()
                raise IntegrityError(f"{f} from {repo} does not match the sha256 the Hub records; deleted it")
        done += siblings[f].size or 0
    return folder, info.sha


def choose_file(files: list[str], file: str | None, quant: str | None, repo: str) -> str:
    """The file to pull: the one named, else the GGUF whose name has the quantisation."""
    if file is not None:
        if file not in files:
            raise NotOnHub(
                f"{repo} has no file {file!r}",
                hint=f"its GGUF files: {', '.join(f for f in files if f.endswith('.gguf')) or 'none'}",
            )
        return file
    ggufs = [f for f in files if f.lower().endswith(".gguf")]
    if not ggufs:
        raise InvalidRequestError(f"{repo} has no GGUF file; `genlab models pull` takes GGUF repositories")
    if len(ggufs) == 1 and quant is None:
        return ggufs[0]
    wanted = (quant or DEFAULT_QUANT).lower()
    matches = [f for f in ggufs if wanted in Path(f).name.lower()]
    if len(matches) != 1:
        shown = ", ".join(sorted(ggufs)[:12])
        how = "none matches" if not matches else f"{len(matches)} match"
        raise InvalidRequestError(
            f"{repo} has {len(ggufs)} GGUF files and {how} {quant or DEFAULT_QUANT!r}: {shown}",
            hint="name one: genlab models pull REPO FILE, or --quant Q8_0",
        )
    return matches[0]


def pull_gguf(
    repo: str,
    dest: Path,
    *,
    file: str | None = None,
    quant: str | None = None,
    revision: str = "main",
    progress: Callable[[int, int | None], None] | None = None,
) -> Pulled:
    """Download one GGUF of ``repo`` under ``dest``, sha256-checked; ``progress(done, total)``."""
    from huggingface_hub import HfApi, hf_hub_url
    from huggingface_hub.utils import build_hf_headers

    try:
        info = HfApi(endpoint=endpoint()).model_info(repo, revision=revision, files_metadata=True)
    except Exception as e:  # the client's HTTP errors (httpx) are not all OSErrors
        raise _hub_error(e, repo, revision) from None
    siblings = {s.rfilename: s for s in info.siblings or []}
    chosen = choose_file(list(siblings), file, quant, repo)
    lfs = siblings[chosen].lfs
    hub_sha = (lfs.sha256 if lfs is not None else None) or None
    target = safe_join(hub_folder(dest, repo, info.sha, revision), chosen, what=f"file name {repo} lists")
    digest = sha256_file(target) if target.is_file() else None
    if digest is None or (hub_sha is not None and digest != hub_sha):  # absent, or a stale copy: download
        url = hf_hub_url(repo, chosen, revision=info.sha or revision, endpoint=endpoint())
        fetch(url, target, size=siblings[chosen].size, headers=build_hf_headers(), progress=progress)
        digest = sha256_file(target)
        if hub_sha is not None and digest != hub_sha:  # the file this pull just wrote, and nothing else
            target.unlink(missing_ok=True)
            raise IntegrityError(
                f"{chosen} from {repo} has sha256 {digest}, but the Hub records {hub_sha}; deleted it"
            )
    return Pulled(repo, chosen, info.sha, target, digest, hub_sha)
