//! Hooks, as certbot runs them: the operator's command lines around a run's orders and after each verified deploy.
//!
//! - **pre hook**: once per run that orders anything, before the first order. A command shared by several
//!   certificates runs once. If it fails, the certificates that named it are not ordered: they fail (and are retried on
//!   the retry schedule, and notified), while the served certificates stay as they are. A pre hook is usually there
//!   because the order needs it (a firewall opened, a maintenance page put up), so ordering anyway would only burn
//!   the CA's failed-validation budget; certbot logs a failing pre hook and orders anyway.
//! - **post hook**: once per run whose pre stage ran, after every order and deploy of the run, whatever their outcome,
//!   so that what a pre hook did is undone. Shared commands run once.
//! - **deploy hook**: once per certificate whose new certificate was verified on the wire, with the certificate in its
//!   environment. A failing deploy hook is reported; the deploy stands, since HAProxy already serves the new certificate.
//!
//! Dry runs run no hook. Every hook runs with `sh -c` and is killed, with everything it started, after
//! `[hooks] timeout`.

use std::fmt;
use std::path::Path;
use std::time::Duration;

use crate::core::config::CertificateSpec;
use crate::core::pem::CertFacts;
use crate::core::time::format_rfc3339;
use crate::edge::shell::run_shell;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Pre,
    Post,
    Deploy,
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Stage::Pre => "pre hook",
            Stage::Post => "post hook",
            Stage::Deploy => "deploy hook",
        })
    }
}

/// A hook that failed, exited non-zero or ran out of time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookFailure {
    pub stage: Stage,
    /// The certificate a deploy hook ran for.
    pub certificate: Option<String>,
    pub command: String,
    /// Exit status and the tail of its output, or the timeout.
    pub problem: String,
}

impl fmt::Display for HookFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} failed: `{}` {}", self.stage, self.command, self.problem)
    }
}

/// The commands to run once each, in the order first named.
pub fn distinct<'a>(commands: impl IntoIterator<Item = Option<&'a str>>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for command in commands.into_iter().flatten() {
        if !out.iter().any(|c| c == command) {
            out.push(command.to_owned());
        }
    }
    out
}

/// Runs each command in turn (a failure does not stop the next one) and returns the failures.
pub async fn run_stage(stage: Stage, commands: &[impl AsRef<str>], timeout: Duration) -> Vec<HookFailure> {
    let mut failures = Vec::new();
    for command in commands {
        if let Err(failure) = run_one(stage, None, command.as_ref(), &[], timeout).await {
            failures.push(failure);
        }
    }
    failures
}

/// The deploy hook of `spec`, if it has one, for the certificate `facts` just verified on the wire.
pub async fn run_deploy(spec: &CertificateSpec, facts: &CertFacts, timeout: Duration) -> Option<HookFailure> {
    let command = spec.hooks.deploy.as_deref()?;
    run_one(
        Stage::Deploy,
        Some(&spec.name),
        command,
        &deploy_env(spec, facts),
        timeout,
    )
    .await
    .err()
}

/// certbot's two variables, and hapcert's own. `RENEWED_LINEAGE` is the directory of the PEM file, not certbot's
/// `live/<name>` directory: hapcert writes one combined PEM (leaf, chain, key), so there is no `fullchain.pem` or
/// `privkey.pem` to find there. `HAPCERT_PEM` names the file itself.
pub fn deploy_env(spec: &CertificateSpec, facts: &CertFacts) -> Vec<(String, String)> {
    let file = &spec.file.value;
    let lineage = file.parent().unwrap_or(Path::new("/"));
    let domains: Vec<&str> = spec.domains.iter().map(|d| d.as_str()).collect();
    [
        ("RENEWED_LINEAGE", lineage.display().to_string()),
        ("RENEWED_DOMAINS", domains.join(" ")),
        ("HAPCERT_NAME", spec.name.clone()),
        ("HAPCERT_PEM", file.display().to_string()),
        ("HAPCERT_SERIAL", facts.serial.clone()),
        ("HAPCERT_NOT_AFTER", format_rfc3339(facts.not_after)),
    ]
    .into_iter()
    .map(|(key, value)| (key.to_owned(), value))
    .collect()
}

async fn run_one(
    stage: Stage,
    certificate: Option<&str>,
    command: &str,
    env: &[(String, String)],
    timeout: Duration,
) -> Result<(), HookFailure> {
    tracing::info!(certificate, command, "running the {stage}");
    match run_shell(command, env, timeout).await {
        Ok(()) => {
            tracing::debug!(certificate, command, "the {stage} succeeded");
            Ok(())
        }
        Err(problem) => {
            let failure = HookFailure {
                stage,
                certificate: certificate.map(str::to_owned),
                command: command.to_owned(),
                problem,
            };
            tracing::error!(certificate, "{failure}");
            Err(failure)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_commands_run_once_in_the_order_first_named() {
        let commands = [Some("b"), None, Some("a"), Some("b"), Some("c"), Some("a")];
        assert_eq!(distinct(commands), ["b", "a", "c"]);
        assert!(distinct([None, None]).is_empty());
    }

    #[test]
    fn a_failure_reads_as_one_line_naming_the_stage_and_the_command() {
        let failure = HookFailure {
            stage: Stage::Deploy,
            certificate: Some("www".into()),
            command: "systemctl restart postfix".into(),
            problem: "exited with status 1: unit not found".into(),
        };
        assert_eq!(
            failure.to_string(),
            "deploy hook failed: `systemctl restart postfix` exited with status 1: unit not found"
        );
    }

    #[test]
    fn the_deploy_hook_gets_certbots_variables_and_hapcerts_own() {
        let spec = crate::testing::www_spec();
        let facts = CertFacts {
            serial: "0a1b".into(),
            names: spec.domain_set(),
            not_before: time::macros::datetime!(2026-01-01 00:00 UTC),
            not_after: time::macros::datetime!(2026-04-01 00:00 UTC),
            key_type: Some(crate::core::config::KeyType::EcdsaP256),
            key_matches: true,
            ari_id: None,
        };
        let env = deploy_env(&spec, &facts);
        let get = |key: &str| env.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str());
        assert_eq!(get("RENEWED_LINEAGE"), Some("/etc/haproxy/certs"));
        assert_eq!(get("RENEWED_DOMAINS"), Some("example.com www.example.com"));
        assert_eq!(get("HAPCERT_NAME"), Some("www"));
        assert_eq!(get("HAPCERT_PEM"), Some("/etc/haproxy/certs/www.pem"));
        assert_eq!(get("HAPCERT_SERIAL"), Some("0a1b"));
        assert_eq!(get("HAPCERT_NOT_AFTER"), Some("2026-04-01T00:00:00Z"));
    }

    #[tokio::test]
    async fn a_failing_command_does_not_stop_the_next_one() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("second");
        let second = format!("touch {}", marker.display());
        let failures = run_stage(Stage::Post, &["exit 2", &second], Duration::from_secs(5)).await;
        assert_eq!(failures.len(), 1);
        assert_eq!(failures[0].command, "exit 2");
        assert_eq!(failures[0].problem, "exited with status 2");
        assert!(marker.exists());
    }
}
