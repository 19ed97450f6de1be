#!/usr/bin/env bash
# User-space instructions per non-streamed request of a codex-proxy binary, counted by
# valgrind's callgrind: the daemon runs under callgrind twice (200 and 1200 measured requests of
# scenario [1]) and the difference divided by 1000 is the per-request cost, start-up excluded.
# Deterministic, unlike wall-clock figures on a shared VM: use it to compare two builds.
#
#   cargo build --profile profiling -p codex-proxy && cargo build --release -p codex-proxy-bench
#   bench/callgrind.sh target/profiling/codex-proxy
#   callgrind_annotate --inclusive=yes "$OUT/cg.1200.out" | less     # where they go
#
# With EVENTS=1 it also counts the event path alone (SSE decoding, parsing, translation and
# assembly of one answer's upstream stream, daemon/examples/event_path.rs), built next to BIN:
#   cargo build --profile profiling -p codex-proxy --example event_path
#
# With FLOOR=1 it also counts the fetching floor of scenario [1] (codex-bench's own hop that does
# the daemon's I/O and none of its work) the same way, for what any gateway on this stack spends.
set -euo pipefail
BIN=$(realpath "${1:?usage: bench/callgrind.sh DAEMON_BINARY}")
BENCH=$(dirname "$(realpath "$0")")/../target/release/codex-bench
command -v valgrind >/dev/null || { echo "valgrind is not installed" >&2; exit 1; }
OUT=${OUT:-$(mktemp -d)}
total() { callgrind_annotate "$OUT/cg.$1.out" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}'; }
for n in 200 1200; do
  wrapper="$OUT/daemon-$n"
  printf '#!/bin/sh\nexec valgrind --tool=callgrind --callgrind-out-file=%s --dump-instr=no %s "$@" 2>/dev/null\n' \
    "$OUT/cg.$n.out" "$BIN" >"$wrapper"
  chmod +x "$wrapper"
  floor=()
  if [ "${FLOOR:-0}" = 1 ]; then
    printf '#!/bin/sh\nexec valgrind --tool=callgrind --callgrind-out-file=%s --dump-instr=no "$@" 2>/dev/null\n' \
      "$OUT/cg.floor.$n.out" >"$OUT/floor-$n"
    chmod +x "$OUT/floor-$n"
    floor=(--fetching-floor-wrapper "$OUT/floor-$n")
  fi
  "$BENCH" --daemon "$wrapper" "${floor[@]}" --only latency --samples "$n" --warmup 100 >/dev/null
done
echo "$BIN: $(( ($(total 1200) - $(total 200)) / 1000 )) user-space instructions per request (profiles in $OUT)"
if [ "${FLOOR:-0}" = 1 ]; then
  echo "fetching floor: $(( ($(total floor.1200) - $(total floor.200)) / 1000 )) user-space instructions per request"
fi
if [ "${EVENTS:-0}" = 1 ]; then
  EXAMPLE=$(dirname "$BIN")/examples/event_path
  [ -x "$EXAMPLE" ] || { echo "$EXAMPLE is not built" >&2; exit 1; }
  "$BENCH" --print-upstream-stream >"$OUT/answer.sse"
  for n in 100 1100; do
    valgrind --tool=callgrind --callgrind-out-file="$OUT/cg.events.$n.out" "$EXAMPLE" "$OUT/answer.sse" "$n" >/dev/null 2>&1
  done
  echo "event path: $(( ($(total events.1100) - $(total events.100)) / 1000 )) instructions per answer of $(wc -c <"$OUT/answer.sse") stream bytes"
fi
