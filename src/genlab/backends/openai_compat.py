"""A remote model on any OpenAI-compatible server: vLLM, llama.cpp's server, Ollama, LocalAI ...

genlab speaks the legacy completions route (``POST {url}/v1/completions``), which every one of
those servers implements and which suits base models; streaming uses server-sent events exactly as
OpenAI sends them (``data: {...}`` lines, ending with ``data: [DONE]``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlparse

import httpx

from genlab.core import (
    BackendError,
    GenerationRequest,
    InvalidRequestError,
    ModelCard,
    ModelLoadError,
    TextArtifact,
    TextChunk,
    UnsupportedError,
    as_request,
)
from genlab.core.generator import token_logprobs


def redact_url(url: str) -> str:
    """The URL with any user:password replaced, for messages."""
    parsed = urlparse(url)
    if parsed.username is None and parsed.password is None:
        return url
    host = parsed.netloc.rsplit("@", 1)[-1]
    return parsed._replace(netloc=f"***@{host}").geturl()


def normalise_url(url: str) -> str:
    """Accept ``http://host:port`` or ``http://host:port/v1``; return the base without ``/v1``."""
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise InvalidRequestError(
            f"not an http(s) URL: {redact_url(url)!r}", param="url", hint="e.g. http://127.0.0.1:8000/v1"
        )
    if parsed.username is not None or parsed.password is not None:  # never stored, shown or logged
        raise InvalidRequestError(
            f"the URL {redact_url(url)!r} carries credentials; genlab does not keep secrets in URLs",
            param="url",
            hint="put the key in an environment variable and name it with --api-key-env",
        )
    base = url.rstrip("/")
    return base[: -len("/v1")] if base.endswith("/v1") else base


def describe_remote(
    name: str, url: str, remote_model: str, *, api_key_env: str | None = None, timeout_s: float = 120.0
) -> tuple[dict[str, Any], ModelCard]:
    if not remote_model or not remote_model.strip():
        raise InvalidRequestError(
            "give the model's name on the remote server (--remote-model)", param="remote_model"
        )
    if api_key_env is not None and not api_key_env.replace("_", "").isalnum():
        raise InvalidRequestError(f"{api_key_env!r} is not an environment variable name", param="api_key_env")
    base = normalise_url(url)
    config = {
        "kind": "openai_compat",
        "url": base,
        "remote_model": remote_model,
        "api_key_env": api_key_env,
        "timeout_s": timeout_s,
    }
    card = ModelCard(
        name=name,
        family="transformer",
        modality="text",
        backend="openai_compat",
        description=f"{remote_model} served by the OpenAI-compatible server at {base}",
        training_data="see the remote model's own documentation",
        licence="see the remote model's own documentation",
        reproduce=f"genlab models add {name} --openai-url {base}/v1 --remote-model {remote_model}"
        + (f" --api-key-env {api_key_env}" if api_key_env else ""),
        source=f"{base}/v1",
    )
    return config, card


class OpenAICompatGenerator:
    supports_streaming = True

    def __init__(
        self,
        card: ModelCard,
        url: str,
        remote_model: str,
        *,
        api_key: str | None = None,
        timeout_s: float = 120.0,
    ):
        self._card = card
        self.url = normalise_url(url)
        self.remote_model = remote_model
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(
            base_url=self.url, headers=headers, timeout=httpx.Timeout(timeout_s, connect=10.0)
        )

    @classmethod
    def from_entry(cls, entry: Any) -> OpenAICompatGenerator:
        cfg = entry.config
        api_key = None
        if cfg.get("api_key_env"):
            api_key = os.environ.get(cfg["api_key_env"])
            if not api_key:
                raise ModelLoadError(
                    f"model {entry.name!r} needs an API key in ${cfg['api_key_env']}, which is not set",
                    hint=f"export {cfg['api_key_env']}=...",
                )
        if "url" not in cfg or "remote_model" not in cfg:
            raise ModelLoadError(f"model {entry.name!r}: config.json lacks url or remote_model")
        return cls(
            entry.card,
            cfg["url"],
            cfg["remote_model"],
            api_key=api_key,
            timeout_s=float(cfg.get("timeout_s", 120)),
        )

    @property
    def card(self) -> ModelCard:
        return self._card

    def _body(self, request: GenerationRequest, seed: int, stream: bool) -> dict[str, Any]:
        p = request.params
        body: dict[str, Any] = {
            "model": self.remote_model,
            "prompt": request.prompt,
            "max_tokens": p.max_tokens,
            "temperature": p.temperature,
            "top_p": p.top_p,
            "seed": seed,
            "stream": stream,
        }
        # Non-standard sampling fields that vLLM, llama.cpp's server and Ollama all accept.
        body.update(top_k=p.top_k, min_p=p.min_p, repeat_penalty=p.repeat_penalty)
        if p.stop:
            body["stop"] = list(p.stop)
        if p.logprobs is not None:
            body["logprobs"] = p.logprobs
        if p.logit_bias:
            body["logit_bias"] = {str(token): bias for token, bias in p.logit_bias.items()}
        if p.json_schema is not None:
            body["response_format"] = {"type": "json_object", "schema": p.json_schema}
        if p.grammar is not None:
            body["grammar"] = p.grammar
        if (
            p.regex is not None
        ):  # servers differ (vLLM: guided_regex; llama.cpp: none): never silently dropped
            raise UnsupportedError(
                "regular-expression constraints need a local model (llama.cpp or a genlab-trained one)"
            )
        if stream:
            body["stream_options"] = {"include_usage": True}
        return body

    def _raise_for(self, response: httpx.Response) -> None:
        if response.status_code < 400:
            return
        try:
            detail = response.json().get("error", {})
            message = detail.get("message") if isinstance(detail, dict) else str(detail)
        except (json.JSONDecodeError, ValueError, AttributeError):
            message = None
        message = message or response.text[:300]
        if 400 <= response.status_code < 500:
            raise InvalidRequestError(
                f"the remote server refused the request ({response.status_code}): {message}"
            )
        raise BackendError(f"the remote server failed ({response.status_code}): {message}")

    def _post(self, body: dict[str, Any], *, stream: bool):
        try:
            if stream:
                return self._client.stream("POST", "/v1/completions", json=body)
            return self._client.post("/v1/completions", json=body)
        except httpx.HTTPError as e:
            raise BackendError(f"cannot reach {self.url}: {e}") from None

    def stream(self, request: GenerationRequest | str, **kwargs: Any) -> Iterator[TextChunk]:
        request = as_request(request, **kwargs).validate()
        return self._stream(request, request.choice_seeds())

    def _stream(self, request: GenerationRequest, seeds: list[int]) -> Iterator[TextChunk]:
        for index, seed in enumerate(seeds):
            yield from self._stream_one(request, seed, index)

    def _stream_one(self, request: GenerationRequest, seed: int, index: int) -> Iterator[TextChunk]:
        finish_reason, usage = None, {}
        try:
            with self._post(self._body(request, seed, True), stream=True) as response:
                if response.status_code >= 400:
                    response.read()
                    self._raise_for(response)
                for line in response.iter_lines():
                    if not line.startswith("data:"):
                        continue
                    data = line[len("data:") :].strip()
                    if data == "[DONE]":
                        break
                    event = json.loads(data)
                    if event.get("error"):
                        raise BackendError(f"the remote server failed mid-stream: {event['error']}")
                    usage = event.get("usage") or usage
                    for choice in event.get("choices") or []:
                        finish_reason = choice.get("finish_reason") or finish_reason
                        if choice.get("text"):
                            yield TextChunk(
                                text=choice["text"],
                                index=index,
                                logprobs=token_logprobs(choice.get("logprobs"), request.params.logprobs),
                            )
        except httpx.HTTPError as e:
            raise BackendError(f"the stream from {self.url} broke: {e}") from None
        yield TextChunk(
            text="",
            index=index,
            finish_reason=finish_reason or "stop",
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
        )

    def generate(self, request: GenerationRequest | str, **kwargs: Any) -> list[TextArtifact]:
        request = as_request(request, **kwargs).validate()
        artifacts = []
        for seed in request.choice_seeds():
            response = self._post(self._body(request, seed, False), stream=False)
            self._raise_for(response)
            try:
                data = response.json()
                choice = data["choices"][0]
            except (json.JSONDecodeError, KeyError, IndexError) as e:
                raise BackendError(
                    f"the remote server sent an answer that is not an OpenAI completion: {e}"
                ) from None
            usage = data.get("usage") or {}
            artifacts.append(
                TextArtifact.create(
                    choice.get("text") or "",
                    model=self.card.name,
                    family=self.card.family,
                    modality=self.card.modality,
                    seed=seed,
                    parameters={
                        **request.params.to_dict(),
                        "backend": "openai_compat",
                        "remote_model": self.remote_model,
                    },
                    finish_reason=choice.get("finish_reason"),
                    prompt_tokens=int(usage.get("prompt_tokens") or 0),
                    completion_tokens=int(usage.get("completion_tokens") or 0),
                    logprobs=token_logprobs(choice.get("logprobs"), request.params.logprobs),
                )
            )
        return artifacts

    def close(self) -> None:
        self._client.close()
