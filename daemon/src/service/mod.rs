//! Process-level concerns: logging, signals, start-up order.

pub mod logging;
pub mod run;
pub mod signals;

pub use run::start;
