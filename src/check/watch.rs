//! The I/O of what `check` watches beyond hapcert's own certificates: HAProxy's inventory, read over its Runtime API,
//! and a handshake with each `[[watch]]` endpoint. The judgement is `judge::watched`'s.

use std::sync::Arc;

use time::OffsetDateTime;

use super::chain::Roots;
use super::judge::{InventoryReport, WatchObserved};
use crate::core::config::{Config, UnmanagedPolicy, WatchSpec};
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
    if spec.starttls.is_some() {
        return Err("STARTTLS is not spoken yet".to_owned());
    }
    let chain = probe::served_chain(&spec.endpoint, &spec.sni, ClientKind::Any)
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
    let _ = (managed_leaves, now);
    InventoryReport::not_read(
        "not-configured",
        "not read: set [haproxy] runtime_api (or master_socket) to have every certificate HAProxy loaded checked",
    )
}
