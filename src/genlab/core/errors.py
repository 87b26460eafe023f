"""One exception hierarchy for all of genlab.

Every error a user can cause is a `GenlabError`. The CLI turns it into one line on stderr and a
non-zero exit (``genlab.cli.main``); the HTTP server turns it into an OpenAI-style error body with
the status, type and code named here, on the class (``genlab.server.errors`` reads them, and
keeps no table of its own). Nothing else in genlab catches and prints errors.
"""

from __future__ import annotations


class GenlabError(Exception):
    """Base class: a problem genlab can explain to the user in one line."""

    #: Process exit code used by the CLI.
    exit_code: int = 1
    #: HTTP status used by the server.
    http_status: int = 400
    #: OpenAI-style error type for the HTTP body.
    error_type: str = "invalid_request_error"
    #: OpenAI-style error code for the HTTP body; a class that sets none is named by its class name.
    code: str | None = None

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class InvalidRequestError(GenlabError, ValueError):
    """A request or argument is out of range or malformed (empty prompt, temperature < 0, ...)."""

    exit_code = 2
    code = "invalid_request"

    def __init__(self, message: str, *, param: str | None = None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.param = param


class ContextLengthError(InvalidRequestError):
    """The prompt plus the requested tokens do not fit in the model's context window."""

    code = "context_length_exceeded"


class ModelNotFoundError(GenlabError, LookupError):
    """No model of that name is registered."""

    exit_code = 3
    code = "model_not_found"
    http_status = 404

    def __init__(self, name: str, candidates: list[str] | None = None) -> None:
        hint = (
            f"did you mean: {', '.join(candidates)}?"
            if candidates
            else "run `genlab models` to list the registered models"
        )
        super().__init__(f"unknown model {name!r}", hint=hint)
        self.name = name
        self.candidates = candidates or []


class ModelExistsError(GenlabError):
    """A model of that name is already registered."""

    exit_code = 2
    code = "model_exists"
    http_status = 409


class ModelLoadError(GenlabError):
    """A registered model could not be loaded (missing file, not a GGUF, bad config)."""

    exit_code = 4
    code = "model_load"
    http_status = 422


class IntegrityError(ModelLoadError):
    """A file's sha256 does not match the one recorded or expected."""

    code = "integrity"


class UnsafePathError(InvalidRequestError):
    """A name from outside (a Hub's file list, a URL, an upload) would leave the folder it is joined to."""


class UnsupportedError(GenlabError):
    """The model cannot do what was asked (e.g. streaming on a family that has no tokens)."""

    exit_code = 2
    code = "unsupported"


class BackendError(GenlabError):
    """A backend failed for reasons outside the request (remote server down, engine crashed)."""

    exit_code = 5
    code = "backend"
    http_status = 502
    error_type = "server_error"
