//! `hapcert haproxy-config --check`: does HAProxy's configuration have what hapcert relies on? This module reads the
//! files (as `watch suggest` does) and prints; `judge.rs` decides, pure.

pub mod judge;

use std::path::PathBuf;

use crate::core::config::{ChallengeMode, Config};
use crate::error::{EXIT_FAILED, EXIT_OK};
use crate::output::outln;
use crate::watch::{self, haproxy_cfg};

use self::judge::{Expect, Verdict};

/// What the example config (deploy/hapcert.toml) says, for a host whose config cannot be read yet.
fn example_expect() -> Expect {
    Expect {
        mode: ChallengeMode::SidePort,
        listen: ([127, 0, 0, 1], 54321).into(),
        cert_dir: "/etc/haproxy/certs".into(),
        runtime_api: Some("/run/haproxy/admin.sock".into()),
        master_socket: false,
    }
}

fn expect_of(config: &Config) -> Expect {
    Expect {
        mode: config.challenge.mode,
        listen: config.challenge.listen,
        cert_dir: config.haproxy.cert_dir.value.display().to_string(),
        runtime_api: config.haproxy.runtime_api.as_ref().map(|r| r.value.clone()),
        master_socket: config.haproxy.master_socket.is_some(),
    }
}

/// Checks `files` (none: the -f files of `[haproxy] check_command`) against `config` (`None`: the example config's
/// values, said so). Exit 0 when everything is there, 1 otherwise.
pub fn command(config: Option<&Config>, files: &[PathBuf]) -> anyhow::Result<u8> {
    let (named, source) = match (files.is_empty(), config) {
        (false, _) => (
            files.iter().map(|f| f.display().to_string()).collect(),
            "--check".to_owned(),
        ),
        (true, Some(config)) => watch::named_by_config(config)?,
        (true, None) => {
            return Err(crate::error::UsageError(
                "no config to take [haproxy] check_command from; name HAProxy's configuration, like \
                 hapcert haproxy-config --check /etc/haproxy/haproxy.cfg"
                    .into(),
            )
            .into());
        }
    };
    let mut read = Vec::new();
    for name in &named {
        watch::load(name, &source, &mut read)?;
    }
    let parsed = haproxy_cfg::parse(&read, &|name| std::env::var(name).ok());
    let expect = match config {
        Some(config) => expect_of(config),
        None => {
            tracing::warn!(
                "no hapcert config read: checking against the example config's values (side port 127.0.0.1:54321, \
                 cert_dir /etc/haproxy/certs, runtime_api /run/haproxy/admin.sock)"
            );
            example_expect()
        }
    };
    let findings = judge::judge(&parsed, &expect);
    let names: Vec<&str> = read.iter().map(|(name, _)| name.as_str()).collect();
    outln!("HAProxy configuration: {}", names.join(", "));
    for finding in &findings {
        let at = finding.at.as_ref().map(|at| format!("{at}: ")).unwrap_or_default();
        outln!(
            "{:<8} {:<18} {at}{}",
            finding.verdict.word(),
            finding.item.label(),
            finding.message
        );
        if !finding.fix.is_empty() {
            outln!("{:<8} {:<18} fix: {}", "", "", finding.fix);
        }
    }
    let bad = findings.iter().filter(|f| f.verdict != Verdict::Ok).count();
    if bad == 0 {
        outln!("Everything hapcert relies on is there.");
        Ok(EXIT_OK)
    } else {
        outln!(
            "{bad} finding(s) to fix; then `haproxy -c -f {}` and reload HAProxy.",
            names.first().copied().unwrap_or("/etc/haproxy/haproxy.cfg")
        );
        Ok(EXIT_FAILED)
    }
}
