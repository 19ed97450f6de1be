//! `codex-proxy`: the daemon. All logic lives in the library so tests can run it in-process.

fn main() -> std::process::ExitCode {
    codex_proxy::cli::main()
}
