//! `codexctl accounts …`.

use clap::Subcommand;
use codex_proxy_proto::{Request, Response};

use crate::ctx::{Ctx, Failure, now, unexpected};
use crate::render;

#[derive(Debug, Subcommand)]
pub enum AccountsCommand {
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

pub fn accounts(ctx: &Ctx, command: AccountsCommand) -> Result<(), Failure> {
    let request = match command {
        AccountsCommand::List => {
            let response = ctx.call(&Request::Accounts)?;
            ctx.show(&response, || match &response {
                Response::Accounts { accounts } => render::accounts(accounts, now(), ctx.style),
                other => unexpected(other),
            });
            return Ok(());
        }
        AccountsCommand::Remove { account } => return super::login::logout(ctx, account),
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
