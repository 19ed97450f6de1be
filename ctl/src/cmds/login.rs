//! `codexctl login` (browser, `--paste`, `--device`, `--import`) and `logout`.

use std::path::PathBuf;
use std::time::Duration;

use codex_proxy_proto::{Request, Response, Sensitive};

use crate::ctx::{CALL_TIMEOUT, Ctx, Failure, say, unexpected};
use crate::exit;
use crate::render;
use crate::signin;

/// The largest `auth.json` read for `login --import`.
const MAX_AUTH_JSON: u64 = 1 << 20;

#[derive(Debug, clap::Args)]
pub struct LoginArgs {
    /// Print the sign-in URL and read the address the browser ends on from stdin (for a
    /// browser on another machine).
    #[arg(long, conflicts_with_all = ["device", "import"])]
    pub paste: bool,
    /// Sign in with a code shown here and entered on any device (headless boxes).
    #[arg(long, conflicts_with = "import")]
    pub device: bool,
    /// Import the Codex CLI's auth.json [default: $CODEX_HOME/auth.json or ~/.codex/auth.json].
    #[arg(long, value_name = "PATH", num_args = 0..=1)]
    pub import: Option<Option<PathBuf>>,
    /// Port for the browser callback on 127.0.0.1 [default: 1455, else 1457].
    #[arg(long, value_name = "PORT", value_parser = clap::value_parser!(u16).range(1..))]
    pub callback_port: Option<u16>,
    /// Do not try to open a browser; only print the URL.
    #[arg(long)]
    pub no_browser: bool,
}

pub fn logged_in(ctx: &Ctx, response: &Response) {
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

pub fn login(ctx: &Ctx, args: &LoginArgs) -> Result<(), Failure> {
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

/// Has the daemon start a browser login for a callback on `port`: (authorize URL, state).
pub fn begin_login(ctx: &Ctx, port: u16) -> Result<(String, String), Failure> {
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

pub fn browser(ctx: &Ctx, args: &LoginArgs) -> Result<(), Failure> {
    let listener = signin::bind_callback(args.callback_port)
        .map_err(|m| Failure::new(exit::FAILURE, "failed", m))?;
    let port = listener
        .local_addr()
        .map_err(|e| Failure::new(exit::FAILURE, "failed", e.to_string()))?
        .port();
    let (authorize_url, state) = begin_login(ctx, port)?;
    let opened = !args.no_browser && signin::open_browser(&authorize_url);
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
    let (callback, mut stream) = signin::wait_for_callback(&listener, &state)
        .map_err(|m| Failure::new(exit::FAILURE, "failed", m))?;
    let code = match callback {
        signin::Callback::Denied(reason) => {
            signin::respond(&mut stream, 400, "Sign-in refused", &reason);
            return Err(Failure::new(
                exit::FAILURE,
                "denied",
                format!("the sign-in was refused: {reason}"),
            ));
        }
        signin::Callback::Code(code) => code,
    };
    let result = ctx.call(&Request::LoginBrowserComplete { state, code });
    match &result {
        Ok(Response::LoggedIn { account, .. }) => signin::respond(
            &mut stream,
            200,
            "Signed in",
            &format!(
                "codex-proxy now uses {}. You can close this tab.",
                html_escape(account.name())
            ),
        ),
        Ok(_) => signin::respond(&mut stream, 400, "Sign-in failed", "Unexpected answer."),
        Err(f) => signin::respond(&mut stream, 400, "Sign-in failed", &html_escape(&f.message)),
    }
    logged_in(ctx, &result?);
    Ok(())
}

pub fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

pub fn paste(ctx: &Ctx) -> Result<(), Failure> {
    let (authorize_url, _) = begin_login(ctx, signin::CALLBACK_PORTS[0])?;
    say(
        ctx,
        &format!(
            "Open this URL in any browser and sign in:\n\n  {authorize_url}\n\n\
             The browser then goes to a http://localhost:1455/… page that does not load.\n\
             Copy that page's whole address and paste it here:"
        ),
    );
    let url = signin::read_pasted_line().map_err(|m| Failure::new(exit::FAILURE, "invalid", m))?;
    let response = ctx.call(&Request::LoginPaste {
        url: Sensitive::new(url),
    })?;
    logged_in(ctx, &response);
    Ok(())
}

pub fn device(ctx: &Ctx) -> Result<(), Failure> {
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
    let spinner = signin::Spinner::start("waiting for approval…", ctx.interactive);
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

pub fn import(ctx: &Ctx, path: Option<PathBuf>) -> Result<(), Failure> {
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

pub fn logout(ctx: &Ctx, account: String) -> Result<(), Failure> {
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
