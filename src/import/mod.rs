//! `hapcert import`: take over the certificates another ACME client manages.

pub mod configobj;
