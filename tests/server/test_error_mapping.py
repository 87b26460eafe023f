"""Each genlab error declares its HTTP answer on its class, and the server reads it there: the
status, OpenAI's error type and code a client's SDK branches on (``openai.NotFoundError`` on 404,
``RateLimitError`` with ``Retry-After`` on 429, ``context_length_exceeded`` ...)."""

import pytest

from genlab.backends.hub import NotOnHub
from genlab.core import (
    BackendError,
    ContextLengthError,
    IntegrityError,
    InvalidRequestError,
    ModelExistsError,
    ModelNotFoundError,
    UnsafePathError,
    UnsupportedError,
)
from genlab.pipeline import QueueFull, ReviewRequired, WrongModality
from genlab.server.errors import http_error


@pytest.mark.parametrize(
    ("error", "status", "type_", "code"),
    [
        (InvalidRequestError("bad", param="n"), 400, "invalid_request_error", "invalid_request"),
        (UnsafePathError("../x"), 400, "invalid_request_error", "invalid_request"),
        (ContextLengthError("long"), 400, "invalid_request_error", "context_length_exceeded"),
        (ModelNotFoundError("nope"), 404, "invalid_request_error", "model_not_found"),
        (ModelExistsError("twice"), 409, "invalid_request_error", "model_exists"),
        (IntegrityError("sha"), 422, "invalid_request_error", "integrity"),
        (UnsupportedError("no"), 400, "invalid_request_error", "unsupported"),
        (BackendError("down"), 502, "server_error", "backend"),
        (QueueFull("busy"), 429, "rate_limit_error", "queue_full"),
        (WrongModality("image"), 400, "invalid_request_error", "wrong_modality"),
        (ReviewRequired("held"), 400, "invalid_request_error", "review_required"),
        (NotOnHub("gone"), 404, "invalid_request_error", "notonhub"),  # a class that names no code
    ],
)
def test_an_error_answers_what_its_class_declares(error, status, type_, code):
    got, body, headers = http_error(error)
    assert (got, body["error"]["type"], body["error"]["code"]) == (status, type_, code)
    assert body["error"]["message"] == str(error)
    assert ("Retry-After" in headers) == (status == 429)
    assert body["error"]["param"] == getattr(error, "param", None)
