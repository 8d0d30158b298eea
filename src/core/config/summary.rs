//! The config as `hapcert check-config` shows it once it passed: one screen an operator can check by eye.

use super::{Config, FileOwner};
use crate::core::time::format_duration;

/// What `hapcert check-config` prints of a config that passed: where everything is, and each certificate's rule.
/// `account` is what the state dir says of the ACME account.
pub fn summary(config: &Config, owner: FileOwner, account: &str) -> String {
    let id = |v: Option<u32>| v.map_or("unchanged".to_owned(), |n| n.to_string());
    let mut out = format!(
        "{path}: OK\n  CA:          {dir}\n  account:     {account}\n  contact:     {contact}\n  challenge:   HTTP-01 on {listen}{default}\n  cert dir:    {cert_dir} (mode {mode:04o}, uid {uid}, gid {gid})\n  check:       {check}\n  reload:      {reload}\n  state:       {state}\n  control:     {control} (the daemon's socket for renew, revoke and status by hand)\n",
        path = config.path.display(),
        dir = config.acme.directory,
        contact = if config.acme.contact.is_empty() {
            "-".into()
        } else {
            config.acme.contact.join(", ")
        },
        listen = config.challenge.listen,
        default = match config.challenge.kind {
            super::ChallengeKind::Dns01 => " (the default is DNS-01)",
            super::ChallengeKind::Http01 => "",
        },
        cert_dir = config.haproxy.cert_dir.value.display(),
        mode = config.haproxy.mode,
        uid = id(owner.uid),
        gid = id(owner.gid),
        check = config.haproxy.check_command,
        reload = config.haproxy.reload_command,
        state = config.state.dir.value.display(),
        control = config.daemon.control_socket().display(),
    );
    out.push_str(&format!(
        "  monitor:     `hapcert check` probes {} (from {}){}\n",
        config.check.endpoints.join(", "),
        config.check.endpoints_key,
        match config.check.route {
            true => "; each challenge route is tried once a day ([check] route)",
            false => "",
        }
    ));
    if let Some(fleet) = &config.fleet {
        let endpoints: Vec<&str> = fleet.etcd.iter().map(|e| e.url.as_str()).collect();
        out.push_str(&format!(
            "  fleet:       node {node} under {prefix} on etcd {endpoints}\n               key {key}{id}, lease {ttl}{auth}{advertise}\n",
            node = fleet.node.value,
            prefix = fleet.prefix,
            endpoints = endpoints.join(", "),
            key = fleet.key_file.value.display(),
            id = fleet.key.as_ref().map(|k| format!(" (id {})", k.id())).unwrap_or_default(),
            ttl = format_duration(fleet.lease_ttl),
            auth = fleet.auth.as_ref().map(|a| format!(", user {}", a.username)).unwrap_or_default(),
            advertise = fleet.advertise.map(|a| format!(", advertises {a}")).unwrap_or_default(),
        ));
    }
    for provider in &config.dns_providers {
        let how = match &provider.kind {
            super::DnsProviderKind::Rfc2136(rfc) => format!(
                "RFC 2136 to {} with key {} ({})",
                rfc.server.as_deref().unwrap_or("the zone's primary (SOA)"),
                rfc.key_name,
                rfc.algorithm.name()
            ),
            super::DnsProviderKind::Exec { command, .. } => format!("exec {command}"),
        };
        let checked = match provider.nameservers.is_empty() {
            true => "every NS of the zone".to_owned(),
            false => provider.nameservers.join(", "),
        };
        out.push_str(&format!(
            "  dns-01:      {} via {how}; checked on {checked} within {}\n",
            provider.name,
            format_duration(provider.propagation_timeout)
        ));
    }
    out.push_str(&format!("  certificates ({}):\n", config.certificates.len()));
    for cert in &config.certificates {
        let names: Vec<&str> = cert.domains.iter().map(|d| d.as_str()).collect();
        let rule = cert.renew_before.map_or("1/3 of lifetime left".to_owned(), |d| {
            format!("{} before expiry", format_duration(d))
        });
        let challenge = match &cert.dns_provider {
            Some(provider) => format!("dns-01 via {provider}"),
            None => cert.challenge.name().to_owned(),
        };
        let chain = cert
            .preferred_chain
            .as_deref()
            .map(|cn| format!(", preferred chain to \"{cn}\""))
            .unwrap_or_default();
        out.push_str(&format!(
            "    {:<16} {:<11} {} -> {} ({challenge}, renew at {rule}{chain})\n",
            cert.name,
            cert.key_type.name(),
            names.join(", "),
            cert.file.value.display()
        ));
    }
    let inventory = match (
        config.check.unmanaged,
        config.haproxy.runtime_api.is_some() || config.haproxy.master_socket.is_some(),
    ) {
        (super::UnmanagedPolicy::Ignore, _) => "not checked ([check] unmanaged = \"ignore\")".to_owned(),
        (_, false) => "not checked (no [haproxy] runtime_api or master_socket to ask)".to_owned(),
        (policy, true) => format!(
            "every certificate, CA file and CRL HAProxy loaded, unmanaged = \"{}\"{}",
            policy.name(),
            match config.check.ignore_paths.len() {
                0 => String::new(),
                n => format!(", {n} ignore_paths"),
            }
        ),
    };
    out.push_str(&format!("  inventory:   {inventory}\n"));
    if !config.watch.is_empty() {
        out.push_str(&format!("  watched ({}):\n", config.watch.len()));
    }
    for watch in &config.watch {
        let starttls = watch
            .starttls
            .map(|p| format!(", STARTTLS {}", p.name()))
            .unwrap_or_default();
        let roots = watch
            .ca_bundle
            .as_ref()
            .map(|b| format!(", roots {}", b.value.display()))
            .unwrap_or_default();
        out.push_str(&format!(
            "    {:<16} {} (SNI {}{starttls}{roots})\n",
            watch.name, watch.endpoint, watch.sni
        ));
    }
    out
}
