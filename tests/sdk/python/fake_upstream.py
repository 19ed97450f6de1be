"""Scripting and reading the fake upstream from a suite (FAKE_ADMIN_URL is the fake's /__fake)."""

import json
import os
import urllib.request

FAKE = os.environ["FAKE_ADMIN_URL"]


def script(reply, times=1, **extra):
    """Tells the fake upstream what its next reply (or replies) is."""
    body = json.dumps({"reply": reply, **extra}).encode()
    for _ in range(times):
        request = urllib.request.Request(
            f"{FAKE}/script", data=body, headers={"content-type": "application/json"}, method="POST"
        )
        urllib.request.urlopen(request).read()


def upstream_requests():
    """The turns the fake received, oldest first."""
    with urllib.request.urlopen(f"{FAKE}/requests") as response:
        return [r for r in json.load(response) if r["path"].endswith("/responses")]


def full_input(record):
    """The input the model saw (a WebSocket turn may carry only its new items)."""
    return record.get("resolved_input") or record["body"]["input"]


def stream_of(*items, **extra):
    return {"kind": "stream", "items": list(items), **extra}


def message(*deltas):
    return {"type": "message", "deltas": list(deltas)}


def reasoning(*parts):
    return {"type": "reasoning", "summary": [list(p) for p in parts]}


def call(name, *argument_deltas):
    return {"type": "function_call", "name": name, "argument_deltas": list(argument_deltas)}
