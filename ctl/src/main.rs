//! `codexctl`: controls a running `codex-proxy` through its Unix socket.

mod cmds;
mod ctx;
mod render;
mod signin;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

use cmds::accounts::AccountsCommand;
use cmds::key::KeyCommand;
use cmds::login::LoginArgs;
use cmds::rotate::RotateCommand;
use ctx::{Ctx, Failure};
use render::Style;

/// Exit statuses scripts can rely on (sysexits where one fits).
mod exit {
    pub const FAILURE: u8 = 1;
    pub const USAGE: u8 = 2;
    /// EX_UNAVAILABLE: the daemon is not running or not answering.
    pub const UNAVAILABLE: u8 = 69;
    /// EX_NOPERM: the socket or the daemon refused this user.
    pub const NOPERM: u8 = 77;
}

const AFTER_HELP: &str = "\
Environment:
  CODEX_PROXY_SOCKET  control socket [default: $XDG_RUNTIME_DIR/codex-proxy/control.sock,
                      then ~/.local/state/codex-proxy/control.sock, then
                      /run/codex-proxy/control.sock (the system service); as root the last]
  CODEX_HOME          the Codex CLI's home, for `login --import` [default: ~/.codex]
  NO_COLOR            no colours even on a terminal

Exit status: 0 ok, 1 failed, 2 usage error, 69 daemon not reachable or busy, 77 permission denied.";

/// Control the codex-proxy daemon: sign in, rotate accounts, show status and quota.
#[derive(Debug, Parser)]
#[command(
    name = "codexctl",
    version,
    long_version = long_version(),
    about,
    after_help = AFTER_HELP,
    propagate_version = true
)]
struct Cli {
    /// The daemon's control socket.
    #[arg(long, global = true, value_name = "PATH", env = "CODEX_PROXY_SOCKET")]
    socket: Option<PathBuf>,

    /// Print JSON for scripts instead of text.
    #[arg(long, global = true)]
    json: bool,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Daemon, accounts, quota windows and reset times.
    Status {
        /// Refresh in place until interrupted.
        #[arg(short, long)]
        watch: bool,
        /// Seconds between refreshes with --watch.
        #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=60))]
        interval: u64,
    },
    /// Sign in a ChatGPT account (in the browser unless told otherwise).
    Login(LoginArgs),
    /// Sign an account out: revoke its refresh token and forget it.
    Logout {
        /// Id, ChatGPT account id, email or label.
        account: String,
    },
    /// List and manage accounts.
    Accounts {
        #[command(subcommand)]
        command: Option<AccountsCommand>,
    },
    /// Choose how requests are spread over the accounts.
    Rotate {
        #[command(subcommand)]
        command: RotateCommand,
    },
    /// Responses and tokens per account and model, with the prompt-cache hit rate; with
    /// `--history`, over time.
    Usage {
        /// Usage over time: `day` (5-minute steps of the last 24 h) or `month` (days of the
        /// last 30).
        #[arg(long, value_enum)]
        history: Option<cmds::reports::HistoryRange>,
    },
    /// The most recent requests, newest first: surface, model, account, status, time, tokens,
    /// and why a failed one failed.
    Requests {
        /// How many to show.
        #[arg(short = 'n', long, default_value_t = 20)]
        limit: u32,
        /// Only the failed ones.
        #[arg(long)]
        failed: bool,
        /// Only one surface: chat, responses, messages, count_tokens, compact, models, backend,
        /// ollama, gemini, images.
        #[arg(long)]
        surface: Option<String>,
    },
    /// The API key clients send (`key show`, `key rotate`).
    Key {
        #[command(subcommand)]
        command: Option<KeyCommand>,
    },
    /// Re-read the config file and apply what can change live (as SIGHUP does).
    Reload,
    /// Print a completion script: `codexctl completions bash > /etc/bash_completion.d/codexctl`.
    Completions { shell: clap_complete::Shell },
}

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

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { exit::USAGE } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let color = std::io::stdout().is_terminal()
        && std::env::var_os("NO_COLOR").is_none()
        && std::env::var("TERM").map_or(true, |t| t != "dumb");
    let ctx = Ctx {
        socket: cli.socket.clone(),
        json: cli.json,
        style: Style { color },
        interactive: std::io::stderr().is_terminal(),
    };
    match run(&ctx, cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            if ctx.json {
                println!(
                    "{}",
                    serde_json::json!({"error": {"kind": f.kind, "message": f.message}})
                );
            } else {
                eprintln!("codexctl: {}", f.message);
            }
            ExitCode::from(f.code)
        }
    }
}

fn run(ctx: &Ctx, command: Command) -> Result<(), Failure> {
    match command {
        Command::Status { watch, interval } => cmds::status::status(ctx, watch, interval),
        Command::Login(args) => cmds::login::login(ctx, &args),
        Command::Logout { account } => cmds::login::logout(ctx, account),
        Command::Accounts { command } => {
            cmds::accounts::accounts(ctx, command.unwrap_or(AccountsCommand::List))
        }
        Command::Rotate { command } => cmds::rotate::rotate(ctx, command),
        Command::Usage { history: None } => cmds::reports::usage(ctx),
        Command::Usage {
            history: Some(range),
        } => cmds::reports::history(ctx, range),
        Command::Requests {
            limit,
            failed,
            surface,
        } => cmds::reports::requests(ctx, limit, failed, surface),
        Command::Key { command } => cmds::key::key(ctx, command.unwrap_or(KeyCommand::Show)),
        Command::Reload => cmds::reports::reload(ctx),
        Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "codexctl",
                &mut std::io::stdout(),
            );
            Ok(())
        }
    }
}
