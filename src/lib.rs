//! hapcert: a certificate agent for HAProxy. docs/ARCHITECTURE.md has the map, the invariants and what is left out on
//! purpose.
//!
//! # Layout
//!
//! - [`core`]: pure. The config and its validation, the decision and the survey of what is due, the state and its
//!   format, the CA's renewal window, the retry schedule, PEM bundles, the checks a new certificate passes, keys, and
//!   how time is written. No I/O, no clock: `now` is a parameter. It names nothing outside itself.
//! - [`edge`]: one module per outside party, and the only code that talks to it: the CA ([`edge::acme`]), HAProxy
//!   ([`edge::haproxy`]), the files ([`edge::store`]), the HTTP-01 responder and the public path
//!   ([`edge::http01`]), TLS handshakes ([`edge::probe`]), operators' commands ([`edge::shell`]), the host's
//!   users and directories ([`edge::host`]), and the HTTP server loop both listeners share.
//! - [`renew`]: one run, joining the two: survey, order, verify, deploy, prove, roll back, record.
//! - The other commands, each a feature with its pure judge inside: [`check`] (monitor), [`notify`] (alerts and their
//!   repeat ledger), [`daemon`] (the long-running loop) and [`control`] (its socket, for
//!   `renew`, `revoke` and `status` by hand beside it), [`import`] (certbot's tree), [`doctor`] (is this host
//!   ready), [`watch`] (`watch suggest`: `[[watch]]` entries from HAProxy's TLS backends), [`haproxy_check`]
//!   (`haproxy-config --check`: what hapcert relies on in haproxy.cfg), and `status`, `metrics`,
//!   `account`.
//! - [`cli`] reads the command line and dispatches; [`error`] maps an outcome to an exit code; [`logging`] sets up
//!   stderr; [`output`] writes the results on stdout, quietly stopping when nobody reads them. `main.rs` only parses, runs and prints the error once.

pub mod cli;
/// What `hapcert --version` prints after the name: the crate's version and the git commit it was built from (build.rs).
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("HAPCERT_GIT_COMMIT"), ")");
pub mod core;
pub mod edge;
pub mod error;
/// The fuzz targets' entry points (`fuzz/`); not an API. Built only for them (cargo-fuzz sets `--cfg fuzzing`) and for
/// the corpus replay test, never into the program.
#[doc(hidden)]
#[cfg(any(fuzzing, test))]
pub mod fuzzing;
pub mod logging;
pub mod notify;
pub mod output;
pub mod renew;

pub(crate) mod account;
pub(crate) mod check;
pub(crate) mod control;
pub(crate) mod daemon;
pub(crate) mod doctor;
mod fanout;
pub(crate) mod fleet;
pub(crate) mod haproxy_check;
pub(crate) mod import;
pub(crate) mod metrics;
pub(crate) mod status;
pub(crate) mod watch;

#[cfg(test)]
mod testing;
