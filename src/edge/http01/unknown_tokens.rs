//! How the responder tells of requests for tokens no pending order has: each at debug, and a count at INFO at most
//! once a minute ([`Tally`](crate::edge::tally::Tally)).

pub use crate::edge::tally::{SUMMARY_INTERVAL, Summary, Tally as UnknownTokenTally};
