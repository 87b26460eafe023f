"""Request bodies of the OpenAI-compatible routes: every field typed, ranged and defaulted here."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field


class StreamOptions(BaseModel):
    include_usage: bool = False


class _Sampling(BaseModel):
    model_config = ConfigDict(extra="ignore")  # OpenAI clients send fields such as "user"

    model: str = Field(min_length=1, max_length=100)
    max_tokens: int | None = Field(default=None, ge=1, le=32768)
    temperature: float = Field(default=1.0, ge=0.0, le=2.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    n: int = Field(default=1, ge=1, le=16)
    stream: bool = False
    stream_options: StreamOptions | None = None
    stop: str | list[str] | None = None
    seed: int | None = Field(default=None, ge=0, lt=2**32)
    presence_penalty: float = Field(default=0.0, ge=-2.0, le=2.0)
    frequency_penalty: float = Field(default=0.0, ge=-2.0, le=2.0)
    # llama.cpp server / vLLM extensions, accepted by the same clients through extra_body
    top_k: int = Field(default=40, ge=0, le=1000)
    min_p: float = Field(default=0.05, ge=0.0, le=1.0)
    repeat_penalty: float = Field(default=1.1, gt=0.0, le=10.0)
    # constrained decoding: llama.cpp server's names, and vLLM's guided_* names for the same
    json_schema: dict[str, Any] | None = Field(
        default=None, validation_alias=AliasChoices("json_schema", "guided_json")
    )
    grammar: str | None = Field(
        default=None, max_length=100_000, validation_alias=AliasChoices("grammar", "guided_grammar")
    )
    regex: str | None = Field(
        default=None, max_length=10_000, validation_alias=AliasChoices("regex", "guided_regex")
    )
    logit_bias: dict[str, float] | None = Field(default=None, max_length=300)  # token id (text) -> bias
    # genlab: a request the input policy blocks goes to a human reviewer (202 + review id), not a 400
    appeal: bool = False


class CompletionRequest(_Sampling):
    prompt: str | list[str]
    max_tokens: int | None = Field(default=16, ge=1, le=32768)  # OpenAI's default for completions
    logprobs: int | None = Field(default=None, ge=0, le=20)
    echo: bool = False
    suffix: str | None = None
    best_of: int | None = Field(default=None, ge=1, le=16)


class TextPart(BaseModel):
    type: Literal["text"]
    text: str


class FunctionCall(BaseModel):
    name: str = Field(min_length=1, max_length=64)
    arguments: str = "{}"  # JSON, as OpenAI sends it


class ToolCall(BaseModel):
    id: str = Field(min_length=1, max_length=100)
    type: Literal["function"] = "function"
    function: FunctionCall


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextPart | dict[str, Any]] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = Field(default=None, max_length=32)
    tool_call_id: str | None = Field(default=None, max_length=100)


class FunctionDef(BaseModel):
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    description: str | None = Field(default=None, max_length=4000)
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class Tool(BaseModel):
    type: Literal["function"]
    function: FunctionDef


class NamedToolChoice(BaseModel):
    type: Literal["function"]
    function: dict[str, str]


class JSONSchemaFormat(BaseModel):
    name: str = "response"
    schema_: dict[str, Any] = Field(default_factory=dict, alias="schema")
    strict: bool | None = None


class ResponseFormat(BaseModel):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JSONSchemaFormat | None = None


class ChatRequest(_Sampling):
    messages: list[ChatMessage] = Field(min_length=1, max_length=256)
    logprobs: bool = False
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    response_format: ResponseFormat | None = None
    max_completion_tokens: int | None = Field(default=None, ge=1, le=32768)
    tools: list[Tool] | None = Field(default=None, max_length=64)
    tool_choice: Literal["auto", "none", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: bool = True


class ModerationRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    input: str | list[str] = Field(min_length=1)
    model: str | None = None


class SpeechRequest(BaseModel):
    """POST /v1/audio/speech. A voice (``piper-joe``; OpenAI's ``tts-1``/``tts-1-hd``) speaks
    ``input``; a spoken-digit family model says the class ``input`` names ("seven", "say 7")."""

    model_config = ConfigDict(extra="ignore")

    model: str = Field(min_length=1, max_length=100)
    input: str = Field(min_length=1, max_length=4096)
    voice: str | None = Field(default=None, max_length=100)  # OpenAI's voices all map to the one voice
    response_format: Literal["wav", "flac", "pcm", "mp3", "opus"] = "mp3"
    speed: float | None = Field(default=None, ge=0.25, le=4.0)  # a voice's pace; family models: 1 only
    seed: int | None = Field(default=None, ge=0, lt=2**32)
    # "audio": the bytes as they are synthesised (pcm or wav); "sse": speech.audio.delta events
    stream_format: Literal["audio", "sse"] | None = None
    # genlab extensions (extra_body in the openai client)
    steps: int | None = Field(default=None, ge=1, le=1000)
    sampler: Literal["ddpm", "ddim", "dpm++"] | None = None
    guidance: float | None = Field(default=None, ge=0.0, le=50.0)
    iterations: int | None = Field(default=None, ge=1, le=1000)


class ImageRequest(BaseModel):
    """POST /v1/images/generations. A text-to-image pipeline draws what ``prompt`` describes; a
    genlab family model draws the class it names ("7", "letter A"; empty cycles classes). Fields
    beyond these are kept (``model_extra``): a family's own sampling options; the rest are ignored."""

    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1, max_length=100)
    prompt: str = Field(default="", max_length=1000)
    n: int = Field(default=1, ge=1, le=16)
    size: str | None = Field(default=None, max_length=20)  # a family model: its own size only
    response_format: Literal["b64_json", "url"] = "b64_json"
    seed: int | None = Field(default=None, ge=0, lt=2**32)
    # genlab extensions for diffusion models (extra_body in the openai client)
    steps: int | None = Field(default=None, ge=1, le=1000)
    sampler: Literal["ddpm", "ddim", "dpm++"] | None = None
    guidance: float | None = Field(default=None, ge=0.0, le=50.0)
    negative_prompt: str | None = Field(default=None, max_length=1000)  # text-to-image pipelines
    scheduler: Literal["ddim", "dpm++", "euler", "euler_a", "pndm", "lms"] | None = None


class ResponseTextFormat(BaseModel):
    model_config = ConfigDict(extra="ignore")

    type: Literal["text", "json_object", "json_schema"] = "text"
    name: str | None = None
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    strict: bool | None = None


class ResponseText(BaseModel):
    model_config = ConfigDict(extra="ignore")

    format: ResponseTextFormat = Field(default_factory=ResponseTextFormat)


class ResponsesRequest(BaseModel):
    """POST /v1/responses: OpenAI's Responses API, stateless (the whole conversation in ``input``)."""

    model_config = ConfigDict(extra="ignore")

    model: str = Field(min_length=1, max_length=100)
    input: str | list[dict[str, Any]] = Field(min_length=1)
    instructions: str | None = Field(default=None, max_length=100_000)
    tools: list[dict[str, Any]] | None = Field(default=None, max_length=64)
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool = True
    max_output_tokens: int | None = Field(default=None, ge=1, le=32768)
    temperature: float = Field(default=1.0, ge=0.0, le=2.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    stream: bool = False
    previous_response_id: str | None = None
    store: bool | None = None
    text: ResponseText | None = None
    metadata: dict[str, str] | None = None
    appeal: bool = False  # genlab: a blocked request goes to a human reviewer (202 + review id)
    # llama.cpp server / vLLM extensions, as for chat
    seed: int | None = Field(default=None, ge=0, lt=2**32)
    top_k: int = Field(default=40, ge=0, le=1000)
    min_p: float = Field(default=0.05, ge=0.0, le=1.0)
    repeat_penalty: float = Field(default=1.1, gt=0.0, le=10.0)


class VideoRequest(BaseModel):
    """POST /v1/videos (JSON or the multipart form the openai client sends). A genlab video model
    makes clips of its own length and size: ``seconds`` and ``size`` may be left out or must be
    those; the prompt names what moves how ("a 7 moving left, fast")."""

    model_config = ConfigDict(extra="ignore")

    model: str = Field(default="video-diffusion-moving-digits", min_length=1, max_length=100)
    prompt: str = Field(default="", max_length=1000)
    seconds: str | None = Field(default=None, max_length=10)
    size: str | None = Field(default=None, max_length=20)
    # genlab extensions (extra_body in the openai client)
    seed: int | None = Field(default=None, ge=0, lt=2**32)
    steps: int | None = Field(default=None, ge=1, le=1000)
    sampler: Literal["ddpm", "ddim", "dpm++"] | None = None
    guidance: float | None = Field(default=None, ge=0.0, le=50.0)
