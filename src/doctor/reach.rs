//! The checks of `doctor` that talk to something: HAProxy (its version, its sockets, its TLS frontend and the
//! challenge route through it) and the CA. Each asks through the edge the rest of hapcert uses.

use std::collections::BTreeSet;

use time::OffsetDateTime;

use super::report::{Check, Finding};
use super::{existing_account, split_fix};
use crate::core::config::{ChallengeKind, ChallengeMode, Config};
use crate::edge::acme::{Acme, DirectoryFacts};
use crate::edge::haproxy::runtime::{Endpoint, RuntimeApi};
use crate::edge::haproxy::{service, version};
use crate::edge::http01::preflight::random_token;
use crate::edge::probe::{VERIFY_FIX, verify_endpoints};
use crate::edge::store::StateDir;
use crate::renew::challenge::{in_use, preflight_each};

fn socket(text: &str) -> RuntimeApi {
    RuntimeApi::admin(Endpoint::parse(text).expect("checked when the config was parsed"))
}

fn master(text: &str) -> RuntimeApi {
    RuntimeApi::master(Endpoint::parse(text).expect("checked when the config was parsed"))
}

/// Which HAProxy, and the paths a deploy takes to it.
pub async fn haproxy(config: &Config) -> Vec<Finding> {
    let haproxy = &config.haproxy;
    let api = haproxy
        .runtime_api
        .as_ref()
        .map(|s| socket(&s.value))
        .or_else(|| haproxy.master_socket.as_ref().map(|s| master(&s.value)));
    let from_binary = match version::binary_of(&haproxy.check_command) {
        Some(binary) => version::from_binary(binary).await,
        None => Err(format!(
            "check_command `{}` names no haproxy binary to ask",
            haproxy.check_command
        )),
    };
    let found = match (from_binary, &api) {
        (Ok(found), _) => Ok(found),
        (Err(why), Some(api)) => version::from_runtime_api(api)
            .await
            .map_err(|also| format!("{why}; {also}")),
        (Err(why), None) => Err(why),
    };
    let hot = match (&haproxy.runtime_api, &haproxy.master_socket) {
        (Some(admin), _) => format!("hot updates through the Runtime API at {}", admin.value),
        (None, Some(master)) => format!("hot updates through the master socket {}", master.value),
        (None, None) => "no hot updates (no runtime_api)".to_owned(),
    };
    let reload = match &haproxy.master_socket {
        Some(master) => format!("reloads through the master socket {}", master.value),
        None => format!("reloads with `{}`", haproxy.reload_command),
    };
    let mut findings = vec![match found {
        Ok(found) => Finding::ok(
            Check::Haproxy,
            format!("HAProxy {} (from {}); {hot}; {reload}", found.version, found.from),
        ),
        Err(why) => Finding::fail(
            Check::Haproxy,
            format!("cannot tell which HAProxy runs: {why}"),
            "install HAProxy, and let [haproxy] check_command run its binary (e.g. `/usr/sbin/haproxy -c -q -f \
             /etc/haproxy/haproxy.cfg`)",
        ),
    }];
    if let Some(loaded) = service::loaded_by_service()
        && let Some(warning) = service::check_command_mismatch(&haproxy.check_command, &loaded)
    {
        let (what, fix) = split_fix(&warning, "correct [haproxy] check_command");
        findings.push(Finding::warn(Check::Haproxy, what, fix));
    }
    findings
}

/// The worker's admin socket and the master socket, each asked what hapcert asks of it.
pub async fn runtime_api(config: &Config) -> Vec<Finding> {
    let haproxy = &config.haproxy;
    let mut findings = Vec::new();
    if let Some(admin) = &haproxy.runtime_api {
        findings.push(match socket(&admin.value).loaded_certs().await {
            Ok(list) => Finding::ok(
                Check::RuntimeApi,
                format!(
                    "{} answers `show ssl cert` ({} file(s) loaded)",
                    admin.value,
                    list.files.len()
                ),
            ),
            Err(err) => Finding::fail(
                Check::RuntimeApi,
                err.to_string(),
                format!(
                    "start HAProxy with `stats socket {} mode 600 level admin` in its global section, or correct \
                     [haproxy] runtime_api",
                    admin.value
                ),
            ),
        });
    }
    if let Some(path) = &haproxy.master_socket {
        findings.push(match master(&path.value).show_proc().await {
            Ok(proc) if proc.failed > 0 => Finding::warn(
                Check::RuntimeApi,
                format!("master socket {} answers; its last reload failed", path.value),
                format!("run `{}` and read HAProxy's log", haproxy.check_command),
            ),
            Ok(proc) => Finding::ok(
                Check::RuntimeApi,
                format!(
                    "master socket {} answers `show proc` ({} reload(s))",
                    path.value, proc.reloads
                ),
            ),
            Err(err) => Finding::fail(
                Check::RuntimeApi,
                err.to_string(),
                format!(
                    "run HAProxy in master-worker mode with `-S {}` (haproxy.service's ExecStart), or correct \
                     [haproxy] master_socket",
                    path.value
                ),
            ),
        });
    }
    if findings.is_empty() {
        findings.push(Finding::warn(
            Check::RuntimeApi,
            format!(
                "no runtime_api or master_socket: every deploy reloads HAProxy with `{}`",
                haproxy.reload_command
            ),
            "add `stats socket /run/haproxy/admin.sock mode 600 level admin` to haproxy.cfg's global section and \
             runtime_api = \"/run/haproxy/admin.sock\" to [haproxy], for hot updates without a reload",
        ));
    }
    findings
}

pub async fn verify(config: &Config) -> Vec<Finding> {
    let answers = verify_endpoints(&config.certificates).await;
    if answers.is_empty() {
        return vec![Finding::warn(
            Check::Verify,
            "no verify endpoint: a deploy cannot be proven on the wire",
            "set [haproxy] verify to the address HAProxy's TLS frontend binds",
        )];
    }
    answers
        .into_iter()
        .map(|(endpoint, answered, key)| match answered {
            Ok(()) => Finding::ok(Check::Verify, format!("{endpoint} answers TLS")),
            Err(silent) if silent.refused => Finding::fail(
                Check::Verify,
                format!("HAProxy is not listening on {endpoint}; a run orders nothing until it does"),
                format!("if it binds another address, set {key}; else start HAProxy"),
            ),
            Err(silent) => Finding::fail(
                Check::Verify,
                format!("{}; a run orders nothing until it does", silent.message(key)),
                VERIFY_FIX,
            ),
        })
        .collect()
}

/// The preflight of every certificate, as a run does before ordering.
pub async fn challenge(config: &Config) -> Vec<Finding> {
    let specs: Vec<_> = config.certificates.iter().collect();
    if specs.is_empty() {
        return vec![Finding::ok(Check::Challenge, "no certificate to check")];
    }
    let needs_http = specs.iter().any(|s| s.challenge == ChallengeKind::Http01);
    // In side-port mode hapcert answers the test token itself, so any thumbprint will do; in stateless mode HAProxy
    // answers with the account's, so the check needs the account, and never makes one.
    let thumbprint = match (needs_http, config.challenge.mode) {
        (true, ChallengeMode::Stateless) if config.fleet.is_some() => {
            return vec![Finding::skip(
                Check::Challenge,
                "not checked: in stateless mode the fleet's account answers; `hapcert preflight` checks the route",
            )];
        }
        (true, ChallengeMode::Stateless) => match existing_account(config).await {
            Ok(Some(acme)) => acme.thumbprint().to_owned(),
            Ok(None) => {
                return vec![Finding::warn(
                    Check::Challenge,
                    "stateless mode and no account yet: HAProxy has no thumbprint to answer with",
                    "`hapcert haproxy-config` makes the account and prints the lines haproxy.cfg needs",
                )];
            }
            Err(err) => {
                return vec![Finding::fail(
                    Check::Challenge,
                    format!("the account's thumbprint, which stateless mode answers with: {err:#}"),
                    "see the ca and account checks below",
                )];
            }
        },
        _ => random_token(),
    };
    let state = StateDir::at(&config.state.dir.value);
    match preflight_each(config, &state, &specs, &thumbprint).await {
        Ok(outcomes) => outcomes
            .into_iter()
            .map(|(spec, checked)| {
                let names = spec.domains.iter().map(|d| d.as_str()).collect::<Vec<_>>().join(", ");
                match checked {
                    Ok(()) => Finding::ok(
                        Check::Challenge,
                        format!(
                            "{}: {names} ({}) answered through the public path",
                            spec.name,
                            spec.challenge.name()
                        ),
                    ),
                    Err(err) => {
                        let (what, fix) = split_fix(
                            &format!("{err:#}"),
                            "route /.well-known/acme-challenge/ of every name to hapcert on port 80 \
                             (`hapcert haproxy-config` prints the lines)",
                        );
                        Finding::fail(Check::Challenge, format!("{}: {what}", spec.name), fix)
                    }
                }
            })
            .collect(),
        Err(err) if in_use(&err) => vec![Finding::warn(
            Check::Challenge,
            format!(
                "the side port {} is held (by the daemon, or a run); the route was not tried",
                config.challenge.listen
            ),
            "the daemon's runs check it before every order; or stop it and run `hapcert doctor` again",
        )],
        Err(err) => vec![Finding::fail(
            Check::Challenge,
            format!("the preflight could not start: {err:#}"),
            "correct [challenge] listen",
        )],
    }
}

/// The CA's directory, with what it offers: ARI, and the profiles the config asks for. Returns the directory's facts
/// and the time they were read, for the clock.
pub async fn ca(config: &Config) -> (Vec<Finding>, Option<(DirectoryFacts, OffsetDateTime)>) {
    let directory = &config.acme.directory;
    let unreachable = |err: anyhow::Error| {
        Finding::fail(
            Check::Ca,
            format!("the CA does not answer: {err:#}"),
            format!(
                "check the way to {directory} from this host (DNS, a firewall, a proxy), [acme] directory, and \
                 [acme] ca_bundle for a private CA"
            ),
        )
    };
    let acme = match Acme::without_account(&config.acme).await {
        Ok(acme) => acme,
        Err(err) => return (vec![unreachable(err)], None),
    };
    let facts = match acme.directory_facts().await {
        Ok(facts) => facts,
        Err(err) => return (vec![unreachable(err)], None),
    };
    let read_at = OffsetDateTime::now_utc();
    let profiles = match facts.profiles.as_slice() {
        [] => "no profiles".to_owned(),
        offered => format!("profiles {}", offered.join(", ")),
    };
    let ari = if facts.renewal_info {
        "renewal windows (ARI)"
    } else {
        "no ARI (renewal windows are hapcert's own)"
    };
    let mut findings = vec![Finding::ok(
        Check::Ca,
        format!("{directory} answers; {ari}; {profiles}"),
    )];
    let wanted: BTreeSet<&str> = config
        .acme
        .profile
        .iter()
        .chain(config.certificates.iter().filter_map(|c| c.profile.as_ref()))
        .map(String::as_str)
        .collect();
    for profile in wanted {
        if let Err(err) = acme.check_profile(profile) {
            findings.push(Finding::fail(
                Check::Ca,
                format!("{err:#}"),
                "set `profile` to one the CA offers, or remove it",
            ));
        }
    }
    (findings, Some((facts, read_at)))
}
