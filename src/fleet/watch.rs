//! The daemon's watch on the fleet's prefix. It lists, then watches from the revision after the list; when the watch
//! ends (a member went away, or the revision was compacted while this node was cut off) it lists and watches again, so
//! nothing that happened meanwhile is missed. It feeds two things:
//!
//! - the standing HTTP-01 responder, with the tokens of every pending order in the fleet;
//! - the daemon's loop, with the certificates that changed ([`Changed`]), which it converges. Every
//!   [`RECONCILE_EVERY`] and after every new listing it asks for all of them, in case an event was lost.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::layout::Entry;
use super::session::Session;
use crate::edge::etcd::{EtcdError, KeyValue, WatchEvent, WatchEventKind};
use crate::edge::http01::responder::{ChallengeTokens, TokenGuard};

/// How often every certificate is compared with the store, whatever the watch said.
pub const RECONCILE_EVERY: Duration = Duration::from_secs(300);
/// Between two attempts to list and watch, while etcd cannot be reached.
const RETRY: Duration = Duration::from_secs(1);

/// The fleet as this node's watch last saw it: every key under the prefix, and whether the watch is up. Kept in
/// memory, so that `/metrics` and the laggard alert cost etcd no request.
#[derive(Clone, Default)]
pub struct FleetView {
    inner: Arc<Mutex<View>>,
}

#[derive(Default)]
struct View {
    keys: BTreeMap<Vec<u8>, KeyValue>,
    up: bool,
}

impl FleetView {
    /// Whether the watch is up, and the fleet's status as it saw it last.
    pub fn status(&self, layout: &super::layout::Layout) -> (bool, super::status::FleetStatus) {
        let view = self.inner.lock().expect("fleet view lock");
        let kvs: Vec<KeyValue> = view.keys.values().cloned().collect();
        (view.up, super::status::FleetStatus::from_keys(layout, &kvs))
    }

    fn relisted(&self, kvs: &[KeyValue]) {
        let mut view = self.inner.lock().expect("fleet view lock");
        view.keys = kvs.iter().map(|kv| (kv.key.clone(), kv.clone())).collect();
        view.up = true;
    }

    fn changed(&self, event: &WatchEvent) {
        let mut view = self.inner.lock().expect("fleet view lock");
        match event.kind {
            WatchEventKind::Put => view.keys.insert(event.kv.key.clone(), event.kv.clone()),
            WatchEventKind::Delete => view.keys.remove(&event.kv.key),
        };
    }

    fn down(&self) {
        self.inner.lock().expect("fleet view lock").up = false;
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Changed {
    Certificate(String),
    /// Compare every certificate.
    All,
}

/// Starts watching. Tokens go into `tokens` (none in stateless mode), what it sees into `view`, changes into the
/// returned receiver.
pub fn spawn(
    session: Arc<Session>,
    tokens: Option<ChallengeTokens>,
    view: FleetView,
) -> (JoinHandle<()>, mpsc::UnboundedReceiver<Changed>) {
    let (sender, receiver) = mpsc::unbounded_channel();
    let watcher = Watcher {
        session,
        tokens,
        view,
        answered: HashMap::new(),
        changes: sender,
        watching: false,
    };
    (tokio::spawn(watcher.run()), receiver)
}

struct Watcher {
    session: Arc<Session>,
    tokens: Option<ChallengeTokens>,
    view: FleetView,
    /// The fleet's tokens this node answers, withdrawn when dropped.
    answered: HashMap<String, TokenGuard>,
    changes: mpsc::UnboundedSender<Changed>,
    /// A watch was established since the last failure.
    watching: bool,
}

impl Watcher {
    async fn run(mut self) {
        let mut reconcile = tokio::time::interval(RECONCILE_EVERY);
        reconcile.tick().await;
        let mut failures = 0u32;
        loop {
            match self.list_and_watch(&mut reconcile).await {
                Err(EtcdError::Compacted { compact_revision, .. }) => {
                    tracing::info!(
                        compact_revision,
                        "the fleet watch fell behind a compaction; listing the store again"
                    );
                    failures = 0;
                }
                // The first failure is tried again at once, on the next member: a token published meanwhile must
                // reach the responder within moments.
                Err(err) => {
                    self.view.down();
                    if std::mem::take(&mut self.watching) {
                        failures = 0;
                    }
                    if failures == 1 {
                        tracing::warn!("the fleet watch stopped: {err}; trying again");
                    }
                    if failures > 0 {
                        tokio::time::sleep(RETRY.min(Duration::from_millis(200) * failures)).await;
                    }
                    failures += 1;
                }
                Ok(()) => return,
            }
        }
    }

    /// One listing and the watch after it, until the watch ends. The channel closing (the daemon stopping) ends it.
    async fn list_and_watch(&mut self, reconcile: &mut tokio::time::Interval) -> Result<(), EtcdError> {
        let layout = self.session.store.layout().clone();
        let prefix = layout.prefix();
        let client = self.session.store.client().clone();
        let listed = client.get_prefix(prefix.as_bytes(), None).await?;
        self.view.relisted(&listed.kvs);
        let mut tokens = HashMap::new();
        for kv in &listed.kvs {
            if let Entry::Token(token) = layout.classify(&String::from_utf8_lossy(&kv.key)) {
                tokens.insert(token.to_owned(), String::from_utf8_lossy(&kv.value).into_owned());
            }
        }
        self.answered.retain(|token, _| tokens.contains_key(token));
        for (token, answer) in tokens {
            self.answer(&token, &answer);
        }
        if self.changes.send(Changed::All).is_err() {
            return Ok(());
        }
        let mut watch = client.watch_prefix(prefix.as_bytes(), listed.revision + 1).await?;
        self.watching = true;
        loop {
            let event = tokio::select! {
                event = watch.next() => event?,
                _ = reconcile.tick() => {
                    if self.changes.send(Changed::All).is_err() {
                        return Ok(());
                    }
                    continue;
                }
            };
            self.view.changed(&event);
            let key = String::from_utf8_lossy(&event.kv.key).into_owned();
            match (layout.classify(&key), event.kind) {
                (Entry::Token(token), WatchEventKind::Put) => self.answer(token, &value_text(&event.kv)),
                (Entry::Token(token), WatchEventKind::Delete) => {
                    self.answered.remove(token);
                }
                (Entry::Cert(name), WatchEventKind::Put)
                    if self.changes.send(Changed::Certificate(name.to_owned())).is_err() =>
                {
                    return Ok(());
                }
                _ => {}
            }
        }
    }

    fn answer(&mut self, token: &str, key_authorization: &str) {
        let Some(tokens) = &self.tokens else {
            return;
        };
        // Replacing a guard would drop the old one after the insert, withdrawing the token just published.
        self.answered.remove(token);
        match tokens.publish(token, key_authorization) {
            Ok(guard) => {
                self.answered.insert(token.to_owned(), guard);
            }
            Err(err) => tracing::warn!("a challenge token in the fleet's store is ignored: {err:#}"),
        }
    }
}

fn value_text(kv: &KeyValue) -> String {
    String::from_utf8_lossy(&kv.value).into_owned()
}
