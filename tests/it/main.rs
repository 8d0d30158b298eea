//! The one integration-test binary (`cargo test --test it`). Each module is a group of test cases;
//! all of them use the shared sandbox harness in tests/harness/.

#[path = "../harness/mod.rs"]
mod harness;

mod alerts;
mod chain;
mod check;
mod closed_stdout;
mod control;
mod crash_points;
mod daemon;
mod directory_switch;
mod dns01;
mod dns_lab;
mod doctor;
mod etcd_edge;
mod fleet;
mod fleet_config;
mod fleet_harness;
mod flood;
mod haproxy3;
mod haproxy_debian;
mod harness_extras;
mod hooks;
mod hostile_ca;
mod hot_update;
mod import_certbot;
mod issuance;
mod layers;
mod lifecycle;
mod metrics;
mod no_waste;
mod notify;
mod package;
mod pebbles;
mod runtime_api;
mod smoke;
mod starttls;
mod temp_files;
mod watch;
mod watch_suggest;
