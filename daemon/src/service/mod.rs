//! Process-level concerns: logging, signals, privileges, systemd, start-up order.

pub mod daemonize;
pub mod logging;
pub mod memory;
pub mod notify;
pub mod privileges;
pub mod run;
pub mod signals;

pub use run::{StartOptions, start};
