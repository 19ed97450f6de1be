//! `codexctl usage`, `codexctl requests` and `codexctl reload`: one request, one report.

use codex_proxy_proto::{Request, Response};

use crate::ctx::{Ctx, Failure, unexpected};
use crate::render;

pub fn usage(ctx: &Ctx) -> Result<(), Failure> {
    let response = ctx.call(&Request::Usage)?;
    ctx.show(&response, || match &response {
        Response::Usage(report) => render::usage(report, ctx.style),
        other => unexpected(other),
    });
    Ok(())
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum HistoryRange {
    Day,
    Month,
}

pub fn history(ctx: &Ctx, range: HistoryRange) -> Result<(), Failure> {
    let response = ctx.call(&Request::UsageHistory {
        daily: matches!(range, HistoryRange::Month),
    })?;
    ctx.show(&response, || match &response {
        Response::UsageHistory(view) => render::history(view, ctx.style),
        other => unexpected(other),
    });
    Ok(())
}

pub fn requests(
    ctx: &Ctx,
    limit: u32,
    failed: bool,
    surface: Option<String>,
) -> Result<(), Failure> {
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

pub fn reload(ctx: &Ctx) -> Result<(), Failure> {
    let response = ctx.call(&Request::Reload)?;
    ctx.show(&response, || match &response {
        Response::Reloaded(report) => render::reloaded(report),
        other => unexpected(other),
    });
    Ok(())
}
