//! `--daemonize`: detach by re-spawning this program (never by forking a tokio process). The
//! parent checks the pid file, starts the child with its output going to the log file, waits
//! until the child has written the pid file (it is then serving), and exits. The child makes
//! itself a session leader before anything else.

use std::fs::OpenOptions;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// Set in the child's environment (internal).
pub const DETACHED_ENV: &str = "CODEX_PROXY_DETACHED";
/// How long the parent waits for the child to be ready.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// In the re-spawned child: leave the parent's session and terminal.
pub fn detach_if_child() {
    if std::env::var_os(DETACHED_ENV).is_some()
        && let Err(e) = nix::unistd::setsid()
    {
        eprintln!("codex-proxy: setsid failed: {e}");
    }
}

/// The pid a pid file names, if that process is alive.
pub fn live_pid(path: &Path) -> Option<i32> {
    let pid: i32 = std::fs::read_to_string(path).ok()?.trim().parse().ok()?;
    let alive = match nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None) {
        Ok(()) => true,
        // It exists but belongs to someone else.
        Err(nix::errno::Errno::EPERM) => true,
        Err(_) => false,
    };
    // A zombie is not running.
    let zombie = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(") ").map(|(_, rest)| rest.starts_with('Z')))
        .unwrap_or(false);
    (pid > 0 && alive && !zombie).then_some(pid)
}

/// Refuses when the pid file names a live process; removes a stale one.
pub fn check_pid_file(path: &Path) -> anyhow::Result<()> {
    if let Some(pid) = live_pid(path) {
        bail!(
            "codex-proxy is already running as pid {pid} (pid file {}); stop it first: kill {pid}",
            path.display()
        );
    }
    if path.exists() {
        std::fs::remove_file(path)
            .with_context(|| format!("cannot remove the stale pid file {}", path.display()))?;
    }
    Ok(())
}

/// The parent's side: start the detached child and wait until it serves.
pub fn spawn(pid_file: &Path, log_file: &Path) -> anyhow::Result<i32> {
    check_pid_file(pid_file)?;
    if let Some(dir) = log_file.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(log_file)
        .with_context(|| format!("cannot open the log file {}", log_file.display()))?;
    let err = log.try_clone().context("log file")?;
    let args = child_args(std::env::args_os().skip(1));
    let exe = std::env::current_exe().context("cannot find this program to re-spawn it")?;
    let mut child = Command::new(exe)
        .args(&args)
        .env(DETACHED_ENV, "1")
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(err)
        .spawn()
        .context("cannot start the detached daemon")?;
    let pid = i32::try_from(child.id()).context("pid")?;
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Some(status) = child.try_wait().context("waiting for the daemon")? {
            bail!(
                "the daemon exited while starting ({status}); see {}",
                log_file.display()
            );
        }
        if std::fs::read_to_string(pid_file).is_ok_and(|s| s.trim() == pid.to_string()) {
            return Ok(pid);
        }
        if Instant::now() > deadline {
            bail!(
                "the daemon (pid {pid}) is not ready after {} s; see {}",
                START_TIMEOUT.as_secs(),
                log_file.display()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The parent's arguments without the ones only the parent acts on (`--daemonize`,
/// `--log-file PATH`): the child runs in the foreground of its own session.
fn child_args(args: impl Iterator<Item = std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    let mut out = Vec::new();
    let mut skip_value = false;
    for arg in args {
        if std::mem::take(&mut skip_value) {
            continue;
        }
        match arg.to_str() {
            Some("--daemonize") => {}
            Some("--log-file") => skip_value = true,
            Some(a) if a.starts_with("--log-file=") => {}
            _ => out.push(arg),
        }
    }
    out
}

/// A pid file removed when the daemon stops (if it still names this process).
#[derive(Debug)]
pub struct PidFile(PathBuf);

impl PidFile {
    pub fn write(path: &Path) -> anyhow::Result<Self> {
        let pid = std::process::id();
        crate::state::write_private_atomic(path, format!("{pid}\n").as_bytes())?;
        Ok(Self(path.to_owned()))
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        let ours = std::fs::read_to_string(&self.0)
            .is_ok_and(|s| s.trim() == std::process::id().to_string());
        if ours {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_child_gets_the_arguments_minus_the_parents_own() {
        let args = [
            "--daemonize",
            "--port",
            "0",
            "--log-file",
            "/x.log",
            "-v",
            "--log-file=/y",
        ]
        .map(std::ffi::OsString::from);
        assert_eq!(
            child_args(args.into_iter()),
            ["--port", "0", "-v"].map(std::ffi::OsString::from)
        );
    }
}
