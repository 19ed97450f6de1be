//! One file per command group, as the daemon's control module has one per request group.

pub mod accounts;
pub mod key;
pub mod login;
pub mod reports;
pub mod rotate;
pub mod status;
