"""The official `openai` Python SDK against a running codex-proxy.

Run by tests/tests/sdk_clients.rs, which starts the fake upstream and the daemon and passes:
CODEX_PROXY_BASE_URL (…/v1), CODEX_PROXY_API_KEY, FAKE_ADMIN_URL (the fake's /__fake).
"""

import base64
import json
import os
import urllib.request

import openai
import pydantic
import pytest
from openai import OpenAI

BASE_URL = os.environ["CODEX_PROXY_BASE_URL"]
API_KEY = os.environ["CODEX_PROXY_API_KEY"]
FAKE = os.environ["FAKE_ADMIN_URL"]

client = OpenAI(base_url=BASE_URL, api_key=API_KEY, max_retries=0)

PNG = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


def script(reply, **extra):
    """Tells the fake upstream what its next reply is."""
    body = json.dumps({"reply": reply, **extra}).encode()
    request = urllib.request.Request(
        f"{FAKE}/script", data=body, headers={"content-type": "application/json"}, method="POST"
    )
    urllib.request.urlopen(request).read()


def stream_of(*items):
    return {"kind": "stream", "items": list(items)}


def message(*deltas):
    return {"type": "message", "deltas": list(deltas)}


def call(name, *argument_deltas):
    return {"type": "function_call", "name": name, "argument_deltas": list(argument_deltas)}


WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
            "additionalProperties": False,
        },
        "strict": True,
    },
}


def test_non_streaming_text():
    response = client.chat.completions.create(
        model="codex", messages=[{"role": "user", "content": "hello sdk"}]
    )
    choice = response.choices[0]
    assert choice.message.content == "You said: hello sdk"
    assert choice.finish_reason == "stop"
    assert response.object == "chat.completion"
    assert response.usage.total_tokens == response.usage.prompt_tokens + response.usage.completion_tokens
    assert response.usage.prompt_tokens_details.cached_tokens >= 0
    assert response.usage.completion_tokens_details.reasoning_tokens > 0
    # Reasoning summaries arrive as `reasoning_content`, an extra field the SDK keeps.
    assert "Answering" in choice.message.model_extra["reasoning_content"]


def test_streaming_text_with_usage():
    script(stream_of(message("Hel", "lo", " there")))
    stream = client.chat.completions.create(
        model="gpt-5.5",
        messages=[{"role": "user", "content": "greet me"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    deltas, finish, usage, roles = [], None, None, []
    for chunk in stream:
        if chunk.usage:
            usage = chunk.usage
        for c in chunk.choices:
            if c.delta.role:
                roles.append(c.delta.role)
            if c.delta.content:
                deltas.append(c.delta.content)
            if c.finish_reason:
                finish = c.finish_reason
    assert roles == ["assistant"]
    assert deltas == ["Hel", "lo", " there"]
    assert finish == "stop"
    assert usage is not None and usage.total_tokens > 0


def test_stream_helper_assembles_the_final_completion():
    script(stream_of(message("The answer ", "is 42.")))
    with client.chat.completions.stream(
        model="gpt-5.5", messages=[{"role": "user", "content": "answer?"}]
    ) as stream:
        events = [event.type for event in stream]
        final = stream.get_final_completion()
    assert "content.delta" in events
    assert final.choices[0].message.content == "The answer is 42."


def test_streaming_tool_calls_then_the_tool_result_turn():
    script(stream_of(call("get_weather", '{"city":', '"Paris"}'), call("get_weather", '{"city":"Rome"}')))
    messages = [{"role": "user", "content": "weather in Paris and Rome?"}]
    stream = client.chat.completions.create(
        model="gpt-5.5", messages=messages, tools=[WEATHER_TOOL], stream=True
    )
    calls, finish = {}, None
    for chunk in stream:
        for c in chunk.choices:
            for tc in c.delta.tool_calls or []:
                slot = calls.setdefault(tc.index, {"id": None, "name": "", "arguments": ""})
                if tc.id:
                    slot["id"] = tc.id
                if tc.function and tc.function.name:
                    slot["name"] += tc.function.name
                if tc.function and tc.function.arguments:
                    slot["arguments"] += tc.function.arguments
            if c.finish_reason:
                finish = c.finish_reason
    assert finish == "tool_calls"
    assert [calls[i]["name"] for i in sorted(calls)] == ["get_weather", "get_weather"]
    assert json.loads(calls[0]["arguments"]) == {"city": "Paris"}
    assert json.loads(calls[1]["arguments"]) == {"city": "Rome"}

    messages.append(
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": calls[i]["id"], "type": "function",
                 "function": {"name": calls[i]["name"], "arguments": calls[i]["arguments"]}}
                for i in sorted(calls)
            ],
        }
    )
    messages.append({"role": "tool", "tool_call_id": calls[0]["id"], "content": "18C"})
    messages.append({"role": "tool", "tool_call_id": calls[1]["id"], "content": [{"type": "text", "text": "21C"}]})
    script(stream_of(message("Paris 18C, Rome 21C.")))
    response = client.chat.completions.create(model="gpt-5.5", messages=messages, tools=[WEATHER_TOOL])
    assert response.choices[0].message.content == "Paris 18C, Rome 21C."


def test_image_input():
    response = client.chat.completions.create(
        model="gpt-5.5",
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "describe"},
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}", "detail": "low"}},
                ],
            }
        ],
    )
    assert response.choices[0].message.content == "You said: describe"


class Weather(pydantic.BaseModel):
    city: str
    temperature_c: int


def test_structured_output_with_parse():
    script(stream_of(message('{"city": "Paris", ', '"temperature_c": 18}')))
    completion = client.chat.completions.parse(
        model="gpt-5.5",
        messages=[{"role": "user", "content": "weather in Paris as JSON"}],
        response_format=Weather,
    )
    assert completion.choices[0].message.parsed == Weather(city="Paris", temperature_c=18)


def test_json_mode():
    script(stream_of(message('{"ok": true}')))
    response = client.chat.completions.create(
        model="gpt-5.5",
        messages=[{"role": "user", "content": "reply with a json object"}],
        response_format={"type": "json_object"},
    )
    assert json.loads(response.choices[0].message.content) == {"ok": True}


def test_errors_raise_the_right_exceptions():
    with pytest.raises(openai.NotFoundError) as missing:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    assert missing.value.code == "model_not_found"

    with pytest.raises(openai.AuthenticationError):
        OpenAI(base_url=BASE_URL, api_key="wrong-key-123", max_retries=0).models.list()

    # A usage limit moves the request to another account; a plain rate limit reaches the client.
    body = {"error": {"type": "rate_limit_exceeded", "message": "Slow down: too many requests"}}
    script({"kind": "raw", "status": 429, "content_type": "application/json", "body": json.dumps(body)},
           headers=[["retry-after", "7"]])
    with pytest.raises(openai.RateLimitError) as limited:
        client.chat.completions.create(model="gpt-5.5", messages=[{"role": "user", "content": "x"}])
    assert "Slow down" in limited.value.message
    assert limited.value.response.headers["retry-after"] == "7"

    with pytest.raises(openai.BadRequestError) as bad:
        client.chat.completions.create(
            model="gpt-5.5",
            messages=[{"role": "user", "content": "x"}],
            reasoning_effort="minimal",
        )
    assert bad.value.param == "reasoning_effort"


def test_models_list_and_retrieve():
    ids = [m.id for m in client.models.list()]
    assert "gpt-5.5" in ids and "codex" in ids
    assert client.models.retrieve("codex-mini").id == "codex-mini"


# ---- the Responses API (client.responses) ----


def test_responses_create_and_retrieve_and_continue():
    script(stream_of(message("Paris", " is the capital.")))
    first = client.responses.create(model="gpt-5.5", input="Capital of France?")
    assert first.status == "completed"
    assert first.output_text == "Paris is the capital."
    assert first.usage.input_tokens > 0
    kept = client.responses.retrieve(first.id)
    assert kept.id == first.id and kept.output_text == first.output_text

    script(stream_of(message("Rome.")))
    second = client.responses.create(
        model="gpt-5.5", input="And Italy?", previous_response_id=first.id
    )
    assert second.output_text == "Rome."
    # Everything the second response was given: the first turn and its own input.
    items = client.responses.input_items.list(second.id, order="asc")
    dumped = [json.dumps(item.model_dump()) for item in items.data]
    assert len(dumped) == 3, dumped
    assert "Capital of France?" in dumped[0] and "Paris" in dumped[1] and "And Italy?" in dumped[2]
    assert not items.has_more

    client.responses.delete(first.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(first.id)
    with pytest.raises(openai.BadRequestError) as raised:
        client.responses.create(model="gpt-5.5", input="x", previous_response_id=first.id)
    assert raised.value.code == "previous_response_not_found"


def test_responses_streaming_events():
    script(stream_of(message("Hello", " world")))
    kinds = []
    text = ""
    with client.responses.stream(model="gpt-5.5", input="Say hello") as stream:
        for event in stream:
            kinds.append(event.type)
            if event.type == "response.output_text.delta":
                text += event.delta
        final = stream.get_final_response()
    assert text == "Hello world"
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    assert final.output_text == "Hello world"


def test_responses_function_tool_loop():
    tool = {
        "type": "function",
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
            "additionalProperties": False,
        },
        "strict": True,
    }
    script(stream_of(call("get_weather", '{"city":', '"Oslo"}')))
    first = client.responses.create(model="gpt-5.5", input="Weather in Oslo?", tools=[tool])
    calls = [item for item in first.output if item.type == "function_call"]
    assert len(calls) == 1 and json.loads(calls[0].arguments) == {"city": "Oslo"}
    script(stream_of(message("It is 12 C in Oslo.")))
    second = client.responses.create(
        model="gpt-5.5",
        previous_response_id=first.id,
        tools=[tool],
        input=[{"type": "function_call_output", "call_id": calls[0].call_id, "output": "12 C"}],
    )
    assert second.output_text == "It is 12 C in Oslo."


# ---- the OpenAI Agents SDK (its default model speaks the Responses API) ----


def test_agents_sdk_runs_an_agent_with_a_function_tool():
    from agents import Agent, OpenAIResponsesModel, Runner, function_tool, set_tracing_disabled
    from openai import AsyncOpenAI

    set_tracing_disabled(True)

    @function_tool
    def get_weather(city: str) -> str:
        """Weather for a city."""
        return f"12 C in {city}"

    model = OpenAIResponsesModel(
        model="gpt-5.5",
        openai_client=AsyncOpenAI(base_url=BASE_URL, api_key=API_KEY, max_retries=0),
    )
    agent = Agent(
        name="Weather", instructions="Answer briefly.", tools=[get_weather], model=model
    )
    script(stream_of(call("get_weather", '{"city":', '"Oslo"}')))
    script(stream_of(message("It is 12 C in Oslo.")))
    result = Runner.run_sync(agent, "Weather in Oslo?")
    assert result.final_output == "It is 12 C in Oslo."
    outputs = [item for item in result.new_items if item.type == "tool_call_output_item"]
    assert outputs and outputs[0].output == "12 C in Oslo"


# ---- images: the backend's image_generation tool ----


def last_upstream_body():
    with urllib.request.urlopen(f"{FAKE}/requests") as response:
        records = [r for r in json.load(response) if r["path"].endswith("/responses")]
    return records[-1]["body"]


def test_images_generate_returns_base64_and_urls():
    result = client.images.generate(model="gpt-image-1", prompt="A red fox in the snow", size="1024x1024", quality="high")
    assert len(result.data) == 1
    assert base64.b64decode(result.data[0].b64_json).startswith(b"\x89PNG")
    assert result.data[0].revised_prompt == "An image of: A red fox in the snow"
    tool = last_upstream_body()["tools"][0]
    assert tool == {"type": "image_generation", "size": "1024x1024", "quality": "high"}
    two = client.images.generate(prompt="A lighthouse", n=2, response_format="url")
    assert [d.url.startswith("data:image/png;base64,") for d in two.data] == [True, True]


def test_images_edit_uploads_the_image():
    png = base64.b64decode(PNG)
    result = client.images.edit(
        model="gpt-image-1", image=("fox.png", png, "image/png"), mask=("mask.png", png, "image/png"), prompt="Add a hat"
    )
    assert result.data[0].b64_json == PNG
    body = last_upstream_body()
    parts = body["input"][0]["content"]
    assert parts[0]["text"] == "Add a hat"
    assert parts[1]["image_url"] == f"data:image/png;base64,{PNG}"
    assert body["tools"][0]["input_image_mask"]["image_url"].startswith("data:image/png;base64,")


def test_images_bad_size_is_a_bad_request():
    with pytest.raises(openai.BadRequestError) as refused:
        client.images.generate(prompt="x", size="256x256")
    assert refused.value.body["param"] == "size"
