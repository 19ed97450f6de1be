//! `codexctl key show | rotate`.

use clap::Subcommand;
use codex_proxy_proto::{Request, Response};

use crate::ctx::{Ctx, Failure, unexpected};

#[derive(Debug, Clone, Copy, Subcommand)]
pub enum KeyCommand {
    /// Print the key (only the key on stdout, for `KEY=$(codexctl key show)`).
    Show,
    /// Replace the generated key; the old one stops working at once.
    Rotate,
}

pub fn key(ctx: &Ctx, command: KeyCommand) -> Result<(), Failure> {
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
