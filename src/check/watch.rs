//! The I/O of what `check` watches beyond hapcert's own certificates: HAProxy's inventory, read over its Runtime API,
//! and a handshake with each `[[watch]]` endpoint. The judgement is `judge::watched`'s.

use std::path::Path;
use std::sync::Arc;

use time::OffsetDateTime;

use super::chain::Roots;
use super::judge::{self, InventoryReport, Loaded, Validity, WatchObserved};
use crate::core::config::{Config, UnmanagedPolicy, WatchSpec};
use crate::core::state::monitor::Source;
use crate::edge::haproxy::Haproxy;
use crate::edge::haproxy::inventory::Inventory;
use crate::edge::probe::{self, ClientKind};
use crate::fanout;

/// Handshakes with the `[[watch]]` endpoints at once, at most this many.
const WATCHES_AT_ONCE: usize = 16;

/// A handshake with each `[[watch]]` endpoint, in the order written. One with its own `ca_bundle` is verified against
/// that alone; the others against the check's roots.
pub async fn observe(config: &Config, roots: Arc<Roots>, now: OffsetDateTime) -> Vec<WatchObserved> {
    let watches: Vec<WatchSpec> = config.watch.clone();
    let observed = fanout::bounded(WATCHES_AT_ONCE, "watch", watches, |spec| {
        let roots = roots.clone();
        async move {
            let outcome = handshake(&spec, &roots, now).await;
            WatchObserved {
                name: spec.name,
                endpoint: spec.endpoint,
                sni: spec.sni,
                starttls: spec.starttls,
                warn_days: spec.warn_days,
                crit_days: spec.crit_days,
                outcome,
            }
        }
    })
    .await;
    observed.into_iter().flatten().collect()
}

async fn handshake(spec: &WatchSpec, roots: &Roots, now: OffsetDateTime) -> Result<super::judge::Served, String> {
    let own;
    let roots = match &spec.ca_bundle {
        Some(bundle) => {
            let path = bundle.value.clone();
            let key = bundle.key.clone();
            own = tokio::task::spawn_blocking(move || Roots::bundle(&path, &key))
                .await
                .unwrap_or_else(|err| Roots::Unavailable(format!("loading {} failed: {err}", bundle.key)));
            &own
        }
        None => roots,
    };
    let chain = probe::served_chain_over(&spec.endpoint, &spec.sni, ClientKind::Any, spec.starttls)
        .await
        .map_err(|err| format!("{err:#}"))?;
    super::served(&spec.endpoint, &spec.sni, &chain, roots, now)
}

/// HAProxy's inventory, judged: every certificate, CA file and CRL it has loaded that hapcert does not manage.
/// `managed_leaves`: the SHA-1 of each managed certificate on disk, which names a crt-store alias HAProxy 3.0 does
/// not give the file of.
pub async fn inventory(config: &Config, managed_leaves: &[String], now: OffsetDateTime) -> InventoryReport {
    if config.check.unmanaged == UnmanagedPolicy::Ignore {
        return InventoryReport::not_read("ignored", "not read: [check] unmanaged = \"ignore\"");
    }
    let managed: Vec<&Path> = config.certificates.iter().map(|c| c.file.value.as_path()).collect();
    match Haproxy::new(&config.haproxy).inventory(&managed).await {
        None => InventoryReport::not_read(
            "not-configured",
            "not read: set [haproxy] runtime_api (or master_socket) to have every certificate HAProxy loaded checked",
        ),
        Some(Err(err)) => InventoryReport::failed(&format!("{err:#}")),
        Some(Ok(inventory)) => judge::judge_inventory(&config.check, &loaded(inventory, managed_leaves), now),
    }
}

/// The inventory as the judge reads it: one entry per certificate (a 3.0 alias of a managed leaf left out), CA file
/// and CRL file (a file may hold one CRL per CA).
fn loaded(inventory: Inventory, managed_leaves: &[String]) -> Vec<Loaded> {
    let mut out = Vec::new();
    for cert in inventory.certificates {
        if cert.sha1.as_ref().is_some_and(|sha1| managed_leaves.contains(sha1)) {
            continue;
        }
        out.push(Loaded {
            source: Source::HaproxyCert,
            name: cert.name,
            validity: vec![Validity {
                subject: cert.subject,
                not_before: cert.not_before,
                not_after: cert.not_after,
            }],
            unreadable: None,
        });
    }
    for file in inventory.ca_files {
        let validity = file
            .certificates
            .into_iter()
            .map(|ca| Validity {
                subject: ca.subject,
                not_before: ca.not_before,
                not_after: ca.not_after,
            })
            .collect();
        out.push(Loaded {
            source: Source::HaproxyCaFile,
            name: file.name,
            validity,
            unreadable: None,
        });
    }
    let mut crls: Vec<Loaded> = Vec::new();
    for crl in inventory.crl_files {
        let validity = Validity {
            subject: crl.issuer,
            not_before: crl.last_update,
            not_after: crl.next_update,
        };
        match crls.iter_mut().find(|file| file.name == crl.name) {
            Some(file) => file.validity.push(validity),
            None => crls.push(Loaded {
                source: Source::HaproxyCrlFile,
                name: crl.name,
                validity: vec![validity],
                unreadable: None,
            }),
        }
    }
    out.extend(crls);
    out.extend(inventory.unreadable.into_iter().map(|(name, why)| Loaded {
        source: Source::HaproxyCert,
        name,
        validity: Vec::new(),
        unreadable: Some(why),
    }));
    out
}
