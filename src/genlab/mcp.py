"""genlab's generators as MCP tools (the Model Context Protocol, the ``mcp`` package): text,
images, speech, transcription, moderation and embeddings, for any MCP client (Claude Desktop,
editors, agent frameworks) over stdio or streamable HTTP (``genlab mcp``).

Room ``mcp``: may import ``core``, ``codecs``, ``generators``, ``registry``, ``pipeline``,
``safety`` and ``storage``; the faces (``cli``, and ``server`` when it mounts it) import it.

Every tool call passes the one gate (``Pipeline``) under the caller the server was started as
(the local user, or an API key's name and role), with the endpoint names of the HTTP routes, so a
policy and a review rule treat an MCP call as the same call over HTTP. A refusal (the guard, a bad
argument, a full queue) is the tool's error result, with genlab's message; a generation the review
rule holds answers where to follow it instead of the output.
"""

from __future__ import annotations

import base64
import functools
import json
from collections.abc import Callable, Mapping
from importlib.metadata import version

from mcp.server.mcpserver import Audio, Context, Image, MCPServer
from mcp.server.mcpserver.exceptions import ToolError

from genlab.codecs.audio import audio_info, read_audio
from genlab.core import GenerationRequest, GenlabError, SamplingParams
from genlab.core.chat import plan
from genlab.pipeline import TEXT, Caller, Pipeline, Released

TEXT_MODEL = "smollm2-135m-instruct"
EMBEDDING_MODEL = "all-minilm-l6-v2"
VOICE = "piper-joe"
TRANSCRIBER = "whisper-tiny-en"
RAW = {"api": "mcp"}  # in each record's request: the call came through MCP


def held_note(released: Released) -> str:
    review = released.review or {}
    return f"held for human review: follow {review.get('url')} (due {review.get('due_at')})"


#: Who makes a call, from its HTTP headers (None over stdio): the server's one caller, or the key of each request.
CallerOf = Callable[[Mapping[str, str] | None], Caller]


class Tools:
    """The tools, each a pipeline call under the caller of the call (``caller_of``)."""

    def __init__(self, pipeline: Pipeline, caller_of: CallerOf) -> None:
        self.pipeline, self.caller_of = pipeline, caller_of

    def who(self, ctx: Context | None) -> Caller:
        return self.caller_of(ctx.headers if ctx is not None else None)

    def generate_text(
        self,
        prompt: str,
        model: str = TEXT_MODEL,
        system: str | None = None,
        max_tokens: int = 128,
        temperature: float = 0.8,
        seed: int | None = None,
        ctx: Context | None = None,
    ) -> str:
        """Answer a prompt with a local text model (its chat template; a base model continues a
        transcript). Returns the answer's text."""
        generator = self.pipeline.check(model, TEXT)
        messages = [{"role": "system", "content": system}] if system else []
        params = SamplingParams(max_tokens=max_tokens, temperature=temperature).validate()
        turn = plan(
            generator, [*messages, {"role": "user", "content": prompt}], params, model=model, seed=seed
        )
        released = self.pipeline.generate(
            turn.request,
            endpoint="chat.completions",
            caller=self.who(ctx),
            raw={**RAW, "model": model},
            shape=str.strip,
        )
        return held_note(released) if released.held else released.artifacts[0].text

    def generate_image(
        self, prompt: str, model: str, seed: int | None = None, ctx: Context | None = None
    ) -> Image | str:
        """Draw an image: a text-to-image pipeline draws what the prompt describes; a genlab family
        model the class it names ("7", "letter A"). Returns a PNG."""
        from genlab.generators.text_to_image import pipeline_request

        generator = self.pipeline.check(model, ("image",))
        if generator.card.backend == "diffusers":
            request = pipeline_request(prompt, model=model, n=1, seed=seed)
        else:
            request = GenerationRequest(prompt=prompt or None, model=model, seed=seed).validate(
                needs_prompt=False
            )
        released = self.pipeline.generate(
            request,
            endpoint="images",
            modalities=("image",),
            caller=self.who(ctx),
            raw={**RAW, "model": model},
        )
        return (
            held_note(released)
            if released.held
            else Image(data=released.artifacts[0].to_bytes(), format="png")
        )

    def speak(
        self, text: str, model: str = VOICE, seed: int | None = None, ctx: Context | None = None
    ) -> Audio | str:
        """Speak a text with a voice (or say the class a spoken-digit model names). Returns WAV audio."""
        generator = self.pipeline.check(model, ("audio",))
        extra = {"speed": 1.0} if generator.card.family == "vits" else {}
        request = GenerationRequest(prompt=text, model=model, seed=seed, params=SamplingParams(extra=extra))
        released = self.pipeline.generate(
            request.validate(needs_prompt=False),
            endpoint="audio",
            modalities=("audio",),
            caller=self.who(ctx),
            raw={**RAW, "model": model},
        )
        return (
            held_note(released)
            if released.held
            else Audio(data=released.artifacts[0].to_bytes(), format="wav")
        )

    def transcribe(
        self,
        audio_base64: str,
        model: str = TRANSCRIBER,
        language: str | None = None,
        ctx: Context | None = None,
    ) -> str:
        """Transcribe speech: the audio file (WAV, FLAC, MP3, ...) as base64. Returns the text."""
        from genlab.generators.transcriber import SAMPLE_RATE

        data = base64.b64decode(audio_base64, validate=True)
        caps = self.pipeline.caps
        info = audio_info(data)
        caps.audio(info.seconds, info.frames * info.channels)  # from the header, before decoding
        transcript, released = self.pipeline.transcribe(
            model,
            lambda: read_audio(data, SAMPLE_RATE, max_seconds=caps.audio_seconds),
            endpoint="audio.transcriptions",
            caller=self.who(ctx),
            raw={**RAW, "model": model, "bytes": len(data)},
            language=language,
        )
        return held_note(released) if released.held else transcript.text

    def moderate(self, text: str, ctx: Context | None = None) -> str:
        """Scan a text with the server's guardrail policy. Returns JSON: the decision and findings."""
        result = self.pipeline.guard.scan_all(text)
        findings = [f.to_dict() for f in result.findings]
        return json.dumps({"decision": result.decision, "findings": findings}, ensure_ascii=False)

    def embed(self, texts: list[str], model: str = EMBEDDING_MODEL, ctx: Context | None = None) -> str:
        """Embed texts as unit vectors (similar meanings are close). Returns JSON: the vectors."""
        vectors, tokens, _, review = self.pipeline.embed(
            model,
            texts,
            endpoint="embeddings",
            caller=self.who(ctx),
            raw={**RAW, "model": model, "inputs": len(texts)},
        )
        if review is not None:
            return f"held for human review: follow {review['url']}"
        return json.dumps({"embeddings": vectors.tolist(), "tokens": tokens})


NAMES = ("generate_text", "generate_image", "speak", "transcribe", "moderate", "embed")


def refusing(tool: Callable) -> Callable:
    """The tool, its genlab errors (a refusal, a bad argument) its error result with their message."""

    @functools.wraps(tool)
    def call(*args, **kwargs):
        try:
            return tool(*args, **kwargs)
        except GenlabError as e:
            raise ToolError(str(e)) from None

    return call


def mcp_server(pipeline: Pipeline, caller: Caller | CallerOf) -> MCPServer:
    """An MCP server whose tools are genlab's generators, each call through ``pipeline`` under
    ``caller`` (one for every call, or a function of each call's HTTP headers)."""
    server = MCPServer("genlab", version=version("genlab"), instructions=__doc__.split("\n\n")[0])
    tools = Tools(pipeline, caller if callable(caller) else (lambda _: caller))
    for name in NAMES:
        server.add_tool(refusing(getattr(tools, name)), name=name, structured_output=False)
    return server
