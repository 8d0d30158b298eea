//! The pure core: what hapcert knows and decides, with no I/O, no clock and no randomness of its own (`now` and random
//! numbers are parameters). Nothing here imports from `edge`, `renew` or a command; `tests/it/layers.rs` checks it.

pub mod ari;
pub mod chain;
pub mod challenge;
pub mod config;
pub mod decision;
pub mod keys;
pub mod order_journal;
pub mod pem;
pub mod schedule;
pub mod seal;
pub mod state;
pub mod survey;
pub mod time;
pub mod trust;
pub mod verify;
