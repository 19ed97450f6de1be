// The official `openai` Node SDK against a running codex-proxy.
//
// Run by tests/tests/sdk_clients.rs with CODEX_PROXY_BASE_URL (…/v1), CODEX_PROXY_API_KEY and
// FAKE_ADMIN_URL (the fake upstream's /__fake).

import assert from "node:assert/strict";
import { test } from "node:test";

import OpenAI from "openai";

const client = new OpenAI({
  baseURL: process.env.CODEX_PROXY_BASE_URL,
  apiKey: process.env.CODEX_PROXY_API_KEY,
  maxRetries: 0,
});
const FAKE = process.env.FAKE_ADMIN_URL;

async function script(reply) {
  const response = await fetch(`${FAKE}/script`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ reply }),
  });
  assert.equal(response.status, 204);
}

const streamOf = (...items) => ({ kind: "stream", items });
const message = (...deltas) => ({ type: "message", deltas });
const call = (name, ...argument_deltas) => ({ type: "function_call", name, argument_deltas });

const tools = [
  {
    type: "function",
    function: {
      name: "get_weather",
      parameters: {
        type: "object",
        properties: { city: { type: "string" } },
        required: ["city"],
        additionalProperties: false,
      },
      strict: true,
    },
  },
];

test("non-streaming text", async () => {
  const response = await client.chat.completions.create({
    model: "codex",
    messages: [{ role: "user", content: "hello node" }],
  });
  assert.equal(response.choices[0].message.content, "You said: hello node");
  assert.equal(response.choices[0].finish_reason, "stop");
  assert.ok(response.usage.total_tokens > 0);
});

test("streaming text with usage", async () => {
  await script(streamOf(message("One ", "two ", "three")));
  const stream = await client.chat.completions.create({
    model: "gpt-5.5",
    messages: [{ role: "user", content: "count" }],
    stream: true,
    stream_options: { include_usage: true },
  });
  const deltas = [];
  let finish = null;
  let usage = null;
  for await (const chunk of stream) {
    if (chunk.usage) usage = chunk.usage;
    for (const choice of chunk.choices) {
      if (choice.delta.content) deltas.push(choice.delta.content);
      if (choice.finish_reason) finish = choice.finish_reason;
    }
  }
  assert.deepEqual(deltas, ["One ", "two ", "three"]);
  assert.equal(finish, "stop");
  assert.ok(usage.total_tokens > 0);
});

test("streaming tool calls, then the tool result turn", async () => {
  await script(streamOf(call("get_weather", '{"city":', '"Oslo"}')));
  const messages = [{ role: "user", content: "weather in Oslo?" }];
  const runner = client.chat.completions.stream({ model: "gpt-5.5", messages, tools });
  const final = await runner.finalChatCompletion();
  const toolCall = final.choices[0].message.tool_calls[0];
  assert.equal(final.choices[0].finish_reason, "tool_calls");
  assert.equal(toolCall.function.name, "get_weather");
  assert.deepEqual(JSON.parse(toolCall.function.arguments), { city: "Oslo" });

  messages.push(final.choices[0].message);
  messages.push({ role: "tool", tool_call_id: toolCall.id, content: "-3C" });
  await script(streamOf(message("Oslo is at -3C.")));
  const answer = await client.chat.completions.create({ model: "gpt-5.5", messages, tools });
  assert.equal(answer.choices[0].message.content, "Oslo is at -3C.");
});

test("errors map to the SDK's classes", async () => {
  await assert.rejects(
    client.chat.completions.create({ model: "gpt-4o", messages: [{ role: "user", content: "x" }] }),
    (error) => error instanceof OpenAI.NotFoundError && error.code === "model_not_found",
  );
  await script({
    kind: "raw",
    status: 503,
    content_type: "application/json",
    body: JSON.stringify({ error: { code: "server_is_overloaded", message: "busy" } }),
  });
  await assert.rejects(
    client.chat.completions.create({ model: "gpt-5.5", messages: [{ role: "user", content: "x" }] }),
    (error) => error instanceof OpenAI.InternalServerError && error.status === 503,
  );
});

test("responses: create, stream, retrieve, previous_response_id", async () => {
  await script(streamOf(message("Paris", " is the capital.")));
  const first = await client.responses.create({ model: "gpt-5.5", input: "Capital of France?" });
  assert.equal(first.status, "completed");
  assert.equal(first.output_text, "Paris is the capital.");
  const kept = await client.responses.retrieve(first.id);
  assert.equal(kept.id, first.id);

  await script(streamOf(message("Rome", ".")));
  const stream = await client.responses.create({
    model: "gpt-5.5",
    input: "And Italy?",
    previous_response_id: first.id,
    stream: true,
  });
  let text = "";
  const kinds = [];
  for await (const event of stream) {
    kinds.push(event.type);
    if (event.type === "response.output_text.delta") text += event.delta;
  }
  assert.equal(text, "Rome.");
  assert.equal(kinds[0], "response.created");
  assert.equal(kinds.at(-1), "response.completed");
});
