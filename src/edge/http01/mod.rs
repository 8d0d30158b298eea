//! HTTP-01: the responder on the side port that the CA's validator reaches through HAProxy, and the preflight that
//! fetches a test token through the public path as the CA will.

pub mod preflight;
pub mod responder;
