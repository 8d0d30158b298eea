//! `hapcert fleet status [--json]`: the fleet as the store has it, read in one request. The nodes (alive when their
//! membership's lease is), each certificate's serial and the nodes that acknowledged serving it (proven on the wire),
//! the laggards (alive, and not serving it), the locks and the pending orders.

use std::collections::BTreeMap;

use serde::Serialize;

use super::layout::{Ack, Entry, Journal, Layout, LockHolder, Member, SharedCert};
use super::store::FleetStore;
use crate::core::config::Config;
use crate::edge::etcd::KeyValue;

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct FleetStatus {
    pub prefix: String,
    pub nodes: Vec<NodeRow>,
    pub certificates: Vec<CertRow>,
    pub locks: Vec<LockRow>,
    pub orders: Vec<OrderRow>,
}

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct NodeRow {
    pub node: String,
    pub alive: bool,
    pub advertise: Option<String>,
    /// When its membership started (alive nodes).
    pub since: Option<String>,
    /// Its latest acknowledgement.
    pub last_seen: Option<String>,
}

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct CertRow {
    pub name: String,
    pub serial: String,
    pub not_after: String,
    pub issued_by: String,
    pub issued_at: String,
    /// Nodes that acknowledged serving this serial.
    pub serving: Vec<String>,
    /// Alive nodes that did not.
    pub laggards: Vec<String>,
}

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct LockRow {
    pub certificate: String,
    pub holder: String,
    pub since: String,
}

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct OrderRow {
    pub certificate: String,
    pub node: String,
    pub order_url: String,
    pub at: String,
    pub finalizing: bool,
}

impl FleetStatus {
    /// Builds the status from every key under the prefix. Pure.
    pub fn from_keys(layout: &Layout, kvs: &[KeyValue]) -> FleetStatus {
        let mut members: BTreeMap<String, Member> = BTreeMap::new();
        let mut acks: BTreeMap<String, BTreeMap<String, Ack>> = BTreeMap::new();
        let mut certs = Vec::new();
        let mut locks = Vec::new();
        let mut orders = Vec::new();
        for kv in kvs {
            let key = String::from_utf8_lossy(&kv.key);
            match layout.classify(&key) {
                Entry::Member(node) => {
                    if let Ok(member) = serde_json::from_slice(&kv.value) {
                        members.insert(node.to_owned(), member);
                    }
                }
                Entry::Ack { node, cert } => {
                    if let Ok(ack) = serde_json::from_slice(&kv.value) {
                        acks.entry(node.to_owned()).or_default().insert(cert.to_owned(), ack);
                    }
                }
                Entry::Cert(name) => {
                    if let Ok(cert) = serde_json::from_slice::<SharedCert>(&kv.value) {
                        certs.push((name.to_owned(), cert));
                    }
                }
                Entry::Lock(name) => {
                    if let Ok(holder) = serde_json::from_slice::<LockHolder>(&kv.value) {
                        locks.push(LockRow {
                            certificate: name.to_owned(),
                            holder: holder.node,
                            since: holder.since,
                        });
                    }
                }
                Entry::Order(name) => {
                    if let Ok(journal) = serde_json::from_slice::<Journal>(&kv.value) {
                        orders.push(OrderRow {
                            certificate: name.to_owned(),
                            node: journal.node,
                            order_url: journal.order_url,
                            at: journal.at,
                            finalizing: journal.finalizing,
                        });
                    }
                }
                _ => {}
            }
        }
        let mut names: Vec<&String> = members.keys().chain(acks.keys()).collect();
        names.sort();
        names.dedup();
        let nodes = names
            .into_iter()
            .map(|node| NodeRow {
                node: node.clone(),
                alive: members.contains_key(node),
                advertise: members.get(node).and_then(|m| m.advertise.clone()),
                since: members.get(node).map(|m| m.since.clone()),
                last_seen: acks
                    .get(node)
                    .and_then(|a| a.values().map(|ack| ack.verified_at.clone()).max()),
            })
            .collect();
        let certificates = certs
            .into_iter()
            .map(|(name, cert)| {
                let serves = |node: &str| {
                    acks.get(node)
                        .and_then(|a| a.get(&name))
                        .is_some_and(|a| a.serial == cert.serial)
                };
                let serving: Vec<String> = acks.keys().filter(|n| serves(n)).cloned().collect();
                // A node that is not configured with this certificate does not lag behind it.
                let configured =
                    |member: &Member| member.certificates.is_empty() || member.certificates.contains(&name);
                let laggards = members
                    .iter()
                    .filter(|(node, member)| configured(member) && !serves(node))
                    .map(|(node, _)| node.clone())
                    .collect();
                CertRow {
                    name,
                    serial: cert.serial,
                    not_after: cert.not_after,
                    issued_by: cert.issued_by,
                    issued_at: cert.issued_at,
                    serving,
                    laggards,
                }
            })
            .collect();
        FleetStatus {
            prefix: layout.prefix(),
            nodes,
            certificates,
            locks,
            orders,
        }
    }

    pub fn alive(&self) -> usize {
        self.nodes.iter().filter(|n| n.alive).count()
    }

    pub fn render(&self) -> String {
        let mut out = format!(
            "fleet {}: {} of {} nodes alive\n",
            self.prefix.trim_end_matches('/'),
            self.alive(),
            self.nodes.len()
        );
        out += "nodes:\n";
        for node in &self.nodes {
            out += &format!(
                "  {:<16} {:<6} {:<22} last seen {}\n",
                node.node,
                if node.alive { "alive" } else { "gone" },
                node.advertise.as_deref().unwrap_or("-"),
                node.last_seen.as_deref().unwrap_or("never")
            );
        }
        out += "certificates:\n";
        if self.certificates.is_empty() {
            out += "  none yet\n";
        }
        for cert in &self.certificates {
            out += &format!(
                "  {:<16} serial {} expires {} ordered by {}; served by {} ({}){}\n",
                cert.name,
                cert.serial,
                cert.not_after,
                cert.issued_by,
                cert.serving.len(),
                cert.serving.join(", "),
                match cert.laggards.as_slice() {
                    [] => String::new(),
                    laggards => format!("; LAGGING: {}", laggards.join(", ")),
                }
            );
        }
        out += "locks:\n";
        if self.locks.is_empty() {
            out += "  none\n";
        }
        for lock in &self.locks {
            out += &format!(
                "  {:<16} held by {} since {}\n",
                lock.certificate, lock.holder, lock.since
            );
        }
        out += "pending orders:\n";
        if self.orders.is_empty() {
            out += "  none\n";
        }
        for order in &self.orders {
            out += &format!(
                "  {:<16} by {} since {}{}: {}\n",
                order.certificate,
                order.node,
                order.at,
                if order.finalizing { " (finalizing)" } else { "" },
                order.order_url
            );
        }
        out
    }
}

/// Reads the fleet's status from the store `config` names.
pub async fn read(config: &Config) -> anyhow::Result<FleetStatus> {
    let Some(fleet) = &config.fleet else {
        return Err(
            crate::error::UsageError(format!("{}: there is no [fleet] in this config", config.path.display())).into(),
        );
    };
    let store = FleetStore::connect(fleet)?;
    let layout = store.layout().clone();
    let range = store
        .client()
        .get_prefix(layout.prefix().as_bytes(), None)
        .await
        .map_err(|err| anyhow::anyhow!("the fleet's store cannot be reached: {err}"))?;
    Ok(FleetStatus::from_keys(&layout, &range.kvs))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(key: String, value: &impl Serialize) -> KeyValue {
        KeyValue {
            key: key.into_bytes(),
            value: serde_json::to_vec(value).unwrap(),
            create_revision: 1,
            mod_revision: 1,
            version: 1,
            lease: 0,
        }
    }

    #[test]
    fn a_node_that_acknowledged_an_older_serial_is_a_laggard_and_a_gone_node_is_not() {
        let layout = Layout::new("/f");
        let member = |advertise: &str| Member {
            advertise: Some(advertise.into()),
            since: "t0".into(),
            version: "v".into(),
            certificates: Vec::new(),
        };
        let ack = |serial: &str| Ack {
            serial: serial.into(),
            verified_at: "t1".into(),
        };
        let cert = SharedCert {
            serial: "02".into(),
            not_after: "t9".into(),
            names: vec!["a.example".into()],
            ari_id: None,
            issued_by: "lb1".into(),
            issued_at: "t1".into(),
            pem: "sealed".into(),
        };
        let kvs = vec![
            kv(layout.member("lb1"), &member("10.0.0.1:80")),
            kv(layout.member("lb2"), &member("10.0.0.2:80")),
            kv(layout.ack("lb1", "www"), &ack("02")),
            kv(layout.ack("lb2", "www"), &ack("01")),
            kv(layout.ack("lb3", "www"), &ack("01")),
            kv(layout.cert("www"), &cert),
            kv(
                layout.member("lb4"),
                &Member {
                    certificates: vec!["api".into()],
                    ..member("10.0.0.4:80")
                },
            ),
        ];
        let status = FleetStatus::from_keys(&layout, &kvs);
        assert_eq!(status.alive(), 3);
        assert_eq!(status.nodes.len(), 4);
        assert!(!status.nodes[2].alive, "lb3 only acknowledged, once");
        assert_eq!(status.certificates[0].serving, vec!["lb1"]);
        assert_eq!(
            status.certificates[0].laggards,
            vec!["lb2"],
            "lb4 is not configured with www"
        );
        let text = status.render();
        assert!(text.contains("served by 1 (lb1); LAGGING: lb2"), "{text}");
        assert!(!text.contains("sealed"), "{text}");
    }
}
