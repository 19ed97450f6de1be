//! `codexctl rotate …`.

use clap::{Subcommand, ValueEnum};
use codex_proxy_proto::{Request, Response, Strategy};

use crate::ctx::{Ctx, Failure, unexpected};
use crate::render;

#[derive(Debug, Subcommand)]
pub enum RotateCommand {
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
pub enum StrategyArg {
    LeastUsed,
    RoundRobin,
    Sticky,
}

pub fn rotate(ctx: &Ctx, command: RotateCommand) -> Result<(), Failure> {
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
