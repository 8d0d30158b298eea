//! hapcert: a certificate agent for HAProxy. See docs/ARCHITECTURE.md for the map.
//!
//! Pure core: `config` (parse and validate), `decision`, `pem`, `verify`, `keys`.
//! Edges: `acme` (the CA), `responder` (HTTP-01), `store` (files), `haproxy`.
//! Orchestration: `renew`, `status`, and the binary's `cli`.

pub mod acme;
pub mod cli;
pub mod config;
pub mod decision;
pub mod haproxy;
pub mod keys;
pub mod logging;
pub mod pem;
pub mod renew;
pub mod responder;
pub mod status;
pub mod store;
pub mod verify;

#[cfg(test)]
mod testing;
