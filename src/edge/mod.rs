//! The edges: one module per outside party, and the only code that talks to it.

pub mod acme;
pub mod config_secrets;
pub mod dns;
pub mod etcd;
pub mod fd_limit;
pub mod haproxy;
pub mod host;
pub mod http01;
pub mod http_server;
pub mod probe;
pub mod roots;
pub mod shell;
pub mod store;
pub mod tally;
pub mod units;
