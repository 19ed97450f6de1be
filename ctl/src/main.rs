//! `codexctl`: controls a running `codex-proxy` through its Unix socket.

mod login;
mod render;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{CommandFactory, Parser, Subcommand, ValueEnum};
use codex_proxy_proto::client::{Client, ClientError};
use codex_proxy_proto::{ErrorKind, ErrorReply, Request, Response, Sensitive, Strategy};

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

/// How long an ordinary request may take (a refresh talks to the auth server and the backend).
const CALL_TIMEOUT: Duration = Duration::from_secs(120);
/// The largest `auth.json` read for `login --import`.
const MAX_AUTH_JSON: u64 = 1 << 20;

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
    /// Responses and tokens per account and model, with the prompt-cache hit rate.
    Usage,
    /// The most recent requests, newest first: surface, model, account, status, time, tokens,
    /// and why a failed one failed.
    Requests {
        /// How many to show.
        #[arg(short = 'n', long, default_value_t = 20)]
        limit: u32,
        /// Only the failed ones.
        #[arg(long)]
        failed: bool,
        /// Only one surface: chat, responses, messages, count_tokens, compact, models, backend.
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

#[derive(Debug, clap::Args)]
struct LoginArgs {
    /// Print the sign-in URL and read the address the browser ends on from stdin (for a
    /// browser on another machine).
    #[arg(long, conflicts_with_all = ["device", "import"])]
    paste: bool,
    /// Sign in with a code shown here and entered on any device (headless boxes).
    #[arg(long, conflicts_with = "import")]
    device: bool,
    /// Import the Codex CLI's auth.json [default: $CODEX_HOME/auth.json or ~/.codex/auth.json].
    #[arg(long, value_name = "PATH", num_args = 0..=1)]
    import: Option<Option<PathBuf>>,
    /// Port for the browser callback on 127.0.0.1 [default: 1455, else 1457].
    #[arg(long, value_name = "PORT", value_parser = clap::value_parser!(u16).range(1..))]
    callback_port: Option<u16>,
    /// Do not try to open a browser; only print the URL.
    #[arg(long)]
    no_browser: bool,
}

#[derive(Debug, Subcommand)]
enum AccountsCommand {
    /// Every account with plan, state and quota (the default).
    List,
    /// Sign an account out and forget it (same as `logout`).
    Remove { account: String },
    /// Let an account serve requests again.
    Enable { account: String },
    /// Keep an account out of rotation (running requests finish).
    Disable { account: String },
    /// Name an account; without TEXT, remove its label.
    Label {
        account: String,
        text: Option<String>,
    },
    /// Refresh an account's tokens and quota now.
    Refresh { account: String },
}

#[derive(Debug, Subcommand)]
enum RotateCommand {
    /// Set the strategy until the daemon restarts (the config's auth.rotation_strategy lasts).
    Strategy { strategy: StrategyArg },
    /// Move the sticky or round-robin position to the next account.
    Next,
    /// Prefer one account for every request while it is usable.
    Pin { account: String },
    /// Stop preferring the pinned account.
    Unpin,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
#[value(rename_all = "snake_case")]
enum StrategyArg {
    LeastUsed,
    RoundRobin,
    Sticky,
}

#[derive(Debug, Clone, Copy, Subcommand)]
enum KeyCommand {
    /// Print the key (only the key on stdout, for `KEY=$(codexctl key show)`).
    Show,
    /// Replace the generated key; the old one stops working at once.
    Rotate,
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

/// A failure with the exit status it maps to.
#[derive(Debug)]
struct Failure {
    code: u8,
    kind: &'static str,
    message: String,
}

impl Failure {
    fn new(code: u8, kind: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            kind,
            message: message.into(),
        }
    }
}

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Self {
        match &e {
            ClientError::Busy(_) => Self::new(exit::UNAVAILABLE, "busy", e.to_string()),
            ClientError::Unreachable { .. } | ClientError::Timeout => Self::new(
                exit::UNAVAILABLE,
                "unreachable",
                format!(
                    "{e}\nIs codex-proxy running? Try `systemctl status codex-proxy` (system service), \
                     `systemctl --user status codex-proxy`, or start it with `codex-proxy`."
                ),
            ),
            ClientError::PermissionDenied { .. } => Self::new(
                exit::NOPERM,
                "permission_denied",
                format!(
                    "{e}\nRun as root or the daemon's user, or join the group named in its \
                     [service] control_group."
                ),
            ),
            _ => Self::new(exit::FAILURE, "failed", e.to_string()),
        }
    }
}

impl From<ErrorReply> for Failure {
    fn from(e: ErrorReply) -> Self {
        let (code, kind) = match e.kind {
            ErrorKind::PermissionDenied => (exit::NOPERM, "permission_denied"),
            ErrorKind::NotFound => (exit::FAILURE, "not_found"),
            ErrorKind::Ambiguous => (exit::FAILURE, "ambiguous"),
            ErrorKind::Invalid => (exit::FAILURE, "invalid"),
            ErrorKind::ProtocolMismatch => (exit::FAILURE, "protocol_mismatch"),
            ErrorKind::BadFrame => (exit::FAILURE, "bad_frame"),
            ErrorKind::Failed | ErrorKind::Other => (exit::FAILURE, "failed"),
            ErrorKind::Busy => (exit::UNAVAILABLE, "busy"),
        };
        Self::new(code, kind, e.message)
    }
}

struct Ctx {
    socket: Option<PathBuf>,
    json: bool,
    style: Style,
    /// stderr is a terminal (spinners, prompts).
    interactive: bool,
}

impl Ctx {
    fn connect(&self) -> Result<Client, Failure> {
        let path = match &self.socket {
            Some(path) => path.clone(),
            None => find_socket()?,
        };
        let client = Client::connect(&path, &format!("codexctl {}", env!("CARGO_PKG_VERSION")))?;
        if let Some(warning) = client.version_warning() {
            eprintln!("codexctl: warning: {warning}");
        }
        Ok(client)
    }

    /// One request, one final response; an error response becomes a failure.
    fn call(&self, request: &Request) -> Result<Response, Failure> {
        let mut client = self.connect()?;
        match client.call(request, CALL_TIMEOUT)? {
            Response::Error(e) => Err(e.into()),
            response => Ok(response),
        }
    }

    /// Prints `response` as JSON, or `text` for people.
    fn show(&self, response: &Response, text: impl FnOnce() -> String) {
        if self.json {
            println!("{}", json(response));
        } else {
            print!("{}", text());
        }
    }
}

fn json(response: &Response) -> String {
    serde_json::to_string_pretty(response).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}

/// The first socket that exists among the defaults.
fn find_socket() -> Result<PathBuf, Failure> {
    let is_root = is_root();
    let candidates =
        codex_proxy_proto::paths::client_candidates(is_root, |name| std::env::var_os(name));
    // A socket we may not even look at (a directory closed to us) is still the one to try:
    // connecting then says "permission denied", which is the truth.
    let present = |p: &PathBuf| match std::fs::symlink_metadata(p) {
        Ok(_) => true,
        Err(e) => e.kind() == std::io::ErrorKind::PermissionDenied,
    };
    if let Some(found) = candidates.iter().find(|p| present(p)) {
        return Ok(found.clone());
    }
    let list: Vec<String> = candidates.iter().map(|p| p.display().to_string()).collect();
    Err(Failure::new(
        exit::UNAVAILABLE,
        "unreachable",
        format!(
            "no codex-proxy control socket at {}.\nIs codex-proxy running? Start it with \
             `systemctl start codex-proxy` (system service) or `codex-proxy` (your own), or name \
             its socket with --socket / CODEX_PROXY_SOCKET.",
            list.join(", ")
        ),
    ))
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
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
        Command::Status { watch, interval } => status(ctx, watch, interval),
        Command::Login(args) => login(ctx, &args),
        Command::Logout { account } => logout(ctx, account),
        Command::Accounts { command } => accounts(ctx, command.unwrap_or(AccountsCommand::List)),
        Command::Rotate { command } => rotate(ctx, command),
        Command::Usage => {
            let response = ctx.call(&Request::Usage)?;
            ctx.show(&response, || match &response {
                Response::Usage(report) => render::usage(report, ctx.style),
                other => unexpected(other),
            });
            Ok(())
        }
        Command::Requests {
            limit,
            failed,
            surface,
        } => {
            let response = ctx.call(&Request::Requests {
                limit,
                failed,
                surface,
            })?;
            ctx.show(&response, || match &response {
                Response::Requests { requests } => render::requests(requests, ctx.style),
                other => unexpected(other),
            });
            Ok(())
        }
        Command::Key { command } => key(ctx, command.unwrap_or(KeyCommand::Show)),
        Command::Reload => {
            let response = ctx.call(&Request::Reload)?;
            ctx.show(&response, || match &response {
                Response::Reloaded(report) => render::reloaded(report),
                other => unexpected(other),
            });
            Ok(())
        }
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

fn unexpected(response: &Response) -> String {
    format!("(unexpected answer from the daemon)\n{}\n", json(response))
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn status(ctx: &Ctx, watch: bool, interval: u64) -> Result<(), Failure> {
    if !watch {
        let response = ctx.call(&Request::Status)?;
        ctx.show(&response, || match &response {
            Response::Status(report) => render::status(report, ctx.style),
            other => unexpected(other),
        });
        return Ok(());
    }
    let mut client = ctx.connect()?;
    client.send(&Request::WatchStatus {
        interval_ms: interval * 1000,
    })?;
    let clear = ctx.style.color && !ctx.json;
    loop {
        let response = client.receive(Some(Duration::from_secs(interval * 3 + 10)))?;
        match &response {
            Response::Status(report) if !ctx.json => {
                if clear {
                    // Home and clear: the report replaces the previous one in place.
                    print!("\x1b[H\x1b[2J");
                }
                print!("{}", render::status(report, ctx.style));
                if !clear {
                    println!();
                }
            }
            Response::Error(e) => return Err(e.clone().into()),
            // One JSON document per line, for `jq` and friends.
            other => println!("{}", serde_json::to_string(other).unwrap_or_default()),
        }
        use std::io::Write;
        let _ = std::io::stdout().flush();
    }
}

fn logged_in(ctx: &Ctx, response: &Response) {
    ctx.show(response, || match response {
        Response::LoggedIn { account, replaced } => {
            let plan = account
                .plan
                .as_deref()
                .map_or(String::new(), |p| format!(" ({p})"));
            if *replaced {
                format!(
                    "Signed in again as {}{plan}: tokens of {} replaced.\n",
                    account.name(),
                    account.id
                )
            } else {
                format!(
                    "Signed in as {}{plan}: added as {}.\n",
                    account.name(),
                    account.id
                )
            }
        }
        other => unexpected(other),
    });
}

fn login(ctx: &Ctx, args: &LoginArgs) -> Result<(), Failure> {
    if let Some(path) = &args.import {
        return import(ctx, path.clone());
    }
    if args.device {
        return device(ctx);
    }
    if args.paste {
        return paste(ctx);
    }
    browser(ctx, args)
}

/// Where the person reads instructions: stdout for people, stderr when stdout is JSON.
fn say(ctx: &Ctx, text: &str) {
    if ctx.json {
        eprintln!("{text}");
    } else {
        println!("{text}");
        use std::io::Write;
        let _ = std::io::stdout().flush();
    }
}

/// Has the daemon start a browser login for a callback on `port`: (authorize URL, state).
fn begin_login(ctx: &Ctx, port: u16) -> Result<(String, String), Failure> {
    match ctx.call(&Request::LoginBrowser {
        callback_port: port,
    })? {
        Response::LoginStarted {
            authorize_url,
            state,
            ..
        } => Ok((authorize_url, state)),
        other => Err(Failure::new(exit::FAILURE, "failed", unexpected(&other))),
    }
}

fn browser(ctx: &Ctx, args: &LoginArgs) -> Result<(), Failure> {
    let listener = login::bind_callback(args.callback_port)
        .map_err(|m| Failure::new(exit::FAILURE, "failed", m))?;
    let port = listener
        .local_addr()
        .map_err(|e| Failure::new(exit::FAILURE, "failed", e.to_string()))?
        .port();
    let (authorize_url, state) = begin_login(ctx, port)?;
    let opened = !args.no_browser && login::open_browser(&authorize_url);
    say(
        ctx,
        &format!(
            "{}\n\n  {authorize_url}\n\nWaiting for the browser to come back to http://localhost:{port} …",
            if opened {
                "Your browser should open; if not, open this URL to sign in:"
            } else {
                "Open this URL in a browser on this machine to sign in:"
            }
        ),
    );
    let (callback, mut stream) = login::wait_for_callback(&listener, &state)
        .map_err(|m| Failure::new(exit::FAILURE, "failed", m))?;
    let code = match callback {
        login::Callback::Denied(reason) => {
            login::respond(&mut stream, 400, "Sign-in refused", &reason);
            return Err(Failure::new(
                exit::FAILURE,
                "denied",
                format!("the sign-in was refused: {reason}"),
            ));
        }
        login::Callback::Code(code) => code,
    };
    let result = ctx.call(&Request::LoginBrowserComplete { state, code });
    match &result {
        Ok(Response::LoggedIn { account, .. }) => login::respond(
            &mut stream,
            200,
            "Signed in",
            &format!(
                "codex-proxy now uses {}. You can close this tab.",
                html_escape(account.name())
            ),
        ),
        Ok(_) => login::respond(&mut stream, 400, "Sign-in failed", "Unexpected answer."),
        Err(f) => login::respond(&mut stream, 400, "Sign-in failed", &html_escape(&f.message)),
    }
    logged_in(ctx, &result?);
    Ok(())
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn paste(ctx: &Ctx) -> Result<(), Failure> {
    let (authorize_url, _) = begin_login(ctx, login::CALLBACK_PORTS[0])?;
    say(
        ctx,
        &format!(
            "Open this URL in any browser and sign in:\n\n  {authorize_url}\n\n\
             The browser then goes to a http://localhost:1455/… page that does not load.\n\
             Copy that page's whole address and paste it here:"
        ),
    );
    let url = login::read_pasted_line().map_err(|m| Failure::new(exit::FAILURE, "invalid", m))?;
    let response = ctx.call(&Request::LoginPaste {
        url: Sensitive::new(url),
    })?;
    logged_in(ctx, &response);
    Ok(())
}

fn device(ctx: &Ctx) -> Result<(), Failure> {
    let mut client = ctx.connect()?;
    client.send(&Request::LoginDevice)?;
    let expires = match client.receive(Some(CALL_TIMEOUT))? {
        Response::DeviceCode {
            user_code,
            verification_url,
            expires_in_seconds,
        } => {
            say(
                ctx,
                &format!(
                    "On any device, open\n\n  {verification_url}\n\nand enter the code\n\n  {user_code}\n\n\
                     (it expires in {}).",
                    render::duration(expires_in_seconds as i64)
                ),
            );
            expires_in_seconds
        }
        Response::Error(e) => return Err(e.into()),
        other => return Err(Failure::new(exit::FAILURE, "failed", unexpected(&other))),
    };
    let spinner = login::Spinner::start("waiting for approval…", ctx.interactive);
    let outcome = client.receive(Some(Duration::from_secs(expires + 60)));
    drop(spinner);
    match outcome? {
        Response::Error(e) => Err(e.into()),
        response => {
            logged_in(ctx, &response);
            Ok(())
        }
    }
}

fn import(ctx: &Ctx, path: Option<PathBuf>) -> Result<(), Failure> {
    let path = match path {
        Some(path) => path,
        None => std::env::var_os("CODEX_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".codex")))
            .map(|dir| dir.join("auth.json"))
            .ok_or_else(|| {
                Failure::new(
                    exit::USAGE,
                    "invalid",
                    "no $HOME: name the file, `--import PATH`",
                )
            })?,
    };
    let fail = |m: String| Failure::new(exit::FAILURE, "invalid", m);
    let size = std::fs::metadata(&path)
        .map_err(|e| fail(format!("cannot read {}: {e}", path.display())))?
        .len();
    if size > MAX_AUTH_JSON {
        return Err(fail(format!(
            "{} is {size} bytes, too large for an auth.json",
            path.display()
        )));
    }
    let text = std::fs::read_to_string(&path)
        .map_err(|e| fail(format!("cannot read {}: {e}", path.display())))?;
    let response = ctx.call(&Request::LoginImport {
        auth_json: Sensitive::new(text),
    })?;
    logged_in(ctx, &response);
    Ok(())
}

fn logout(ctx: &Ctx, account: String) -> Result<(), Failure> {
    let response = ctx.call(&Request::Logout { account })?;
    ctx.show(&response, || match &response {
        Response::LoggedOut { account } => format!(
            "Signed out {} ({}): its refresh token is revoked and the account forgotten.\n",
            account.name(),
            account.id
        ),
        other => unexpected(other),
    });
    Ok(())
}

fn accounts(ctx: &Ctx, command: AccountsCommand) -> Result<(), Failure> {
    let request = match command {
        AccountsCommand::List => {
            let response = ctx.call(&Request::Accounts)?;
            ctx.show(&response, || match &response {
                Response::Accounts { accounts } => render::accounts(accounts, now(), ctx.style),
                other => unexpected(other),
            });
            return Ok(());
        }
        AccountsCommand::Remove { account } => return logout(ctx, account),
        AccountsCommand::Enable { account } => Request::AccountEnable { account },
        AccountsCommand::Disable { account } => Request::AccountDisable { account },
        AccountsCommand::Label { account, text } => Request::AccountLabel {
            account,
            label: text,
        },
        AccountsCommand::Refresh { account } => Request::AccountRefresh { account },
    };
    let response = ctx.call(&request)?;
    ctx.show(&response, || match &response {
        Response::Account { account, message } => format!(
            "{message}\n{}",
            render::account_block(account, now(), ctx.style)
        ),
        other => unexpected(other),
    });
    Ok(())
}

fn rotate(ctx: &Ctx, command: RotateCommand) -> Result<(), Failure> {
    let request = match command {
        RotateCommand::Strategy { strategy } => Request::RotateStrategy {
            strategy: match strategy {
                StrategyArg::LeastUsed => Strategy::LeastUsed,
                StrategyArg::RoundRobin => Strategy::RoundRobin,
                StrategyArg::Sticky => Strategy::Sticky,
            },
        },
        RotateCommand::Next => Request::RotateNext,
        RotateCommand::Pin { account } => Request::RotatePin { account },
        RotateCommand::Unpin => Request::RotateUnpin,
    };
    let response = ctx.call(&request)?;
    ctx.show(&response, || match &response {
        Response::Rotation(view) => render::rotation(view),
        other => unexpected(other),
    });
    Ok(())
}

fn key(ctx: &Ctx, command: KeyCommand) -> Result<(), Failure> {
    let request = match command {
        KeyCommand::Show => Request::KeyShow,
        KeyCommand::Rotate => Request::KeyRotate,
    };
    let response = ctx.call(&request)?;
    let Response::Key { key, source } = &response else {
        ctx.show(&response, || unexpected(&response));
        return Ok(());
    };
    if ctx.json {
        println!(
            "{}",
            serde_json::json!({"key": key.expose(), "source": source})
        );
        return Ok(());
    }
    // Only the key on stdout; notes go to stderr so `$(codexctl key show)` stays clean.
    println!("{}", key.expose());
    match (&request, source.as_str()) {
        (Request::KeyRotate, _) => {
            eprintln!("The old key no longer works; give clients this one.");
        }
        (_, "configured") => eprintln!("(from server.api_keys in the config; the first of them)"),
        _ => {}
    }
    Ok(())
}
