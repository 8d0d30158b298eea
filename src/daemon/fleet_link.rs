//! The daemon's link to its fleet: the session (lease and membership) for the daemon's life, the watch that feeds the
//! responder and tells which certificates changed, and the convergence that follows a change. Without `[fleet]` it
//! does nothing. A daemon that starts cut off from the store keeps serving and tries again at every pass.

use std::collections::HashSet;
use std::time::Duration;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use tokio::sync::mpsc::UnboundedReceiver;
use tokio::task::JoinHandle;

use crate::core::config::EventKind;
use crate::core::config::{Config, FileOwner};
use crate::core::state::monitor::{Event, Source};
use crate::edge::http01::responder::ChallengeTokens;
use crate::edge::store::StateDir;
use crate::fleet::FleetMode;
use crate::fleet::layout::Layout;
use crate::fleet::watch::{self, Changed, FleetView};
use crate::notify::Scope;

/// How often the acknowledgements are looked at for laggards (in memory: no request to etcd).
const LAGGARD_CHECK: Duration = Duration::from_secs(5);

#[derive(Default)]
pub struct FleetLink {
    pub mode: Option<FleetMode>,
    watcher: Option<(JoinHandle<()>, UnboundedReceiver<Changed>)>,
    /// What the watch sees; down (and empty) while the store cannot be reached.
    pub view: FleetView,
    /// (certificate, serial) whose laggards were already announced.
    announced: HashSet<(String, String)>,
}

impl FleetLink {
    /// Not joined yet; the watch will report into `view`.
    pub fn new(view: FleetView) -> FleetLink {
        FleetLink {
            view,
            ..Default::default()
        }
    }

    /// Joins the fleet `config` names, unless joined already.
    pub async fn connect(&mut self, config: &Config, tokens: Option<ChallengeTokens>) -> anyhow::Result<()> {
        if config.fleet.is_none() {
            self.close().await;
            return Ok(());
        }
        if matches!(self.mode, Some(FleetMode::Coordinated(_))) {
            return Ok(());
        }
        self.mode = FleetMode::open(config, true).await?;
        if let Some(FleetMode::Coordinated(session)) = &self.mode {
            self.watcher = Some(watch::spawn(session.clone(), tokens, self.view.clone()));
        }
        Ok(())
    }

    /// The next changes the watch reported, all that are queued; never, without a watch.
    pub async fn next_change(&mut self) -> Option<Vec<Changed>> {
        let Some((_, changes)) = &mut self.watcher else {
            return std::future::pending().await;
        };
        let first = changes.recv().await?;
        let mut all = vec![first];
        while let Ok(more) = changes.try_recv() {
            all.push(more);
        }
        Some(all)
    }

    /// Deploys what changed in the store, under the run lock.
    pub async fn converge(&self, config: &Config, owner: FileOwner, lock_timeout: Duration, changes: Vec<Changed>) {
        let Some(FleetMode::Coordinated(session)) = &self.mode else {
            return;
        };
        let names: Option<Vec<String>> = if changes.contains(&Changed::All) {
            None
        } else {
            let mut names: Vec<String> = changes
                .into_iter()
                .filter_map(|c| match c {
                    Changed::Certificate(name) => Some(name),
                    Changed::All => None,
                })
                .collect();
            names.dedup();
            Some(names)
        };
        if let Err(err) = crate::renew::converge::sync(config, owner, lock_timeout, session, names.as_deref()).await {
            tracing::error!("converging with the fleet failed: {err:#}; the next change or pass tries again");
        }
    }

    /// Whether the node works with its fleet through the store now.
    pub fn coordinated(&self) -> bool {
        matches!(self.mode, Some(FleetMode::Coordinated(_)))
    }

    /// Alerts (`fleet-lagging`, through `[[notify]]`) for each certificate this node issued that a live node has not
    /// acknowledged within `converge_timeout`; once per certificate and serial.
    pub async fn alert_laggards(&mut self, config: &Config) {
        let Some(FleetMode::Coordinated(session)) = &self.mode else {
            return;
        };
        let now = OffsetDateTime::now_utc();
        let (_, status) = self.view.status(session.store.layout());
        let mut events = Vec::new();
        for cert in &status.certificates {
            let overdue = OffsetDateTime::parse(&cert.issued_at, &Rfc3339)
                .is_ok_and(|at| at + session.config.converge_timeout < now);
            if cert.issued_by != session.store.node() || !overdue || cert.laggards.is_empty() {
                continue;
            }
            if !self.announced.insert((cert.name.clone(), cert.serial.clone())) {
                continue;
            }
            let message = format!(
                "{} of the fleet's live nodes ({}) do not serve serial {} of {} {} after this node issued it; see \
                 `hapcert fleet status` and those nodes' logs (`journalctl -u hapcert-daemon`)",
                cert.laggards.len(),
                cert.laggards.join(", "),
                cert.serial,
                cert.name,
                humantime::format_duration(session.config.converge_timeout)
            );
            tracing::error!(certificate = %cert.name, "{message}");
            events.push(Event {
                kind: EventKind::FleetLagging,
                certificate: Some(cert.name.clone()),
                source: Source::Managed,
                names: Vec::new(),
                served_serial: None,
                expected_serial: Some(cert.serial.clone()),
                days_left: None,
                message,
            });
        }
        if !events.is_empty() {
            let store = StateDir::at(&config.state.dir.value);
            let scope = Scope::Run {
                certificates: Vec::new(),
            };
            crate::notify::notify(config, &store, events, scope, now).await;
        }
    }

    /// Leaves the fleet: the watch stops, and the lease goes with this node's membership and locks.
    pub async fn close(&mut self) {
        if let Some((watcher, _)) = self.watcher.take() {
            watcher.abort();
        }
        if let Some(FleetMode::Coordinated(session)) = self.mode.take() {
            session.close().await;
            tracing::info!("left the fleet");
        }
    }
}

/// The fleet's metrics from what the watch sees, when the config has `[fleet]`.
pub fn metrics(config: &Config, view: &FleetView) -> Option<String> {
    let fleet = config.fleet.as_ref()?;
    let (up, status) = view.status(&Layout::new(&fleet.prefix));
    let serving: Vec<(String, usize)> = status
        .certificates
        .iter()
        .map(|c| (c.name.clone(), c.serving.len()))
        .collect();
    Some(crate::metrics::render_fleet(up, status.alive(), &serving))
}

/// Completes after [`LAGGARD_CHECK`] when `coordinated`; never otherwise.
pub async fn laggard_tick(coordinated: bool) {
    match coordinated {
        true => tokio::time::sleep(LAGGARD_CHECK).await,
        false => std::future::pending().await,
    }
}
