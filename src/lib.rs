//! hapcert: a certificate agent for HAProxy. See docs/ARCHITECTURE.md for the map.
//!
//! Pure core: `config` (parse and validate), `decision`, `ari` (the CA's renewal window), `schedule` (retry backoff
//! and rate-limit budget), `pem`, `verify`, `keys`.
//! Edges: `acme` (the CA), `responder` (HTTP-01), `preflight` (the public HTTP path), `probe` (TLS handshakes),
//! `store` (files), `haproxy` (commands and the Runtime API).
//! Orchestration: `renew`, `revoke`, `status`, `import` (certbot's tree into a config and adopted PEMs), and the
//! binary's `cli`.

pub mod acme;
pub mod ari;
pub mod challenge;
pub mod check;
pub mod cli;
pub mod command;
pub mod config;
pub mod daemon;
pub mod decision;
pub mod deploy;
pub mod haproxy;
pub mod hooks;
pub mod http_server;
pub mod import;
pub mod keys;
pub mod logging;
pub mod metrics;
pub mod notify;
pub mod pem;
pub mod preflight;
pub mod probe;
pub mod progress;
pub mod renew;
pub mod responder;
pub mod revoke;
pub mod schedule;
pub mod status;
pub mod store;
pub mod verify;

#[cfg(test)]
mod testing;
