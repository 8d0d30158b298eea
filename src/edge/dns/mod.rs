//! DNS: the one module that talks to name servers, for DNS-01.
//!
//! - `wire.rs`: one exchange over UDP (TCP when truncated), TSIG signing and the answer's TSIG errors;
//! - `lookup.rs`: questions to authoritative servers with RD=0 (TXT, SOA, CNAME, NS, addresses), and the system's
//!   resolvers, asked only to find a zone no configured server answers for;
//! - `provider.rs`: a `[[dns_provider]]` at work: where a record goes, and adding or removing exactly one value;
//! - `propagation.rs`: the rule that every authoritative server serves a value before the CA is told to look.

pub mod lookup;
pub mod propagation;
pub mod provider;
pub mod wire;

pub use propagation::wait_until_served;
pub use provider::{Placement, Provider, Server};
