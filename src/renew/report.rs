//! What a run is asked to do, what the daemon lends it, and what it reports: per certificate, its decision and what
//! became of it.

use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::watch;

use super::deploy::{DeployFailure, FailureKind};
use super::hooks::{HookFailure, Stage};
use crate::core::decision::{Decision, Local};
use crate::core::pem::CertFacts;
use crate::core::state::State;
use crate::core::state::record::{Attempt, all_ok};
use crate::edge::acme::{RateLimited, ValidationFailed};
use crate::edge::haproxy::Applied;
use crate::edge::http01::responder::ChallengeTokens;

#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Certificates to consider; empty means all.
    pub names: Vec<String>,
    pub force: bool,
    /// With `force`: also order when the CA asked us to wait (its Retry-After, or the failed-authorization budget).
    pub ignore_retry_after: bool,
    pub dry_run: bool,
    pub lock_timeout: Duration,
    /// A progress bar while several certificates are ordered, on a terminal: for a renewal by hand only.
    pub progress: bool,
}

/// What the daemon lends a run. A one-shot run gets the default: it opens the side port for its orders itself, and
/// nothing abandons it.
#[derive(Clone, Default)]
pub struct RunContext {
    /// The daemon's standing HTTP-01 responder: the run publishes its tokens there instead of opening the side port.
    pub responder: Option<ChallengeTokens>,
    /// Turns true when the run must give up its orders (the daemon got SIGTERM). Orders in flight are dropped, which
    /// the CA lets expire; nothing has been written by then. A deploy that has started is always finished.
    pub abandon: Option<watch::Receiver<bool>>,
    /// With `[fleet]`: how this run works with the other nodes.
    pub fleet: Option<crate::fleet::FleetMode>,
}

impl RunContext {
    pub(super) fn abandoned(&self) -> bool {
        self.abandon.as_ref().is_some_and(|a| *a.borrow())
    }

    /// Completes when the run must give up its orders; never, for a one-shot run.
    pub(super) async fn abandon_requested(&self) {
        let Some(mut abandon) = self.abandon.clone() else {
            return std::future::pending().await;
        };
        // A daemon that dropped the sender has no way left to ask: wait for good.
        if abandon.wait_for(|stop| *stop).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

#[derive(Debug)]
pub struct Report {
    pub items: Vec<Item>,
    /// In a fleet: what this run deployed that another node ordered.
    pub adopted: Vec<super::converge::Adopted>,
    /// Post and deploy hooks that failed; none of them undid a deploy. (A failed pre hook fails its certificates
    /// instead: they are not ordered.)
    pub hook_failures: Vec<HookFailure>,
    /// Deploys a crash interrupted that this run could not finish, or had to undo: (certificate, what happened).
    pub interrupted: Vec<(String, String)>,
    /// The state as the run saved it, for what follows a run in the same process (the metrics, the daemon's next
    /// wake): no second read of the disk.
    pub state: State,
    /// What each configured certificate's file holds after the run, in config order: a renewed one's new facts.
    pub on_disk: Vec<Local>,
}

#[derive(Debug)]
pub struct Item {
    pub name: String,
    pub decision: Decision,
    pub result: ItemResult,
    /// The certificate on disk when the run started: the one HAProxy still serves when this item was not renewed.
    pub previous: Option<CertFacts>,
}

#[derive(Debug)]
pub enum ItemResult {
    NotDue,
    /// Deployed and seen on the wire, by the given way.
    Renewed(CertFacts, Applied),
    DryRun(CertFacts),
    Failed(Failure),
    /// Due, but held back by the retry schedule or the CA's limits until `until`, or abandoned by a daemon that stops.
    Deferred {
        until: OffsetDateTime,
        why: String,
    },
    /// Due, but another node of the fleet holds its lock and is renewing it: this node deploys what it publishes.
    /// Not a failure, and nothing held back; the daemon looks again at `until`, in case the holder died.
    Elsewhere {
        holder: String,
        until: OffsetDateTime,
    },
}

/// What went wrong, with what the retry schedule and the notifications need to know about it.
#[derive(Debug)]
pub struct Failure {
    pub kind: FailureKind,
    pub message: String,
    pub rate_limited_until: Option<OffsetDateTime>,
    /// Names whose validation failed: they count against the CA's failed-authorization limit.
    pub failed_names: Vec<String>,
    /// The new certificate's serial, when one was issued.
    pub expected_serial: Option<String>,
    /// What an endpoint served instead of the new certificate, when a handshake showed it.
    pub served_serial: Option<String>,
}

impl Failure {
    pub(super) fn of(err: &anyhow::Error) -> Failure {
        let rate_limited = err.chain().find_map(|e| e.downcast_ref::<RateLimited>());
        let validation = err.chain().find_map(|e| e.downcast_ref::<ValidationFailed>());
        Failure {
            kind: FailureKind::NotDeployed,
            message: format!("{err:#}"),
            rate_limited_until: rate_limited.and_then(|r| r.until),
            failed_names: validation.map(|v| v.names.clone()).unwrap_or_default(),
            expected_serial: None,
            served_serial: None,
        }
    }

    pub(super) fn not_deployed(message: String) -> Failure {
        Failure {
            kind: FailureKind::NotDeployed,
            message,
            rate_limited_until: None,
            failed_names: Vec::new(),
            expected_serial: None,
            served_serial: None,
        }
    }

    pub(super) fn of_deploy(failure: DeployFailure, expected_serial: String) -> Failure {
        Failure {
            kind: failure.kind,
            message: failure.message,
            rate_limited_until: None,
            failed_names: Vec::new(),
            expected_serial: Some(expected_serial),
            served_serial: failure.served_serial,
        }
    }
}

impl Report {
    /// A certificate that failed, or that is due and held back, fails the run: either way it is not being renewed. So
    /// does a failed hook: what the operator asked to happen around the renewal did not; and a deploy a crash
    /// interrupted that could not be finished.
    pub fn any_failed(&self) -> bool {
        !all_ok(self.attempts().iter().map(|(_, a)| a))
            || !self.hook_failures.is_empty()
            || !self.interrupted.is_empty()
    }

    /// The failed deploy hook of the certificate `name`, if it failed.
    pub fn deploy_hook_failure(&self, name: &str) -> Option<&HookFailure> {
        self.hook_failures
            .iter()
            .find(|f| f.stage == Stage::Deploy && f.certificate.as_deref() == Some(name))
    }

    /// What the run did with each certificate, as the state records it.
    pub fn attempts(&self) -> Vec<(&str, Attempt<'_>)> {
        self.items.iter().map(|i| (i.name.as_str(), i.attempt())).collect()
    }
}

impl Item {
    pub(super) fn attempt(&self) -> Attempt<'_> {
        match &self.result {
            ItemResult::NotDue => Attempt::NotDue,
            ItemResult::Deferred { .. } => Attempt::HeldBack,
            ItemResult::Elsewhere { .. } => Attempt::NotDue,
            ItemResult::Renewed(facts, _) => Attempt::Renewed {
                serial: &facts.serial,
                reason: &self.decision.reason,
            },
            ItemResult::DryRun(facts) => Attempt::DryRun { serial: &facts.serial },
            ItemResult::Failed(failure) => Attempt::Failed {
                message: &failure.message,
                rate_limited_until: failure.rate_limited_until,
                failed_names: &failure.failed_names,
            },
        }
    }
}
