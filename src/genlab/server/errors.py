"""The one place where exceptions become HTTP errors, in OpenAI's error format:
``{"error": {"message", "type", "param", "code"}}``; under Ollama's ``/api/`` paths, in Ollama's:
``{"error": "message"}`` (its clients read the message from there)."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from genlab.core import GenlabError
from genlab.pipeline import QueueFull

log = logging.getLogger("genlab.server")


class APIError(Exception):
    """An HTTP-level refusal that is not a GenlabError (auth, rate limit, queue full, body size)."""

    def __init__(
        self, status: int, message: str, *, type_: str, code: str | None = None, headers: dict | None = None
    ):
        super().__init__(message)
        self.status, self.message, self.type, self.code, self.headers = (
            status,
            message,
            type_,
            code,
            headers or {},
        )


def error_body(message: str, type_: str, param: str | None = None, code: str | None = None) -> dict:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


OLLAMA_PREFIX = "/api/"


def shaped(request: Request, body: dict) -> dict:
    """The error body in the shape of the API the request spoke: Ollama's for ``/api/``."""
    if request.url.path.startswith(OLLAMA_PREFIX):
        return {"error": body["error"]["message"]}
    return body


def http_error(e: GenlabError) -> tuple[int, dict, dict[str, str]]:
    """(status, OpenAI error body, headers) of a genlab error, as its class declares them
    (``http_status``, ``error_type``, ``code``): the nearest class in the MRO that declares one of
    them names the code, by its ``code`` or else its own name."""
    code = None
    for cls in type(e).__mro__:
        if {"http_status", "error_type", "code"} & set(vars(cls)):
            code = vars(cls).get("code") or cls.__name__.removesuffix("Error").lower()
            break
    headers = {"Retry-After": "1"} if isinstance(e, QueueFull) else {}  # a slot frees within seconds
    return e.http_status, error_body(str(e), e.error_type, getattr(e, "param", None), code), headers


def install(app: FastAPI) -> None:
    @app.exception_handler(GenlabError)
    async def _genlab(request: Request, e: GenlabError) -> JSONResponse:
        status, body, headers = http_error(e)
        return JSONResponse(shaped(request, body), status_code=status, headers=headers)

    @app.exception_handler(APIError)
    async def _api(request: Request, e: APIError) -> JSONResponse:
        body = shaped(request, error_body(e.message, e.type, None, e.code))
        return JSONResponse(body, status_code=e.status, headers=e.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, e: RequestValidationError) -> JSONResponse:
        first = e.errors()[0] if e.errors() else {}
        loc = [str(p) for p in first.get("loc", ()) if p not in ("body",)]
        param = ".".join(loc) or None
        if first.get("type") == "json_invalid":
            message = (
                f"the request body is not valid JSON: {first.get('ctx', {}).get('error', first.get('msg'))}"
            )
        elif first.get("type") == "missing" and param:
            message = f"missing required parameter: {param}"
        else:
            message = f"invalid value for {param or 'the request'}: {first.get('msg', 'invalid')}"
        body = error_body(message, "invalid_request_error", param, first.get("type"))
        return JSONResponse(shaped(request, body), status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, e: StarletteHTTPException) -> JSONResponse:
        type_ = "not_found_error" if e.status_code == 404 else "invalid_request_error"
        body = shaped(request, error_body(str(e.detail), type_))
        return JSONResponse(body, status_code=e.status_code, headers=getattr(e, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(
        request: Request, e: Exception
    ) -> JSONResponse:  # a bug of ours, never a client's mistake
        log.exception("unhandled error")
        body = shaped(request, error_body("internal server error", "server_error"))
        return JSONResponse(body, status_code=500)
