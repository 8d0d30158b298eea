//! The daemon's control socket: `renew`, `revoke` and `status` by hand while `hapcert daemon` runs.
//!
//! In side-port mode the daemon holds the side port for its whole life, so a renewal by hand could not answer its
//! challenges. Instead the command asks the daemon ([`client`]), over a Unix socket at `[daemon] control` (mode 0600,
//! only root or the daemon's own user may ask, by SO_PEERCRED), to run it: the daemon runs the same code
//! ([`commands`]) with its responder, its fleet session and one job at a time between its passes, and streams back
//! the request's log lines, its stdout and its exit code ([`wire`]). Without a daemon the command runs here, as it
//! always did. The daemon's side is [`server`].

pub mod client;
pub mod commands;
pub mod server;
pub mod wire;
