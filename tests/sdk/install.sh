#!/usr/bin/env bash
# Installs the real clients the end-to-end tests drive: the official `openai` Python package and
# the OpenAI Agents SDK (in a venv under target/sdk); the `openai` Node package, the Vercel AI SDK
# (`ai`, `@ai-sdk/openai`) and the Codex CLI (`@openai/codex`, a native binary) in
# tests/sdk/node/node_modules. Versions are pinned in requirements.txt and package-lock.json.
# Idempotent: a second run with unchanged pins does nothing.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"

venv="$root/target/sdk/venv"
requirements="$root/tests/sdk/python/requirements.txt"
stamp="$venv/.installed-$(sha256sum "$requirements" | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  echo "sdk: installing Python packages into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements"
  touch "$stamp"
fi

cd "$root/tests/sdk/node"
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "sdk: installing Node packages"
  npm ci --no-audit --no-fund --loglevel=error
fi
