"""The official `anthropic` Python SDK against a running codex-proxy (the Messages API).

Run by tests/tests/sdk_clients.rs, which starts the fake upstream and the daemon and passes:
CODEX_PROXY_BASE_URL (…/v1), CODEX_PROXY_API_KEY, FAKE_ADMIN_URL (the fake's /__fake).
The tests that make accounts fail come last (pytest runs them in file order).
"""

import json
import os
import urllib.request

import anthropic
import pytest
from anthropic import Anthropic

ROOT = os.environ["CODEX_PROXY_BASE_URL"].removesuffix("/v1")
API_KEY = os.environ["CODEX_PROXY_API_KEY"]
FAKE = os.environ["FAKE_ADMIN_URL"]

client = Anthropic(base_url=ROOT, api_key=API_KEY, max_retries=0)

PNG = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)

WEATHER = {
    "name": "get_weather",
    "description": "Current weather for a city",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["C", "F"]}},
        "required": ["city"],
    },
}


def script(reply, times=1, **extra):
    """Tells the fake upstream what its next reply (or replies) is."""
    body = json.dumps({"reply": reply, **extra}).encode()
    for _ in range(times):
        request = urllib.request.Request(
            f"{FAKE}/script", data=body, headers={"content-type": "application/json"}, method="POST"
        )
        urllib.request.urlopen(request).read()


def full_input(record):
    """The input the model saw: over the backend's WebSocket a turn may send only its new
    items, and the fake records the whole input it stood for."""
    return record.get("resolved_input") or record["body"]["input"]


def upstream_requests():
    with urllib.request.urlopen(f"{FAKE}/requests") as response:
        return [r for r in json.load(response) if r["path"].endswith("/responses")]


def stream_of(*items, **extra):
    return {"kind": "stream", "items": list(items), **extra}


def message(*deltas):
    return {"type": "message", "deltas": list(deltas)}


def reasoning(*parts):
    return {"type": "reasoning", "summary": [list(p) for p in parts]}


def call(name, *argument_deltas):
    return {"type": "function_call", "name": name, "argument_deltas": list(argument_deltas)}


def test_a_message():
    script(stream_of(message("Hello", " from", " Codex")))
    response = client.messages.create(
        model="claude-sonnet-4-5", max_tokens=1024, messages=[{"role": "user", "content": "hi"}]
    )
    assert response.type == "message"
    assert response.role == "assistant"
    assert response.model == "claude-sonnet-4-5"
    assert response.id.startswith("msg_")
    assert [b.type for b in response.content] == ["text"]
    assert response.content[0].text == "Hello from Codex"
    assert response.stop_reason == "end_turn"
    assert response.usage.input_tokens > 0 and response.usage.output_tokens > 0
    assert response.usage.cache_read_input_tokens is not None


def test_a_system_prompt_and_an_image():
    response = client.messages.create(
        model="gpt-5.5",
        max_tokens=100,
        system=[{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
                    {"type": "text", "text": "what is this?"},
                ],
            }
        ],
    )
    assert response.content[0].text.startswith("You said:")
    body = upstream_requests()[-1]["body"]
    assert body["instructions"] == "Be brief."
    parts = body["input"][0]["content"]
    assert parts[0]["type"] == "input_image" and parts[0]["image_url"].startswith("data:image/png;base64,")


def test_streaming_with_the_helper():
    script(stream_of(message("The answer ", "is 42.")))
    with client.messages.stream(
        model="claude-opus-4-7", max_tokens=2048, messages=[{"role": "user", "content": "answer?"}]
    ) as stream:
        texts = list(stream.text_stream)
        final = stream.get_final_message()
    assert texts == ["The answer ", "is 42."]
    assert final.content[0].text == "The answer is 42."
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens > 0


def test_raw_stream_events_in_order():
    script(stream_of(message("a", "b")))
    stream = client.messages.create(
        model="gpt-5.5", max_tokens=10, stream=True, messages=[{"role": "user", "content": "x"}]
    )
    kinds = [event.type for event in stream]
    assert kinds == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]


def test_a_tool_round_trip_with_thinking():
    script(
        stream_of(
            reasoning(["I need ", "the weather."]),
            call("get_weather", '{"city":', '"Paris"}'),
        )
    )
    first = client.messages.create(
        model="claude-opus-4-7",
        max_tokens=4096,
        thinking={"type": "enabled", "budget_tokens": 2048},
        tools=[WEATHER],
        messages=[{"role": "user", "content": "weather in Paris?"}],
    )
    assert first.stop_reason == "tool_use"
    kinds = [b.type for b in first.content]
    assert kinds == ["thinking", "tool_use"]
    thinking, tool_use = first.content
    assert thinking.thinking == "I need the weather."
    assert thinking.signature.startswith("cpx1.")
    assert tool_use.name == "get_weather" and tool_use.input == {"city": "Paris"}

    script(stream_of(message("It is sunny in Paris.")))
    second = client.messages.create(
        model="claude-opus-4-7",
        max_tokens=4096,
        thinking={"type": "enabled", "budget_tokens": 2048},
        tools=[WEATHER],
        messages=[
            {"role": "user", "content": "weather in Paris?"},
            {"role": "assistant", "content": first.content},
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": tool_use.id, "content": "sunny, 21 C"}],
            },
        ],
    )
    assert second.content[-1].text == "It is sunny in Paris."
    record = upstream_requests()[-1]
    assert record["status"] == 200, record.get("rejection")
    items = full_input(record)
    assert [i.get("type") for i in items] == ["message", "reasoning", "function_call", "function_call_output"]
    assert items[2]["call_id"] == tool_use.id == items[3]["call_id"]
    assert items[3]["output"] == "sunny, 21 C"
    # The budget maps to an effort; the tool is not forced strict (`unit` is optional).
    assert record["body"]["reasoning"]["effort"] == "low"
    assert record["body"]["tools"][0]["strict"] is False


def test_tool_choice_and_a_tool_error_result():
    script(stream_of(call("get_weather", '{"city":"Rome"}')))
    forced = client.messages.create(
        model="gpt-5.5",
        max_tokens=100,
        tools=[WEATHER],
        tool_choice={"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True},
        messages=[{"role": "user", "content": "weather?"}],
    )
    body = upstream_requests()[-1]["body"]
    assert body["tool_choice"] == {"type": "function", "name": "get_weather"}
    assert body["parallel_tool_calls"] is False
    use = forced.content[0]
    client.messages.create(
        model="gpt-5.5",
        max_tokens=100,
        tools=[WEATHER],
        tool_choice={"type": "any"},
        messages=[
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "content": forced.content},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "is_error": True,
                                          "content": [{"type": "text", "text": "service down"}]}]},
        ],
    )
    record = upstream_requests()[-1]
    assert record["body"]["tool_choice"] == "required"
    assert full_input(record)[-1]["output"] == "Error: service down"


def test_stop_sequences_and_max_tokens():
    script(stream_of(message("one, two, ", "three, four")))
    stopped = client.messages.create(
        model="gpt-5.5", max_tokens=100, stop_sequences=["three"],
        messages=[{"role": "user", "content": "count"}],
    )
    assert stopped.stop_reason == "stop_sequence"
    assert stopped.stop_sequence == "three"
    assert stopped.content[0].text == "one, two, "
    script(stream_of(message("cut"), ending={"kind": "incomplete", "reason": "max_output_tokens"}))
    cut = client.messages.create(model="gpt-5.5", max_tokens=5, messages=[{"role": "user", "content": "long"}])
    assert cut.stop_reason == "max_tokens"


def test_count_tokens():
    small = client.messages.count_tokens(model="claude-sonnet-4-5", messages=[{"role": "user", "content": "hi"}])
    big = client.messages.count_tokens(
        model="claude-sonnet-4-5",
        system="You are helpful.",
        tools=[WEATHER],
        messages=[{"role": "user", "content": "the quick brown fox jumps over the lazy dog " * 100}],
    )
    assert 0 < small.input_tokens < 30
    assert 900 < big.input_tokens < 1400


def test_models_list():
    models = client.models.list()
    ids = [m.id for m in models]
    assert "gpt-5.5" in ids
    assert all(m.type == "model" for m in models)


def test_client_errors():
    with pytest.raises(anthropic.AuthenticationError) as denied:
        Anthropic(base_url=ROOT, api_key="wrong-key-123", max_retries=0).messages.create(
            model="gpt-5.5", max_tokens=10, messages=[{"role": "user", "content": "x"}]
        )
    assert denied.value.body["error"]["type"] == "authentication_error"

    with pytest.raises(anthropic.NotFoundError) as missing:
        client.messages.create(model="llama-3", max_tokens=10, messages=[{"role": "user", "content": "x"}])
    assert missing.value.body["error"]["type"] == "not_found_error"

    with pytest.raises(anthropic.BadRequestError) as bad:
        client.messages.create(
            model="gpt-5.5", max_tokens=10, messages=[{"role": "user", "content": "x"}],
            tools=[{"type": "bash_20250124", "name": "bash"}],
        )
    assert bad.value.body["error"]["type"] == "invalid_request_error"
    assert "bash_20250124" in bad.value.message


def test_a_failure_mid_stream_is_an_error_event():
    script(stream_of(message("partial "), ending={"kind": "failed", "code": "server_error", "message": "boom"}))
    with pytest.raises(anthropic.APIStatusError) as failed:
        with client.messages.stream(
            model="gpt-5.5", max_tokens=10, messages=[{"role": "user", "content": "x"}]
        ) as stream:
            for _ in stream:
                pass
    assert "boom" in str(failed.value)


def test_rate_limits_and_plans():
    # A plain rate limit reaches the client with its retry-after.
    body = {"error": {"type": "rate_limit_exceeded", "message": "Slow down: too many requests"}}
    script({"kind": "raw", "status": 429, "content_type": "application/json", "body": json.dumps(body)},
           headers=[["retry-after", "7"]])
    with pytest.raises(anthropic.RateLimitError) as limited:
        client.messages.create(model="gpt-5.5", max_tokens=10, messages=[{"role": "user", "content": "x"}])
    assert limited.value.body["error"]["type"] == "rate_limit_error"
    assert limited.value.response.headers["retry-after"] == "7"

    # A plan without Codex.
    script({"kind": "usage_not_included"})
    with pytest.raises(anthropic.PermissionDeniedError) as forbidden:
        client.messages.create(model="gpt-5.5", max_tokens=10, messages=[{"role": "user", "content": "x"}])
    assert forbidden.value.body["error"]["type"] == "permission_error"


def test_overloaded_is_529():
    script({"kind": "overloaded"})
    with pytest.raises(anthropic.APIStatusError) as busy:
        client.messages.create(model="gpt-5.5", max_tokens=10, messages=[{"role": "user", "content": "x"}])
    assert busy.value.status_code == 529
    assert busy.value.body["error"]["type"] == "overloaded_error"


def test_a_failing_backend_is_api_error():
    # Last: three failures (the first try and two retries) open the account's circuit.
    script({"kind": "internal_error"}, times=3)
    with pytest.raises(anthropic.InternalServerError) as broken:
        client.messages.create(model="gpt-5.5", max_tokens=10, messages=[{"role": "user", "content": "x"}])
    assert broken.value.body["error"]["type"] == "api_error"
