//! The journal of the DNS records hapcert has added and not yet removed (`dns-records.json` in the state dir). An entry
//! is written before the update is sent and removed after the record is gone, so that a run killed in between leaves
//! its record named here, and the next run removes it.

use std::path::PathBuf;
use std::sync::Mutex;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use super::{StateDir, remove_durably, write_atomic};
use crate::core::config::FileOwner;

const FILE: &str = "dns-records.json";
/// The probe records of `check`'s daily route check: a journal of their own, so that a check never removes (or races
/// the writes of) a running order's records.
const PROBE_FILE: &str = "dns-probes.json";

/// One TXT value at one name, as it was added.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddedRecord {
    /// The `[[dns_provider]]` that added it, and so can remove it.
    pub provider: String,
    /// `_acme-challenge.<name>` as the certificate asks, before any CNAME.
    pub challenge: String,
    /// The name the value went to, after following CNAMEs.
    pub record: String,
    pub zone: String,
    /// The server the update went to (`ip:port`), which the removal goes to as well.
    pub primary: String,
    pub value: String,
}

pub struct DnsJournal {
    path: PathBuf,
    /// Concurrent orders share the file: one change at a time.
    changing: Mutex<()>,
}

impl DnsJournal {
    pub fn open(state: &StateDir) -> DnsJournal {
        DnsJournal {
            path: state.root().join(FILE),
            changing: Mutex::new(()),
        }
    }

    /// The journal of `check`'s probe records, apart from the runs'.
    pub fn open_probes(state: &StateDir) -> DnsJournal {
        DnsJournal {
            path: state.root().join(PROBE_FILE),
            changing: Mutex::new(()),
        }
    }

    /// The records added and not yet removed.
    pub fn list(&self) -> anyhow::Result<Vec<AddedRecord>> {
        match std::fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes).with_context(|| {
                format!(
                    "{} is damaged; the TXT records it named may be left in their zones: remove them by hand \
                     (nsupdate `update delete`), then delete the file",
                    self.path.display()
                )
            }),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(err) => Err(err).with_context(|| format!("cannot read {}", self.path.display())),
        }
    }

    /// Notes `record` before it is added.
    pub fn add(&self, record: &AddedRecord) -> anyhow::Result<()> {
        self.change(|records| {
            if !records.contains(record) {
                records.push(record.clone());
            }
        })
    }

    /// Forgets `record` once it is removed.
    pub fn remove(&self, record: &AddedRecord) -> anyhow::Result<()> {
        self.change(|records| records.retain(|r| r != record))
    }

    fn change(&self, edit: impl FnOnce(&mut Vec<AddedRecord>)) -> anyhow::Result<()> {
        let _one_at_a_time = self.changing.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut records = self.list()?;
        edit(&mut records);
        let written = match records.is_empty() {
            true => remove_durably(&self.path),
            false => write_atomic(
                &self.path,
                &serde_json::to_vec_pretty(&records).expect("records serialize"),
                0o600,
                FileOwner::default(),
            ),
        };
        written.with_context(|| format!("cannot write {}", self.path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(value: &str) -> AddedRecord {
        AddedRecord {
            provider: "bind".into(),
            challenge: "_acme-challenge.example.com".into(),
            record: "_acme-challenge.example.com".into(),
            zone: "example.com".into(),
            primary: "192.0.2.1:53".into(),
            value: value.into(),
        }
    }

    #[test]
    fn keeps_what_was_added_until_removed_and_leaves_no_file_when_empty() {
        let dir = tempfile::tempdir().unwrap();
        let journal = DnsJournal::open(&StateDir::at(dir.path()));
        assert!(journal.list().unwrap().is_empty());
        journal.add(&record("apex")).unwrap();
        journal.add(&record("wildcard")).unwrap();
        journal.add(&record("apex")).unwrap();
        // A later run reads the same file.
        let again = DnsJournal::open(&StateDir::at(dir.path()));
        assert_eq!(again.list().unwrap(), vec![record("apex"), record("wildcard")]);
        again.remove(&record("apex")).unwrap();
        assert_eq!(journal.list().unwrap(), vec![record("wildcard")]);
        journal.remove(&record("wildcard")).unwrap();
        assert!(!dir.path().join(FILE).exists());
    }
}
