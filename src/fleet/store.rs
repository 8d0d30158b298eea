//! The fleet's shared store: what hapcert reads and writes under `[fleet] prefix`, in the terms of the fleet (a shared
//! certificate, a lock, the order journal, an acknowledgement) rather than of etcd. Every private key is sealed here
//! before it leaves the host, and opened here when it comes back; a value sealed under another fleet key is refused
//! with the key that failed, never deployed.
//!
//! Fencing: a lock is a key created under the holder's lease; its `create_revision` is the holder's fencing token.
//! Every write a holder makes on the lock's behalf (the journal, the new certificate) is a transaction that compares
//! that revision first, so a holder whose lease expired (paused, partitioned) cannot publish: [`Fenced`].

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use time::OffsetDateTime;

use serde::de::DeserializeOwned;

use super::layout::{Ack, Entry, Journal, Layout, LockHolder, Member, SharedCert};
use crate::core::config::FleetConfig;
use crate::core::seal::{self, FleetKey};
use crate::core::time::format_rfc3339;
use crate::edge::etcd::{Compare, EtcdClient, EtcdError, EtcdOptions, EtcdTls, KeyValue, TxnOp};

/// How long one etcd request may take, over every endpoint it tries.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Clone)]
pub struct FleetStore {
    client: EtcdClient,
    layout: Layout,
    key: Arc<FleetKey>,
    node: String,
}

/// A lock this node holds: the key and the revision that created it (the fencing token).
#[derive(Debug, Clone)]
pub struct Held {
    pub key: String,
    pub revision: i64,
}

/// The outcome of trying to take a lock.
pub enum Claim {
    Held(Held),
    /// Another holder has it.
    Busy {
        holder: String,
    },
}

/// A write refused because the lock it was made under is no longer held by this node.
#[derive(Debug, thiserror::Error)]
#[error(
    "fenced out: this node no longer holds {lock} (its lease expired while it was paused or cut off, and another node \
     may hold it now); its write was refused and its order is abandoned"
)]
pub struct Fenced {
    pub lock: String,
}

impl FleetStore {
    /// A client for the configured cluster. Sends nothing: the first request finds out whether etcd is there.
    pub fn connect(fleet: &FleetConfig) -> anyhow::Result<FleetStore> {
        let key = fleet
            .key
            .clone()
            .context("the fleet key was not loaded (fleet.key_file)")?;
        let user = match &fleet.auth {
            None => None,
            Some(auth) => {
                let text = std::fs::read_to_string(&auth.password_file.value)
                    .with_context(|| format!("cannot read {}", auth.password_file.value.display()))?;
                let password = text.lines().next().unwrap_or_default().to_owned();
                Some((auth.username.clone(), password))
            }
        };
        let options = EtcdOptions {
            endpoints: fleet.etcd.iter().map(|e| e.url.clone()).collect(),
            timeout: REQUEST_TIMEOUT,
            tls: EtcdTls {
                ca_bundle: fleet.ca_bundle.as_ref().map(|p| p.value.clone()),
                client_cert: fleet.client_identity.as_ref().map(|c| c.cert.value.clone()),
                client_key: fleet.client_identity.as_ref().map(|c| c.key.value.clone()),
            },
            user,
        };
        let client = EtcdClient::new(options).context("cannot set up the etcd client ([fleet])")?;
        Ok(FleetStore {
            client,
            layout: Layout::new(&fleet.prefix),
            key,
            node: fleet.node.value.clone(),
        })
    }

    pub fn node(&self) -> &str {
        &self.node
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    pub fn client(&self) -> &EtcdClient {
        &self.client
    }

    fn seal(&self, etcd_key: &str, secret: &[u8]) -> String {
        seal::seal(&self.key, etcd_key, secret)
    }

    fn open(&self, etcd_key: &str, envelope: &str) -> anyhow::Result<Vec<u8>> {
        seal::open(&self.key, etcd_key, envelope).map_err(|err| {
            anyhow::anyhow!(
                "{err} (this node's fleet key has id {}; every node must share the same key file)",
                self.key.id()
            )
        })
    }

    // --- certificates

    /// Every shared certificate, by name, with the store's revision when read.
    pub async fn shared_certs(&self) -> Result<(Vec<(String, SharedCert)>, i64), EtcdError> {
        let range = self.client.get_prefix(self.layout.certs().as_bytes(), None).await?;
        Ok((self.records(&range.kvs, |e: Entry<'_>| e.certificate()), range.revision))
    }

    /// The records among `kvs` that `pick` names (by the name it gives), as `T`s. A value that is not a `T` is logged
    /// and left out.
    fn records<T: DeserializeOwned>(
        &self,
        kvs: &[KeyValue],
        pick: impl for<'k> Fn(Entry<'k>) -> Option<&'k str>,
    ) -> Vec<(String, T)> {
        let mut records = Vec::new();
        for kv in kvs {
            let key = String::from_utf8_lossy(&kv.key);
            let Some(name) = pick(self.layout.classify(&key)) else {
                continue;
            };
            match serde_json::from_slice::<T>(&kv.value) {
                Ok(record) => records.push((name.to_owned(), record)),
                Err(err) => tracing::warn!(key = %key, "not what hapcert writes there ({err}); ignored"),
            }
        }
        records
    }

    pub async fn shared_cert(&self, name: &str) -> anyhow::Result<Option<SharedCert>> {
        let key = self.layout.cert(name);
        match self.client.get(key.as_bytes()).await? {
            None => Ok(None),
            Some(kv) => Ok(Some(
                serde_json::from_slice(&kv.value).with_context(|| format!("{key} is not a shared certificate"))?,
            )),
        }
    }

    /// The PEM of a shared certificate, opened.
    pub fn open_pem(&self, name: &str, cert: &SharedCert) -> anyhow::Result<Vec<u8>> {
        self.open(&self.layout.cert(name), &cert.pem)
    }

    /// Publishes a new certificate under `lock`, and clears its order journal, in one fenced step.
    pub async fn publish(
        &self,
        lock: &Held,
        name: &str,
        pem: &str,
        facts: &crate::core::pem::CertFacts,
        now: OffsetDateTime,
    ) -> anyhow::Result<()> {
        let key = self.layout.cert(name);
        let ops = [
            put(&key, &self.shared_cert_value(name, pem, facts, now)?),
            TxnOp::Delete {
                key: self.layout.order(name).into_bytes(),
            },
        ];
        self.fenced(lock, &ops).await
    }

    /// Shares a certificate this node already serves, where the fleet has none (`fleet init`); whether it was stored.
    pub async fn seed(
        &self,
        name: &str,
        pem: &str,
        facts: &crate::core::pem::CertFacts,
        now: OffsetDateTime,
    ) -> anyhow::Result<bool> {
        let key = self.layout.cert(name);
        let value = self.shared_cert_value(name, pem, facts, now)?;
        let absent = [Compare::CreateRevision {
            key: key.clone().into_bytes(),
            revision: 0,
        }];
        Ok(self.client.txn(&absent, &[put(&key, &value)], &[]).await?.succeeded)
    }

    fn shared_cert_value(
        &self,
        name: &str,
        pem: &str,
        facts: &crate::core::pem::CertFacts,
        now: OffsetDateTime,
    ) -> serde_json::Result<Vec<u8>> {
        let key = self.layout.cert(name);
        serde_json::to_vec(&SharedCert {
            serial: facts.serial.clone(),
            not_after: format_rfc3339(facts.not_after),
            names: facts.names.iter().cloned().collect(),
            ari_id: facts.ari_id.clone(),
            issued_by: self.node.clone(),
            issued_at: format_rfc3339(now),
            pem: self.seal(&key, pem.as_bytes()),
        })
    }

    /// Runs `ops` only while `lock` is still this node's.
    async fn fenced(&self, lock: &Held, ops: &[TxnOp]) -> anyhow::Result<()> {
        let compare = [Compare::CreateRevision {
            key: lock.key.clone().into_bytes(),
            revision: lock.revision,
        }];
        let outcome = self.client.txn(&compare, ops, &[]).await?;
        if outcome.succeeded {
            Ok(())
        } else {
            Err(Fenced { lock: lock.key.clone() }.into())
        }
    }

    // --- locks

    /// Takes the lock on `name` (a certificate, or [`Layout::account_lock`]'s) under `lease`, if nobody holds it.
    pub async fn try_lock(&self, lock_key: &str, lease: i64, now: OffsetDateTime) -> anyhow::Result<Claim> {
        let holder = LockHolder {
            node: self.node.clone(),
            since: format_rfc3339(now),
        };
        let key = lock_key.as_bytes().to_vec();
        let outcome = self
            .client
            .txn(
                &[Compare::CreateRevision {
                    key: key.clone(),
                    revision: 0,
                }],
                &[TxnOp::Put {
                    key: key.clone(),
                    value: serde_json::to_vec(&holder)?,
                    lease: Some(lease),
                }],
                &[TxnOp::Get { key: key.clone() }],
            )
            .await?;
        if outcome.succeeded {
            // The put's revision is the key's create_revision: the fencing token.
            return Ok(Claim::Held(Held {
                key: lock_key.to_owned(),
                revision: outcome.revision,
            }));
        }
        let holder = outcome
            .got()
            .and_then(|kv| serde_json::from_slice::<LockHolder>(&kv.value).ok())
            .map_or_else(|| "another node".to_owned(), |h| h.node);
        Ok(Claim::Busy { holder })
    }

    /// Lets go of `lock`, if it is still this node's.
    pub async fn unlock(&self, lock: &Held) {
        let ops = [TxnOp::Delete {
            key: lock.key.clone().into_bytes(),
        }];
        if let Err(err) = self.fenced(lock, &ops).await {
            tracing::debug!(lock = %lock.key, "unlock: {err:#}");
        }
    }

    // --- the order journal

    pub async fn journal(&self, name: &str) -> anyhow::Result<Option<(Journal, Vec<u8>)>> {
        let key = self.layout.order(name);
        let Some(kv) = self.client.get(key.as_bytes()).await? else {
            return Ok(None);
        };
        let journal: Journal =
            serde_json::from_slice(&kv.value).with_context(|| format!("{key} is not an order journal"))?;
        let private_key = self.open(&key, &journal.key)?;
        Ok(Some((journal, private_key)))
    }

    /// Records an order under `lock` (fenced): its URL and the key its CSR uses.
    pub async fn write_journal(
        &self,
        lock: &Held,
        name: &str,
        order_url: &str,
        private_key_der: &[u8],
        finalizing: bool,
        now: OffsetDateTime,
    ) -> anyhow::Result<()> {
        let key = self.layout.order(name);
        let journal = Journal {
            order_url: order_url.to_owned(),
            key: self.seal(&key, private_key_der),
            node: self.node.clone(),
            at: format_rfc3339(now),
            finalizing,
        };
        self.fenced(lock, &[put(&key, &serde_json::to_vec(&journal)?)]).await
    }

    /// Forgets an order that cannot be resumed (fenced).
    pub async fn drop_journal(&self, lock: &Held, name: &str) -> anyhow::Result<()> {
        let ops = [TxnOp::Delete {
            key: self.layout.order(name).into_bytes(),
        }];
        self.fenced(lock, &ops).await
    }

    // --- the account

    /// The shared ACME account file, opened.
    pub async fn account(&self) -> anyhow::Result<Option<Vec<u8>>> {
        let key = self.layout.account();
        match self.client.get(key.as_bytes()).await? {
            None => Ok(None),
            Some(kv) => Ok(Some(self.open(&key, &String::from_utf8_lossy(&kv.value))?)),
        }
    }

    /// Shares the account file, unless one is shared already; whether this one was stored.
    pub async fn share_account(&self, file: &[u8]) -> anyhow::Result<bool> {
        let key = self.layout.account();
        let outcome = self
            .client
            .txn(
                &[Compare::CreateRevision {
                    key: key.clone().into_bytes(),
                    revision: 0,
                }],
                &[put(&key, self.seal(&key, file).as_bytes())],
                &[],
            )
            .await?;
        Ok(outcome.succeeded)
    }

    // --- nodes

    /// Says that this node serves `serial` of `name`, proven on the wire.
    pub async fn acknowledge(&self, name: &str, serial: &str, now: OffsetDateTime) -> Result<(), EtcdError> {
        let ack = Ack {
            serial: serial.to_owned(),
            verified_at: format_rfc3339(now),
        };
        let value = serde_json::to_vec(&ack).expect("an ack serializes");
        self.client
            .put(self.layout.ack(&self.node, name).as_bytes(), &value, None)
            .await
            .map(|_| ())
    }

    /// What this node has acknowledged: certificate name and serial.
    pub async fn own_acks(&self) -> Result<Vec<(String, String)>, EtcdError> {
        let range = self
            .client
            .get_prefix(self.layout.acks_of(&self.node).as_bytes(), None)
            .await?;
        let acks = self.records::<Ack>(&range.kvs, |e: Entry<'_>| e.acknowledged());
        Ok(acks.into_iter().map(|(cert, ack)| (cert, ack.serial)).collect())
    }

    /// Announces this node as live under `lease`.
    pub async fn join(
        &self,
        lease: i64,
        advertise: Option<String>,
        certificates: &[String],
        now: OffsetDateTime,
    ) -> Result<(), EtcdError> {
        let member = Member {
            advertise,
            since: format_rfc3339(now),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            certificates: certificates.to_vec(),
        };
        let value = serde_json::to_vec(&member).expect("a member serializes");
        self.client
            .put(self.layout.member(&self.node).as_bytes(), &value, Some(lease))
            .await
            .map(|_| ())
    }

    /// Every key under `nodes/`: the live members and every acknowledgement.
    pub async fn nodes(&self) -> Result<Vec<KeyValue>, EtcdError> {
        Ok(self.client.get_prefix(self.layout.nodes().as_bytes(), None).await?.kvs)
    }

    /// The live members and their advertised addresses.
    pub async fn members(&self) -> Result<Vec<(String, Member)>, EtcdError> {
        Ok(self.records(&self.nodes().await?, |e: Entry<'_>| e.member()))
    }

    // --- HTTP-01 tokens

    pub async fn publish_token(&self, token: &str, key_authorization: &str, lease: i64) -> Result<(), EtcdError> {
        self.client
            .put(
                self.layout.token(token).as_bytes(),
                key_authorization.as_bytes(),
                Some(lease),
            )
            .await
            .map(|_| ())
    }

    pub async fn remove_token(&self, token: &str) -> Result<(), EtcdError> {
        self.client
            .delete(self.layout.token(token).as_bytes())
            .await
            .map(|_| ())
    }
}

fn put(key: &str, value: &[u8]) -> TxnOp {
    TxnOp::Put {
        key: key.as_bytes().to_vec(),
        value: value.to_vec(),
        lease: None,
    }
}
