#!/usr/bin/env bash
# Installs the real clients the end-to-end tests drive: the official `openai` Python package and
# the OpenAI Agents SDK (in a venv under target/sdk); the `openai` Node package, the Vercel AI SDK
# (`ai`, `@ai-sdk/openai`), the Codex CLI (`@openai/codex`, a native binary), Claude Code and the
# Gemini CLI (`@google/gemini-cli`) in tests/sdk/node/node_modules. Versions are pinned in
# requirements.txt and package-lock.json.
# Idempotent: a second run with unchanged pins does nothing.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"

venv="$root/target/sdk/venv"
requirements="$root/tests/sdk/python/requirements.txt"
stamp="$venv/.installed-$(sha256sum "$requirements" | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  echo "sdk: installing Python packages into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check --retries 8 -r "$requirements"
  touch "$stamp"
fi

cd "$root/tests/sdk/node"
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "sdk: installing Node packages"
  # Retried: a registry hiccup should not fail a whole CI run. On the last failure, say why
  # (npm's own log, and the free disk: the clients' native binaries are a few hundred MB).
  for attempt in 1 2 3; do
    if npm ci --no-audit --no-fund --loglevel=error; then
      break
    fi
    if [ "$attempt" = 3 ]; then
      df -h . | tail -n 1 | awk '{print "sdk: disk " $4 " free of " $2}' >&2
      log="$(ls -t "$HOME"/.npm/_logs/*-debug-0.log 2>/dev/null | head -n 1)"
      [ -n "$log" ] && grep -E "error|ERR" "$log" | tail -n 20 >&2
      exit 1
    fi
    echo "sdk: npm ci failed (attempt $attempt), trying again" >&2
    sleep $((attempt * 5))
  done
fi
