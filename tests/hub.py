"""A loopback server that speaks the Hugging Face Hub's protocol (the parts huggingface_hub's client
uses to download a file): the model-info API with file metadata, and ``resolve`` URLs answering
HEAD (commit, ETag = the LFS sha256, size) and ranged GETs (a resumed download asks for the rest)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from fastapi import FastAPI, HTTPException, Request, Response

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def hub_app(
    repos: dict[str, dict[str, Path]],
    *,
    commit: str = COMMIT,
    sizes: dict[str, int] | None = None,
    shas: dict[str, str] | None = None,
) -> FastAPI:
    """``repos``: {repo: {file name as listed: file served}}. A hostile Hub lies with ``commit`` (the
    sha its model-info answers) and ``sizes`` (declared sizes, by file name, that the bytes exceed)."""
    app = FastAPI()
    sizes, shas = sizes or {}, shas or {}
    app.state.requests = []  # (method, path, range header) of every file request

    def info(repo: str) -> dict:
        if repo not in repos:
            raise HTTPException(404, headers={"X-Error-Code": "RepoNotFound"})
        siblings = []
        for name, path in repos[repo].items():
            data = path.read_bytes()
            size = sizes.get(name, len(data))
            siblings.append(
                {
                    "rfilename": name,
                    "size": size,
                    "blobId": hashlib.sha1(data).hexdigest(),
                    "lfs": {
                        "sha256": shas.get(name, hashlib.sha256(data).hexdigest()),
                        "size": size,
                        "pointerSize": 134,
                    },
                }
            )
        return {
            "id": repo,
            "modelId": repo,
            "sha": commit,
            "private": False,
            "siblings": siblings,
            "tags": ["gguf"],
        }

    @app.get("/api/models/{owner}/{name}/revision/{revision}")
    def model_info_at(owner: str, name: str, revision: str):
        if revision not in ("main", COMMIT):
            raise HTTPException(404, headers={"X-Error-Code": "RevisionNotFound"})
        return info(f"{owner}/{name}")

    @app.get("/api/models/{owner}/{name}")
    def model_info(owner: str, name: str):
        return info(f"{owner}/{name}")

    @app.api_route("/{owner}/{name}/resolve/{revision}/{filename:path}", methods=["GET", "HEAD"])
    def resolve(owner: str, name: str, revision: str, filename: str, request: Request):
        repo = f"{owner}/{name}"
        app.state.requests.append((request.method, filename, request.headers.get("range")))
        path = repos.get(repo, {}).get(filename)
        if path is None:
            raise HTTPException(404, headers={"X-Error-Code": "EntryNotFound"})
        data = path.read_bytes()
        sha = hashlib.sha256(data).hexdigest()
        headers = {
            "X-Repo-Commit": COMMIT,
            "ETag": f'"{sha}"',
            "X-Linked-Etag": f'"{sha}"',
            "X-Linked-Size": str(len(data)),
            "Accept-Ranges": "bytes",
        }
        if request.method == "HEAD":
            return Response(headers={**headers, "Content-Length": str(len(data))})
        start = 0
        if request.headers.get("range", "").startswith("bytes="):
            start = int(request.headers["range"].removeprefix("bytes=").split("-")[0])
        body = data[start:]
        status = 206 if start else 200
        headers["Content-Length"] = str(len(body))
        if start:
            headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
        return Response(body, status_code=status, headers=headers)

    return app
