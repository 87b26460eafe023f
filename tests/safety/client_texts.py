"""What client libraries send on their own, built exactly as their source builds it (read from the
wheels on PyPI, not installed here): a guard that refuses these breaks the libraries' retries.

- instructor 1.17.0, ``instructor/v2/providers/openai/schema.py`` (Mode.TOOLS: a response model
  without a docstring gets this tool description) and ``.../openai/handlers.py`` (``reask_md_json``,
  ``reask_tools``: the retry messages after a validation error);
- pydantic-ai-slim 2.68.0, ``pydantic_ai/messages.py``, ``RetryPromptPart.model_response`` (the
  retry prompt after a validation error or a ``ModelRetry``).
"""

from __future__ import annotations

import json

import pydantic


class UserInfo(pydantic.BaseModel):
    name: str
    age: int


def _validation_error() -> pydantic.ValidationError:
    try:
        UserInfo.model_validate({"name": "Ada", "age": "twenty"})
    except pydantic.ValidationError as e:
        return e
    raise AssertionError("the model accepted a bad age")


def instructor_tool_description(model: type = UserInfo) -> str:
    return f"Correctly extracted `{model.__name__}` with all the required parameters with correct types"


def instructor_json_retry() -> str:
    return f"Correct your JSON ONLY RESPONSE, based on the following errors:\n{_validation_error()}"


def instructor_tools_retry() -> str:
    return f"Validation Error found:\n{_validation_error()}\nRecall the function correctly, fix the errors"


def pydantic_ai_retry(tool_name: str | None = None) -> str:
    error = _validation_error()
    content = error.errors(include_url=False, include_context=False)
    if tool_name is None:  # NativeOutput: the input is already in the model's context
        content = [{k: v for k, v in e.items() if k not in ("ctx", "input")} for e in content]
    plural = len(content) != 1
    description = f"{len(content)} validation error{'s' if plural else ''}:\n```json\n{json.dumps(content, indent=2)}\n```"
    return f"{description}\n\nFix the errors and try again."


def pydantic_ai_model_retry(message: str = "Please include the city as well as the country.") -> str:
    return f"Validation feedback:\n{message}\n\nFix the errors and try again."


CLIENT_TEXTS = {
    "instructor tool description": instructor_tool_description(),
    "instructor JSON retry": instructor_json_retry(),
    "instructor tools retry": instructor_tools_retry(),
    "pydantic-ai retry (output)": pydantic_ai_retry(),
    "pydantic-ai retry (tool)": pydantic_ai_retry("get_user"),
    "pydantic-ai ModelRetry": pydantic_ai_model_retry(),
}
