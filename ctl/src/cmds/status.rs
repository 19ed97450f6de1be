//! `codexctl status [--watch]`.

use std::time::Duration;

use codex_proxy_proto::{Request, Response};

use crate::ctx::{Ctx, Failure, unexpected};
use crate::render;

pub fn status(ctx: &Ctx, watch: bool, interval: u64) -> Result<(), Failure> {
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
