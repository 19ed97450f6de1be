//! `codexctl`: controls a running `codex-proxy` through its Unix socket.

use clap::Parser;

/// Control the codex-proxy daemon: log in, rotate accounts, show status.
#[derive(Debug, Parser)]
#[command(
    name = "codexctl",
    version,
    long_version = long_version(),
    about,
    after_help = "Commands (status, login, accounts, rotate, usage, key, reload) arrive with the control socket."
)]
struct Cli {}

fn long_version() -> &'static str {
    // clap wants a 'static str; computed once per process.
    static TEXT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    TEXT.get_or_init(|| {
        format!(
            "{} (control protocol {})",
            env!("CARGO_PKG_VERSION"),
            codex_proxy_proto::PROTOCOL
        )
    })
}

fn main() {
    let _cli = Cli::parse();
    eprintln!("codexctl: no command given; see `codexctl --help`");
    std::process::exit(2);
}
