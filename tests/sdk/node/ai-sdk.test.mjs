// The Vercel AI SDK (`ai` + `@ai-sdk/openai`, its default provider: the Responses API) against
// a running codex-proxy. Run by tests/tests/sdk_clients.rs (same variables as openai-sdk.test.mjs).

import assert from "node:assert/strict";
import { test } from "node:test";

import { createOpenAI } from "@ai-sdk/openai";
import { generateText, stepCountIs, streamText, tool } from "ai";
import { z } from "zod";

const openai = createOpenAI({
  baseURL: process.env.CODEX_PROXY_BASE_URL,
  apiKey: process.env.CODEX_PROXY_API_KEY,
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

const weather = tool({
  description: "Weather for a city",
  inputSchema: z.object({ city: z.string() }),
  execute: async ({ city }) => `12 C in ${city}`,
});

test("generateText with a tool loop (the AI SDK's default: Responses, store: true)", async () => {
  await script(streamOf(call("get_weather", '{"city":', '"Oslo"}')));
  await script(streamOf(message("It is 12 C in Oslo.")));
  const result = await generateText({
    model: openai("gpt-5.5"),
    prompt: "Weather in Oslo?",
    tools: { get_weather: weather },
    stopWhen: stepCountIs(3),
  });
  assert.equal(result.text, "It is 12 C in Oslo.");
  assert.equal(result.steps.length, 2);
  assert.equal(result.steps[0].toolCalls[0].toolName, "get_weather");
  assert.ok(result.usage.inputTokens > 0);
});

test("streamText with a tool loop", async () => {
  await script(streamOf(call("get_weather", '{"city":"Rome"}')));
  await script(streamOf(message("Rome", " is 12 C.")));
  const result = streamText({
    model: openai("gpt-5.5"),
    prompt: "Weather in Rome?",
    tools: { get_weather: weather },
    stopWhen: stepCountIs(3),
  });
  let text = "";
  for await (const delta of result.textStream) {
    text += delta;
  }
  assert.equal(text, "Rome is 12 C.");
  assert.equal((await result.steps).length, 2);
});
