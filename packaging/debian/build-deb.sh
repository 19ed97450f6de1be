#!/usr/bin/env bash
# Builds target/debian/codex-proxy_<version>_<arch>.deb: release binaries, shell completions,
# then cargo-deb with the metadata in daemon/Cargo.toml. Needs `cargo install cargo-deb`.
set -euo pipefail
cd "$(dirname "$0")/../.."

cargo build --release --locked -p codex-proxy -p codexctl
mkdir -p target/release/completions
target/release/codexctl completions bash > target/release/completions/codexctl.bash
target/release/codexctl completions zsh > target/release/completions/_codexctl
target/release/codexctl completions fish > target/release/completions/codexctl.fish
cargo deb -p codex-proxy --no-build --locked "$@"
