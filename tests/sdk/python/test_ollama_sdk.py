"""The official `ollama` Python library against a running codex-proxy (the Ollama API).

Run by tests/tests/sdk_clients.rs, which starts the fake upstream and the daemon and passes:
CODEX_PROXY_BASE_URL (…/v1), CODEX_PROXY_API_KEY, FAKE_ADMIN_URL (the fake's /__fake), and
OLLAMA_LISTEN_URL (the daemon's `[ollama] listen` address). Ollama's clients send no key: the
daemon answers them because they are on this machine.
"""

import base64
import json
import os
import urllib.request

import ollama
import pytest
from pydantic import BaseModel

from fake_upstream import call, full_input, message, reasoning, script, stream_of, upstream_requests

ROOT = os.environ["CODEX_PROXY_BASE_URL"].removesuffix("/v1")
API_KEY = os.environ["CODEX_PROXY_API_KEY"]
OLLAMA = os.environ["OLLAMA_LISTEN_URL"]

# As users point it: the host of the second listener, no key.
client = ollama.Client(host=OLLAMA)

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


def test_the_server_answers_the_probe_and_lists_models():
    with urllib.request.urlopen(OLLAMA) as response:
        assert response.read() == b"Ollama is running"
    names = [m.model for m in client.list().models]
    assert "gpt-5.5:latest" in names
    shown = client.show("gpt-5.5")
    assert {"completion", "tools", "thinking", "vision"} <= set(shown.capabilities)
    assert shown.modelinfo["gpt.context_length"] > 0
    assert client.ps().models


def test_chat_whole():
    script(stream_of(reasoning(["Say ", "hello."]), message("Hello", " from", " Codex")))
    response = client.chat(
        model="gpt-5.5",
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}],
    )
    assert response.message.role == "assistant"
    assert response.message.content == "Hello from Codex"
    assert response.message.thinking == "Say hello."
    assert response.done and response.done_reason == "stop"
    assert response.prompt_eval_count > 0 and response.eval_count > 0
    body = upstream_requests()[-1]["body"]
    assert body["instructions"] == "Be brief."


def test_chat_stream():
    script(stream_of(message("one ", "two ", "three")))
    parts = list(
        client.chat(model="gpt-5.5", messages=[{"role": "user", "content": "count"}], stream=True)
    )
    assert "".join(p.message.content for p in parts) == "one two three"
    assert [p.done for p in parts][-1] is True
    assert all(not p.done for p in parts[:-1])
    assert parts[-1].done_reason == "stop"


def add_two_numbers(a: int, b: int) -> int:
    """
    Add two numbers

    Args:
      a: The first number
      b: The second number

    Returns:
      int: The sum of the two numbers
    """
    return a + b


def test_a_tool_loop_with_a_python_function():
    script(stream_of(call("add_two_numbers", '{"a": 2', ', "b": 3}')))
    messages = [{"role": "user", "content": "What is 2 plus 3?"}]
    response = client.chat(model="gpt-5.5", messages=messages, tools=[add_two_numbers], think=True)
    calls = response.message.tool_calls
    assert len(calls) == 1
    assert calls[0].function.name == "add_two_numbers"
    assert dict(calls[0].function.arguments) == {"a": 2, "b": 3}
    result = add_two_numbers(**calls[0].function.arguments)
    # The loop as the library's own example writes it: the message back, a result per call.
    messages.append(response.message)
    messages.append({"role": "tool", "content": str(result), "tool_name": calls[0].function.name})
    script(stream_of(message("2 plus 3 is 5.")))
    final = client.chat(model="gpt-5.5", messages=messages, tools=[add_two_numbers], think=True)
    assert final.message.content == "2 plus 3 is 5."
    seen = full_input(upstream_requests()[-1])
    called = [i for i in seen if i["type"] == "function_call"]
    answered = [i for i in seen if i["type"] == "function_call_output"]
    assert called and answered and answered[0]["call_id"] == called[0]["call_id"]
    assert answered[0]["output"] == "5"
    assert json.loads(called[0]["arguments"]) == {"a": 2, "b": 3}


def test_an_image_from_bytes():
    response = client.chat(
        model="gpt-5.5",
        messages=[{"role": "user", "content": "What is in this image?", "images": [PNG]}],
    )
    assert response.message.content.startswith("You said:")
    parts = upstream_requests()[-1]["body"]["input"][0]["content"]
    assert parts[1]["type"] == "input_image"
    assert parts[1]["image_url"].startswith("data:image/png;base64,iVBORw0KGgo")


class Country(BaseModel):
    name: str
    capital: str


def test_structured_output_and_think_levels():
    script(stream_of(message('{"name": "France", ', '"capital": "Paris"}')))
    response = client.chat(
        model="gpt-5.5",
        messages=[{"role": "user", "content": "Tell me about France."}],
        format=Country.model_json_schema(),
        think="high",
    )
    country = Country.model_validate_json(response.message.content)
    assert country.capital == "Paris"
    body = upstream_requests()[-1]["body"]
    assert body["text"]["format"]["type"] == "json_schema"
    assert body["text"]["format"]["schema"]["properties"]["capital"]["type"] == "string"
    assert body["reasoning"]["effort"] == "high"


def test_generate_whole_and_streamed():
    script(stream_of(message("Roses are red")))
    response = client.generate(model="gpt-5.5", prompt="A poem", system="You are a poet.")
    assert response.response == "Roses are red"
    assert response.done
    script(stream_of(message("Violets ", "are ", "blue")))
    parts = list(client.generate(model="gpt-5.5", prompt="More", stream=True))
    assert "".join(p.response for p in parts) == "Violets are blue"
    assert parts[-1].done


def test_the_main_port_with_the_key_works_too():
    keyed = ollama.Client(host=ROOT, headers={"Authorization": f"Bearer {API_KEY}"})
    script(stream_of(message("keyed")))
    assert keyed.chat(model="gpt-5.5", messages=[{"role": "user", "content": "x"}]).message.content == "keyed"
    wrong = ollama.Client(host=ROOT, headers={"Authorization": "Bearer nope"})
    with pytest.raises(ollama.ResponseError) as refused:
        wrong.list()
    assert refused.value.status_code == 401


def test_errors_reach_the_client_as_response_errors():
    with pytest.raises(ollama.ResponseError) as missing:
        client.chat(model="llama3.2", messages=[{"role": "user", "content": "x"}])
    assert missing.value.status_code == 404
    assert "not found" in missing.value.error
    with pytest.raises(ollama.ResponseError) as unsupported:
        client.pull("llama3.2")
    assert unsupported.value.status_code == 501
    # A failure in the middle of a stream: the library raises the error line.
    script(stream_of(message("partial "), ending={"kind": "failed", "code": "server_error", "message": "The model broke."}))
    with pytest.raises(ollama.ResponseError) as broke:
        for _ in client.chat(model="gpt-5.5", messages=[{"role": "user", "content": "x"}], stream=True):
            pass
    assert "The model broke" in broke.value.error
