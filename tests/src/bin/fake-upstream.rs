//! Runs the fake Codex upstream on its own, for demos and benchmarks.
//!
//! `cargo run -p codex-proxy-tests --bin fake-upstream -- --port 9000`

use clap::Parser;
use codex_proxy_tests::fake::{FakeUpstream, Options};

/// A strict fake of the ChatGPT Codex backend and the OpenAI auth server, on loopback.
#[derive(Debug, Parser)]
#[command(name = "fake-upstream", version)]
struct Cli {
    /// Port on 127.0.0.1 (0 = any free port).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Skip the identity-header checks the official client always passes.
    #[arg(long)]
    lenient_identity: bool,
    /// Serve HTTPS (HTTP/2 or HTTP/1.1 by ALPN) with the test certificate for 127.0.0.1;
    /// the daemon trusts it with `SSL_CERT_FILE` set to the CA this writes (to the demo
    /// directory, or the current one).
    #[arg(long)]
    tls: bool,
    /// Write a ready daemon setup here: config.toml (pointing at this fake, API key
    /// `demo-key-123`) and state/accounts.json with all of the fake's accounts.
    #[arg(long, value_name = "DIR")]
    demo_dir: Option<std::path::PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let fake = FakeUpstream::start_with(Options {
        port: cli.port,
        strict_identity: !cli.lenient_identity,
        tls: cli.tls,
    })
    .await?;
    println!("fake upstream listening on {}", fake.auth_url());
    if cli.tls {
        let ca = cli
            .demo_dir
            .clone()
            .unwrap_or_else(|| ".".into())
            .join("fake-ca.pem");
        if let Some(dir) = ca.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(&ca, codex_proxy_tests::fake::tls::CA_PEM)?;
        println!("its CA: run the daemon with SSL_CERT_FILE={}", ca.display());
    }
    println!();
    println!("Put this in the daemon's config:");
    println!();
    print!("{}", fake.config_toml());
    println!();
    if let Some(dir) = &cli.demo_dir {
        use std::os::unix::fs::DirBuilderExt;
        let state = dir.join("state");
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&state)?;
        let indices: Vec<usize> = (0..fake.accounts().len()).collect();
        std::fs::write(
            state.join("accounts.json"),
            serde_json::to_vec_pretty(&fake.accounts_json(&indices))?,
        )?;
        let config = dir.join("config.toml");
        let setup = format!(
            "[server]\napi_keys = [\"demo-key-123\"]\n\n[paths]\nstate_dir = \"{}\"\nsocket = \"{}\"\n\n{}",
            state.display(),
            dir.join("control.sock").display(),
            fake.config_toml()
        );
        std::fs::write(&config, setup)?;
        println!(
            "Daemon setup written: codex-proxy --config {}",
            config.display()
        );
        println!();
    }
    println!(
        "Accounts and fresh tokens: GET {}/__fake/accounts",
        fake.auth_url()
    );
    println!(
        "Recorded requests:         GET {}/__fake/requests",
        fake.auth_url()
    );
    println!(
        "Script the next reply:     POST {}/__fake/script  (JSON, see tests/src/fake/script.rs)",
        fake.auth_url()
    );
    println!();
    println!("Ctrl-C to stop.");
    tokio::signal::ctrl_c().await?;
    Ok(())
}
