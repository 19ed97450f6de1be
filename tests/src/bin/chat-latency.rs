//! Added latency of the daemon at concurrency 1: the same short reply fetched directly from the
//! fake upstream (a Responses request, SSE read to the end, as the daemon does) and through the
//! daemon (a non-streamed chat completion), interleaved so both legs share the machine's state.
//!
//! `cargo build --release --workspace --bins && target/release/chat-latency --requests 2000`
//! Figures only; nothing is asserted.

use std::time::{Duration, Instant};

use clap::Parser;
use codex_proxy_tests::fake::{FakeUpstream, Script};
use codex_proxy_tests::harness::{Daemon, OfficialClient};
use serde_json::json;

#[derive(Debug, Parser)]
#[command(name = "chat-latency")]
struct Cli {
    /// Measured requests per leg.
    #[arg(long, default_value_t = 2000)]
    requests: usize,
    /// Warm-up requests per leg (not measured).
    #[arg(long, default_value_t = 200)]
    warmup: usize,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * (sorted.len() as f64 - 1.0)).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let fake = FakeUpstream::start().await?;
    fake.set_default(Some(Script::text("pong")));
    let daemon = Daemon::builder().fake(&fake, &[0]).start();
    let direct = OfficialClient::for_account(&fake, 0);
    let direct_body = direct.classic_body("gpt-5.5", "ping");
    let via = daemon.client();
    let via_url = daemon.url("/v1/chat/completions");
    let via_body = json!({"model": "gpt-5.5", "messages": [{"role": "user", "content": "ping"}]});

    let mut direct_times = Vec::with_capacity(cli.requests);
    let mut via_times = Vec::with_capacity(cli.requests);
    for i in 0..cli.warmup + cli.requests {
        let started = Instant::now();
        let text = direct.responses(&direct_body).await.text().await?;
        let direct_elapsed = started.elapsed();
        anyhow::ensure!(
            text.contains("response.completed"),
            "direct leg failed: {text}"
        );

        let started = Instant::now();
        let response = via.post(&via_url).json(&via_body).send().await?;
        let status = response.status();
        let text = response.text().await?;
        let via_elapsed = started.elapsed();
        anyhow::ensure!(
            status == 200 && text.contains("pong"),
            "daemon leg failed: {status} {text}"
        );

        if i >= cli.warmup {
            direct_times.push(direct_elapsed);
            via_times.push(via_elapsed);
        }
        // The fake records every request; keep its memory flat over long runs.
        if i % 500 == 0 {
            fake.clear_requests();
        }
    }
    direct_times.sort();
    via_times.sort();
    println!(
        "requests per leg: {} (after {} warm-up), concurrency 1, interleaved",
        cli.requests, cli.warmup
    );
    println!(
        "{:>6} {:>12} {:>12} {:>12}",
        "", "direct", "via daemon", "added"
    );
    for p in [50.0, 90.0, 99.0] {
        let (d, v) = (percentile(&direct_times, p), percentile(&via_times, p));
        println!(
            "{:>6} {:>10.1}µs {:>10.1}µs {:>10.1}µs",
            format!("p{p}"),
            d.as_secs_f64() * 1e6,
            v.as_secs_f64() * 1e6,
            (v.as_secs_f64() - d.as_secs_f64()) * 1e6
        );
    }
    Ok(())
}
