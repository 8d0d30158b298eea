//! `hapcert import`: take over the certificates another ACME client manages.

pub mod certbot;
pub mod configobj;
