// The official Anthropic TypeScript SDK (`@anthropic-ai/sdk`) against a running codex-proxy.
//
// Run by tests/tests/sdk_clients.rs with CODEX_PROXY_BASE_URL (…/v1), CODEX_PROXY_API_KEY and
// FAKE_ADMIN_URL (the fake upstream's /__fake). Tests run one after another (node:test runs
// the tests of one file in order), so each scripted reply meets its own request.

import assert from "node:assert/strict";
import { test } from "node:test";

import Anthropic from "@anthropic-ai/sdk";

const ROOT = process.env.CODEX_PROXY_BASE_URL.replace(/\/v1$/, "");
const client = new Anthropic({
  baseURL: ROOT,
  apiKey: process.env.CODEX_PROXY_API_KEY,
  maxRetries: 0,
});
const FAKE = process.env.FAKE_ADMIN_URL;

async function script(reply, extra = {}) {
  const response = await fetch(`${FAKE}/script`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ reply, ...extra }),
  });
  assert.equal(response.status, 204);
}

async function lastUpstream() {
  const records = await (await fetch(`${FAKE}/requests`)).json();
  return records.filter((r) => r.path.endsWith("/responses")).at(-1);
}

const streamOf = (...items) => ({ kind: "stream", items });
const message = (...deltas) => ({ type: "message", deltas });
const reasoning = (...parts) => ({ type: "reasoning", summary: parts });
const call = (name, ...argument_deltas) => ({ type: "function_call", name, argument_deltas });

const weather = {
  name: "get_weather",
  description: "Current weather for a city",
  input_schema: {
    type: "object",
    properties: { city: { type: "string" }, unit: { type: "string" } },
    required: ["city"],
  },
};

test("a message", async () => {
  await script(streamOf(message("Hello ", "from Codex")));
  const response = await client.messages.create({
    model: "claude-haiku-4-5",
    max_tokens: 1024,
    messages: [{ role: "user", content: "hi" }],
  });
  assert.equal(response.type, "message");
  assert.equal(response.model, "claude-haiku-4-5");
  assert.deepEqual(
    response.content.map((b) => b.type),
    ["text"],
  );
  assert.equal(response.content[0].text, "Hello from Codex");
  assert.equal(response.stop_reason, "end_turn");
  assert.ok(response.usage.input_tokens > 0 && response.usage.output_tokens > 0);
  assert.equal((await lastUpstream()).body.model, "gpt-5.4-mini");
});

test("streaming with the helper", async () => {
  await script(streamOf(message("The answer ", "is 42.")));
  const stream = client.messages.stream({
    model: "claude-opus-4-7",
    max_tokens: 2048,
    messages: [{ role: "user", content: "answer?" }],
  });
  const texts = [];
  stream.on("text", (text) => texts.push(text));
  const final = await stream.finalMessage();
  assert.deepEqual(texts, ["The answer ", "is 42."]);
  assert.equal(final.content[0].text, "The answer is 42.");
  assert.equal(final.stop_reason, "end_turn");
  assert.ok(final.usage.output_tokens > 0);
});

test("a streamed tool round trip with thinking", async () => {
  await script(streamOf(reasoning(["Paris needs ", "a lookup."]), call("get_weather", '{"city":', '"Paris"}')));
  const stream = client.messages.stream({
    model: "claude-sonnet-4-5",
    max_tokens: 8192,
    thinking: { type: "enabled", budget_tokens: 4096 },
    tools: [weather],
    messages: [{ role: "user", content: "weather in Paris?" }],
  });
  const first = await stream.finalMessage();
  assert.equal(first.stop_reason, "tool_use");
  assert.deepEqual(
    first.content.map((b) => b.type),
    ["thinking", "tool_use"],
  );
  const [thinking, use] = first.content;
  assert.equal(thinking.thinking, "Paris needs a lookup.");
  assert.ok(thinking.signature.startsWith("cpx1."));
  assert.deepEqual(use.input, { city: "Paris" });

  await script(streamOf(message("Sunny.")));
  const second = await client.messages.create({
    model: "claude-sonnet-4-5",
    max_tokens: 8192,
    thinking: { type: "enabled", budget_tokens: 4096 },
    tools: [weather],
    messages: [
      { role: "user", content: "weather in Paris?" },
      { role: "assistant", content: first.content },
      { role: "user", content: [{ type: "tool_result", tool_use_id: use.id, content: "sunny" }] },
    ],
  });
  assert.equal(second.content.at(-1).text, "Sunny.");
  const record = await lastUpstream();
  assert.equal(record.status, 200, record.rejection);
  // Over the backend's WebSocket a turn may send only its new items; the fake records the
  // whole input it stood for.
  const input = record.resolved_input ?? record.body.input;
  assert.deepEqual(
    input.map((i) => i.type),
    ["message", "reasoning", "function_call", "function_call_output"],
  );
  assert.equal(input[2].call_id, use.id);
  assert.equal(record.body.reasoning.effort, "medium");
});

test("count_tokens", async () => {
  const counted = await client.messages.countTokens({
    model: "claude-sonnet-4-5",
    system: "You are helpful.",
    tools: [weather],
    messages: [{ role: "user", content: "How is the weather in Paris today?" }],
  });
  assert.ok(counted.input_tokens > 20 && counted.input_tokens < 200, String(counted.input_tokens));
});

test("errors", async () => {
  const wrong = new Anthropic({ baseURL: ROOT, apiKey: "wrong-key-123", maxRetries: 0 });
  await assert.rejects(
    wrong.messages.create({ model: "gpt-5.5", max_tokens: 10, messages: [{ role: "user", content: "x" }] }),
    (e) => e instanceof Anthropic.AuthenticationError && e.error.error.type === "authentication_error",
  );
  await assert.rejects(
    client.messages.create({ model: "llama-3", max_tokens: 10, messages: [{ role: "user", content: "x" }] }),
    (e) => e instanceof Anthropic.NotFoundError && e.error.error.type === "not_found_error",
  );
  await assert.rejects(
    client.messages.create({ model: "gpt-5.5", max_tokens: 10, messages: [] }),
    (e) => e instanceof Anthropic.BadRequestError && e.error.error.type === "invalid_request_error",
  );
  const body = { error: { type: "rate_limit_exceeded", message: "Slow down" } };
  await script(
    { kind: "raw", status: 429, content_type: "application/json", body: JSON.stringify(body) },
    { headers: [["retry-after", "3"]] },
  );
  await assert.rejects(
    client.messages.create({ model: "gpt-5.5", max_tokens: 10, messages: [{ role: "user", content: "x" }] }),
    (e) => e instanceof Anthropic.RateLimitError && e.headers.get("retry-after") === "3",
  );
});
