//! Command-line interface of the daemon.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

use crate::config::{self, Environment, Loaded, Overrides};
use crate::service;

/// Exit status for a configuration error (sysexits' EX_CONFIG), so service managers and scripts
/// can tell "fix your config" from a crash.
pub const EXIT_CONFIG: u8 = 78;

const ENV_HELP: &str = "\
Environment (overrides the config file; flags override the environment):
  CODEX_PROXY_CONFIG     config file       [default: ~/.config/codex-proxy/config.toml,
                                            /etc/codex-proxy/config.toml as root]
  CODEX_PROXY_HOST       server.host       [default: 127.0.0.1]
  PORT                   server.port       [default: 8080]
  CODEX_PROXY_STATE_DIR  paths.state_dir   [default: ~/.local/state/codex-proxy, /var/lib/codex-proxy]
  CODEX_PROXY_SOCKET     paths.socket      [default: $XDG_RUNTIME_DIR/codex-proxy/control.sock,
                                            /run/codex-proxy/control.sock]
  CODEX_PROXY_LOG        log.level         [default: info]
  CODEX_PROXY_LOG_FORMAT log.format        [default: auto]
  CODEX_PLATFORM         client_identity.platform  [default: this system]
  CODEX_ARCH             client_identity.arch      [default: this machine]
  RUST_LOG               log filter, replaces log.level unless -v is given

Every key is documented in config/codex-proxy.toml.";

/// The Codex gateway daemon. Runs in the foreground; stop it with Ctrl-C or SIGTERM.
#[derive(Debug, Parser)]
#[command(name = "codex-proxy", version, about, after_help = ENV_HELP)]
pub struct Cli {
    /// Config file to use instead of the default locations.
    #[arg(short, long, value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// Validate the configuration, print what it resolves to, and exit.
    #[arg(long)]
    pub check_config: bool,

    /// Address to listen on (server.host).
    #[arg(long, value_name = "ADDR")]
    pub host: Option<String>,

    /// Port to listen on (server.port); 0 picks a free port.
    #[arg(long, value_name = "PORT")]
    pub port: Option<u16>,

    /// State directory (paths.state_dir).
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,

    /// Control socket path (paths.socket).
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,

    /// More logging: -v debug for codex-proxy, -vv trace for codex-proxy, -vvv trace for all.
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Run in the background: detach, log to --log-file, write --pid-file, return once serving.
    /// (systemd and launchd want the foreground default.)
    #[arg(long)]
    pub daemonize: bool,

    /// Pid file, written once serving and removed at exit [default with --daemonize: next to
    /// the control socket, codex-proxy.pid].
    #[arg(long, value_name = "PATH")]
    pub pid_file: Option<PathBuf>,

    /// Where a --daemonize'd daemon logs [default: codex-proxy.log in the state directory].
    #[arg(long, value_name = "PATH", requires = "daemonize")]
    pub log_file: Option<PathBuf>,

    /// Run as root even though no [service] user is set to drop to.
    #[arg(long)]
    pub allow_root: bool,
}

impl Cli {
    pub fn overrides(&self) -> Overrides {
        let log_level = match self.verbose {
            0 => None,
            1 => Some("info,codex_proxy=debug".to_owned()),
            2 => Some("info,codex_proxy=trace".to_owned()),
            _ => Some("trace".to_owned()),
        };
        Overrides {
            config: self.config.clone(),
            host: self.host.clone(),
            port: self.port,
            state_dir: self.state_dir.clone(),
            socket: self.socket.clone(),
            log_level,
        }
    }
}

pub fn main() -> ExitCode {
    service::daemonize::detach_if_child();
    let cli = Cli::parse();
    let env = Environment::from_process();
    let loaded = match config::load(&cli.overrides(), &env) {
        Ok(loaded) => loaded,
        Err(err) => {
            eprintln!("codex-proxy: {err}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    if cli.check_config {
        print_check(&loaded);
        return ExitCode::SUCCESS;
    }
    let pid_file = cli.pid_file.clone().or_else(|| {
        cli.daemonize.then(|| {
            loaded
                .paths
                .socket
                .parent()
                .unwrap_or(&loaded.paths.state_dir)
                .join("codex-proxy.pid")
        })
    });
    if cli.daemonize {
        let log_file = cli
            .log_file
            .unwrap_or_else(|| loaded.paths.state_dir.join("codex-proxy.log"));
        let pid_file = pid_file.unwrap_or_default();
        return match service::daemonize::spawn(&pid_file, &log_file) {
            Ok(pid) => {
                println!(
                    "codex-proxy running as pid {pid}; log {}, pid file {}",
                    log_file.display(),
                    pid_file.display()
                );
                ExitCode::SUCCESS
            }
            Err(err) => {
                eprintln!("codex-proxy: {err:#}");
                ExitCode::FAILURE
            }
        };
    }
    if let Some(pid_file) = &pid_file
        && let Err(err) = service::daemonize::check_pid_file(pid_file)
    {
        eprintln!("codex-proxy: {err:#}");
        return ExitCode::FAILURE;
    }
    service::logging::init(&loaded, cli.verbose > 0);
    let options = service::StartOptions {
        allow_root: cli.allow_root,
        pid_file,
    };
    match service::start(loaded, &options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("{err:#}");
            eprintln!("codex-proxy: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn print_check(loaded: &Loaded) {
    let paths = &loaded.paths;
    let file = paths.config_file.as_ref().map_or_else(
        || "none (built-in defaults)".to_owned(),
        |p| p.display().to_string(),
    );
    println!("configuration OK");
    println!("  config file: {file}");
    println!("  mode:        {}", paths.mode);
    println!(
        "  listen:      {}:{}",
        loaded.config.server.host, loaded.config.server.port
    );
    println!("  state dir:   {}", paths.state_dir.display());
    println!("  socket:      {}", paths.socket.display());
    println!("  upstream:    {}", loaded.config.upstream.base_url);
}
