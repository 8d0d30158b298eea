//! hapcert: a certificate agent for HAProxy. See docs/ARCHITECTURE.md for the map.

pub mod account;
pub mod check;
pub mod cli;
pub mod core;
pub mod daemon;
pub mod edge;
pub mod error;
mod fanout;
pub mod import;
pub mod logging;
pub mod metrics;
pub mod notify;
pub mod renew;
pub mod status;

#[cfg(test)]
mod testing;
