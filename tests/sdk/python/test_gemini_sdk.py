"""Google's `google-genai` Python SDK against a running codex-proxy (the Gemini API).

Run by tests/tests/sdk_clients.rs, which starts the fake upstream and the daemon and passes:
CODEX_PROXY_BASE_URL (…/v1), CODEX_PROXY_API_KEY, FAKE_ADMIN_URL (the fake's /__fake).
The SDK goes to /v1 by default; one client here asks for v1beta, as the Gemini CLI does.
"""

import base64
import json
import os

import pytest
from google import genai
from google.genai import errors, types
from pydantic import BaseModel

from fake_upstream import call, full_input, message, reasoning, script, stream_of, upstream_requests

ROOT = os.environ["CODEX_PROXY_BASE_URL"].removesuffix("/v1")
API_KEY = os.environ["CODEX_PROXY_API_KEY"]

client = genai.Client(api_key=API_KEY, http_options=types.HttpOptions(base_url=ROOT))
beta = genai.Client(api_key=API_KEY, http_options=types.HttpOptions(base_url=ROOT, api_version="v1beta"))

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


def test_text_with_a_system_instruction():
    script(stream_of(message("Hello", " from", " Codex")))
    response = client.models.generate_content(
        model="gpt-5.5",
        contents="hi",
        config=types.GenerateContentConfig(system_instruction="Be brief.", temperature=0.3),
    )
    assert response.text == "Hello from Codex"
    assert response.candidates[0].finish_reason == types.FinishReason.STOP
    assert response.usage_metadata.prompt_token_count > 0
    assert response.usage_metadata.candidates_token_count > 0
    body = upstream_requests()[-1]["body"]
    assert body["instructions"] == "Be brief."


def test_a_stream_over_v1beta():
    script(stream_of(message("one ", "two ", "three")))
    chunks = list(beta.models.generate_content_stream(model="models/gpt-5.5", contents="count"))
    assert "".join(c.text or "" for c in chunks) == "one two three"
    assert chunks[-1].candidates[0].finish_reason == types.FinishReason.STOP


def get_weather(city: str) -> str:
    """Returns the current weather in a city.

    Args:
      city: The city, e.g. Paris.
    """
    return f"sunny in {city}"


def test_automatic_function_calling_runs_the_tool_and_answers():
    # The SDK calls the Python function itself and sends its result back.
    script(stream_of(reasoning(["Look it up."]), call("get_weather", '{"city": ', '"Paris"}')))
    script(stream_of(message("It is sunny in Paris.")))
    response = client.models.generate_content(
        model="gpt-5.5",
        contents="What is the weather in Paris?",
        config=types.GenerateContentConfig(tools=[get_weather]),
    )
    assert response.text == "It is sunny in Paris."
    seen = full_input(upstream_requests()[-1])
    called = [i for i in seen if i["type"] == "function_call"]
    answered = [i for i in seen if i["type"] == "function_call_output"]
    assert len(called) == 1 and len(answered) == 1
    assert answered[0]["call_id"] == called[0]["call_id"]
    assert json.loads(answered[0]["output"]) == {"result": "sunny in Paris"}
    # The call went back as the backend made it, its reasoning before it.
    assert called[0]["arguments"] == '{"city": "Paris"}'
    assert seen[seen.index(called[0]) - 1]["type"] == "reasoning"


def test_a_manual_function_call():
    script(stream_of(call("get_weather", '{"city":"Oslo"}')))
    tool = types.Tool(
        function_declarations=[
            types.FunctionDeclaration(
                name="get_weather",
                description="Weather in a city",
                parameters=types.Schema(
                    type=types.Type.OBJECT,
                    properties={"city": types.Schema(type=types.Type.STRING)},
                    required=["city"],
                ),
            )
        ]
    )
    response = client.models.generate_content(
        model="gpt-5.5",
        contents="Weather in Oslo?",
        config=types.GenerateContentConfig(
            tools=[tool],
            automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
            tool_config=types.ToolConfig(
                function_calling_config=types.FunctionCallingConfig(mode="ANY", allowed_function_names=["get_weather"])
            ),
        ),
    )
    calls = response.function_calls
    assert len(calls) == 1 and calls[0].name == "get_weather" and calls[0].args == {"city": "Oslo"}
    body = upstream_requests()[-1]["body"]
    assert body["tools"][0]["parameters"]["properties"]["city"]["type"] == "string"
    assert body["tool_choice"] == {"type": "function", "name": "get_weather"}


class Recipe(BaseModel):
    name: str
    minutes: int


def test_structured_output_with_a_pydantic_schema():
    script(stream_of(message('{"name": "Pancakes", ', '"minutes": 20}')))
    response = client.models.generate_content(
        model="gpt-5.5",
        contents="A quick recipe",
        config=types.GenerateContentConfig(response_mime_type="application/json", response_schema=Recipe),
    )
    assert response.parsed == Recipe(name="Pancakes", minutes=20)
    fmt = upstream_requests()[-1]["body"]["text"]["format"]
    assert fmt["type"] == "json_schema"
    assert fmt["schema"]["properties"]["minutes"]["type"] == "integer"


def test_thoughts_and_an_image():
    script(stream_of(reasoning(["Looking at ", "the picture."]), message("A single pixel.")))
    response = client.models.generate_content(
        model="gpt-5.5",
        contents=[types.Part.from_bytes(data=PNG, mime_type="image/png"), "What is this?"],
        config=types.GenerateContentConfig(
            thinking_config=types.ThinkingConfig(include_thoughts=True, thinking_budget=1024)
        ),
    )
    parts = response.candidates[0].content.parts
    assert parts[0].thought is True and parts[0].text == "Looking at the picture."
    assert response.text == "A single pixel."
    body = upstream_requests()[-1]["body"]
    assert body["reasoning"]["effort"] == "low"
    content = body["input"][0]["content"]
    assert content[0]["type"] == "input_image" and content[0]["image_url"].startswith("data:image/png;base64,")


def test_count_tokens_and_the_model_list():
    before = len(upstream_requests())
    counted = client.models.count_tokens(model="gpt-5.5", contents="How many tokens is this?")
    assert counted.total_tokens > 0
    assert len(upstream_requests()) == before
    names = [m.name for m in client.models.list()]
    assert "models/gpt-5.5" in names
    model = beta.models.get(model="gpt-5.5")
    assert model.name == "models/gpt-5.5" and "generateContent" in model.supported_actions


def test_errors_reach_the_client_as_api_errors():
    with pytest.raises(errors.ClientError) as missing:
        client.models.generate_content(model="no-such-model", contents="x")
    assert missing.value.code == 404
    wrong = genai.Client(api_key="nope", http_options=types.HttpOptions(base_url=ROOT))
    with pytest.raises(errors.ClientError) as refused:
        wrong.models.generate_content(model="gpt-5.5", contents="x")
    assert refused.value.code == 401
    script(stream_of(message("partial "), ending={"kind": "failed", "code": "server_error", "message": "The model broke."}))
    with pytest.raises(errors.APIError) as broke:
        for _ in client.models.generate_content_stream(model="gpt-5.5", contents="x"):
            pass
    assert "The model broke" in str(broke.value)
