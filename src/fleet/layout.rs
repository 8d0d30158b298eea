//! What the fleet keeps under its prefix, key by key, and the records stored there. Pure: names and shapes only.
//!
//! ```text
//! <prefix>/account                  the ACME account file, sealed
//! <prefix>/certs/<name>             a certificate: its facts in clear, its PEM (key included) sealed
//! <prefix>/locks/<name>             who is renewing <name>, under the holder's lease; `locks/@account` for the account
//! <prefix>/orders/<name>            the order journal: the order URL and its key (sealed), written before finalizing
//! <prefix>/schedule/<name>          the CA budget of a certificate: its renewal window (ARI) and its retry schedule
//! <prefix>/authz-failures           the failed-authorization ledger of the whole fleet, per name
//! <prefix>/tokens/<token>           an HTTP-01 key authorization of a pending order, under the publisher's lease
//! <prefix>/nodes/<node>/member      a live node (its advertised address), under its lease
//! <prefix>/nodes/<node>/certs/<name> what the node serves, proven on the wire: {serial, verified_at}
//! ```
//!
//! Certificate names are `[a-z0-9._-]` (the config checks), so `@account` cannot collide with one.

use serde::{Deserialize, Serialize};

/// The lock that guards the account's creation.
const ACCOUNT_LOCK: &str = "@account";

#[derive(Debug, Clone)]
pub struct Layout {
    prefix: String,
}

/// What a key under the prefix is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry<'a> {
    Account,
    Cert(&'a str),
    Lock(&'a str),
    Order(&'a str),
    Schedule(&'a str),
    AuthzFailures,
    Token(&'a str),
    Member(&'a str),
    Ack { node: &'a str, cert: &'a str },
    Other,
}

impl<'a> Entry<'a> {
    /// The certificate a `certs/<name>` key holds.
    pub fn certificate(self) -> Option<&'a str> {
        match self {
            Entry::Cert(name) => Some(name),
            _ => None,
        }
    }

    /// The certificate an acknowledgement is about.
    pub fn acknowledged(self) -> Option<&'a str> {
        match self {
            Entry::Ack { cert, .. } => Some(cert),
            _ => None,
        }
    }

    /// The node a membership key announces.
    pub fn member(self) -> Option<&'a str> {
        match self {
            Entry::Member(node) => Some(node),
            _ => None,
        }
    }
}

impl Layout {
    pub fn new(prefix: &str) -> Layout {
        Layout {
            prefix: prefix.trim_end_matches('/').to_owned(),
        }
    }

    pub fn prefix(&self) -> String {
        format!("{}/", self.prefix)
    }

    fn key(&self, rest: &str) -> String {
        format!("{}/{rest}", self.prefix)
    }

    pub fn account(&self) -> String {
        self.key("account")
    }

    pub fn cert(&self, name: &str) -> String {
        self.key(&format!("certs/{name}"))
    }

    pub fn certs(&self) -> String {
        self.key("certs/")
    }

    pub fn lock(&self, name: &str) -> String {
        self.key(&format!("locks/{name}"))
    }

    pub fn account_lock(&self) -> String {
        self.lock(ACCOUNT_LOCK)
    }

    pub fn locks(&self) -> String {
        self.key("locks/")
    }

    pub fn order(&self, name: &str) -> String {
        self.key(&format!("orders/{name}"))
    }

    pub fn orders(&self) -> String {
        self.key("orders/")
    }

    pub fn schedule(&self, name: &str) -> String {
        self.key(&format!("schedule/{name}"))
    }

    pub fn schedules(&self) -> String {
        self.key("schedule/")
    }

    pub fn authz_failures(&self) -> String {
        self.key("authz-failures")
    }

    pub fn token(&self, token: &str) -> String {
        self.key(&format!("tokens/{token}"))
    }

    pub fn tokens(&self) -> String {
        self.key("tokens/")
    }

    pub fn member(&self, node: &str) -> String {
        self.key(&format!("nodes/{node}/member"))
    }

    pub fn ack(&self, node: &str, cert: &str) -> String {
        self.key(&format!("nodes/{node}/certs/{cert}"))
    }

    /// Every acknowledgement of `node`.
    pub fn acks_of(&self, node: &str) -> String {
        self.key(&format!("nodes/{node}/certs/"))
    }

    pub fn nodes(&self) -> String {
        self.key("nodes/")
    }

    /// What `key` is, when it is under the prefix.
    pub fn classify<'k>(&self, key: &'k str) -> Entry<'k> {
        let Some(rest) = key.strip_prefix(&self.prefix).and_then(|r| r.strip_prefix('/')) else {
            return Entry::Other;
        };
        let parts: Vec<&str> = rest.split('/').collect();
        match parts.as_slice() {
            ["account"] => Entry::Account,
            ["certs", name] => Entry::Cert(name),
            ["locks", name] => Entry::Lock(name),
            ["orders", name] => Entry::Order(name),
            ["schedule", name] => Entry::Schedule(name),
            ["authz-failures"] => Entry::AuthzFailures,
            ["tokens", token] => Entry::Token(token),
            ["nodes", node, "member"] => Entry::Member(node),
            ["nodes", node, "certs", cert] => Entry::Ack { node, cert },
            _ => Entry::Other,
        }
    }
}

/// `certs/<name>`: one key, so that the facts and the PEM change together in one watch event.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SharedCert {
    pub serial: String,
    /// RFC 3339.
    pub not_after: String,
    pub names: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ari_id: Option<String>,
    /// The node that ordered it, and when (RFC 3339).
    pub issued_by: String,
    pub issued_at: String,
    /// The HAProxy PEM (chain and private key), sealed under the fleet key for this etcd key.
    pub pem: String,
}

/// `schedule/<name>`: what the CA said of a certificate and how its orders went, so that one node's renewal-window
/// fetch and one node's failures count for the whole fleet.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SharedSchedule {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renewal_info: Option<crate::core::ari::RenewalInfo>,
    #[serde(default)]
    pub failures: crate::core::schedule::Failures,
    pub by: String,
    /// RFC 3339: when `by` wrote it.
    pub at: String,
}

/// `orders/<name>`: an order placed by the lock holder, so that a successor resumes it instead of ordering again.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Journal {
    pub order_url: String,
    /// The certificate's private key (PKCS#8 DER), sealed: the CSR of a resumed order must use the same key.
    pub key: String,
    pub node: String,
    /// RFC 3339.
    pub at: String,
    /// Set just before the holder finalizes: from then on the CA may issue at any moment.
    #[serde(default)]
    pub finalizing: bool,
}

/// `nodes/<node>/member`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Member {
    /// `host:port` of the node's HAProxy plain-HTTP frontend, for the fleet's preflight.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advertise: Option<String>,
    /// RFC 3339: when this membership started.
    pub since: String,
    pub version: String,
    /// The certificates this node is configured with: it lags only behind those. Empty from an older hapcert: all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub certificates: Vec<String>,
}

/// `nodes/<node>/certs/<name>`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Ack {
    pub serial: String,
    /// RFC 3339.
    pub verified_at: String,
}

/// `locks/<name>`: the holder.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LockHolder {
    pub node: String,
    /// RFC 3339.
    pub since: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_is_under_the_prefix_and_classifies_back() {
        let layout = Layout::new("/hapcert/prod/");
        assert_eq!(layout.cert("www"), "/hapcert/prod/certs/www");
        assert_eq!(layout.classify(&layout.cert("www")), Entry::Cert("www"));
        assert_eq!(layout.classify(&layout.account()), Entry::Account);
        assert_eq!(layout.classify(&layout.account_lock()), Entry::Lock("@account"));
        assert_eq!(layout.classify(&layout.order("www")), Entry::Order("www"));
        assert_eq!(layout.classify(&layout.schedule("www")), Entry::Schedule("www"));
        assert_eq!(layout.classify(&layout.authz_failures()), Entry::AuthzFailures);
        assert_eq!(layout.classify(&layout.token("abc")), Entry::Token("abc"));
        assert_eq!(layout.classify(&layout.member("lb1")), Entry::Member("lb1"));
        assert_eq!(
            layout.classify(&layout.ack("lb1", "www")),
            Entry::Ack {
                node: "lb1",
                cert: "www"
            }
        );
        assert_eq!(layout.classify("/hapcert/prodx/certs/www"), Entry::Other);
        assert_eq!(layout.classify("/hapcert/prod/certs/www/extra"), Entry::Other);
    }
}
