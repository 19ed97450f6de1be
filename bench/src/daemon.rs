//! Starts the real `codex-proxy` (release build) against the mock, with one account whose
//! token never needs a refresh, and measures it through `/proc`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::mock::Mock;

pub const API_KEY: &str = "bench-key-0123456789abcdef";

#[derive(Debug)]
pub struct Daemon {
    child: Child,
    pub addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Drop for Daemon {
    /// Stops the daemon as a service manager would (SIGTERM, then SIGKILL after 10 s), so a
    /// profiler wrapped around it (`--daemon` pointing at a script) can write its data.
    fn drop(&mut self) {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A JWT-shaped access token (the daemon reads its claims, the mock never checks it).
fn token() -> String {
    let part = |v: serde_json::Value| URL_SAFE_NO_PAD.encode(v.to_string());
    format!(
        "{}.{}.{}",
        part(serde_json::json!({"alg": "RS256", "typ": "JWT"})),
        part(serde_json::json!({
            "exp": 4_102_444_800u64,
            "email": "bench@example.com",
            "https://api.openai.com/auth": {"chatgpt_account_id": "bench-account", "chatgpt_plan_type": "pro"}
        })),
        URL_SAFE_NO_PAD.encode(b"signature")
    )
}

/// `program`, pinned to `cpu` with taskset when given and available.
fn pinned(program: &Path, cpu: Option<usize>) -> Command {
    match cpu {
        Some(cpu) if which("taskset") => {
            let mut c = Command::new("taskset");
            c.arg("-c").arg(cpu.to_string()).arg(program);
            c
        }
        _ => Command::new(program),
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// How the daemon under test runs.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Pinned to this core (taskset) when given.
    pub cpu: Option<usize>,
    /// Its `upstream.compress_requests` (zstd request bodies, on by default as in the official
    /// client).
    pub compress: bool,
    /// Its `log.level` (its log goes to the bench's standard error).
    pub log: String,
    /// Its `upstream.transport` (`http` for the scenarios the mock answers over HTTP).
    pub transport: &'static str,
}

impl Daemon {
    /// Starts `binary` against `mock` as `settings` say; with a mock serving HTTPS the daemon
    /// talks to it over HTTPS, trusting its CA.
    pub fn start(binary: &Path, mock: Mock, settings: &Settings) -> anyhow::Result<Self> {
        let Settings {
            cpu,
            compress,
            log,
            transport,
        } = settings;
        let dir = tempfile::tempdir()?;
        let upstream = match mock.tls {
            Some(tls) => format!("https://{tls}"),
            None => format!("http://{}", mock.addr),
        };
        let state = dir.path().join("state");
        std::fs::create_dir(&state)?;
        std::fs::write(
            state.join("accounts.json"),
            serde_json::json!({"schema_version": 2, "accounts": [{
                "id": "acct_0", "chatgpt_account_id": "bench-account", "email": "bench@example.com",
                "plan": "pro", "tokens": {"access_token": token(), "refresh_token": "rt-bench"}}]})
            .to_string(),
        )?;
        let config = dir.path().join("config.toml");
        std::fs::write(
            &config,
            format!(
                "[server]\napi_keys = [\"{API_KEY}\"]\n\n[upstream]\nbase_url = \"{upstream}/backend-api\"\n\
                 auth_url = \"{upstream}\"\ncompress_requests = {compress}\ntransport = \"{transport}\"\n\n[appcast]\nenabled = false\n\n[log]\nlevel = \"{log}\"\n\n\
                 [auth]\nmax_concurrent_per_account = 16384\n"
            ),
        )?;
        std::fs::write(dir.path().join("ca.pem"), crate::mock::CA_PEM)?;
        let port = free_port()?;
        let mut cmd = pinned(binary, *cpu);
        cmd.env_clear()
            .env("HOME", dir.path())
            .env("CODEX_PROXY_STATE_DIR", &state)
            .env("CODEX_PROXY_SOCKET", dir.path().join("control.sock"))
            .env("SSL_CERT_FILE", dir.path().join("ca.pem"))
            .arg("--config")
            .arg(&config)
            .args(["--port", &port.to_string()]);
        if nix::unistd::Uid::effective().is_root() {
            cmd.arg("--allow-root");
        }
        Self::serving(cmd, port, dir)
    }

    /// A floor of [`crate::floor`] in front of `upstream` (the fetching one when `fetch`): this
    /// program again, as its own process, pinned like the daemon; run under `wrapper` (given
    /// this program's path and arguments) when given, as `bench/callgrind.sh` does.
    pub fn floor(
        upstream: SocketAddr,
        cpu: Option<usize>,
        fetch: bool,
        wrapper: Option<&Path>,
    ) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let port = free_port()?;
        let exe = std::env::current_exe()?;
        let mut cmd = match wrapper {
            Some(wrapper) => {
                let mut c = pinned(wrapper, cpu);
                c.arg(exe);
                c
            }
            None => pinned(&exe, cpu),
        };
        cmd.arg("--floor-proxy-for")
            .arg(upstream.to_string())
            .args(["--floor-port", &port.to_string()]);
        if fetch {
            cmd.arg("--floor-fetches-responses");
        }
        Self::serving(cmd, port, dir)
    }

    /// Starts `cmd` and waits until it accepts connections on `port`.
    fn serving(mut cmd: Command, port: u16, dir: tempfile::TempDir) -> anyhow::Result<Self> {
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()?;
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(addr).is_err() {
            anyhow::ensure!(Instant::now() < deadline, "{cmd:?} did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(Self {
            child,
            addr,
            _dir: dir,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident memory in KiB.
    pub fn rss_kib(&self) -> u64 {
        proc_status(self.pid(), "VmRSS:")
    }

    /// Resident memory in KiB: (all, anonymous, the peak since start).
    pub fn memory_kib(&self) -> (u64, u64, u64) {
        let pid = self.pid();
        (
            proc_status(pid, "VmRSS:"),
            proc_status(pid, "RssAnon:"),
            proc_status(pid, "VmHWM:"),
        )
    }

    /// CPU time so far of the daemon's threads now alive, in nanoseconds (the scheduler's own
    /// count, `/proc/<pid>/task/*/schedstat`: exact, where `stat` counts 10 ms ticks). A thread
    /// that has exited is not counted: compare spans within which none exits.
    pub fn cpu_ns(&self) -> u64 {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{}/task", self.pid())) else {
            return 0;
        };
        tasks
            .filter_map(Result::ok)
            .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
            .filter_map(|s| s.split(' ').next()?.parse::<u64>().ok())
            .sum()
    }

    /// user + system CPU time so far, in microseconds.
    pub fn cpu_us(&self) -> u64 {
        let (user, system) = self.cpu_user_system_us();
        user + system
    }

    /// User and system (kernel) CPU time so far, in microseconds, in clock ticks' resolution
    /// (10 ms): for the share of each over a long enough run, not for one request.
    pub fn cpu_user_system_us(&self) -> (u64, u64) {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap_or_default();
        let fields: Vec<&str> = stat
            .rsplit_once(") ")
            .map(|(_, r)| r.split(' ').collect())
            .unwrap_or_default();
        // utime and stime are fields 14 and 15 of stat; 12 and 13 after "pid (comm) ".
        let ticks = |i: usize| {
            fields
                .get(i)
                .and_then(|f| f.parse::<u64>().ok())
                .unwrap_or(0)
        };
        let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
            .ok()
            .flatten()
            .unwrap_or(100) as u64;
        let us = |t: u64| t * 1_000_000 / hz.max(1);
        (us(ticks(11)), us(ticks(12)))
    }
}

fn proc_status(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

pub fn which(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The release daemon next to this binary (target/release/codex-proxy).
pub fn default_binary() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join("codex-proxy")))
        .unwrap_or_else(|| PathBuf::from("target/release/codex-proxy"))
}
