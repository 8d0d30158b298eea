//! The daemon's link to its fleet: the session (lease and membership) for the daemon's life, the watch that feeds the
//! responder and tells which certificates changed, and the convergence that follows a change. Without `[fleet]` it
//! does nothing. A daemon that starts cut off from the store keeps serving and tries again at every pass.

use std::time::Duration;

use tokio::sync::mpsc::UnboundedReceiver;
use tokio::task::JoinHandle;

use crate::core::config::{Config, FileOwner};
use crate::edge::http01::responder::ChallengeTokens;
use crate::fleet::FleetMode;
use crate::fleet::watch::{self, Changed};

#[derive(Default)]
pub struct FleetLink {
    pub mode: Option<FleetMode>,
    watcher: Option<(JoinHandle<()>, UnboundedReceiver<Changed>)>,
}

impl FleetLink {
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
            self.watcher = Some(watch::spawn(session.clone(), tokens));
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
        if let Err(err) = crate::fleet::converge::sync(config, owner, lock_timeout, session, names.as_deref()).await {
            tracing::error!("converging with the fleet failed: {err:#}; the next change or pass tries again");
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
