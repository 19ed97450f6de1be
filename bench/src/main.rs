//! `codex-bench`: what the daemon adds — latency, streaming delay, CPU, memory — measured the
//! way published gateway benchmarks do: the same content fetched directly from a mock upstream
//! and through the daemon, interleaved, by the same client code. Figures only; nothing asserted.
//!
//! `cargo build --release -p codex-proxy -p codex-proxy-bench && target/release/codex-bench`
//! (`--quick` for a smoke run). See bench/README.md.

mod client;
mod daemon;
mod floor;
mod mock;

use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Parser;
use hdrhistogram::Histogram;

use client::Conn;
use daemon::{API_KEY, Daemon};
use mock::Shape;

#[derive(Debug, Parser)]
#[command(
    name = "codex-bench",
    about = "Benchmarks codex-proxy against a direct call to a mock upstream"
)]
struct Cli {
    /// A short smoke run (CI): few samples, small stream counts.
    #[arg(long)]
    quick: bool,
    /// The daemon binary [default: codex-proxy next to this program].
    #[arg(long)]
    daemon: Option<std::path::PathBuf>,
    /// Measured requests per leg for the latency scenario.
    #[arg(long, default_value_t = 10_000)]
    samples: u64,
    /// Warm-up requests per leg.
    #[arg(long, default_value_t = 1_000)]
    warmup: u64,
    /// Deltas per answer.
    #[arg(long, default_value_t = 64)]
    deltas: usize,
    /// Bytes per delta.
    #[arg(long, default_value_t = 16)]
    delta_bytes: usize,
    /// Milliseconds between deltas in the paced scenarios.
    #[arg(long, default_value_t = 20)]
    pace_ms: u64,
    /// Paced streams per leg for the inter-delta gap scenario.
    #[arg(long, default_value_t = 40)]
    gap_streams: usize,
    /// Open-stream counts to hold.
    #[arg(long, value_delimiter = ',', default_value = "1000,2000,4000,8000")]
    open_streams: Vec<usize>,
    /// Repeats of the open-stream scenario.
    #[arg(long, default_value_t = 3)]
    repeats: usize,
    /// Highest concurrency of the frontier scan.
    #[arg(long, default_value_t = 4096)]
    max_concurrency: usize,
    /// Pin the daemon (and the mock) to the load side's core instead of their own (shows what
    /// the cross-core wake-ups cost; not the standard setting).
    #[arg(long)]
    same_core: bool,
    /// Run the mock upstream on the load side's core instead of the daemon's. The direct leg
    /// then never crosses cores while the daemon's leg crosses four times; the standard layout
    /// keeps the crossings equal (two per request on each leg).
    #[arg(long)]
    mock_on_load_core: bool,
    /// Turns per history size in [11] (more, to profile one).
    #[arg(long, default_value_t = 20)]
    history_turns: usize,
    /// History sizes in KB for [11] (one, to profile it).
    #[arg(long, value_delimiter = ',', default_value = "10,100,1000")]
    history_kib: Vec<usize>,
    /// Transports for [11] (http, websocket; `-whole` after either: every turn sent in full).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "http,websocket,http-whole,websocket-whole"
    )]
    history_transports: Vec<String>,
    /// Client APIs for [11]: chat (Chat Completions), messages (Anthropic Messages, shaped as
    /// Claude Code sends it: a billing line that changes every turn, a cache mark on the newest
    /// message), responses (the whole input every turn, as the Agents SDK sends it without
    /// `previous_response_id`), ollama (`/api/chat`), gemini (`:streamGenerateContent`).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "chat,messages,responses,ollama,gemini"
    )]
    history_surfaces: Vec<String>,
    /// Scenarios to run (latency, responses, messages, ollama, gemini, streaming, frontier, cpu,
    /// streams, idle, bodies, conversation, history, events); all by default.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Print the mock upstream's Responses stream of one answer and exit (the input of
    /// `bench/callgrind.sh`'s event-path figure).
    #[arg(long)]
    print_upstream_stream: bool,
    /// Internal: run as the pass-through floor proxy in front of this upstream.
    #[arg(long, hide = true, requires = "floor_port")]
    floor_proxy_for: Option<std::net::SocketAddr>,
    /// Internal: the floor proxy's port.
    #[arg(long, hide = true)]
    floor_port: Option<u16>,
    /// Internal: the floor fetches the Responses stream and answers with the direct completion.
    #[arg(long, hide = true)]
    floor_fetches_responses: bool,
    /// Run the fetching floor of [1] under this wrapper, given the floor's command line
    /// (`bench/callgrind.sh` counts its instructions this way).
    #[arg(long, value_name = "PATH")]
    fetching_floor_wrapper: Option<std::path::PathBuf>,
    /// Serve the daemon's upstream over HTTPS (HTTP/2 by ALPN, a test CA given to the daemon),
    /// as the real backend is; the direct leg and the floors stay on plain HTTP, so the
    /// daemon's figures then include TLS.
    #[arg(long)]
    tls: bool,
    /// With `--tls`, offer only HTTP/1.1 by ALPN (tells HTTP/2's cost from TLS's).
    #[arg(long, requires = "tls")]
    tls_http1: bool,
    /// Run the daemon with `compress_requests = false` (shows what zstd request bodies cost;
    /// not the standard setting: the official client compresses, and so does the daemon).
    #[arg(long)]
    uncompressed: bool,
    /// The daemon's log level (`error`, `warn`, `info`, `debug`); its log goes to standard error.
    #[arg(long, default_value = "error", value_name = "LEVEL")]
    daemon_log: String,
    /// The daemon's core (set from the machine and the flags above).
    #[arg(skip)]
    daemon_cpu: Option<usize>,
    /// The mock upstream's core.
    #[arg(skip)]
    mock_cpu: Option<usize>,
}

impl Cli {
    /// What the mock serves the daemon over.
    fn tls(&self) -> Option<mock::Tls> {
        match (self.tls, self.tls_http1) {
            (false, _) => None,
            (true, false) => Some(mock::Tls::Offered),
            (true, true) => Some(mock::Tls::Http1Only),
        }
    }

    /// How the daemon under test runs.
    fn daemon_settings(&self) -> daemon::Settings {
        daemon::Settings {
            cpu: self.daemon_cpu,
            compress: !self.uncompressed,
            log: self.daemon_log.clone(),
            transport: "http",
        }
    }

    /// The load side's core (when pinning at all).
    fn load_cpu(&self) -> Option<usize> {
        self.daemon_cpu.map(|_| 1)
    }
}

fn hist() -> Histogram<u64> {
    // 1 µs … 100 s, 3 significant digits.
    Histogram::new_with_bounds(1, 100_000_000, 3)
        .unwrap_or_else(|_| Histogram::new(3).unwrap_or_else(|_| unreachable!()))
}

fn us(d: Duration) -> u64 {
    (d.as_micros() as u64).max(1)
}

fn chat_body(stream: bool) -> Bytes {
    Bytes::from(
        serde_json::json!({"model": "gpt-5.5", "stream": stream,
            "messages": [{"role": "user", "content": "benchmark"}]})
        .to_string(),
    )
}

fn line(name: &str, h: &Histogram<u64>) {
    println!(
        "  {name:<22} p50 {:>8} µs  p90 {:>8} µs  p99 {:>8} µs  max {:>8} µs  n {}",
        h.value_at_quantile(0.5),
        h.value_at_quantile(0.9),
        h.value_at_quantile(0.99),
        h.max(),
        h.len()
    );
}

fn added(direct: &Histogram<u64>, via: &Histogram<u64>, q: f64) -> i64 {
    via.value_at_quantile(q) as i64 - direct.value_at_quantile(q) as i64
}

/// Samples in the 30–50 ms band, where Nagle and delayed ACKs put their stalls.
fn stall_band(h: &Histogram<u64>) -> u64 {
    h.iter_recorded()
        .filter(|v| (30_000..50_000).contains(&v.value_iterated_to()))
        .map(|v| v.count_at_value())
        .sum()
}

struct Machine {
    cpus: usize,
}

fn print_machine(cli: &Cli) -> Machine {
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("model name")
                    .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
            })
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let commit = std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    println!(
        "codex-bench — machine: {model}, {cpus} CPUs, Linux {}",
        kernel.trim()
    );
    println!("commit {commit}; settings: {cli:?}");
    Machine { cpus }
}

fn raise_fd_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((_, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    }
}

/// Pins the calling thread (and the threads it starts) to `cpu`.
pub fn pin_self(cpu: usize) {
    let mut set = nix::sched::CpuSet::new();
    if set.set(cpu).is_ok() {
        let _ = nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set);
    }
}

fn main() -> anyhow::Result<()> {
    let mut cli = Cli::parse();
    if let (Some(upstream), Some(port)) = (cli.floor_proxy_for, cli.floor_port) {
        return floor::run(upstream, port, cli.floor_fetches_responses);
    }
    if cli.print_upstream_stream {
        let shape = Shape {
            deltas: cli.deltas,
            delta_bytes: cli.delta_bytes,
            pace: Duration::ZERO,
        };
        std::io::Write::write_all(&mut std::io::stdout(), &mock::responses_stream(shape))?;
        return Ok(());
    }
    if cli.quick {
        cli.samples = cli.samples.min(500);
        cli.warmup = cli.warmup.min(100);
        cli.gap_streams = cli.gap_streams.min(3);
        cli.open_streams = vec![200, 400];
        cli.repeats = 1;
        cli.max_concurrency = cli.max_concurrency.min(32);
    }
    let machine = print_machine(&cli);
    raise_fd_limit();
    let daemon_cpu = (machine.cpus >= 2).then_some(if cli.same_core { 1 } else { 0 });
    cli.daemon_cpu = daemon_cpu;
    cli.mock_cpu = if cli.mock_on_load_core {
        daemon_cpu.map(|_| 1)
    } else {
        daemon_cpu
    };
    if let (Some(daemon), Some(mock)) = (cli.daemon_cpu, cli.mock_cpu) {
        pin_self(1);
        println!(
            "daemon pinned to CPU {daemon}, load to CPU 1; mock upstream on CPU {mock} for \
             latency ([1], [2]), on CPU 1 for CPU, throughput and memory ([3]-[5])"
        );
    }
    let binary = cli.daemon.clone().unwrap_or_else(daemon::default_binary);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    // Stopped by a signal, the scenarios' future is dropped, and with it every daemon and floor
    // it started (each is stopped from `Drop`), instead of leaving them running.
    let stopped = runtime.block_on(async {
        tokio::select! {
            done = Box::pin(scenarios(&cli, &binary)) => done.map(|()| None),
            signal = stop_signal() => Ok(Some(signal)),
        }
    })?;
    if let Some((name, number)) = stopped {
        eprintln!("codex-bench: stopped by {name}; the daemons and floors it started are stopped");
        std::process::exit(128 + number);
    }
    Ok(())
}

/// Resolves on SIGINT, SIGTERM or SIGHUP, with its name and number.
async fn stop_signal() -> (&'static str, i32) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term), Ok(mut hup)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = int.recv() => ("SIGINT", 2),
        _ = term.recv() => ("SIGTERM", 15),
        _ = hup.recv() => ("SIGHUP", 1),
    }
}

/// Every scenario `cli` asks for, in order.
async fn scenarios(cli: &Cli, binary: &std::path::Path) -> anyhow::Result<()> {
    let wants = |s: &str| cli.only.is_empty() || cli.only.iter().any(|o| o == s);
    let shape = Shape {
        deltas: cli.deltas,
        delta_bytes: cli.delta_bytes,
        pace: Duration::ZERO,
    };
    // Latency: the mock beside the daemon, so both legs cross cores equally often.
    let upstream = mock::start(shape, cli.mock_cpu, cli.tls()).await?;
    let d = Daemon::start(binary, upstream, &cli.daemon_settings())?;
    if wants("idle") {
        // Let start-up work (catalog, quota) settle first.
        tokio::time::sleep(Duration::from_millis(500)).await;
        println!(
            "\n[6] idle RSS after start-up: {} KiB (target ≤ 8192)",
            d.rss_kib()
        );
    }
    if wants("latency") || wants("streaming") {
        let floor = Daemon::floor(upstream.addr, cli.daemon_cpu, false, None)?;
        if wants("latency") {
            let fetching = Daemon::floor(
                upstream.addr,
                cli.daemon_cpu,
                true,
                cli.fetching_floor_wrapper.as_deref(),
            )?;
            latency(cli, upstream.addr, &d, &floor, &fetching).await?;
        }
        if wants("streaming") {
            streaming(cli, binary, upstream.addr, &d, &floor).await?;
        }
    }
    if wants("responses") {
        responses(cli, upstream.addr, &d).await?;
    }
    if wants("messages") {
        messages(cli, upstream.addr, &d).await?;
    }
    if wants("ollama") {
        ollama(cli, upstream.addr, &d).await?;
    }
    if wants("gemini") {
        gemini(cli, upstream.addr, &d).await?;
    }
    drop(d);
    // CPU and throughput: the mock on the load side's core, the daemon's core its own.
    if wants("cpu") || wants("frontier") {
        let upstream = mock::start(shape, cli.load_cpu(), cli.tls()).await?;
        let d = Daemon::start(binary, upstream, &cli.daemon_settings())?;
        if wants("cpu") {
            cpu(cli, &d).await?;
        }
        if wants("frontier") {
            frontier(cli, &d).await?;
        }
    }
    if wants("streams") {
        open_streams(cli, binary).await?;
    }
    if wants("bodies") {
        let upstream = mock::start(shape, cli.load_cpu(), cli.tls()).await?;
        let d = Daemon::start(binary, upstream, &cli.daemon_settings())?;
        bodies(cli, &d).await?;
    }
    if wants("conversation") {
        conversation(cli, binary, shape).await?;
    }
    if wants("history") {
        history(cli, binary, shape).await?;
    }
    if wants("events") {
        events(cli, binary).await?;
    }
    Ok(())
}

/// [11] The cost of a large request: conversations whose history is 10 KB, 100 KB and 1 MB,
/// each turn adding a 1 KB message; the daemon's CPU per turn (and per MB of the client's
/// body) and the upstream bytes per turn, sent whole over HTTP and incrementally over the
/// WebSocket.
async fn history(cli: &Cli, binary: &std::path::Path, shape: Shape) -> anyhow::Result<()> {
    let turns = if cli.quick {
        4
    } else {
        cli.history_turns.max(1)
    };
    let answer: String = (0..shape.deltas)
        .map(|i| mock::delta_text(i, shape.delta_bytes))
        .collect();
    println!("\n[11] large histories: {turns} turns each, one new 1 KB message a turn (streamed)");
    for surface in &cli.history_surfaces {
        let (surface, path): (&'static str, &'static str) = match surface.as_str() {
            "chat" => ("chat", "/v1/chat/completions"),
            "messages" => ("messages", "/v1/messages"),
            "responses" => ("responses", "/v1/responses"),
            "ollama" => ("ollama", "/api/chat"),
            "gemini" => (
                "gemini",
                "/v1beta/models/gpt-5.5:streamGenerateContent?alt=sse",
            ),
            other => anyhow::bail!("--history-surfaces: unknown surface {other}"),
        };
        for &kib in &cli.history_kib {
            for transport in &cli.history_transports {
                // `-whole`: the first message changes every turn, so every turn is sent in
                // full (nothing continues): the cost of a large request read, translated and
                // sent whole.
                let (transport, whole): (&'static str, bool) = match transport.as_str() {
                    "http" => ("http", false),
                    "websocket" => ("websocket", false),
                    "http-whole" => ("http", true),
                    "websocket-whole" => ("websocket", true),
                    other => anyhow::bail!("--history-transports: unknown transport {other}"),
                };
                let upstream = mock::start(shape, cli.load_cpu(), None).await?;
                let mut settings = cli.daemon_settings();
                settings.transport = transport;
                let d = Daemon::start(binary, upstream, &settings)?;
                let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
                let mut said: Vec<(&str, String)> = (0..kib / 10)
                    .map(|i| {
                        let role = if i % 2 == 0 { "user" } else { "assistant" };
                        (role, words(&mut seed, 10_240))
                    })
                    .collect();
                let mut conn = Conn::open_at(d.addr, API_KEY, path).await?;
                let (mut cpu, mut bytes, mut body_bytes) = (0u64, 0u64, 0u64);
                for turn in 0..=turns {
                    said.push(("user", words(&mut seed, 1024)));
                    if whole && let Some(first) = said.first_mut() {
                        first.1 = format!("Turn {turn}. {}", words(&mut seed, 10_240));
                    }
                    let body = Bytes::from(history_body(surface, &said, turn).to_string());
                    let (sent, used) = (mock::received_bytes(), d.cpu_ns());
                    let seen = conn.stream(&body).await?;
                    anyhow::ensure!(seen.complete, "turn {turn} did not complete");
                    // The first turn opens the socket and sends everything: not counted.
                    if turn > 0 {
                        cpu += d.cpu_ns().saturating_sub(used);
                        bytes += mock::received_bytes() - sent;
                        body_bytes += body.len() as u64;
                    }
                    said.push(("assistant", answer.clone()));
                }
                let n = turns as u64;
                let per_turn_us = cpu / n / 1000;
                let mb = body_bytes as f64 / n as f64 / 1e6;
                let transport = if whole {
                    format!("{transport} (whole)")
                } else {
                    transport.to_owned()
                };
                println!(
                    "  {surface:<9} {kib:>5} KB  {transport:<17} CPU per turn {per_turn_us:>6} µs ({:>5.2} ms per MB of body) · upstream {:>8} B per turn (body {:>8} B)",
                    per_turn_us as f64 / 1000.0 / mb,
                    bytes / n,
                    body_bytes / n,
                );
            }
        }
    }
    Ok(())
}

/// [11]'s request: a streamed chat request, a Responses one with the whole input, a Messages
/// one as Claude Code sends it (the system prompt headed by a billing line that changes every
/// turn, the cache mark on the newest message only), an Ollama chat or a Gemini one.
fn history_body(surface: &str, said: &[(&str, String)], turn: usize) -> serde_json::Value {
    use serde_json::json;
    if surface == "ollama" {
        let mut messages = vec![json!({"role": "system", "content": "You are a coding agent."})];
        messages.extend(
            said.iter()
                .map(|(role, text)| json!({"role": role, "content": text})),
        );
        return json!({"model": "gpt-5.5", "stream": true, "messages": messages});
    }
    if surface == "gemini" {
        let contents: Vec<serde_json::Value> = said
            .iter()
            .map(|(role, text)| {
                let role = if *role == "user" { "user" } else { "model" };
                json!({"role": role, "parts": [{"text": text}]})
            })
            .collect();
        return json!({"contents": contents,
            "systemInstruction": {"parts": [{"text": "You are a coding agent."}]}});
    }
    if surface == "chat" {
        let mut messages = vec![json!({"role": "system", "content": "You are a coding agent."})];
        messages.extend(
            said.iter()
                .map(|(role, text)| json!({"role": role, "content": text})),
        );
        return json!({"model": "gpt-5.5", "stream": true, "messages": messages});
    }
    if surface == "responses" {
        let input: Vec<serde_json::Value> = said
            .iter()
            .map(|(role, text)| {
                let kind = if *role == "user" {
                    "input_text"
                } else {
                    "output_text"
                };
                json!({"type": "message", "role": role, "content": [{"type": kind, "text": text}]})
            })
            .collect();
        return json!({"model": "gpt-5.5", "stream": true, "store": false,
            "instructions": "You are a coding agent.", "input": input});
    }
    let last = said.len().saturating_sub(1);
    let messages: Vec<serde_json::Value> = said
        .iter()
        .enumerate()
        .map(|(i, (role, text))| {
            let mut block = json!({"type": "text", "text": text});
            if i == last {
                block["cache_control"] = json!({"type": "ephemeral"});
            }
            json!({"role": role, "content": [block]})
        })
        .collect();
    json!({"model": "gpt-5.5", "max_tokens": 32000, "stream": true,
        "system": [
            {"type": "text", "text": format!("x-anthropic-billing-header: cc_version=2.1.328; cch={turn:05};")},
            {"type": "text", "text": "You are a coding agent.", "cache_control": {"type": "ephemeral"}}
        ],
        "messages": messages})
}

/// [12] The cost of an event as real streams deliver them: one request at a time, the mock
/// writing the whole answer at once (as in [4]), each event in its own write with no wait, or
/// each event alone 1 ms apart (real answers: one event per segment, tens of ms apart). The
/// daemon's CPU per request and per upstream event.
async fn events(cli: &Cli, binary: &std::path::Path) -> anyhow::Result<()> {
    const SHORT: usize = 17;
    let requests: u64 = if cli.quick { 50 } else { 1000 };
    println!(
        "\n[12] per-event cost, c = 1, {requests} streamed chat requests of {} deltas each (short: {SHORT}; with the 8 other events, issue 22's short request of about 25)",
        cli.deltas
    );
    let long = cli.deltas;
    let (alone, apart) = (Duration::from_nanos(1), Duration::from_millis(1));
    let cases = [
        ("at once", Duration::ZERO, requests, long),
        ("alone, unpaced", alone, requests, long),
        ("alone, 1 ms apart", apart, requests / 5, long),
        ("short, alone", alone, requests, SHORT),
    ];
    let rows = ["http", "websocket"].into_iter().flat_map(|transport| {
        cases.map(|(name, pace, count, deltas)| (transport, name, pace, count, deltas))
    });
    for (transport, name, pace, count, deltas) in rows {
        let shape = Shape {
            deltas,
            delta_bytes: cli.delta_bytes,
            pace,
        };
        let upstream = mock::start(shape, cli.load_cpu(), None).await?;
        let mut settings = cli.daemon_settings();
        settings.transport = transport;
        let d = Daemon::start(binary, upstream, &settings)?;
        let body = chat_body(true);
        let mut conn = Conn::open(d.addr, API_KEY).await?;
        for _ in 0..20 {
            conn.stream(&body).await?;
        }
        let before = d.cpu_ns();
        let (user_before, system_before) = d.cpu_user_system_us();
        for _ in 0..count {
            let seen = conn.stream(&body).await?;
            anyhow::ensure!(seen.complete, "a stream did not complete");
        }
        let per_request = (d.cpu_ns() - before) as f64 / count as f64 / 1000.0;
        let (user_after, system_after) = d.cpu_user_system_us();
        let (user, system) = (user_after - user_before, system_after - system_before);
        // The kernel's share: reading the upstream socket, writing the client's (on loopback the
        // writer also runs the receiver's TCP input and wakes it), waiting for the next event.
        let user_share = user as f64 / (user + system).max(1) as f64;
        // The events of one answer: the deltas and eight around them.
        let events = (deltas + 8) as f64;
        let per_event = per_request / events;
        // The split is read in clock ticks (10 ms): meaningless over a short run (under 15).
        let split = if user + system >= 150_000 {
            format!(
                "user {:>5.2}, kernel {:>5.2}",
                per_event * user_share,
                per_event * (1.0 - user_share)
            )
        } else {
            "run too short to split".to_owned()
        };
        println!(
            "  {transport:<9} {name:<18} {per_request:>7.1} CPU-µs per request, {per_event:>5.2} per event ({split})"
        );
    }
    Ok(())
}

/// About `bytes` of space-separated pseudo-words (a fixed sequence from `seed`).
fn words(seed: &mut u64, bytes: usize) -> String {
    const SYLLABLES: [&str; 16] = [
        "ka", "lo", "mi", "ne", "ru", "sta", "ter", "von", "fn", "let", "self", "impl", "->", "{",
        "}", "ok",
    ];
    let mut out = String::with_capacity(bytes + 8);
    while out.len() < bytes {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        let mut n = *seed;
        for _ in 0..(1 + n % 3) {
            out.push_str(SYLLABLES[(n % 16) as usize]);
            n /= 16;
        }
        out.push(' ');
    }
    out
}

/// [10] A long conversation, turn after turn, as a coding agent drives it: a 200 KB history,
/// then 30 turns each sending the whole conversation back with one new 1 KB message. Over
/// HTTP every turn carries the whole history upstream; over the WebSocket each turn after the
/// first carries its new items only. Upstream bytes, time to first token and daemon CPU per
/// turn, for each transport.
async fn conversation(cli: &Cli, binary: &std::path::Path, shape: Shape) -> anyhow::Result<()> {
    let turns = if cli.quick { 8 } else { 30 };
    let answer: String = (0..shape.deltas)
        .map(|i| mock::delta_text(i, shape.delta_bytes))
        .collect();
    println!(
        "\n[10] a conversation of {turns} turns on a 200 KB history (streamed chat, one new 1 KB message a turn)"
    );
    for transport in ["http", "websocket"] {
        let upstream = mock::start(shape, cli.load_cpu(), None).await?;
        let mut settings = cli.daemon_settings();
        settings.transport = transport;
        let d = Daemon::start(binary, upstream, &settings)?;
        // 20 messages of 10 KB of text-like words (zstd compresses them as it does prose and
        // code, not as it would a repeated letter): the history so far.
        let mut messages: Vec<serde_json::Value> =
            vec![serde_json::json!({"role": "system", "content": "You are a coding agent."})];
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        for i in 0..20 {
            let role = if i % 2 == 0 { "user" } else { "assistant" };
            messages.push(serde_json::json!({"role": role, "content": words(&mut seed, 10_240)}));
        }
        let mut conn = Conn::open(d.addr, API_KEY).await?;
        let mut bytes = Vec::with_capacity(turns);
        let mut first = Vec::with_capacity(turns);
        let mut history = 0;
        let mut cpu_later = 0;
        for turn in 0..turns {
            messages.push(serde_json::json!({"role": "user", "content": format!("turn {turn:03} {}", words(&mut seed, 1015))}));
            let body = Bytes::from(
                serde_json::json!({"model": "gpt-5.5", "stream": true, "messages": messages})
                    .to_string(),
            );
            history = body.len();
            let (sent, used) = (mock::received_bytes(), d.cpu_ns());
            let seen = conn.stream(&body).await?;
            anyhow::ensure!(seen.complete, "turn {turn} did not complete");
            bytes.push(mock::received_bytes() - sent);
            if turn > 0 {
                cpu_later += d.cpu_ns().saturating_sub(used);
            }
            first.push(seen.first_delta);
            messages.push(serde_json::json!({"role": "assistant", "content": answer}));
        }
        let mean = |v: &[u64]| v.iter().sum::<u64>() / v.len().max(1) as u64;
        let later = |v: &[u64]| mean(&v[1..]);
        let mut ttft: Vec<u64> = first
            .iter()
            .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
            .collect();
        let ttft_first = ttft[0];
        ttft.remove(0);
        ttft.sort_unstable();
        println!(
            "  {transport:<9} upstream bytes: turn 1 {}, turns 2–{turns} mean {} (the client's last body {} B) · \
             first token p50 {} µs (turn 1 {} µs) · daemon CPU per later turn {} µs",
            bytes[0],
            later(&bytes),
            history,
            ttft[ttft.len() / 2],
            ttft_first,
            cpu_later / 1000 / (turns as u64 - 1),
        );
    }
    Ok(())
}

/// A chat request of about `megabytes` MB: a long history of 10 KB messages.
fn big_chat_body(megabytes: usize) -> Bytes {
    let messages: Vec<serde_json::Value> = (0..megabytes * 100)
        .map(|i| {
            let role = if i % 2 == 0 { "user" } else { "assistant" };
            serde_json::json!({"role": role, "content": format!("{i:08} {}", "x".repeat(9990))})
        })
        .collect();
    Bytes::from(serde_json::json!({"model": "gpt-5.5", "messages": messages}).to_string())
}

/// [7] A burst of large requests at once: how far memory rises (the request memory budget
/// bounds it) and how much of it the daemon keeps afterwards.
async fn bodies(cli: &Cli, d: &Daemon) -> anyhow::Result<()> {
    let (count, megabytes) = if cli.quick { (4, 8) } else { (8, 30) };
    let expect = mock::delta_text(cli.deltas - 1, cli.delta_bytes);
    let mut warm = Conn::open(d.addr, API_KEY).await?;
    warm.complete(&chat_body(false), &expect).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = d.memory_kib();
    let body = big_chat_body(megabytes);
    let started = Instant::now();
    let runs = (0..count).map(|_| {
        let (body, expect) = (body.clone(), expect.clone());
        async move {
            let mut conn = Conn::open(d.addr, API_KEY).await?;
            conn.complete(&body, &expect).await
        }
    });
    let results = futures_util::future::join_all(runs).await;
    let took = started.elapsed();
    let served = results.iter().filter(|r| r.is_ok()).count();
    let right_after = d.memory_kib();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let after_5 = d.memory_kib();
    // Blocking-pool threads (which prepared the bodies) exit after 10 idle seconds.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let after_15 = d.memory_kib();
    println!(
        "\n[7] large bodies: {count} concurrent requests of {:.1} MB each (a history of 10 KB messages)",
        body.len() as f64 / 1e6
    );
    println!(
        "  served {served}/{count}, all done in {} ms",
        took.as_millis()
    );
    if let Some(Err(e)) = results.iter().find(|r| r.is_err()) {
        println!("  first failure: {e}");
    }
    println!(
        "  RSS KiB (anonymous): before {} ({}), peak {}, right after {} ({}), 5 s later {} ({}), \
         15 s later {} ({})",
        before.0,
        before.1,
        after_15.2,
        right_after.0,
        right_after.1,
        after_5.0,
        after_5.1,
        after_15.0,
        after_15.1
    );
    Ok(())
}

/// [1] Added latency at concurrency 1, non-streamed; the direct, floor and daemon legs
/// interleaved.
async fn latency(
    cli: &Cli,
    upstream: std::net::SocketAddr,
    d: &Daemon,
    floor: &Daemon,
    fetching: &Daemon,
) -> anyhow::Result<()> {
    let body = chat_body(false);
    let (mut direct, mut hop, mut via) = legs(upstream, floor, d).await?;
    let mut fetch = Conn::open(fetching.addr, API_KEY).await?;
    let (mut hd, mut hf, mut hv, mut hr) = (hist(), hist(), hist(), hist());
    let expect = mock::delta_text(cli.deltas - 1, cli.delta_bytes);
    for i in 0..cli.warmup + cli.samples {
        let a = direct.complete(&body, &expect).await?;
        let f = hop.complete(&body, &expect).await?;
        let r = fetch.complete(&body, &expect).await?;
        let b = via.complete(&body, &expect).await?;
        if i >= cli.warmup {
            hd.record(us(a))?;
            hf.record(us(f))?;
            hr.record(us(r))?;
            hv.record(us(b))?;
        }
    }
    println!(
        "\n[1] added latency, c = 1, non-streamed, {} × {} B per answer, interleaved",
        cli.deltas, cli.delta_bytes
    );
    line("direct", &hd);
    line("via floor proxy", &hf);
    line("via fetching floor", &hr);
    line("via daemon", &hv);
    compare(&hd, &hf, &hv, "(targets 60 / 100)");
    difference(
        "fetching floor adds",
        &hd,
        &hr,
        "(a hop that reads the Responses stream)",
    );
    difference(
        "daemon over it",
        &hr,
        &hv,
        "(translation, accounts, compression)",
    );
    println!("  samples in 30–50 ms: {}", stall_band(&hv));
    Ok(())
}

/// [8] The Responses API: a short non-streamed `/v1/responses` request, direct (the mock's
/// response object for the same content) and through the daemon, interleaved.
async fn responses(cli: &Cli, upstream: std::net::SocketAddr, d: &Daemon) -> anyhow::Result<()> {
    let body = serde_json::json!({"model": "gpt-5.5", "input": "benchmark", "store": false});
    let title = "[8] added latency of /v1/responses";
    non_streamed(
        cli,
        upstream,
        d,
        "/v1/responses",
        &body,
        title,
        "(pass-through, response assembled)",
    )
    .await
}

/// [9] The Anthropic Messages API: a short non-streamed `/v1/messages` request, direct (the
/// mock's message for the same content) and through the daemon, interleaved.
async fn messages(cli: &Cli, upstream: std::net::SocketAddr, d: &Daemon) -> anyhow::Result<()> {
    let body = serde_json::json!({"model": "claude-sonnet-4-5", "max_tokens": 1024,
        "messages": [{"role": "user", "content": "benchmark"}]});
    let title = "[9] added latency of /v1/messages";
    non_streamed(
        cli,
        upstream,
        d,
        "/v1/messages",
        &body,
        title,
        "(Messages → Responses → message)",
    )
    .await
}

/// [13] The Ollama API: a short non-streamed `/api/chat` request, direct and through the
/// daemon, interleaved.
async fn ollama(cli: &Cli, upstream: std::net::SocketAddr, d: &Daemon) -> anyhow::Result<()> {
    let body = serde_json::json!({"model": "gpt-5.5", "stream": false,
        "messages": [{"role": "user", "content": "benchmark"}]});
    let title = "[13] added latency of /api/chat (Ollama)";
    non_streamed(
        cli,
        upstream,
        d,
        "/api/chat",
        &body,
        title,
        "(Ollama → Chat → Responses → object)",
    )
    .await
}

/// [14] The Gemini API: a short `generateContent` request, direct and through the daemon,
/// interleaved.
async fn gemini(cli: &Cli, upstream: std::net::SocketAddr, d: &Daemon) -> anyhow::Result<()> {
    let body =
        serde_json::json!({"contents": [{"role": "user", "parts": [{"text": "benchmark"}]}]});
    let title = "[14] added latency of :generateContent (Gemini)";
    non_streamed(
        cli,
        upstream,
        d,
        "/v1beta/models/gpt-5.5:generateContent",
        &body,
        title,
        "(Gemini → Chat → Responses → response)",
    )
    .await
}

/// A short non-streamed request on `path`, direct (the mock answers it in the surface's own
/// shape) and through the daemon, interleaved; prints what the daemon adds.
async fn non_streamed(
    cli: &Cli,
    upstream: std::net::SocketAddr,
    d: &Daemon,
    path: &'static str,
    body: &serde_json::Value,
    title: &str,
    note: &str,
) -> anyhow::Result<()> {
    let body = Bytes::from(body.to_string());
    let mut direct = Conn::open_at(upstream, API_KEY, path).await?;
    let mut via = Conn::open_at(d.addr, API_KEY, path).await?;
    let (mut hd, mut hv) = (hist(), hist());
    let expect = mock::delta_text(cli.deltas - 1, cli.delta_bytes);
    for i in 0..cli.warmup + cli.samples {
        let a = direct.complete(&body, &expect).await?;
        let b = via.complete(&body, &expect).await?;
        if i >= cli.warmup {
            hd.record(us(a))?;
            hv.record(us(b))?;
        }
    }
    println!(
        "\n{title}, c = 1, non-streamed, {} × {} B per answer, interleaved",
        cli.deltas, cli.delta_bytes
    );
    line("direct", &hd);
    line("via daemon", &hv);
    difference("daemon adds", &hd, &hv, note);
    Ok(())
}

/// One connection per leg: direct to the mock, through the floor, through the daemon.
async fn legs(
    upstream: std::net::SocketAddr,
    floor: &Daemon,
    d: &Daemon,
) -> anyhow::Result<(Conn, Conn, Conn)> {
    Ok((
        Conn::open(upstream, API_KEY).await?,
        Conn::open(floor.addr, API_KEY).await?,
        Conn::open(d.addr, API_KEY).await?,
    ))
}

/// The three differences: what the floor adds, what the daemon adds (the target figure), and
/// what the daemon adds over the floor (its own work).
fn compare(direct: &Histogram<u64>, floor: &Histogram<u64>, via: &Histogram<u64>, target: &str) {
    difference("floor adds", direct, floor, "(any HTTP hop here)");
    difference("daemon adds", direct, via, target);
    difference("daemon over floor", floor, via, "(the daemon's own work)");
}

/// One row: what leg `b` adds over leg `a` at p50 and p99.
fn difference(name: &str, a: &Histogram<u64>, b: &Histogram<u64>, note: &str) {
    println!(
        "  {name:<22} p50 {:>8} µs  p99 {:>8} µs   {note}",
        added(a, b, 0.5),
        added(a, b, 0.99)
    );
}

/// [2] Streaming: time to the first delta (unpaced) and the gap between deltas (paced).
async fn streaming(
    cli: &Cli,
    binary: &std::path::Path,
    upstream: std::net::SocketAddr,
    d: &Daemon,
    floor: &Daemon,
) -> anyhow::Result<()> {
    let body = chat_body(true);
    let (mut direct, mut hop, mut via) = legs(upstream, floor, d).await?;
    let (mut hd, mut hf, mut hv) = (hist(), hist(), hist());
    let mut problems = 0usize;
    for i in 0..cli.warmup + cli.samples {
        let a = direct.stream(&body).await?;
        let f = hop.stream(&body).await?;
        let b = via.stream(&body).await?;
        problems += usize::from(!ok_stream(&b, cli.deltas));
        if i >= cli.warmup {
            hd.record(us(a.first_delta))?;
            hf.record(us(f.first_delta))?;
            hv.record(us(b.first_delta))?;
        }
    }
    println!("\n[2] streaming, c = 1: time to the first delta");
    line("direct", &hd);
    line("via floor proxy", &hf);
    line("via daemon", &hv);
    compare(&hd, &hf, &hv, "(target p99 ≤ 150)");

    let paced = Shape {
        deltas: cli.deltas,
        delta_bytes: cli.delta_bytes,
        pace: Duration::from_millis(cli.pace_ms),
    };
    let paced_upstream = mock::start(paced, cli.mock_cpu, cli.tls()).await?;
    let paced_daemon = Daemon::start(binary, paced_upstream, &cli.daemon_settings())?;
    let mut direct = Conn::open(paced_upstream.addr, API_KEY).await?;
    let mut via = Conn::open(paced_daemon.addr, API_KEY).await?;
    let (mut gd, mut gv) = (hist(), hist());
    let mut batched = 0;
    for _ in 0..cli.gap_streams {
        let a = direct.stream(&body).await?;
        let b = via.stream(&body).await?;
        problems += usize::from(!ok_stream(&b, cli.deltas));
        batched += b.batched;
        for g in a.gaps {
            gd.record(us(g))?;
        }
        for g in b.gaps {
            gv.record(us(g))?;
        }
    }
    println!(
        "  paced {} ms: {} streams per leg",
        cli.pace_ms, cli.gap_streams
    );
    line("direct gap", &gd);
    line("via gap", &gv);
    println!(
        "  added gap p50 {} µs, p99 {} µs (target ≤ 5); batched reads {batched}; streams incomplete or out of order: {problems}",
        added(&gd, &gv, 0.5),
        added(&gd, &gv, 0.99)
    );
    Ok(())
}

fn ok_stream(s: &client::Streamed, deltas: usize) -> bool {
    s.complete && s.order.len() == deltas && s.order.iter().enumerate().all(|(i, &d)| i == d)
}

/// [4] CPU time the daemon spends per request (c = 8) and per streamed delta: a warm-up, then
/// three rounds of each (this VM's figures move by a third from run to run, so all three are
/// shown and the median is the figure).
async fn cpu(cli: &Cli, d: &Daemon) -> anyhow::Result<()> {
    let requests = cli.samples.max(1000);
    let run = |stream: bool, requests: u64| async move {
        let body = chat_body(stream);
        let per = requests / 8;
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let body = body.clone();
            let addr = d.addr;
            let expect = mock::delta_text(cli.deltas - 1, cli.delta_bytes);
            tasks.push(tokio::spawn(async move {
                let mut conn = Conn::open(addr, API_KEY).await?;
                for _ in 0..per {
                    if stream {
                        conn.stream(&body).await?;
                    } else {
                        conn.complete(&body, &expect).await?;
                    }
                }
                anyhow::Ok(())
            }));
        }
        let before = d.cpu_us();
        let started = Instant::now();
        for t in tasks {
            t.await??;
        }
        let wall = started.elapsed();
        let n = per * 8;
        anyhow::Ok((
            (d.cpu_us() - before) as f64 / n as f64,
            n as f64 / wall.as_secs_f64(),
        ))
    };
    run(false, requests.min(2000)).await?;
    run(true, requests.min(2000) / 4).await?;
    println!("\n[4] CPU, c = 8 ({requests} requests per round, after a warm-up)");
    let (mut plain, mut streamed) = (Vec::new(), Vec::new());
    for round in 1..=3 {
        let (per_request, rate) = run(false, requests).await?;
        let (per_stream, _) = run(true, requests / 4).await?;
        println!(
            "  round {round}: non-streamed {per_request:.1} CPU-µs per request ({rate:.0} req/s); \
             streamed {:.2} per delta, {per_stream:.1} per request",
            per_stream / cli.deltas as f64
        );
        plain.push(per_request);
        streamed.push(per_stream);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let streamed = median(&mut streamed);
    println!(
        "  median: non-streamed {:.1} CPU-µs per request (target ≤ 100); streamed {:.2} per delta, \
         {streamed:.1} per request",
        median(&mut plain),
        streamed / cli.deltas as f64
    );
    Ok(())
}

/// [3] Closed-loop concurrency 1, 2, 4, …: rate and p99; the best rate within 1 ms / 5 ms p99.
async fn frontier(cli: &Cli, d: &Daemon) -> anyhow::Result<()> {
    let window = if cli.quick {
        Duration::from_millis(500)
    } else {
        Duration::from_secs(3)
    };
    println!(
        "\n[3] frontier (non-streamed, closed loop, {} ms per level)",
        window.as_millis()
    );
    let (mut best1, mut best5) = (0.0f64, 0.0f64);
    let mut c = 1;
    while c <= cli.max_concurrency {
        let deadline = Instant::now() + window;
        let mut tasks = Vec::new();
        for _ in 0..c {
            let addr = d.addr;
            let expect = mock::delta_text(cli.deltas - 1, cli.delta_bytes);
            tasks.push(tokio::spawn(async move {
                let body = chat_body(false);
                let mut h = hist();
                let mut errors = 0u64;
                let Ok(mut conn) = Conn::open(addr, API_KEY).await else {
                    return (h, 1);
                };
                while Instant::now() < deadline {
                    match conn.complete(&body, &expect).await {
                        Ok(t) => {
                            let _ = h.record(us(t));
                        }
                        Err(_) => errors += 1,
                    }
                }
                (h, errors)
            }));
        }
        let mut all = hist();
        let mut errors = 0;
        for t in tasks {
            let (h, e) = t.await?;
            all.add(&h)?;
            errors += e;
        }
        let rate = all.len() as f64 / window.as_secs_f64();
        let p99 = all.value_at_quantile(0.99);
        println!(
            "  c {c:>5}: {rate:>9.0} req/s  p50 {:>7} µs  p99 {p99:>7} µs  errors {errors}",
            all.value_at_quantile(0.5)
        );
        if errors == 0 && p99 <= 1_000 {
            best1 = best1.max(rate);
        }
        if errors == 0 && p99 <= 5_000 {
            best5 = best5.max(rate);
        }
        c *= 2;
    }
    println!("  highest rate with p99 ≤ 1 ms: {best1:.0} req/s; with p99 ≤ 5 ms: {best5:.0} req/s");
    Ok(())
}

/// [5] Holding N paced streams: RSS, lost frames, long gaps; slope of RSS over N.
async fn open_streams(cli: &Cli, binary: &std::path::Path) -> anyhow::Result<()> {
    let pace = Duration::from_millis(500);
    // 12 s per stream: long enough for thousands to be open at once.
    let deltas = 24;
    println!(
        "\n[5] open streams: {deltas} deltas every {} ms each; RSS while all are open",
        pace.as_millis()
    );
    let shape = Shape {
        deltas,
        delta_bytes: cli.delta_bytes,
        pace,
    };
    let upstream = mock::start(shape, cli.load_cpu(), cli.tls()).await?;
    let body = chat_body(true);
    for round in 0..cli.repeats {
        let d = Daemon::start(binary, upstream, &cli.daemon_settings())?;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let base = d.rss_kib();
        let mut points = Vec::new();
        for &n in &cli.open_streams {
            let mut tasks = Vec::with_capacity(n);
            // Connections are opened a few hundred at a time (as clients arrive, not as a SYN
            // flood the listen backlog would drop); the sample is taken once all are open.
            let connecting = std::sync::Arc::new(tokio::sync::Semaphore::new(256));
            let opened = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
            let ended = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
            for _ in 0..n {
                let addr = d.addr;
                let body = body.clone();
                let connecting = connecting.clone();
                let (opened, ended) = (opened.clone(), ended.clone());
                tasks.push(tokio::spawn(async move {
                    let result = async {
                        let permit = connecting.acquire_owned().await?;
                        let mut conn = Conn::open(addr, API_KEY).await?;
                        conn.stream_then(&body, move || {
                            opened.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            drop(permit);
                        })
                        .await
                    }
                    .await;
                    ended.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    result
                }));
            }
            let deadline = Instant::now() + Duration::from_secs(60);
            while opened.load(std::sync::atomic::Ordering::Relaxed) < n
                && ended.load(std::sync::atomic::Ordering::Relaxed) < n
                && Instant::now() < deadline
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let rss = d.rss_kib();
            let open_at_sample = opened.load(std::sync::atomic::Ordering::Relaxed)
                - ended.load(std::sync::atomic::Ordering::Relaxed).min(n);
            let (mut lost, mut long_gaps, mut failed) = (0usize, 0usize, 0usize);
            for t in tasks {
                match t.await? {
                    Ok(s) => {
                        lost += deltas.saturating_sub(s.order.len())
                            + usize::from(!ok_stream(&s, deltas));
                        long_gaps += s.gaps.iter().filter(|g| **g > pace * 10).count();
                    }
                    Err(_) => failed += 1,
                }
            }
            println!(
                "  round {} n {n:>5}: RSS {rss:>7} KiB ({:+.1} KiB per stream over idle, {open_at_sample} open at the sample)  lost frames {lost}  gaps > 10× pace {long_gaps}  failed {failed}",
                round + 1,
                (rss as f64 - base as f64) / n as f64
            );
            points.push((n as f64, rss as f64));
        }
        if points.len() >= 2 {
            let k = points.len() as f64;
            let (sx, sy) = points
                .iter()
                .fold((0.0, 0.0), |(a, b), (x, y)| (a + x, b + y));
            let (mx, my) = (sx / k, sy / k);
            let num: f64 = points.iter().map(|(x, y)| (x - mx) * (y - my)).sum();
            let den: f64 = points.iter().map(|(x, _)| (x - mx).powi(2)).sum();
            println!(
                "  round {}: slope {:.1} KiB per open stream (target ≤ 64)",
                round + 1,
                num / den.max(1.0)
            );
        }
    }
    Ok(())
}
